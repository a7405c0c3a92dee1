"""Splitting a tag into its kinds: the expert picks a few seeds per kind among the
images with the tag present, the learner suggests a kind for the rest from their
embeddings, and finishing writes one kind present (the others absent) where the tag
was present, every kind absent where it was absent; undecided images are tagged again."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from labeling import services as labeling_services
from labeling.models import Image, LabelClass, Project, TagAnnotation, TaxonomyChange
from models_app import services
from tests.factories import PASSWORD
from tests.fashion import fashion_uploads
from tests.models_app.test_tag_training import tagged_images


def states_of(image_ids, tag) -> list[str | None]:
    current = dict(
        TagAnnotation.objects.filter(tag=tag, is_current=True).values_list("image_id", "state")
    )
    return [current.get(pk) for pk in image_ids]


def test_a_tag_splits_into_its_kinds_from_a_few_seeds(owner, fashion):
    project = labeling_services.project_create(name="Shoes", user=owner, kind=Project.Kind.MULTI)
    tags = tagged_images(project, owner, fashion, per_class=14)
    footwear = tags["footwear"]
    names = {
        kind: {u.name for u, _ in fashion_uploads(fashion, [kind], 14)}
        for kind in ("Sneaker", "Sandal", "Bag")
    }
    ids = {
        kind: list(
            Image.objects.filter(project=project, original_name__in=n)
            .order_by("id")
            .values_list("id", flat=True)
        )
        for kind, n in names.items()
    }
    services.embeddings_ensure(project=project)
    split = labeling_services.label_class_split_start(
        label_class=footwear, names=["sneaker", "sandal"], actor=owner
    )
    sneaker, sandal = split.targets.order_by("id")
    assert split.source_images().count() == 28  # the images with footwear present
    with pytest.raises(ValidationError, match="not tagged 'footwear'"):
        labeling_services.split_assign(split=split, image_ids=ids["Bag"][:1], label_class=sneaker)
    for target, kind in ((sneaker, "Sneaker"), (sandal, "Sandal")):
        labeling_services.split_assign(split=split, image_ids=ids[kind][:3], label_class=target)
    assert services.split_suggest(split=split) == 22
    # Leave the two least sure suggestions undecided: those images are tagged again.
    labeling_services.split_accept(split=split)
    unsure = list(split.assignments.order_by("confidence").values_list("image_id", flat=True)[:2])
    split.assignments.filter(image_id__in=unsure).delete()
    client = Client()
    client.login(username=owner.username, password=PASSWORD)
    page = client.get(f"/projects/{project.pk}/splits/{split.pk}/").content.decode()
    assert "where footwear was saved absent, every new tag is absent" in page
    assert "28 images: 26 decided, 0 with a suggestion to check" in page

    result = labeling_services.label_class_split_finish(split=split, actor=owner)
    assert result == {"moved": 26, "to_relabel": 2}
    footwear.refresh_from_db()
    sneaker.refresh_from_db()
    assert not footwear.is_active and sneaker.is_active and sneaker.key
    right = 0
    for kind, mine, other in (("Sneaker", sneaker, sandal), ("Sandal", sandal, sneaker)):
        decided = [pk for pk in ids[kind] if pk not in unsure]
        right += states_of(decided, mine).count("present")
        # Exactly one kind present on each decided image.
        for a, b in zip(states_of(decided, mine), states_of(decided, other), strict=True):
            assert {a, b} == {"present", "absent"}
    assert right >= 0.85 * 26, right
    # Bags never had footwear: neither kind can be there.
    assert states_of(ids["Bag"], sneaker) == ["absent"] * 14
    assert states_of(ids["Bag"], sandal) == ["absent"] * 14
    # The undecided are first in the queue, kinds not looked at, until tagged again.
    assert states_of(unsure, sneaker) == [None, None]
    assert set(Image.objects.filter(needs_relabel=True).values_list("id", flat=True)) == set(unsure)
    image = Image.objects.get(pk=unsure[0])
    labeling_services.image_tags_set(image=image, present=[sandal.pk], annotator=owner)
    image.refresh_from_db()
    assert not image.needs_relabel and states_of([image.pk], sandal) == ["present"]
    assert TaxonomyChange.objects.filter(project=project, kind="split_finish").exists()
    rows = TagAnnotation.objects.filter(action="split")
    assert rows.values("save_id").distinct().count() == 1
    assert set(rows.values_list("tag", flat=True)) == {sneaker.pk, sandal.pk}
    assert not LabelClass.objects.filter(project=project, name="footwear", is_active=True).exists()
