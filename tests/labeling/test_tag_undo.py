"""Undo of tag saves, a save at a time: once every save of an image is undone it is as
untagged as an image never touched (every tag not looked at, back in the queue, out of
the counts and the training set); undoing only the newest of several keeps it tagged."""

from __future__ import annotations

from labeling import selectors, services
from labeling.models import Image, TagAnnotation
from models_app.services.tag_versions import tag_dataset
from tests.conftest import add_images
from tests.labeling import test_tags as base
from tests.labeling.test_tags import ABSENT, PRESENT, UNSET, states

# The tag project, its three tags and the states in force: test_tags.py's.
tag_project, tags = base.tag_project, base.tags


def test_undoing_every_save_of_an_image_leaves_it_untagged(tag_project, tags, annotator):
    image, other = add_images(tag_project, annotator, 2)
    striped, leather, _ = tags
    services.image_tags_set(image=image, present=[striped.pk], annotator=annotator)
    # The second save changes one tag only, so it writes one row.
    services.image_tags_set(image=image, present=[striped.pk, leather.pk], annotator=annotator)
    assert TagAnnotation.objects.filter(image=image).count() == 4
    Image.objects.filter(pk=image.pk).update(split=Image.Split.TRAIN)

    # Undo of the newest save only: leather back to absent, still a tagged image.
    assert services.label_undo_last(project=tag_project, annotator=annotator) == image
    assert states(image) == {"striped": PRESENT, "leather": ABSENT, "rounded": ABSENT}
    image.refresh_from_db()
    assert image.tagged
    assert selectors.project_counts(project=tag_project).labeled == 1
    assert tag_dataset(project=tag_project).ids["train"] == [image.pk]

    # Undo of the first save too: nothing of it may stay, leather included.
    assert services.label_undo_last(project=tag_project, annotator=annotator) == image
    assert states(image) == {"striped": UNSET, "leather": UNSET, "rounded": UNSET}
    image.refresh_from_db()
    assert not image.tagged
    counts = selectors.project_counts(project=tag_project)
    assert (counts.labeled, counts.unlabeled) == (0, 2)
    assert {c.label_class.name: c.count for c in counts.per_class} == {
        "striped": 0,
        "leather": 0,
        "rounded": 0,
    }
    assert tag_dataset(project=tag_project).ids["train"] == []
    assert services.label_undo_last(project=tag_project, annotator=annotator) is None
    # Back in the queue like the image never touched (the undo reserved it first).
    served = services.queue_reserve(project=tag_project, user=annotator, count=5)
    assert [i.pk for i in served][0] == image.pk
    assert {i.pk for i in served} == {image.pk, other.pk}
    # History kept: saves of 3 and 1 rows, undos of 1 and 3.
    rows = TagAnnotation.objects.filter(image=image)
    assert rows.filter(action="save").count() == 4
    assert rows.filter(action="undo").count() == 4


def test_undoing_a_grid_change_and_then_the_save_leaves_the_image_untagged(
    tag_project, tags, annotator
):
    image = add_images(tag_project, annotator, 1)[0]
    striped, leather, rounded = tags
    services.image_tags_set(image=image, present=[], annotator=annotator)
    services.images_tag_set(
        project=tag_project, image_ids=[image.pk], tag=rounded, present=True, annotator=annotator
    )
    assert services.label_undo_last(project=tag_project, annotator=annotator) == image
    assert states(image) == {"striped": ABSENT, "leather": ABSENT, "rounded": ABSENT}
    image.refresh_from_db()
    assert image.tagged

    assert services.label_undo_last(project=tag_project, annotator=annotator) == image
    assert states(image) == {"striped": UNSET, "leather": UNSET, "rounded": UNSET}
    image.refresh_from_db()
    assert not image.tagged
    assert selectors.project_counts(project=tag_project).labeled == 0


def test_undoing_a_save_over_a_grid_change_keeps_the_grid_change_untagged(
    tag_project, tags, annotator
):
    """A tag set from the grid before the image's first save is not part of that save:
    undoing the save restores it, and the image is back to untagged as it was."""
    image = add_images(tag_project, annotator, 1)[0]
    striped, leather, rounded = tags
    services.images_tag_set(
        project=tag_project, image_ids=[image.pk], tag=striped, present=True, annotator=annotator
    )
    services.image_tags_set(image=image, present=[striped.pk, leather.pk], annotator=annotator)
    assert services.label_undo_last(project=tag_project, annotator=annotator) == image
    assert states(image) == {"striped": PRESENT, "leather": UNSET, "rounded": UNSET}
    image.refresh_from_db()
    assert not image.tagged


def test_undoing_grid_changes_on_a_saved_image_keeps_it_tagged(tag_project, tags, annotator):
    """Only undoing a save untags: a grid change undone puts back the change before it."""
    image = add_images(tag_project, annotator, 1)[0]
    striped = tags[0]
    services.image_tags_set(image=image, present=[], annotator=annotator)
    for present in (True, False):
        services.images_tag_set(
            project=tag_project,
            image_ids=[image.pk],
            tag=striped,
            present=present,
            annotator=annotator,
        )
    assert services.label_undo_last(project=tag_project, annotator=annotator) == image
    assert states(image) == {"striped": PRESENT, "leather": ABSENT, "rounded": ABSENT}
    image.refresh_from_db()
    assert image.tagged
    assert selectors.project_counts(project=tag_project).labeled == 1
