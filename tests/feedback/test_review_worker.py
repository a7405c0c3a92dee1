"""The review scan in a real django-q2 worker. Workers are daemonic processes, which may
not start children: a library's process pool inside the task (cleanlab's default
n_jobs) made every scan from the review page fail there, while the same scan run in
the test process succeeded."""

from __future__ import annotations

import multiprocessing

import cleanlab.filter
import numpy as np
import pytest
from django_q.models import Task

from feedback import selectors, services
from feedback.models import ReviewScan
from labeling import services as labeling_services
from labeling.models import Image
from models_app import services as learner
from models_app.ml.quality import label_quality
from tests.conftest import qcluster_start, qcluster_stop
from tests.fashion import labeled_project, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def finished(scan: ReviewScan) -> ReviewScan | None:
    scan.refresh_from_db()
    return scan if scan.status in (ReviewScan.Status.SUCCEEDED, ReviewScan.Status.FAILED) else None


def test_a_worker_scans_the_labels_and_finds_the_flipped_ones(
    project, owner, reviewer, fashion, media_root
):
    classes = labeled_project(project, owner, fashion, ["Trouser", "Bag", "Sneaker"], per_class=20)
    images = list(Image.objects.filter(project=project).select_related("label").order_by("id"))
    assert len(images) == 60
    names = list(classes)
    flipped = {}
    for image in (images[3], images[22], images[41], images[58]):
        wrong = names[(names.index(image.label.name) + 1) % 3]
        labeling_services.annotation_create(
            image=image, label_class=classes[wrong], annotator=owner
        )
        flipped[image.pk] = wrong
    # Stored embeddings, as the worker leaves them after an upload.
    learner.embeddings_ensure(project=project)

    process = qcluster_start(media_root)
    try:
        # As the review page's Scan button does: the task is enqueued on commit.
        requested = services.review_scan_request(project=project, user=reviewer)
        scan = wait_for(lambda: finished(requested), timeout=300)
    finally:
        qcluster_stop(process)

    assert scan.status == ReviewScan.Status.SUCCEEDED, scan.error
    assert scan.error == "" and scan.finished_at is not None
    assert scan.labeled == 60 and scan.issues >= 3
    task = Task.objects.get(func="feedback.tasks.scan")
    assert task.success and task.result == "succeeded"
    suspects = [score.image_id for score in selectors.mistakes_list(project=project)]
    assert len(set(flipped) & set(suspects[:8])) >= 3, (flipped, suspects)


def test_label_quality_starts_no_process_whatever_the_core_count(monkeypatch):
    """The same guard without a worker: on a one-core machine cleanlab's default would
    start no pool, so the worker test alone could pass there with the bug back."""

    def no_pool(*args, **kwargs):
        raise AssertionError("daemonic processes are not allowed to have children")

    # cleanlab's default n_jobs: psutil's physical cores if installed, else cpu_count().
    monkeypatch.setattr(cleanlab.filter, "psutil_exists", False)
    monkeypatch.setattr(multiprocessing, "cpu_count", lambda: 8)
    monkeypatch.setattr(multiprocessing, "Pool", no_pool)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    proba = np.full((60, 3), 0.05) + np.eye(3)[y] * 0.9
    proba[[3, 22, 41]] = np.eye(3)[[1, 2, 0]] * 0.9 + 0.05
    proba = proba + rng.uniform(0, 0.01, proba.shape)
    quality = label_quality(y, proba / proba.sum(axis=1, keepdims=True))
    assert set(np.flatnonzero(quality.is_issue)) == {3, 22, 41}
