"""A project's progress in the API: images, embedded, labeled by split, in the queue."""

from __future__ import annotations

from labeling import services as labeling_services
from labeling.models import Image
from models_app import services as learner
from models_app.models import ModelVersion
from tests.conftest import add_images
from tests.factories import image_upload


def url(project) -> str:
    return f"/api/v1/projects/{project.pk}/progress/"


def test_progress_counts_what_the_project_has(api, annotator, reviewer, owner, project, classes):
    images = add_images(project, owner, 8)
    start = api(annotator).get(url(project))
    assert start.status_code == 200
    assert start.json() == {
        "images": 8,
        "embedded": 0,
        "labeled": {"total": 0, "train": 0, "val": 0, "test": 0},
        "in_queue": 8,
        "model_version": None,
        "training": False,
    }

    for image in images[:5]:
        labeling_services.annotation_create(image=image, label_class=classes[0], annotator=owner)
    # A removed labeled image leaves the dataset; a removed unlabeled one the queue.
    labeling_services.image_review(image=images[4], action="remove", reviewer=reviewer)
    labeling_services.image_review(image=images[7], action="remove", reviewer=reviewer)
    # An image sent for prediction stays out of the queue.
    labeling_services.images_ingest(
        project=project,
        files=[image_upload(50)],
        user=owner,
        source=Image.Source.FEEDBACK,
        in_queue=False,
    )
    learner.embeddings_ensure(project=project)
    # An active version 1, and version 2 waiting for a worker (rows as training leaves
    # them: training itself needs more labels than this test has).
    ModelVersion.objects.create(
        project=project, number=1, status="succeeded", is_active=True, trigger="api"
    )
    ModelVersion.objects.create(project=project, number=2, status="queued", trigger="api")

    body = api(annotator).get(url(project)).json()
    kept = Image.objects.filter(pk__in=[i.pk for i in images[:4]])
    by_split = {s: kept.filter(split=s).count() for s in ("train", "val", "test")}
    assert sum(by_split.values()) == 4
    assert body == {
        "images": 9,
        "embedded": 9,
        "labeled": {"total": 4, **by_split},
        "in_queue": 2,  # images 5 and 6
        "model_version": 1,
        "training": True,
    }


def test_an_outsider_gets_404(api, outsider, project):
    assert api(outsider).get(url(project)).status_code == 404
    assert api().get(url(project)).status_code == 401
