"""An owner builds the active version's export on the dashboard, watches the worker
build it, downloads the ONNX model and its JSON, and the standalone predictor runs
them on a folder of images."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from labeling import services as labeling_services
from models_app import services
from tests.conftest import ROOT
from tests.e2e.test_labeling_flow import log_in
from tests.factories import UserFactory
from tests.fashion import labeled_project, wait_for
from tests.models_app.test_export_predictor import fashion_files
from tests.models_app.test_training import finished

pytestmark = pytest.mark.e2e


def test_the_export_button_builds_then_offers_the_model_to_download(
    page, worker, fashion, tmp_path
):
    owner = UserFactory(username="olivia")
    project = labeling_services.project_create(name="Clothes", user=owner)
    labeled_project(project, owner, fashion, ["Trouser", "Bag"], per_class=10)
    version = services.model_version_request(project=project, trigger="api", user=owner)
    assert wait_for(lambda: finished(version)).status == "succeeded", version.error

    log_in(page, owner)
    page.goto(f"/projects/{project.pk}/model/")
    panel = page.get_by_test_id("model-export")
    expect(panel).to_contain_text("Use v1 outside the app")
    page.get_by_role("button", name="Build export").click()
    expect(page.get_by_test_id("export-status")).to_contain_text("Building the export of v1")
    expect(page.get_by_role("button", name="Build export")).to_have_count(0)
    # The panel polls while the worker exports and checks the model.
    expect(page.get_by_test_id("export-status")).to_contain_text("Ready", timeout=240_000)
    expect(page.get_by_test_id("export-status")).to_contain_text("gives the app's probabilities")

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    saved = {}
    for kind in ("onnx", "json", "torchscript"):
        with page.expect_download() as info:
            page.get_by_test_id(f"download-{kind}").click()
        download = info.value
        saved[kind] = downloads / download.suggested_filename
        download.save_as(saved[kind])
    assert saved["onnx"].name == f"labelloop-project{project.pk}-v1.onnx"
    assert saved["json"].name == saved["onnx"].with_suffix(".json").name
    assert saved["onnx"].stat().st_size > 1_000_000

    images = tmp_path / "images"
    images.mkdir()
    trousers = fashion_files(fashion, images, "Trouser", 2)
    out = tmp_path / "p.csv"
    done = subprocess.run(
        [sys.executable, "-m", "models_app.predictor", saved["onnx"], images, "--out", out],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(out.open()))
    assert [r["file"] for r in rows] == sorted(trousers)
    assert all(r["class"] == "Trouser" for r in rows)
