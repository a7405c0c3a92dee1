"""The queue's ranking by the project's query strategy, on real Fashion-MNIST images."""

from __future__ import annotations

import numpy as np
import pytest

from labeling import services as labeling_services
from labeling.models import Image, SuggestionRejection
from models_app import services, tasks
from models_app.services.ranking import label_counts
from tests.conftest import add_images
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


def test_a_rejected_suggestion_is_conditioned_away_at_the_next_ranking(project, owner, fashion):
    """The probabilities an image had, less the class rejected on the bulk page and
    renormalised, are its suggestion, confidence and (least confidence) priority."""
    from models_app.ml.head import predict_proba
    from models_app.services.embeddings import project_embeddings
    from models_app.services.predictions import _head_of

    version = _trained(project, owner, fashion, "least_confidence")
    pool = Image.objects.filter(project=project, label__isnull=True).order_by("id")
    assert set(pool.values_list("suggested_by", flat=True)) == {version.pk}
    image = pool.order_by("confidence").first()  # an image the model is unsure of
    proba = predict_proba(
        _head_of(version.artifact), project_embeddings(project=project).of([image.pk])
    )[0]
    order = np.argsort(-proba)
    first, second = (version.class_ids[int(j)] for j in order[:2])
    assert image.suggested_class_id == first
    rejected = labeling_services.suggestions_verify(
        project=project,
        label_class=image.suggested_class,
        accepted_ids=[],
        rejected_ids=[image.pk],
        annotator=owner,
    )
    assert rejected.rejected == 1
    assert tasks.rerank_project(project.pk) == 18
    image.refresh_from_db()
    expected = proba[order[1]] / proba[order[1:]].sum()  # of what is left
    assert image.suggested_class_id == second
    assert image.confidence == pytest.approx(expected, abs=1e-5)
    assert image.priority == pytest.approx(1 - expected, abs=1e-5)
    assert image.suggested_by == version.pk


def test_rejections_zero_their_class_and_renormalise_the_row(project, owner, classes):
    from models_app.services.ranking import rejections_apply

    images = add_images(project, owner, 3)
    cat, dog, bird = classes
    for image, label_class in ((images[0], cat), (images[1], cat), (images[1], dog)):
        SuggestionRejection.objects.create(image=image, label_class=label_class)
    proba = np.array([[0.5, 0.3, 0.2], [0.6, 0.4, 0.0], [0.1, 0.2, 0.7]], dtype=np.float32)
    rejections_apply(proba, [i.pk for i in images], [cat.pk, dog.pk, bird.pk], project=project)
    np.testing.assert_allclose(
        proba, [[0.0, 0.6, 0.4], [1 / 3, 1 / 3, 1 / 3], [0.1, 0.2, 0.7]], rtol=1e-6
    )
