"""Multi-label projects learn: a tag head trained on real Fashion-MNIST images through
the services and through a real worker, its per-tag metrics on the dashboard, the queue
ranked; predicting before a model exists is refused with a reason."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.test import Client

from feedback import services as feedback_services
from labeling import services as labeling_services
from labeling.models import Image, Project
from models_app import selectors, services
from models_app.ml.multilabel import predict_tag_proba, tag_head_from_bytes
from tests.factories import PASSWORD
from tests.fashion import fashion_uploads, wait_for
from tests.models_app.test_training import finished

# Each image's tags follow from its true class: "footwear" for sandals and sneakers,
# "bag" for bags, "has legs" for trousers.
TAGS_OF = {
    "Trouser": {"has legs"},
    "Bag": {"bag"},
    "Sneaker": {"footwear"},
    "Sandal": {"footwear"},
}


@pytest.fixture
def tag_project(owner):
    return labeling_services.project_create(name="Wardrobe", user=owner, kind=Project.Kind.MULTI)


def tagged_images(project, owner, fashion, per_class: int, untagged: int = 0) -> dict:
    tags = {
        name: labeling_services.label_class_create(project=project, name=name)
        for name in ("footwear", "bag", "has legs")
    }
    uploads = fashion_uploads(fashion, list(TAGS_OF), per_class)
    results = labeling_services.images_ingest(
        project=project, files=[u for u, _ in uploads], user=owner
    )
    for (_, truth), result in zip(uploads, results, strict=True):
        image = Image.objects.get(pk=result.image_id)
        present = [tags[name].pk for name in TAGS_OF[truth]]
        labeling_services.image_tags_set(image=image, present=present, annotator=owner)
    if untagged:
        extra = fashion_uploads(fashion, list(TAGS_OF), untagged, skip=per_class)
        labeling_services.images_ingest(project=project, files=[u for u, _ in extra], user=owner)
    return tags


def test_a_tag_version_learns_each_tag_and_ranks_the_untagged(tag_project, owner, fashion):
    tags = tagged_images(tag_project, owner, fashion, per_class=14, untagged=3)
    version = services.model_version_request(project=tag_project, trigger="api", user=owner)
    version = services.model_version_train(version_id=version.pk)
    assert version.status == "succeeded", version.error
    assert version.is_multi_label and version.is_active
    assert version.class_ids == [tags[n].pk for n in ("footwear", "bag", "has legs")]
    test = version.metrics["test"]
    assert test["n_images"] >= 5, test
    # Chance AP is the tag's share of images (a quarter to a half); these are easy tags.
    assert test["map"] > 0.85, test
    assert len(version.metrics["thresholds"]) == 3
    assert version.metrics["untrainable"] == []
    counts = version.label_counts[str(tags["footwear"].pk)]
    assert counts["train"] + counts["val"] + counts["test"] == 28  # sneakers and sandals
    assert version.labels_total == 56

    # The stored head gives the tags of a new sneaker, and the queue has its ranking.
    with default_storage.open(version.artifact, "rb") as f:
        head = tag_head_from_bytes(f.read())
    untagged = Image.objects.filter(project=tag_project, tagged=False)
    assert untagged.count() == 12
    assert not untagged.filter(suggested_class__isnull=True).exists()
    assert len(set(untagged.values_list("priority", flat=True))) > 1
    sneaker_names = {u.name for u, _ in fashion_uploads(fashion, ["Sneaker"], 3, skip=14)}
    sneakers = [i for i in untagged if i.original_name in sneaker_names]
    assert len(sneakers) == 3
    x = services.embeddings_of_images(image_ids=[i.pk for i in sneakers])
    proba = predict_tag_proba(head, x)
    assert (proba[:, 0] > head.thresholds[0]).all(), proba  # footwear present
    assert np.allclose(
        [i.confidence for i in sneakers], proba.max(axis=1), atol=1e-4
    )  # the suggestion is the likeliest tag

    # The dashboard shows each tag's figures.
    client = Client()
    client.login(username=owner.username, password=PASSWORD)
    page = client.get(f"/projects/{tag_project.pk}/model/").content.decode()
    assert "test mean average precision" in page and 'id="tag-metrics"' in page
    assert "<th>test mean AP</th>" in page  # the versions table, not "test accuracy"
    for name in ("footwear", "bag", "has legs"):
        assert f"<td>{name}</td>" in page
    # Advice counts a tag's images saved present (footwear: sneakers and sandals).
    thin = {c.name: c.labels for c in selectors.thin_classes(project=tag_project)}
    assert thin == {"bag": 14, "has legs": 14}
    assert "bag needs more examples: saved present on 14 images" in page
    # The grid says which images were tagged, not "unlabeled" for all.
    grid = client.get(f"/projects/{tag_project.pk}/images/").content.decode()
    assert ">tagged</span>" in grid and ">not tagged</span>" in grid
    assert ">unlabeled</span>" not in grid


def test_training_is_refused_until_a_tag_has_both_kinds_of_example(tag_project, owner, fashion):
    bag = labeling_services.label_class_create(project=tag_project, name="bag")
    with pytest.raises(ValidationError, match="at least one tag present on 2 and absent on 2"):
        services.model_version_request(project=tag_project, trigger="api", user=owner)
    uploads = [u for u, _ in fashion_uploads(fashion, ["Bag"], 6)]
    for result in labeling_services.images_ingest(project=tag_project, files=uploads, user=owner):
        image = Image.objects.get(pk=result.image_id)
        labeling_services.image_tags_set(image=image, present=[bag.pk], annotator=owner)
    Image.objects.filter(project=tag_project).update(split=Image.Split.TRAIN)
    # Six bags and no image without one: nothing to tell a bag from.
    with pytest.raises(ValidationError, match=r"bag: 6 present / 0 absent"):
        services.model_version_request(project=tag_project, trigger="api", user=owner)
    assert not tag_project.model_versions.exists()


def test_predicting_before_a_model_is_refused_for_want_of_one(tag_project, owner, fashion):
    tagged_images(tag_project, owner, fashion, per_class=2)
    # Predicting is refused for want of a model, not for the kind of project.
    upload = fashion_uploads(fashion, ["Bag"], 1, skip=5)[0][0]
    with pytest.raises(ValidationError, match="no trained model yet"):
        feedback_services.predictions_request(project=tag_project, files=[upload], user=owner)
    assert Image.objects.filter(project=tag_project).count() == 8  # no prediction stored


def test_a_real_worker_trains_a_tag_version(worker, tag_project, owner, fashion):
    tagged_images(tag_project, owner, fashion, per_class=8)
    version = services.model_version_request(project=tag_project, trigger="button", user=owner)
    version = wait_for(lambda: finished(version))
    assert version.status == "succeeded", version.error
    assert version.is_multi_label and version.metrics["test"]["n_images"] >= 1
