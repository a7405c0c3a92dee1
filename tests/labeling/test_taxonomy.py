"""Class evolution: rename and friends, merge and its undo, split, hierarchy, audit.

Across all of them: the number of labeled images never drops, and every earlier label
stays in the history."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from labeling import selectors, services
from labeling.models import Annotation, ClassSplit, Image, LabelClass, TaxonomyChange
from tests.conftest import add_images


@pytest.fixture
def labeled(project, owner, classes):
    """12 images: 4 cat, 4 dog, 2 bird, 2 unlabeled."""
    images = add_images(project, owner, 12)
    plan = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, None, None]
    for image, c in zip(images, plan, strict=True):
        if c is not None:
            services.annotation_create(image=image, label_class=classes[c], annotator=owner)
    return images


def labels(project) -> dict[int, int | None]:
    return dict(Image.objects.filter(project=project).values_list("id", "label_id"))


def labeled_count(project) -> int:
    return Image.objects.filter(project=project, label__isnull=False).count()


def history(image) -> list[str | None]:
    rows = Annotation.objects.filter(image=image).order_by("id").select_related("label_class")
    return [row.label_class.name if row.label_class else None for row in rows]


def test_rename_recolour_key_order_and_deactivate_are_logged_and_keep_labels(
    project, owner, classes, labeled
):
    before = labels(project)
    cat = services.label_class_update(
        label_class=classes[0], actor=owner, name="Cat", color="#000000", key="c", order=5
    )
    cat = services.label_class_update(label_class=cat, actor=owner, is_active=False)
    assert labels(project) == before
    change = TaxonomyChange.objects.filter(kind="update").order_by("id").first()
    assert change.actor == owner
    assert change.details["changes"]["name"] == ["cat", "Cat"]
    assert change.details["changes"]["key"] == ["1", "c"]
    assert "name 'cat' → 'Cat'" in change.summary
    # A deactivated class leaves the labeling page but keeps its images and history.
    assert cat not in selectors.label_class_list(project=project, active_only=True)
    assert Image.objects.filter(label=cat).count() == 4
    with pytest.raises(ValidationError, match="deactivated"):
        services.annotation_create(image=labeled[10], label_class=cat, annotator=owner)


def test_a_merge_moves_every_label_keeps_history_and_undo_restores_exactly(
    project, owner, reviewer, classes, labeled
):
    before = labels(project)
    count = labeled_count(project)
    merge = services.label_class_merge(
        project=project, classes=classes[:2], name="pet", actor=reviewer
    )
    pet = merge.target
    assert merge.target_created and pet.name == "pet" and pet.is_active
    assert labeled_count(project) == count
    assert Image.objects.filter(label=pet).count() == 8
    assert not LabelClass.objects.filter(pk__in=[c.pk for c in classes[:2]], is_active=True)
    assert history(labeled[0]) == ["cat", "pet"]
    assert merge.moves.count() == 8
    assert TaxonomyChange.objects.filter(kind="merge").get().actor == reviewer

    restored = services.label_class_merge_undo(merge=merge, actor=reviewer)
    assert restored == 8
    assert labels(project) == before
    assert all(c.is_active for c in LabelClass.objects.filter(pk__in=[c.pk for c in classes]))
    pet.refresh_from_db()
    assert not pet.is_active  # made by the merge, empty again
    assert history(labeled[0]) == ["cat", "pet", "cat"]
    undo_row = Annotation.objects.filter(image=labeled[0]).order_by("id").last()
    assert (undo_row.action, undo_row.reverts.action) == ("unmerge", "merge")
    with pytest.raises(ValidationError, match="already undone"):
        services.label_class_merge_undo(merge=merge, actor=reviewer)


def test_merging_into_one_of_the_classes_and_undo_after_a_relabel(project, owner, classes, labeled):
    cat, dog, bird = classes
    merge = services.label_class_merge(project=project, classes=[cat, dog], name="CAT", actor=owner)
    assert merge.target == cat and not merge.target_created
    assert Image.objects.filter(label=cat).count() == 8
    # Someone relabels a moved image after the merge: undo keeps that newer label.
    services.annotation_create(image=labeled[4], label_class=bird, annotator=owner)
    assert services.label_class_merge_undo(merge=merge, actor=owner) == 3
    assert labeled[4].pk in Image.objects.filter(label=bird).values_list("id", flat=True)
    assert Image.objects.filter(label=dog).count() == 3
    assert "1 relabeled since kept" in TaxonomyChange.objects.filter(kind="unmerge").get().summary


@pytest.mark.parametrize(
    ("pick", "name", "message"),
    [
        ([0], "x", "at least two"),
        ([0, 1], "", "Name the merged class"),
        ([0, 1], "bird", "already exists"),
    ],
)
def test_bad_merges_are_refused_and_change_nothing(
    project, owner, classes, labeled, pick, name, message
):
    before = labels(project)
    with pytest.raises(ValidationError, match=message):
        services.label_class_merge(
            project=project, classes=[classes[i] for i in pick], name=name, actor=owner
        )
    assert labels(project) == before
    assert not TaxonomyChange.objects.filter(kind="merge").exists()


def test_classes_of_another_project_cannot_be_merged(project, other_project, owner, classes):
    stranger = services.label_class_create(project=other_project, name="stranger")
    before = set(LabelClass.objects.values_list("id", "project", "name", "is_active"))
    with pytest.raises(ValidationError, match="do not exist in this project"):
        services.label_class_merge(
            project=project, classes=[classes[0], stranger], name="cat", actor=owner
        )
    assert set(LabelClass.objects.values_list("id", "project", "name", "is_active")) == before
    assert not TaxonomyChange.objects.filter(kind="merge").exists()


def test_a_split_moves_decided_images_and_queues_the_rest_first(
    project, owner, annotator, classes, labeled
):
    cat = classes[0]
    count = labeled_count(project)
    split = services.label_class_split_start(
        label_class=cat, names=["tabby", "siamese"], actor=owner
    )
    tabby, siamese = split.targets.order_by("id")
    assert not tabby.is_active and not siamese.is_active
    # Until finished, the old class keeps working and the new ones are not offered.
    offered = set(selectors.label_class_list(project=project, active_only=True))
    assert cat in offered and tabby not in offered
    services.annotation_create(image=labeled[10], label_class=cat, annotator=owner)
    cats = list(Image.objects.filter(label=cat).order_by("id"))
    services.split_assign(split=split, image_ids=[cats[0].pk], label_class=tabby)
    services.split_assign(split=split, image_ids=[cats[1].pk], label_class=siamese)
    services.split_suggestions_write(
        split=split,
        suggestions=[(cats[2].pk, tabby.pk, 0.95), (cats[3].pk, siamese.pk, 0.55)],
    )
    assert services.split_accept(split=split, min_confidence=0.9) == 1
    result = services.label_class_split_finish(split=split, actor=owner)
    assert result == {"moved": 3, "to_relabel": 2}
    assert labeled_count(project) == count + 1
    assert history(cats[2]) == ["cat", "tabby"]
    cat.refresh_from_db()
    tabby.refresh_from_db()
    assert not cat.is_active and tabby.is_active and tabby.key
    # The new classes take keys no class holds, not the deactivated cat's.
    siamese.refresh_from_db()
    keys = [c.key for c in LabelClass.objects.filter(project=project)]
    assert cat.key and tabby.key != cat.key and siamese.key not in (cat.key, tabby.key, "")
    assert len(keys) == len(set(keys))
    # The two left without a new class come first in the queue, before unlabeled ones.
    served = services.queue_reserve(project=project, user=annotator, count=3)
    assert [i.pk for i in served[:2]] == [cats[3].pk, cats[4].pk]
    assert served[2].label_id is None
    siamese.refresh_from_db()
    services.annotation_create(image=served[0], label_class=siamese, annotator=annotator)
    assert not Image.objects.get(pk=served[0].pk).needs_relabel
    assert history(cats[3]) == ["cat", "siamese"]


def test_bad_split_steps_are_refused(project, owner, classes, labeled):
    cat, dog, _ = classes
    names = ("a", "A", "b", "c", "d", "x")
    with pytest.raises(ValidationError, match="at least two different"):
        services.label_class_split_start(label_class=cat, names=["a", "A"], actor=owner)
    assert not ClassSplit.objects.exists()
    assert not LabelClass.objects.filter(name__in=names).exists()
    split = services.label_class_split_start(label_class=cat, names=["a", "b"], actor=owner)
    with pytest.raises(ValidationError, match="already being split"):
        services.label_class_split_start(label_class=cat, names=["c", "d"], actor=owner)
    assert ClassSplit.objects.get() == split
    assert set(LabelClass.objects.filter(name__in=names).values_list("name", flat=True)) == {
        "a",
        "b",
    }
    before = labels(project)
    dog_image = Image.objects.filter(label=dog).first()
    a = split.targets.get(name="a")
    with pytest.raises(ValidationError, match="not labeled 'cat'"):
        services.split_assign(split=split, image_ids=[dog_image.pk], label_class=a)
    with pytest.raises(ValidationError, match="new classes"):
        services.split_assign(split=split, image_ids=[labeled[0].pk], label_class=dog)
    with pytest.raises(ValidationError, match="being split cannot be merged"):
        services.label_class_merge(project=project, classes=[cat, dog], name="x", actor=owner)
    assert labels(project) == before
    assert not split.assignments.exists()
    services.label_class_split_cancel(split=split, actor=owner)
    assert not LabelClass.objects.filter(name__in=["a", "b"]).exists()
    assert ClassSplit.objects.get().status == "cancelled"
    with pytest.raises(ValidationError, match="cancelled"):
        services.label_class_split_finish(split=split, actor=owner)


def test_one_level_of_hierarchy_and_labeling_at_the_child_level(project, owner, classes, labeled):
    cat, dog, bird = classes
    animal = services.label_class_create(project=project, name="mammal", actor=owner)
    services.label_class_update(label_class=cat, parent=animal, actor=owner)
    services.label_class_update(label_class=dog, parent=animal, actor=owner)
    offered = set(selectors.label_class_list(project=project, active_only=True))
    assert offered == {cat, dog, bird}
    with pytest.raises(ValidationError, match="subclasses"):
        services.annotation_create(image=labeled[10], label_class=animal, annotator=owner)
    with pytest.raises(ValidationError, match="one level only"):
        services.label_class_update(label_class=bird, parent=cat, actor=owner)
    with pytest.raises(ValidationError, match="one level only"):
        services.label_class_update(label_class=animal, parent=bird, actor=owner)
    with pytest.raises(ValidationError, match="own parent"):
        services.label_class_update(label_class=bird, parent=bird, actor=owner)
    logged = TaxonomyChange.objects.filter(kind="update", details__changes__has_key="parent")
    assert logged.count() == 2
