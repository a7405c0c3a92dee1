"""A worker killed in the middle of a training: nothing half-written, the active model
keeps serving, and the task is delivered again to another worker, which finishes it."""

from __future__ import annotations

import os
import signal

from labeling import services as labeling_services
from labeling.models import Image
from models_app import services
from models_app.models import Embedding, ModelVersion
from tests.conftest import qcluster_start, qcluster_stop
from tests.fashion import fashion_uploads, labeled_project, wait_for

# The broker hands an unacknowledged task out again after Q_RETRY seconds.
RETRY = {"Q_TIMEOUT": "40", "Q_RETRY": "45"}


def test_a_killed_training_is_retried_elsewhere_and_leaves_nothing_half_done(
    transactional_db, media_root, project, owner, fashion
):
    labeled_project(project, owner, fashion, ["Trouser", "Bag", "Sneaker"], per_class=10)
    first = services.model_version_train(
        version_id=services.model_version_request(project=project, trigger="api").pk
    )
    assert first.status == "succeeded" and first.is_active
    # New images make the next training start with a few seconds of embedding.
    extra = fashion_uploads(fashion, ["Trouser", "Bag", "Sneaker"], 40, skip=10)
    labeling_services.images_ingest(project=project, files=[u for u, _ in extra], user=owner)

    doomed = qcluster_start(media_root, "doomed", **RETRY)
    try:
        second = services.model_version_request(project=project, trigger="api", user=owner)
        wait_for(lambda: ModelVersion.objects.get(pk=second.pk).status == "running", timeout=120)
        os.killpg(doomed.pid, signal.SIGKILL)
    finally:
        qcluster_stop(doomed)
    second.refresh_from_db()
    first.refresh_from_db()
    assert second.status == "running" and not second.is_active and not second.artifact
    assert first.is_active and first.status == "succeeded"
    assert not Embedding.objects.filter(vector__isnull=False, dim=0).exists()

    rescuer = qcluster_start(media_root, "rescuer", **RETRY)
    try:
        wait_for(
            lambda: ModelVersion.objects.get(pk=second.pk).status in ("succeeded", "failed"),
            timeout=240,
        )
    finally:
        qcluster_stop(rescuer)
    second.refresh_from_db()
    first.refresh_from_db()
    assert second.status == "succeeded", second.error
    assert second.is_active and not first.is_active
    assert ModelVersion.objects.filter(project=project).count() == 2
    images = Image.objects.filter(project=project).count()
    assert Embedding.objects.filter(image__project=project, vector__isnull=False).count() == images
