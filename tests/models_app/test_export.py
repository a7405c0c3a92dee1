"""Exported versions give the app's probabilities: a single-label and a tag version of
real Fashion-MNIST images, built through the services with the real backbone, run
through onnxruntime (by the standalone predictor) and through TorchScript, compared
with what the app itself answers for the same images."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import torch
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage

from labeling.models import Image
from models_app import services
from models_app.ml.export import network_proba, single_label_network
from models_app.ml.finetune import finetuned_from_bytes
from models_app.ml.preprocess import preprocess
from models_app.models import LearnerSettings, ModelExport, ModelVersion
from models_app.predictor import ExportedModel, records
from models_app.services.export_build import export_backbone, model_export_build
from models_app.services.exports import export_file_name, export_file_open, model_export_request
from tests.fashion import labeled_project
from tests.models_app.test_tag_training import tag_project, tagged_images  # noqa: F401

CLASSES = ["Trouser", "Bag", "Sneaker"]


def train(project, owner) -> ModelVersion:
    version = services.model_version_request(project=project, trigger="api", user=owner)
    version = services.model_version_train(version_id=version.pk)
    assert version.status == "succeeded", version.error
    return version


def build(version, owner) -> ModelExport:
    export = model_export_request(version=version, user=owner)
    export = model_export_build(export_id=export.pk)
    assert export.status == "succeeded", export.error
    return export


def saved(export, kind, folder):
    """One file of the export, downloaded into `folder` under its download name."""
    path = folder / export_file_name(export=export, kind=kind)
    with export_file_open(export=export, kind=kind) as f:
        path.write_bytes(f.read())
    return path


def images_folder(project, folder):
    """The project's image files copied into `folder`, named by image id."""
    folder.mkdir()
    ids = list(Image.objects.filter(project=project).order_by("id").values_list("id", flat=True))
    for image in Image.objects.filter(pk__in=ids):
        with image.file.open("rb") as f:
            (folder / f"{image.pk:06d}.png").write_bytes(f.read())
    return ids


def torchscript_proba(path, files, config):
    module = torch.jit.load(str(path), map_location="cpu")
    batch = torch.from_numpy(np.stack([preprocess(f, config) for f in files]))
    with torch.inference_mode():
        return module(batch).numpy()


@pytest.fixture
def single_label(project, owner, fashion):
    labeled_project(project, owner, fashion, CLASSES, per_class=12, unlabeled_per_class=3)
    return train(project, owner)


def test_a_single_label_export_gives_the_apps_probabilities(single_label, project, owner, tmp_path):
    version = single_label
    export = build(version, owner)
    manifest = export.manifest
    assert manifest["kind"] == "single" and manifest["version"] == version.number
    assert [c["id"] for c in manifest["classes"]] == version.class_ids
    assert {c["name"] for c in manifest["classes"]} == set(CLASSES)
    assert manifest["temperature"] == pytest.approx(version.metrics["temperature"])
    assert manifest["input"]["size"] == 224 and len(manifest["input"]["mean"]) == 3
    assert manifest["metrics"]["accuracy"] == version.metrics["test"]["accuracy"]
    assert manifest["check"]["images"] == 8
    assert export.onnx_bytes > 1_000_000 and export.torchscript_bytes > 1_000_000

    model_path = saved(export, "onnx", tmp_path)
    saved(export, "json", tmp_path)
    ts_path = saved(export, "torchscript", tmp_path)
    ids = images_folder(project, tmp_path / "images")
    assert len(ids) == 45
    app = services.active_model(project=project).proba(ids)

    model = ExportedModel(model_path)
    files = sorted((tmp_path / "images").iterdir())
    done, skipped = model.predict_files(files, root=tmp_path / "images")
    assert not skipped and [p.file for p in done] == [f.name for f in files]
    onnx = np.stack([p.proba for p in done])
    assert onnx.shape == (45, 3)
    assert np.abs(onnx - app).max() < 1e-4
    assert (onnx.argmax(axis=1) == app.argmax(axis=1)).all()
    assert onnx.sum(axis=1) == pytest.approx(np.ones(45), abs=1e-5)  # softmax inside

    script = torchscript_proba(ts_path, files, model.manifest.input)
    assert np.abs(script - app).max() < 1e-4


def test_a_tag_export_gives_the_apps_probabilities_per_tag(
    tag_project,  # noqa: F811
    owner,
    fashion,
    tmp_path,
):
    tags = tagged_images(tag_project, owner, fashion, per_class=12, untagged=2)
    version = train(tag_project, owner)
    export = build(version, owner)
    manifest = export.manifest
    assert manifest["kind"] == "multi"
    assert [c["id"] for c in manifest["classes"]] == [t.pk for t in tags.values()]
    assert manifest["thresholds"] == pytest.approx(version.metrics["thresholds"])
    assert len(manifest["temperature"]) == 3
    assert manifest["output"]["activation"] == "sigmoid per tag"

    model_path = saved(export, "onnx", tmp_path)
    saved(export, "json", tmp_path)
    ts_path = saved(export, "torchscript", tmp_path)
    ids = images_folder(tag_project, tmp_path / "images")
    app = services.active_model(project=tag_project).proba(ids)
    model = ExportedModel(model_path)
    files = sorted((tmp_path / "images").iterdir())
    done, skipped = model.predict_files(files)
    assert not skipped
    onnx = np.stack([p.proba for p in done])
    assert onnx.shape == (len(ids), 3)
    assert np.abs(onnx - app).max() < 1e-4
    # Independent sigmoids: rows need not sum to one. What the predictor writes for an
    # image is the tags at or above their thresholds, as the app decides them.
    assert not np.allclose(onnx.sum(axis=1), 1.0)
    thresholds = np.asarray(version.metrics["thresholds"])
    rows = records(model.manifest, done, top_k=2)
    names = [c["name"] for c in manifest["classes"]]
    for row, proba in zip(rows, app, strict=True):
        assert [t["tag"] for t in row["tags"]] == [
            names[j] for j in np.argsort(-proba) if proba[j] >= thresholds[j]
        ]
        assert row["probabilities"]["bag"] == pytest.approx(proba[1], abs=1e-4)
    assert sum([t["tag"] for t in row["tags"]] == ["footwear"] for row in rows) >= 20
    script = torchscript_proba(ts_path, files, model.manifest.input)
    assert np.abs(script - app).max() < 1e-4


def test_asking_twice_gives_the_same_export_and_a_failed_one_starts_over(
    single_label, owner, tmp_path
):
    first = model_export_request(version=single_label, user=owner)
    assert model_export_request(version=single_label, user=owner).pk == first.pk
    assert first.status == "queued"
    # The artifact vanished: the build fails with the reason, and nothing is offered.
    shutil.move(default_storage.path(single_label.artifact), tmp_path / "artifact")
    failed = model_export_build(export_id=first.pk)
    assert failed.status == "failed" and "FileNotFoundError" in failed.error
    with pytest.raises(ValidationError, match="not ready"):
        export_file_open(export=failed, kind="onnx")
    # Built again once the cause is gone; a second build of a finished one is a no-op.
    shutil.move(tmp_path / "artifact", default_storage.path(single_label.artifact))
    again = model_export_request(version=single_label, user=owner)
    assert again.pk == first.pk and again.status == "queued" and again.error == ""
    done = model_export_build(export_id=again.pk)
    assert done.status == "succeeded", done.error
    onnx_file = done.onnx_file
    assert model_export_build(export_id=again.pk).onnx_file == onnx_file
    with export_file_open(export=done, kind="json") as f:
        assert json.load(io.TextIOWrapper(f))["version"] == single_label.number


def test_a_version_that_did_not_train_is_refused_at_once(single_label, project, owner):
    failed = ModelVersion.objects.create(
        project=project, number=9, trigger="api", status="failed", backbone=single_label.backbone
    )
    with pytest.raises(ValidationError, match="only a trained version can be exported"):
        model_export_request(version=failed, user=owner)
    assert not ModelExport.objects.filter(version=failed).exists()


def test_a_fine_tuned_export_is_the_fine_tuned_network(project, owner, fashion, tmp_path):
    labeled_project(project, owner, fashion, ["Trouser", "Bag"], per_class=8)
    LearnerSettings.objects.create(project=project, fine_tune=True, fine_tune_epochs=1)
    version = train(project, owner)
    assert version.fine_tuned
    export = build(version, owner)
    assert export.manifest["fine_tuned"] is True
    model_path = saved(export, "onnx", tmp_path)
    saved(export, "json", tmp_path)
    ts_path = saved(export, "torchscript", tmp_path)
    ids = images_folder(project, tmp_path / "images")
    # The app scores a fine-tuned version's images through its network, from the files.
    app = services.active_model(project=project).proba(ids)
    model = ExportedModel(model_path)
    files = sorted((tmp_path / "images").iterdir())
    done, _ = model.predict_files(files)
    onnx = np.stack([p.proba for p in done])
    assert np.abs(onnx - app).max() < 1e-4
    # Not the probe: the backbone's tuned weights are in the graph.
    probe = single_label_network(export_backbone(), finetuned_from_bytes(artifact(version))[1])
    batch = np.stack([preprocess(f, model.manifest.input) for f in files])
    assert np.abs(network_proba(probe, batch) - app).max() > 1e-3
    script = torchscript_proba(ts_path, files, model.manifest.input)
    assert np.abs(script - app).max() < 1e-4


def artifact(version) -> bytes:
    with default_storage.open(version.artifact, "rb") as f:
        return f.read()
