"""The export benchmark, run small: real Fashion-MNIST images through the app, a version
trained and exported, the standalone predictor against the app's own answers."""

from __future__ import annotations

import json
import shlex

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from labeling.models import Image, Project
from models_app.models import ModelExport, ModelVersion


@pytest.mark.django_db(transaction=True)
def test_the_benchmark_compares_the_exported_model_with_the_app(tmp_path, capsys, media_root):
    path = tmp_path / "export.json"
    call_command("bench_export", json_path=str(path), images=60, labeled_fraction=0.5)
    report = json.loads(path.read_text())
    assert report["images"] == 60 and report["labeled"] == 30
    assert report["classes"] >= 5  # Fashion-MNIST's first 30 test images hold most classes
    assert report["top1_agreement"] >= 0.995 and report["top1_disagreements"] == 0
    assert 0 <= report["max_prob_diff"] <= 1e-3
    assert report["mean_prob_diff"] <= report["max_prob_diff"]
    assert report["onnx_ms_per_image"] > 0 and report["torch_ms_per_image"] > 0
    assert report["targets_met"] is True and report["onnx_opset"] >= 17
    assert report["seconds"] > 0 and report["machine"]["cores"] >= 1
    assert shlex.split(report["command"])[:3] == ["python", "manage.py", "bench_export"]
    assert "--images 60" in report["command"]
    out = capsys.readouterr().out
    assert "60 images: top-1 agreement 1.0000" in out and "targets met" in out
    # The temporary project, its version, export and files are gone.
    assert not Project.objects.exists() and not Image.objects.exists()
    assert not ModelVersion.objects.exists() and not ModelExport.objects.exists()
    assert not any(p.is_file() for p in media_root.rglob("*")), list(media_root.rglob("*"))
    assert default_storage.location == str(media_root)


def test_the_benchmark_refuses_sizes_it_cannot_run(tmp_path):
    with pytest.raises(CommandError, match="--images is between 40"):
        call_command("bench_export", json_path=str(tmp_path / "x.json"), images=10)
    with pytest.raises(CommandError, match="--labeled-fraction"):
        call_command("bench_export", json_path=str(tmp_path / "x.json"), labeled_fraction=0)
