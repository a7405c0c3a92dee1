"""The export task in a real django-q2 worker: asked for through the service on commit,
built by the worker, its files ready in the media folder the worker shares."""

from __future__ import annotations

import numpy as np
import onnxruntime

from models_app import services
from models_app.models import ModelExport
from models_app.services.exports import export_file_open, model_export_request
from tests.fashion import labeled_project, wait_for
from tests.models_app.test_training import finished


def test_a_real_worker_builds_the_export_it_was_asked_for(worker, project, owner, fashion):
    labeled_project(project, owner, fashion, ["Trouser", "Bag"], per_class=10)
    version = services.model_version_request(project=project, trigger="api", user=owner)
    version = wait_for(lambda: finished(version))
    assert version.status == "succeeded", version.error

    export = model_export_request(version=version, user=owner)
    assert export.status == "queued"

    def built():
        export.refresh_from_db()
        return export.status in ("succeeded", "failed")

    wait_for(built, timeout=300)
    assert export.status == "succeeded", export.error
    assert export.started_at and export.finished_at and export.progress == ""
    assert export.manifest["check"]["images"] == 8
    assert export.manifest["check"]["max_prob_diff_onnx"] < 1e-4
    with export_file_open(export=export, kind="onnx") as f:
        session = onnxruntime.InferenceSession(f.read())
    size = export.manifest["input"]["size"]
    out = session.run(None, {"image": np.zeros((3, 3, size, size), np.float32)})[0]
    assert out.shape == (3, 2)
    # Asked again: the ready export, no second build.
    assert model_export_request(version=version, user=owner).pk == export.pk
    assert ModelExport.objects.get().status == "succeeded"
