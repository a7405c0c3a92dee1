"""A worker killed in the middle of a training: nothing half-written, the active model
keeps serving, and the task is delivered again to another worker, which finishes it.

The doomed worker is started through tests/barrier_worker.py, which holds its training
for good at a known step: after the new images were embedded, the head trained and its
model file written, just before the queue is ranked with it. The test waits for that
step and kills the worker there, so the kill never races the training.
"""

from __future__ import annotations

import os
import signal

import numpy as np
from django_q.models import OrmQ

from labeling import services as labeling_services
from labeling.models import Image
from models_app import services
from models_app.models import Embedding, ModelVersion
from tests.conftest import qcluster_start, qcluster_stop
from tests.fashion import fashion_uploads, labeled_project, wait_for

CLASSES = ["Trouser", "Bag", "Sneaker"]
# A task a worker took is handed out again once Q_RETRY seconds (the floor here is 20)
# have passed since it took it, if it was not acknowledged: the doomed worker's retry
# is what the rescuer waits for. (Should the doomed worker be slower than its Q_TIMEOUT
# to reach the barrier, its own retry reaches it.) The rescuer has time to train.
DOOMED = {"Q_TIMEOUT": "20", "Q_RETRY": "20"}
RESCUER = {"Q_TIMEOUT": "120", "Q_RETRY": "120"}


def model_files(media_root) -> set[str]:
    folder = media_root / "models"
    return {str(p.relative_to(media_root)) for p in folder.rglob("*") if p.is_file()}


def assert_embeddings_whole(project) -> None:
    """Every image has one finished embedding: a vector of the full width, no claim
    left open, no vector cut short."""
    rows = list(Embedding.objects.filter(image__project=project).values_list("vector", "dim"))
    assert len(rows) == Image.objects.filter(project=project).count()
    dims = {dim for _, dim in rows}
    assert len(dims) == 1 and dims.pop() > 0
    assert all(vector is not None and len(vector) == 2 * dim for vector, dim in rows)


def assert_queue_is_the_models(project, version: ModelVersion, *, leave_out=()) -> None:
    """Every unlabeled image (but those left out) carries `version`'s guess (its
    likeliest class and that probability, from the model file), and no other model's:
    the queue was ranked by the version that serves."""
    model = services.active_model(project=project)
    assert model is not None and model.version.pk == version.pk
    unlabeled = list(
        Image.objects.filter(project=project, label__isnull=True)
        .exclude(pk__in=leave_out)
        .order_by("id")
    )
    assert unlabeled
    proba = model.proba([i.pk for i in unlabeled])
    class_ids = version.class_ids
    for image, row in zip(unlabeled, proba, strict=True):
        assert image.suggested_class_id == class_ids[int(row.argmax())], image
        assert np.isclose(image.confidence, float(row.max()), atol=1e-4), image


def test_a_killed_training_is_retried_elsewhere_and_leaves_nothing_half_done(
    transactional_db, media_root, project, owner, fashion
):
    labeled_project(project, owner, fashion, CLASSES, per_class=6, unlabeled_per_class=2)
    first = services.model_version_train(
        version_id=services.model_version_request(project=project, trigger="api").pk
    )
    assert first.status == "succeeded" and first.is_active
    assert_queue_is_the_models(project, first)
    # New images, not embedded yet: the next training embeds them first, so the kill
    # comes after rows were written.
    extra = fashion_uploads(fashion, CLASSES, 3, skip=8)
    labeling_services.images_ingest(
        project=project, files=[u for u, _ in extra], user=owner, request_embedding=False
    )
    new_images = set(
        Image.objects.filter(project=project, embeddings__isnull=True).values_list("id", flat=True)
    )
    assert len(new_images) == 3 * len(CLASSES)

    # The uploads above queued embedding requests that the in-process training made
    # moot: dropped, so the training is the doomed worker's only task.
    OrmQ.objects.all().delete()

    barrier = media_root.parent / "barrier"
    doomed = qcluster_start(
        media_root,
        "doomed",
        launcher="tests.barrier_worker",
        BARRIER_STEP="queue_rank",
        BARRIER_FILE=str(barrier),
        **DOOMED,
    )
    try:
        second = services.model_version_request(project=project, trigger="api", user=owner)
        wait_for(barrier.exists, timeout=180, every=0.2)
        os.killpg(doomed.pid, signal.SIGKILL)
    finally:
        qcluster_stop(doomed)

    # Killed after its model file was written, before it ranked the queue or was
    # activated: the row says running and names no file, the old version serves.
    second.refresh_from_db()
    first.refresh_from_db()
    assert second.progress.startswith("Scoring")
    assert second.status == "running" and not second.is_active and not second.artifact
    assert first.status == "succeeded" and first.is_active
    assert ModelVersion.objects.filter(project=project, is_active=True).get() == first
    # The new images were embedded in full before the kill.
    assert_embeddings_whole(project)
    # The queue is still the serving model's: the new images unranked, the others with
    # the first version's guesses.
    assert not Image.objects.filter(pk__in=new_images, suggested_class__isnull=False).exists()
    assert not Image.objects.filter(pk__in=new_images).exclude(priority=0).exists()
    assert_queue_is_the_models(project, first, leave_out=new_images)
    # The killed run's model file is the one thing on disk no row names; nothing
    # serves it (see the report: the retry does not remove it).
    files = model_files(media_root)
    assert first.artifact in files
    leftover = files - {first.artifact}
    assert len(leftover) == 1
    assert leftover.pop().startswith(f"models/{project.pk}/v{second.number}-")

    rescuer = qcluster_start(media_root, "rescuer", **RESCUER)
    try:
        wait_for(
            lambda: ModelVersion.objects.get(pk=second.pk).status in ("succeeded", "failed"),
            timeout=180,
        )
    finally:
        qcluster_stop(rescuer)
    second.refresh_from_db()
    first.refresh_from_db()
    assert second.status == "succeeded", second.error
    assert second.is_active and not first.is_active
    assert ModelVersion.objects.filter(project=project).count() == 2
    assert second.artifact in model_files(media_root)
    assert_embeddings_whole(project)
    assert_queue_is_the_models(project, second)
