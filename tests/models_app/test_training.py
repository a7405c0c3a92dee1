"""Training end to end through a real worker, and failures that leave the active model."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from labeling import services as labeling_services
from labeling.datasets import FASHION_MNIST_CLASSES
from labeling.models import Image
from models_app import services
from models_app.models import Embedding, ModelVersion
from tests.fashion import labeled_project, wait_for


def finished(version):
    version.refresh_from_db()
    return version.status in ("succeeded", "failed") and version


def test_a_worker_embeds_trains_and_the_labeling_page_shows_suggestions(
    worker, project, owner, annotator, fashion
):
    labeled_project(
        project, owner, fashion, ["Trouser", "Bag", "Sneaker"], per_class=20, unlabeled_per_class=5
    )
    assert Image.objects.filter(project=project, label__isnull=False).count() == 60
    splits = set(
        Image.objects.filter(project=project, label__isnull=False).values_list("split", flat=True)
    )
    assert splits == {"train", "val", "test"}

    # The uploads enqueued their embedding on commit: no schedule tick, no dispatch.
    wait_for(
        lambda: Embedding.objects.filter(image__project=project, vector__isnull=False).count() == 75
    )

    version = services.model_version_request(project=project, trigger="button", user=owner)
    version = wait_for(lambda: finished(version))
    assert version.status == "succeeded", version.error
    assert version.is_active
    test = version.metrics["test"]
    assert test["n"] >= 5
    assert test["accuracy"] > 0.8, test  # chance is 1/3
    assert len(test["confusion"]) == 3 and test["ece"] is not None
    assert sum(v["train"] + v["val"] + v["test"] for v in version.label_counts.values()) == 60
    assert version.duration_seconds > 0 and version.artifact

    unlabeled = Image.objects.filter(project=project, label__isnull=True)
    assert unlabeled.count() == 15
    assert not unlabeled.filter(suggested_class__isnull=True).exists()
    right = sum(
        image.suggested_class.name == name
        for image in unlabeled.select_related("suggested_class")
        for name in [_truth(image, fashion)]
    )
    assert right >= 12, f"only {right}/15 suggestions right"

    client = Client()
    client.force_login(annotator)
    page = client.get(f"/projects/{project.pk}/label/").content.decode()
    assert re.search(r"Model suggests <strong[^>]*>(Trouser|Bag|Sneaker)</strong> \((\d+)%\)", page)


def _truth(image, fashion) -> str:
    """The true class of an unlabeled upload, from the Fashion-MNIST index in its name."""
    return FASHION_MNIST_CLASSES[fashion.labels[int(image.original_name[1:].split(".")[0])]]


@pytest.fixture
def trained(project, owner, fashion):
    classes = labeled_project(project, owner, fashion, ["Trouser", "Bag"], per_class=12)
    version = services.model_version_request(project=project, trigger="api", user=owner)
    services.model_version_train(version_id=version.pk)
    version.refresh_from_db()
    assert version.status == "succeeded", version.error
    return version, classes


@pytest.mark.django_db(transaction=True)
def test_a_run_without_two_classes_fails_and_the_previous_version_keeps_serving(
    trained, project, owner
):
    first, classes = trained
    second = services.model_version_request(project=project, trigger="button", user=owner)
    # The class goes away while the run waits in the queue (asked afterwards, the run
    # would be refused at once): the worker's run fails, the first version serves on.
    labeling_services.label_class_update(label_class=classes["Bag"], is_active=False)
    services.model_version_train(version_id=second.pk)
    second.refresh_from_db()
    first.refresh_from_db()
    assert second.status == "failed" and not second.is_active
    assert "at least two active classes" in second.error
    assert first.is_active and first.status == "succeeded"


@pytest.mark.django_db(transaction=True)
def test_an_error_inside_training_is_recorded_and_changes_nothing(
    trained, project, owner, monkeypatch
):
    first, _ = trained
    before = dict(Image.objects.filter(project=project).values_list("id", "suggested_class"))

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(services.versions, "train_head_self", broken)
    second = services.model_version_request(project=project, trigger="button", user=owner)
    services.model_version_train(version_id=second.pk)
    second.refresh_from_db()
    first.refresh_from_db()
    assert (second.status, second.error) == ("failed", "RuntimeError: CUDA out of memory")
    assert second.finished_at and not second.is_active
    assert first.is_active
    assert (
        dict(Image.objects.filter(project=project).values_list("id", "suggested_class")) == before
    )
    # Retrying a finished version changes nothing; a new request makes a new version.
    assert services.model_version_train(version_id=second.pk).status == "failed"
    third = services.model_version_request(project=project, trigger="button", user=owner)
    assert third.number == 3


@pytest.mark.django_db(transaction=True)
def test_one_training_per_project_at_a_time(trainable, project, owner):
    first = services.model_version_request(project=project, trigger="button", user=owner)
    again = services.model_version_request(project=project, trigger="api", user=owner)
    assert again.pk == first.pk
    assert ModelVersion.objects.filter(project=project).count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_mlp_head_learns_too(project, owner, fashion):
    from models_app.models import LearnerSettings

    labeled_project(project, owner, fashion, ["Trouser", "Bag", "Sneaker"], per_class=15)
    LearnerSettings.objects.create(project=project, head_kind="mlp")
    version = services.model_version_request(project=project, trigger="button", user=owner)
    version = services.model_version_train(version_id=version.pk)
    assert version.status == "succeeded", version.error
    assert version.head_kind == "mlp"
    assert version.metrics["test"]["accuracy"] > 0.8
