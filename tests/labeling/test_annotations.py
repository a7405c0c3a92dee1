from __future__ import annotations

import hashlib

import pytest
from django.core.exceptions import ValidationError

from labeling import selectors, services
from labeling.models import Annotation, Image


def history(image):
    return [
        (a.label_class and a.label_class.name, a.is_current)
        for a in selectors.annotation_history(image=image)
    ]


def test_a_change_of_label_adds_a_row_and_keeps_the_old_one(images, classes, annotator):
    cat, dog, _ = classes
    image = images[0]
    services.annotation_create(image=image, label_class=cat, annotator=annotator)
    services.annotation_create(image=image, label_class=dog, annotator=annotator)
    image.refresh_from_db()
    assert image.label == dog
    assert history(image) == [("cat", False), ("dog", True)]


def test_labeling_twice_with_the_same_class_adds_nothing(images, classes, annotator):
    services.annotation_create(image=images[0], label_class=classes[0], annotator=annotator)
    services.annotation_create(image=images[0], label_class=classes[0], annotator=annotator)
    assert Annotation.objects.filter(image=images[0]).count() == 1


def test_undo_returns_an_image_to_unlabeled_and_records_it(project, images, classes, annotator):
    services.annotation_create(image=images[0], label_class=classes[0], annotator=annotator)
    services.annotation_create(image=images[1], label_class=classes[1], annotator=annotator)
    undone = services.annotation_undo_last(project=project, annotator=annotator)
    assert undone == images[1]
    undone.refresh_from_db()
    assert undone.label is None
    assert undone.reserved_by == annotator  # handed back to the annotator to label again
    assert history(undone) == [("dog", False), (None, True)]
    # A second undo goes one label further back.
    assert services.annotation_undo_last(project=project, annotator=annotator) == images[0]
    assert services.annotation_undo_last(project=project, annotator=annotator) is None
    assert selectors.project_counts(project=project).labeled == 0


def test_undo_of_a_relabel_restores_the_earlier_label(
    project, images, classes, annotator, reviewer
):
    services.annotation_create(image=images[0], label_class=classes[0], annotator=reviewer)
    services.annotation_create(image=images[0], label_class=classes[2], annotator=annotator)
    services.annotation_undo_last(project=project, annotator=annotator)
    images[0].refresh_from_db()
    assert images[0].label == classes[0]
    assert history(images[0]) == [("cat", False), ("bird", False), ("cat", True)]


def test_undo_only_touches_the_callers_own_labels(project, images, classes, annotator, reviewer):
    services.annotation_create(image=images[0], label_class=classes[0], annotator=reviewer)
    assert services.annotation_undo_last(project=project, annotator=annotator) is None
    images[0].refresh_from_db()
    assert images[0].label == classes[0]


def test_a_class_of_another_project_is_refused(images, other_project, annotator):
    foreign = services.label_class_create(project=other_project, name="cat")
    with pytest.raises(ValidationError, match="another project"):
        services.annotation_create(image=images[0], label_class=foreign, annotator=annotator)
    assert not Annotation.objects.exists()


def test_a_deactivated_class_is_refused(images, classes, annotator):
    services.label_class_update(label_class=classes[0], is_active=False)
    classes[0].refresh_from_db()
    with pytest.raises(ValidationError, match="deactivated"):
        services.annotation_create(image=images[0], label_class=classes[0], annotator=annotator)
    images[0].refresh_from_db()
    assert images[0].label is None and not Annotation.objects.exists()


def test_bulk_labeling_is_all_or_nothing(
    project, other_project, images, classes, annotator, outsider
):
    from tests.conftest import add_images

    foreign = add_images(other_project, outsider, 1, start=50)[0]
    with pytest.raises(ValidationError):
        services.annotations_bulk_create(
            project=project,
            image_ids=[images[0].pk, foreign.pk],
            label_class=classes[0],
            annotator=annotator,
        )
    assert not Annotation.objects.exists()
    count = services.annotations_bulk_create(
        project=project,
        image_ids=[i.pk for i in images[:3]],
        label_class=classes[1],
        annotator=annotator,
    )
    assert count == 3
    assert selectors.project_counts(project=project).per_class[1].count == 3


def test_counts(project, images, classes, annotator):
    services.annotation_create(image=images[0], label_class=classes[0], annotator=annotator)
    services.annotation_create(image=images[1], label_class=classes[0], annotator=annotator)
    services.annotation_create(image=images[2], label_class=classes[2], annotator=annotator)
    counts = selectors.project_counts(project=project)
    assert (counts.total, counts.labeled, counts.unlabeled) == (6, 3, 3)
    assert [(c.label_class.name, c.count) for c in counts.per_class] == [
        ("cat", 2),
        ("dog", 0),
        ("bird", 1),
    ]


def test_class_keys_and_names(project):
    made = [services.label_class_create(project=project, name=f"c{i}") for i in range(11)]
    assert [c.key for c in made] == list("123456789ab")
    with pytest.raises(ValidationError, match="already exists"):
        services.label_class_create(project=project, name="C3")
    with pytest.raises(ValidationError, match="already used"):
        services.label_class_create(project=project, name="new", key="5")
    with pytest.raises(ValidationError):
        services.label_class_create(project=project, name="  ")
    with pytest.raises(ValidationError, match="already used"):
        services.label_class_update(label_class=made[0], key="2")
    # A deactivated class frees its key.
    services.label_class_update(label_class=made[1], is_active=False)
    assert services.label_class_update(label_class=made[0], key="2").key == "2"


def test_a_labeled_image_joins_a_split_drawn_from_its_hash(project, owner, classes):
    from tests.conftest import add_images

    images = add_images(project, owner, 200, start=1000)
    services.annotations_bulk_create(
        project=project, image_ids=[i.pk for i in images], label_class=classes[0], annotator=owner
    )
    stored = Image.objects.filter(pk__in=[i.pk for i in images]).order_by("id")
    splits = [i.split for i in stored]
    # Each image's split from its file's SHA-256, as documented: held out when the first
    # 12 hex digits, as a fraction, fall under test + val (0.3 by default); then test
    # when the next 12 fall under test's share of that (2/3), else validation.
    expected = []
    for image in stored:
        with image.file.open("rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        first, second = int(digest[:12], 16) / 16**12, int(digest[12:24], 16) / 16**12
        expected.append("train" if first >= 0.3 else "test" if second < 0.2 / 0.3 else "val")
    assert splits == expected
    # 20% test and 10% validation by default; a uniform draw lands near those rates.
    assert 20 <= splits.count("test") <= 60
    assert 5 <= splits.count("val") <= 35
    # Relabeling never moves an image to another split.
    image = Image.objects.get(pk=images[0].pk)
    services.annotation_create(image=image, label_class=classes[1], annotator=owner)
    image.refresh_from_db()
    assert image.split == splits[0]
