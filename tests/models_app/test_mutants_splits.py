"""A class split's suggestions (models_app.services.splits) from embeddings stored by
hand: two tight groups of one class, one seed each, and the rest follow their group.
The backbone is timm's tiny test network from a weights file made here, so nothing
slow loads."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from django.core.exceptions import ValidationError

from labeling import services as labeling_services
from labeling.models import LabelClass, SplitAssignment
from models_app.models import Embedding
from models_app.selectors import backbone_key
from models_app.services import split_suggest
from tests.conftest import add_images


@pytest.fixture
def tiny_backbone(settings, tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save(timm.create_model("test_efficientnet", pretrained=False).state_dict(), path)
    settings.LEARNER = {
        **settings.LEARNER,
        "BACKBONE": "test_efficientnet",
        "BACKBONE_WEIGHTS": str(path),
        "DEVICE": "cpu",
    }


def embed(images, vectors):
    for image, vector in zip(images, vectors, strict=True):
        data = np.asarray(vector, dtype=np.float16)
        Embedding.objects.create(
            image=image, backbone=backbone_key(), vector=data.tobytes(), dim=len(data)
        )


@pytest.fixture
def shoes(project, owner, tiny_backbone):
    shoe = labeling_services.label_class_create(project=project, name="shoe")
    other = labeling_services.label_class_create(project=project, name="other")
    images = add_images(project, owner, 8)
    for image in images[:7]:
        labeling_services.annotation_create(image=image, label_class=shoe, annotator=owner)
    labeling_services.annotation_create(image=images[7], label_class=other, annotator=owner)
    rng = np.random.default_rng(0)
    low, high = np.eye(4)[0], np.eye(4)[1]
    vectors = [low + rng.normal(0, 0.02, 4) for _ in range(3)]
    vectors += [high + rng.normal(0, 0.02, 4) for _ in range(4)]
    vectors += [np.eye(4)[2]]
    embed(images, vectors)
    split = labeling_services.label_class_split_start(
        label_class=shoe, names=["low", "high"], actor=owner
    )
    return split, images


def suggestions(split):
    return {
        a.image_id: (a.label_class.name, a.confidence)
        for a in split.assignments.filter(kind=SplitAssignment.Kind.SUGGESTED)
    }


@pytest.mark.django_db
def test_every_undecided_image_gets_the_class_of_its_group(shoes):
    split, images = shoes
    low, high = split.targets.order_by("order", "id")
    labeling_services.split_assign(split=split, image_ids=[images[0].pk], label_class=low)
    labeling_services.split_assign(split=split, image_ids=[images[3].pk], label_class=high)
    assert split_suggest(split=split) == 5
    got = suggestions(split)
    # Neither the seeds nor the image of another class get a suggestion.
    assert set(got) == {images[i].pk for i in (1, 2, 4, 5, 6)}
    assert {pk: name for pk, (name, _) in got.items()} == {
        images[1].pk: "low",
        images[2].pk: "low",
        images[4].pk: "high",
        images[5].pk: "high",
        images[6].pk: "high",
    }
    assert all(0.5 < confidence <= 1.0 for _, confidence in got.values())
    assert all(type(confidence) is float for _, confidence in got.values())


@pytest.mark.django_db
def test_the_seeds_order_does_not_swap_the_classes(shoes):
    split, images = shoes
    low, high = split.targets.order_by("order", "id")
    # Seeds given high first, and two of them: the suggestions still follow the seeds.
    labeling_services.split_assign(
        split=split, image_ids=[images[6].pk, images[5].pk], label_class=high
    )
    labeling_services.split_assign(split=split, image_ids=[images[2].pk], label_class=low)
    assert split_suggest(split=split) == 4
    names = {pk: name for pk, (name, _) in suggestions(split).items()}
    assert names == {
        images[0].pk: "low",
        images[1].pk: "low",
        images[3].pk: "high",
        images[4].pk: "high",
    }


@pytest.mark.django_db
def test_a_new_class_without_a_seed_is_named(shoes):
    split, images = shoes
    low, _ = split.targets.order_by("order", "id")
    labeling_services.split_assign(split=split, image_ids=[images[0].pk], label_class=low)
    with pytest.raises(ValidationError) as refused:
        split_suggest(split=split)
    assert refused.value.messages == [
        "Choose at least one image for each new class (none yet: high)."
    ]
    assert suggestions(split) == {}


@pytest.mark.django_db
def test_without_every_embedding_the_split_waits_for_the_worker(shoes):
    split, images = shoes
    low, high = split.targets.order_by("order", "id")
    labeling_services.split_assign(split=split, image_ids=[images[0].pk], label_class=low)
    labeling_services.split_assign(split=split, image_ids=[images[3].pk], label_class=high)
    Embedding.objects.filter(image=images[5]).delete()
    with pytest.raises(ValidationError) as refused:
        split_suggest(split=split)
    assert refused.value.messages[0].endswith("Wait for the worker to embed them.")
    assert "1 images have no embedding yet." in refused.value.messages[0]
    # A missing seed's embedding is refused the same way.
    Embedding.objects.filter(image=images[0]).delete()
    with pytest.raises(ValidationError, match="Wait for the worker"):
        split_suggest(split=split)


@pytest.mark.django_db
def test_when_every_image_is_decided_there_is_nothing_to_suggest(shoes):
    split, images = shoes
    low, high = split.targets.order_by("order", "id")
    labeling_services.split_assign(
        split=split, image_ids=[images[i].pk for i in range(3)], label_class=low
    )
    labeling_services.split_assign(
        split=split, image_ids=[images[i].pk for i in range(3, 7)], label_class=high
    )
    assert split_suggest(split=split) == 0
    assert suggestions(split) == {}


@pytest.mark.django_db
def test_suggesting_again_replaces_the_suggestions_and_counts_only_decisions(shoes):
    split, images = shoes
    low, high = split.targets.order_by("order", "id")
    labeling_services.split_assign(split=split, image_ids=[images[0].pk], label_class=low)
    labeling_services.split_assign(split=split, image_ids=[images[3].pk], label_class=high)
    # Earlier suggestions are not seeds: the same five images are suggested again.
    assert split_suggest(split=split) == 5
    first = suggestions(split)
    assert split_suggest(split=split) == 5
    assert set(suggestions(split)) == set(first) == {images[i].pk for i in (1, 2, 4, 5, 6)}


@pytest.mark.django_db
def test_a_seed_relabeled_to_another_class_no_longer_counts(shoes, owner):
    split, images = shoes
    low, high = split.targets.order_by("order", "id")
    labeling_services.split_assign(split=split, image_ids=[images[0].pk], label_class=low)
    labeling_services.split_assign(split=split, image_ids=[images[3].pk], label_class=high)
    other = LabelClass.objects.get(project=split.project, name="other")
    labeling_services.annotation_create(image=images[3], label_class=other, annotator=owner)
    with pytest.raises(ValidationError, match=r"\(none yet: high\)"):
        split_suggest(split=split)


@pytest.mark.django_db
def test_every_new_class_without_a_seed_is_named(shoes):
    split, _ = shoes
    with pytest.raises(ValidationError) as refused:
        split_suggest(split=split)
    names = refused.value.messages[0].split("none yet: ")[1].rstrip(").")
    assert sorted(names.split(", ")) == ["high", "low"]
