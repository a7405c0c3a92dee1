"""Interactive work is not stuck behind bulk embedding: a large upload keeps only a few
embedding chunks in the worker's queue at a time, each finished chunk queueing the
next, so a retrain asked for meanwhile waits behind a chunk, and the page says where
it stands."""

from __future__ import annotations

from django.test import Client
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from labeling import services as labeling_services
from models_app import selectors, services, tasks
from models_app.models import Embedding
from tests.conftest import add_images, training_labels


def queued() -> list[str]:
    return [SignedPackage.loads(row.payload)["func"] for row in OrmQ.objects.order_by("id")]


def test_a_retrain_waits_behind_one_chunk_not_behind_a_whole_upload(
    settings, project, owner, classes, django_capture_on_commit_callbacks
):
    settings.LEARNER = {**settings.LEARNER, "EMBED_CHUNK": 2, "EMBED_TASKS": 1}
    big = labeling_services.project_create(name="Someone's big upload", user=owner)
    add_images(big, owner, 12, start=100)
    training_labels(project, owner, classes[:2])
    OrmQ.objects.all().delete()

    assert services.embeddings_dispatch(project=big) == 1
    assert services.embeddings_dispatch() == 0  # one chunk in flight is the limit
    with django_capture_on_commit_callbacks(execute=True):
        version = services.model_version_request(project=project, trigger="button", user=owner)
    assert queued() == ["models_app.tasks.embed_chunk", "models_app.tasks.train_model_version"]
    status = selectors.learner_status(project=project)
    assert status.pending_queue_position == 1
    client = Client()
    client.force_login(owner)
    page = client.get(f"/projects/{project.pk}/model/").content.decode()
    assert "1 task ahead of it in the worker's queue" in page

    # The worker finishes the chunk: it queues the next one, behind the training.
    first = SignedPackage.loads(OrmQ.objects.order_by("id").first().payload)
    OrmQ.objects.order_by("id").first().delete()
    tasks.embed_chunk(*first["args"])
    assert queued() == ["models_app.tasks.train_model_version", "models_app.tasks.embed_chunk"]
    assert selectors.task_queue_position(task_name=version.task_name) == 0
    assert Embedding.objects.filter(image__project=big, vector__isnull=False).count() == 2
