"""The queue's ranking by the project's query strategy, on real Fashion-MNIST images."""

from __future__ import annotations

import numpy as np

from labeling import services as labeling_services
from labeling.models import Image
from models_app import services, tasks
from models_app.services.ranking import label_counts
from tests.fashion import fashion_uploads, labeled_project

CLASSES = ["Trouser", "Bag", "Sneaker"]


def _no_holdout(project):
    project.test_fraction = project.val_fraction = 0.0
    project.save()


def test_the_cold_start_serves_one_typical_image_of_each_kind_first(project, owner, fashion):
    _no_holdout(project)
    uploads = fashion_uploads(fashion, CLASSES, per_class=20)
    results = labeling_services.images_ingest(
        project=project, files=[u for u, _ in uploads], user=owner
    )
    truth = {r.image_id: name for (_, name), r in zip(uploads, results, strict=True)}
    services.learner_settings_update(project=project, retrain_every=3)  # three labels a round
    ids = services.embeddings_claim(limit=100, project=project)
    # The embedding task ranks the queue once the project is fully embedded.
    assert tasks.embed_chunk(ids) == 60
    assert Image.objects.filter(project=project, priority__gt=1.0).count() == 3
    first = labeling_services.queue_reserve(project=project, user=owner, count=3)
    assert {truth[i.pk] for i in first} == set(CLASSES)


def _trained(project, owner, fashion, strategy):
    labeled_project(project, owner, fashion, CLASSES, per_class=10, unlabeled_per_class=6)
    services.learner_settings_update(project=project, strategy=strategy)
    version = services.model_version_request(project=project, trigger="button", user=owner)
    version = services.model_version_train(version_id=version.pk)
    assert version.status == "succeeded", version.error
    return version


def _pool(project):
    return list(
        Image.objects.filter(project=project, label__isnull=True).values_list(
            "priority", "confidence", "suggested_class"
        )
    )


def test_after_training_the_priority_is_the_strategys(project, owner, fashion):
    _trained(project, owner, fashion, "least_confidence")
    pool = _pool(project)
    assert len(pool) == 18
    assert all(suggested is not None for _, _, suggested in pool)
    assert np.allclose([p for p, _, _ in pool], [1 - c for _, c, _ in pool], atol=1e-6)

    # Another strategy re-ranks the queue with the same model: suggestions stay.
    services.learner_settings_update(project=project, strategy="random")
    assert tasks.rerank_project(project.pk) == 18
    again = _pool(project)
    assert [c for _, c, _ in again] == [c for _, c, _ in pool]
    assert not np.allclose([p for p, _, _ in again], [1 - c for _, c, _ in again], atol=1e-3)


def test_new_images_get_the_active_models_suggestions_once_embedded(project, owner, fashion):
    version = _trained(project, owner, fashion, "margin")
    extra = fashion_uploads(fashion, CLASSES, per_class=2, skip=40)
    results = labeling_services.images_ingest(
        project=project, files=[u for u, _ in extra], user=owner
    )
    new = Image.objects.filter(pk__in=[r.image_id for r in results])
    assert not new.filter(suggested_class__isnull=False).exists()
    tasks.embed_chunk(services.embeddings_claim(limit=100, project=project))
    assert new.filter(suggested_class__in=version.class_ids).count() == 6


def test_label_counts_are_in_the_models_class_order(project, owner, fashion):
    version = _trained(project, owner, fashion, "auto")
    counts = label_counts(project=project, class_ids=[*reversed(version.class_ids), 0])
    assert counts.tolist() == [10, 10, 10, 0]
