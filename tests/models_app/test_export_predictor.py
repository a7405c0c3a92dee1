"""The standalone predictor, run as a user runs it (`python -m models_app.predictor`):
on a real export, over a folder where a cut-off file and a text file sit among real
images; its clear errors for a missing model or JSON; and the preprocessing it shares
with the app, checked array for array on the messy image corpus, in a process that
has neither Django nor torch."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from labeling import services as labeling_services
from labeling.models import Image
from models_app import services
from models_app.ml.backbone import load_backbone
from models_app.ml.preprocess import preprocess
from models_app.services.export_build import manifest_input
from tests import image_corpus as corpus
from tests.conftest import ROOT
from tests.fashion import labeled_project
from tests.models_app.test_export import build, saved, train

FASHION_INDEX = {"Trouser": 1, "Bag": 8}


def predictor(*args, check_rc: int | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "models_app.predictor", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check_rc is not None:
        assert done.returncode == check_rc, done.stderr
    return done


def fashion_files(fashion, folder, name: str, count: int, skip: int = 30) -> list[str]:
    """Real Fashion-MNIST images of class `name` that the model did not train on."""
    labels = np.frombuffer(fashion.labels, np.uint8)
    indices = np.flatnonzero(labels == FASHION_INDEX[name])[skip : skip + count]
    names = []
    for index in indices:
        path = folder / f"{name.lower()}-{index}.png"
        path.write_bytes(fashion.png(int(index)))
        names.append(path.name)
    return names


def test_the_predictor_reads_a_folder_skipping_a_cut_file_and_says_what_is_missing(
    project, owner, fashion, tmp_path
):
    labeled_project(project, owner, fashion, ["Trouser", "Bag"], per_class=10)
    export = build(train(project, owner), owner)
    models = tmp_path / "model"
    models.mkdir()
    model = saved(export, "onnx", models)
    saved(export, "json", models)
    images = tmp_path / "images"
    (images / "more").mkdir(parents=True)
    trousers = fashion_files(fashion, images, "Trouser", 3)
    bags = fashion_files(fashion, images / "more", "Bag", 2)
    good = (images / trousers[0]).read_bytes()
    (images / "cut.png").write_bytes(corpus.truncated(good, 0.6))
    (images / "notes.txt").write_text("not an image")
    (images / ".hidden.png").write_bytes(good)

    out = tmp_path / "p.csv"
    done = predictor(model, images, "--out", out, "--top-k", "2", check_rc=0)
    assert "skipped cut.png: not a readable image" in done.stderr
    assert "skipped notes.txt" in done.stderr
    assert "5 image(s) predicted, 2 skipped" in done.stderr
    rows = {row["file"]: row for row in csv.DictReader(out.open())}
    assert set(rows) == {*trousers, *(f"more/{b}" for b in bags), "cut.png", "notes.txt"}
    for name in trousers:
        assert rows[name]["class"] == "Trouser" and float(rows[name]["confidence"]) > 0.5
        assert rows[name]["top_k"].startswith("Trouser:") and "Bag:" in rows[name]["top_k"]
        assert rows[name]["error"] == ""
    # Ten labels a class: the model may miss a bag; the predictor reports what it says.
    assert any(rows[f"more/{name}"]["class"] == "Bag" for name in bags)
    assert rows["cut.png"]["class"] == "" and "truncated" in rows["cut.png"]["error"]

    out = tmp_path / "p.json"
    predictor(model, images, "--out", out, "--top-k", "1", check_rc=0)
    report = json.loads(out.read_text())
    assert report["version"] == export.version.number and report["kind"] == "single"
    assert len(report["predictions"]) == 5
    first = report["predictions"][0]
    assert first["file"] == "more/" + bags[0] and first["class"] == "Bag"
    assert len(first["top_k"]) == 1 and first["top_k"][0]["probability"] == first["confidence"]
    assert {s["file"] for s in report["skipped"]} == {"cut.png", "notes.txt"}

    # What cannot go on is said plainly, with exit status 1 and nothing written.
    gone = predictor(models / "nothing.onnx", images, "--out", tmp_path / "x.csv", check_rc=1)
    assert "nothing.onnx: no such model file" in gone.stderr
    assert not (tmp_path / "x.csv").exists()
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "model.onnx").write_bytes(model.read_bytes())
    lonely = predictor(bare / "model.onnx", images, "--out", tmp_path / "x.csv", check_rc=1)
    assert "model.json: no such file" in lonely.stderr and "--manifest" in lonely.stderr
    # The JSON passed by hand works; a JSON of another model is refused.
    json_path = next(models.glob("*.json"))
    predictor(bare / "model.onnx", images, "--manifest", json_path, "--out", out, check_rc=0)
    wrong = json.loads(json_path.read_text())
    wrong["classes"].append({"index": 2, "id": 0, "name": "extra"})
    (bare / "model.json").write_text(json.dumps(wrong))
    mismatch = predictor(bare / "model.onnx", images, "--out", tmp_path / "x.csv", check_rc=1)
    assert "do not belong together" in mismatch.stderr
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "cut.png").write_bytes(corpus.truncated(good, 0.6))
    none = predictor(model, only_bad, "--out", tmp_path / "z.csv", check_rc=1)
    assert "no image" in none.stderr
    assert predictor(model, images, "--out", tmp_path / "p.txt").returncode == 2
    assert predictor(model, images, "--out", tmp_path / "no" / "p.csv").returncode == 2
    tags = {**json.loads(json_path.read_text()), "kind": "multi", "thresholds": None}
    (bare / "model.json").write_text(json.dumps(tags))
    untold = predictor(bare / "model.onnx", images, "--out", tmp_path / "x.csv", check_rc=1)
    assert "a threshold for every tag" in untold.stderr


STANDALONE = """
import json, sys
from pathlib import Path
import numpy as np
from models_app.predictor import Manifest, prepare
manifest = Manifest.read(Path(sys.argv[1]))
files = sorted(Path(sys.argv[2]).iterdir())
np.savez(sys.argv[3], **{f.name: prepare(f, manifest) for f in files})
heavy = [m for m in ("django", "torch", "timm", "rest_framework") if m in sys.modules]
print(json.dumps(heavy))
"""


def standalone_arrays(manifest, folder, out) -> dict[str, np.ndarray]:
    done = subprocess.run(
        [sys.executable, "-c", STANDALONE, manifest, folder, out],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [], "the predictor loaded Django or torch"
    return dict(np.load(out))


@pytest.mark.django_db
def test_the_predictor_prepares_every_corpus_image_as_the_app_does(project, owner, tmp_path):
    samples = [make() for make in corpus.CORPUS.values()]
    names = [f"{i:02d}-{s.filename}" for i, s in enumerate(samples)]
    results = labeling_services.images_ingest(
        project=project,
        files=[SimpleUploadedFile(s.filename, s.data) for s in samples],
        user=owner,
    )
    assert [r.status for r in results] == ["created"] * len(samples), results
    ids = [r.image_id for r in results]
    # The app: each file as it stored it, prepared as its embedding prepares it.
    config = load_backbone(device="cpu").input
    app = {
        name: preprocess(source, config)
        for name, source in zip(names, services.image_sources(ids), strict=True)
    }
    stored, original = tmp_path / "stored", tmp_path / "original"
    stored.mkdir()
    original.mkdir()
    kept = set()
    for name, sample, image_id in zip(names, samples, ids, strict=True):
        with Image.objects.get(pk=image_id).file.open("rb") as f:
            data = f.read()
        (stored / name).write_bytes(data)
        (original / name).write_bytes(sample.data)
        if data == sample.data:
            kept.add(name)
    # The predictor: its JSON's input section as the export writes it, in a process
    # without Django or torch.
    manifest = tmp_path / "model.json"
    spec = {"format": "labelloop-model", "kind": "single", "classes": []}
    manifest.write_text(json.dumps({**spec, "input": manifest_input(config)}))
    from_stored = standalone_arrays(manifest, stored, tmp_path / "stored.npz")
    from_original = standalone_arrays(manifest, original, tmp_path / "original.npz")
    assert sorted(from_stored) == sorted(app) == sorted(from_original)
    for name, array in app.items():
        assert array.shape == (3, 224, 224), name
        assert np.array_equal(from_stored[name], array), name
        if name in kept:
            assert np.array_equal(from_original[name], array), name
    # Upload stores a file as sent unless it must turn it upright (EXIF orientation).
    assert all("oriented" in name for name in set(names) - kept), set(names) - kept
    assert len(kept) >= len(names) - 10
