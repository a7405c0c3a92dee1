"""Who may build and download exports, through the REST API and the dashboard; a real
export asked for, polled and downloaded through the API runs in onnxruntime."""

from __future__ import annotations

import io

import numpy as np
import onnxruntime
import pytest
from django.test import Client

from models_app.ml.preprocess import InputConfig, preprocess
from models_app.models import ModelExport, ModelVersion
from models_app.selectors import backbone_key
from models_app.services.export_build import model_export_build
from tests.factories import PASSWORD
from tests.fashion import labeled_project
from tests.models_app.test_export import train


def url(project, number=1, tail=""):
    return f"/api/v1/projects/{project.pk}/model/versions/{number}/export/{tail}"


@pytest.fixture
def version(project):
    """A version that finished training (its artifact is never read here)."""
    return ModelVersion.objects.create(
        project=project,
        number=1,
        trigger="api",
        status="succeeded",
        is_active=True,
        backbone=backbone_key(),
        artifact="models/1/v1.pt",
        class_ids=[],
    )


def test_outsiders_get_404_and_annotators_may_look_but_not_build(
    api, version, project, outsider, annotator, reviewer
):
    assert api(outsider).get(url(project)).status_code == 404
    assert api(outsider).post(url(project)).status_code == 404
    assert api(outsider).get(url(project, tail="onnx/")).status_code == 404
    assert api().post(url(project)).status_code == 401
    assert api(annotator).post(url(project)).status_code == 403
    assert not ModelExport.objects.exists()
    missing = api(annotator).get(url(project))
    assert missing.status_code == 404 and "POST to build one" in missing.json()["detail"]

    asked = api(reviewer).post(url(project))
    assert asked.status_code == 202
    assert asked.json()["status"] == "queued" and asked.json()["files"] == {}
    assert api(reviewer).post(url(project)).json()["id"] == asked.json()["id"]
    seen = api(annotator).get(url(project))
    assert seen.status_code == 200 and seen.json()["version"] == 1
    not_ready = api(annotator).get(url(project, tail="onnx/"))
    assert not_ready.status_code == 409 and "not ready" in not_ready.json()["detail"]
    assert api(annotator).get(url(project, tail="weights/")).status_code == 404
    assert api(annotator).get(url(project, number=7)).status_code == 404


def test_a_version_that_cannot_be_exported_is_refused_with_the_reason(api, project, owner):
    ModelVersion.objects.create(
        project=project, number=1, trigger="api", status="failed", backbone=backbone_key()
    )
    refused = api(owner).post(url(project))
    assert refused.status_code == 400
    assert "only a trained version can be exported" in str(refused.json())
    other = ModelVersion.objects.create(
        project=project,
        number=2,
        trigger="api",
        status="succeeded",
        backbone="resnet18",
        artifact="models/1/v2.pt",
    )
    refused = api(owner).post(url(project, number=other.number))
    assert refused.status_code == 400 and "retrain" in str(refused.json())


def log_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_the_dashboard_offers_the_build_to_curators_and_shows_it_building(
    version, project, owner, annotator
):
    page = log_in(annotator).get(f"/projects/{project.pk}/model/").content.decode()
    assert "Use v1 outside the app" in page and "an owner or reviewer can build it" in page
    assert 'id="export-build"' not in page
    build = f"/projects/{project.pk}/model/versions/1/export/"
    assert log_in(annotator).post(build).status_code == 403

    owner_client = log_in(owner)
    assert (
        'id="export-build"' in owner_client.get(f"/projects/{project.pk}/model/").content.decode()
    )
    panel = owner_client.post(build, HTTP_HX_REQUEST="true")
    assert panel.status_code == 200
    text = panel.content.decode()
    assert "Building the export of v1: waiting for the worker" in text and "every 2s" in text
    assert 'id="export-build"' not in text
    status = log_in(annotator).get(build + "status/").content.decode()
    assert "Building the export of v1" in status
    assert log_in(annotator).get(build + "onnx/").status_code == 409


def test_the_dashboard_says_why_an_export_is_refused(project, owner):
    ModelVersion.objects.create(
        project=project, number=1, trigger="api", status="succeeded", backbone="resnet18"
    )
    refused = log_in(owner).post(f"/projects/{project.pk}/model/versions/1/export/")
    assert refused.status_code == 400
    assert "only a trained version can be exported" in refused.content.decode()


def test_an_export_asked_for_polled_and_downloaded_through_the_api_runs(
    api, project, owner, annotator, fashion
):
    labeled_project(project, owner, fashion, ["Trouser", "Bag"], per_class=10)
    version = train(project, owner)
    asked = api(owner).post(url(project, version.number)).json()
    # What the worker does with the task the request enqueued.
    model_export_build(export_id=asked["id"])
    ready = api(annotator).get(url(project, version.number)).json()
    assert ready["status"] == "succeeded", ready["error"]
    assert set(ready["files"]) == {"onnx", "json", "torchscript"}
    manifest = api(annotator).get(ready["files"]["json"]).getvalue()
    assert b'"format": "labelloop-model"' in manifest
    download = api(annotator).get(ready["files"]["onnx"])
    assert download.status_code == 200
    assert download["Content-Disposition"].endswith(f'-v{version.number}.onnx"')
    session = onnxruntime.InferenceSession(download.getvalue())
    spec = ready["manifest"]["input"]
    config = InputConfig(spec["size"], spec["crop_pct"], tuple(spec["mean"]), tuple(spec["std"]))
    trouser = io.BytesIO(
        fashion.png(int(np.flatnonzero(np.frombuffer(fashion.labels, np.uint8) == 1)[50]))
    )
    proba = session.run(None, {"image": preprocess(trouser, config)[None]})[0][0]
    names = [c["name"] for c in ready["manifest"]["classes"]]
    assert names[int(proba.argmax())] == "Trouser" and proba.sum() == pytest.approx(1, abs=1e-5)
