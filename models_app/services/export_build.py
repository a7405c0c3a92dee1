"""Building a version's export in a worker: the network from image to probabilities
(`models_app.ml.export`) as ONNX and TorchScript, checked against the app's own
predictions on the project's images before it is offered, and its JSON."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from labeling.models import Image
from models_app.ml.backbone import Backbone, load_backbone
from models_app.ml.export import (
    INPUT_NAME,
    OUTPUT_NAME,
    export_network,
    finetuned_network,
    network_proba,
    onnx_proba,
    single_label_network,
    tag_network,
    torchscript_proba,
)
from models_app.ml.finetune import finetuned_from_bytes
from models_app.ml.head import head_from_bytes
from models_app.ml.multilabel import tag_head_from_bytes
from models_app.ml.preprocess import InputConfig, preprocess
from models_app.models import Embedding, ModelExport, ModelVersion
from models_app.predictor import MANIFEST_FORMAT
from models_app.selectors import backbone_key, class_names
from models_app.services.embeddings import image_sources
from models_app.services.exports import export_blocker
from models_app.services.predictions import ActiveModel

logger = logging.getLogger(__name__)

# The build compares the export with the app on this many of the project's images, and
# refuses it when any probability differs by more than the tolerance.
CHECK_IMAGES = 8
CHECK_TOLERANCE = 1e-3
DECODING = (
    "EXIF orientation applied, the first frame of an animation, transparency composited "
    "on white, any mode converted to 8-bit sRGB"
)


class ExportError(Exception):
    """A build that cannot go ahead, with a message for the person who asked."""


def _progress(export: ModelExport, text: str) -> None:
    ModelExport.objects.filter(pk=export.pk).update(progress=text)


def model_export_build(*, export_id: int) -> ModelExport:
    """Build one requested export: the network, its ONNX and TorchScript files and JSON,
    checked against the app's predictions on a few of the project's images.

    Idempotent: an export already finished is returned as it is; a rerun after a crash
    starts over (new file names, so a half-written file is never served). Any failure
    is recorded on the export (status failed, with the error).
    """
    with transaction.atomic():
        export = ModelExport.objects.select_for_update().select_related("version").get(pk=export_id)
        if export.status in (ModelExport.Status.SUCCEEDED, ModelExport.Status.FAILED):
            return export
        export.status = ModelExport.Status.RUNNING
        export.started_at = timezone.now()
        export.error = ""
        export.save(update_fields=["status", "started_at", "error"])
    try:
        fields = _build(export)
    except Exception as error:  # noqa: BLE001 - every failure is recorded, none is lost
        logger.exception("export %s failed", export)
        message = str(error)
        if not isinstance(error, ExportError):
            message = f"{type(error).__name__}: {message}"
        ModelExport.objects.filter(pk=export.pk).update(
            status=ModelExport.Status.FAILED,
            error=message,
            progress="",
            finished_at=timezone.now(),
        )
        export.refresh_from_db()
        return export
    ModelExport.objects.filter(pk=export.pk).update(
        **fields,
        status=ModelExport.Status.SUCCEEDED,
        progress="",
        finished_at=timezone.now(),
    )
    export.refresh_from_db()
    return export


def version_network(version: ModelVersion, backbone: Backbone):
    """The version's whole network from image to probabilities, on the CPU. `backbone`
    must be a copy of its own (a fine-tuned version overwrites its weights)."""
    with default_storage.open(version.artifact, "rb") as f:
        data = f.read()
    if version.is_multi_label:
        return tag_network(backbone, tag_head_from_bytes(data))
    if version.fine_tuned:
        tuned, probe = finetuned_from_bytes(data)
        return finetuned_network(backbone, tuned, probe)
    return single_label_network(backbone, head_from_bytes(data))


def export_backbone() -> Backbone:
    """A fresh CPU copy of the app's backbone (never the worker's cached one)."""
    config = settings.LEARNER
    weights = Path(config["BACKBONE_WEIGHTS"]) if config["BACKBONE_WEIGHTS"] else None
    return load_backbone(config["BACKBONE"], weights, "cpu")


def _build(export: ModelExport) -> dict:
    version = export.version
    blocker = export_blocker(version=version)
    if blocker:
        raise ExportError(blocker)
    _progress(export, "Loading the model")
    backbone = export_backbone()
    network = version_network(version, backbone)
    _progress(export, "Writing ONNX and TorchScript")
    exported = export_network(network, backbone.input.size)
    _progress(export, "Checking the export against the app")
    check = _check(version, backbone, network, exported)
    temperature = [float(t) for t in network.temperature.flatten()]
    manifest = manifest_of(
        version, backbone, temperature=temperature, opset=exported.opset, check=check
    )
    stem = f"exports/{version.project_id}/v{version.number}-{uuid.uuid4().hex[:8]}"
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    return {
        "onnx_file": default_storage.save(f"{stem}.onnx", ContentFile(exported.onnx)),
        "torchscript_file": default_storage.save(
            f"{stem}.torchscript.pt", ContentFile(exported.torchscript)
        ),
        "manifest_file": default_storage.save(f"{stem}.json", ContentFile(text.encode())),
        "manifest": manifest,
        "onnx_bytes": len(exported.onnx),
        "torchscript_bytes": len(exported.torchscript),
    }


def _check(version: ModelVersion, backbone: Backbone, network, exported) -> dict:
    """The export's probabilities against the app's on a few of the project's embedded
    images, those it is least sure of first (the app scoring them as it does: from their
    stored embeddings, or through the fine-tuned network); ExportError when they differ
    beyond CHECK_TOLERANCE."""
    ids = list(
        Embedding.objects.filter(
            image__project_id=version.project_id,
            image__status=Image.Status.ACTIVE,
            backbone=backbone_key(),
            vector__isnull=False,
        )
        # The least sure suggestions first: where probabilities are far from 0 and 1,
        # a difference between export and app shows.
        .order_by(F("image__confidence").asc(nulls_last=True), "image_id")
        .values_list("image_id", flat=True)[:CHECK_IMAGES]
    )
    if not ids:
        return {"images": 0}
    batch = np.stack([preprocess(s, backbone.input) for s in image_sources(ids)])
    app = ActiveModel(version=version).proba(ids)
    diffs = {
        "network": np.abs(network_proba(network, batch) - app).max(),
        "onnx": np.abs(onnx_proba(exported.onnx, batch) - app).max(),
        "torchscript": np.abs(torchscript_proba(exported.torchscript, batch) - app).max(),
    }
    worst = max(diffs, key=diffs.get)
    if diffs[worst] > CHECK_TOLERANCE:
        raise ExportError(
            f"The {worst} export disagrees with the app by {diffs[worst]:.2g} in probability "
            f"on the project's images (at most {CHECK_TOLERANCE:g} is accepted): not offered."
        )
    return {"images": len(ids), **{f"max_prob_diff_{k}": float(v) for k, v in diffs.items()}}


def manifest_of(
    version: ModelVersion,
    backbone: Backbone,
    *,
    temperature: list[float],
    opset: int,
    check: dict,
) -> dict:
    """What a caller needs to run the export: input, classes or tags with their ids,
    calibration (applied inside the graph: one temperature, or one per tag), thresholds,
    the version and its held-out figures."""
    multi = version.is_multi_label
    names = class_names(version=version)
    metrics = version.metrics
    return {
        "format": MANIFEST_FORMAT,
        "format_version": 1,
        "project": {"id": version.project_id, "name": version.project.name},
        "version": version.number,
        "kind": "multi" if multi else "single",
        "fine_tuned": version.fine_tuned,
        "backbone": version.backbone,
        "trained_at": version.finished_at.isoformat() if version.finished_at else None,
        "labels_total": version.labels_total,
        "input": manifest_input(backbone.input),
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", len(names)],
            "activation": "sigmoid per tag" if multi else "softmax",
            "calibrated": True,
        },
        "classes": [
            {"index": i, "id": pk, "name": name}
            for i, (pk, name) in enumerate(zip(version.class_ids, names, strict=True))
        ],
        "temperature": temperature if multi else temperature[0],
        "thresholds": metrics.get("thresholds") if multi else None,
        "metrics": _metrics_summary(version, names),
        "onnx_opset": opset,
        "check": check,
    }


def _metrics_summary(version: ModelVersion, names: list[str]) -> dict:
    test = version.metrics.get("test") or {}
    if version.is_multi_label:
        keep = ("ap", "precision", "recall", "f1", "threshold", "support", "n")
        return {
            "split": "test",
            "n_images": test.get("n_images"),
            "map": test.get("map"),
            "micro_f1": test.get("micro_f1"),
            "macro_f1": test.get("macro_f1"),
            "tags": [
                {"name": name, **{k: row.get(k) for k in keep}}
                for name, row in zip(names, test.get("tags", []), strict=False)
            ],
        }
    keep = ("n", "accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci", "ece")
    return {"split": "test", **{k: test.get(k) for k in keep}}


def manifest_input(config: InputConfig) -> dict:
    """The JSON's "input": what the graph takes and how an image becomes it (the
    predictor rebuilds its `InputConfig` from this)."""
    return {
        "name": INPUT_NAME,
        "shape": ["batch", 3, config.size, config.size],
        "dtype": "float32",
        "size": config.size,
        "crop_pct": config.crop_pct,
        "mean": list(config.mean),
        "std": list(config.std),
        "resize": (
            f"decode ({DECODING}); resize the short side to round(size / crop_pct) = "
            f"{round(config.size / config.crop_pct)} px (bicubic), crop the centre "
            f"{config.size}x{config.size}, scale to 0..1, subtract mean, divide by std, "
            "channels first"
        ),
    }
