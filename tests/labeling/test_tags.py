"""Multi-label projects: each tag's state per image, saved, set on a selection, undone;
the queue, counts and grid filter treat a saved image as labeled."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from labeling import selectors, services
from labeling.models import Image, Project, TagAnnotation
from tests.conftest import add_images

PRESENT, ABSENT, UNSET = "present", "absent", "unset"


@pytest.fixture
def tag_project(owner, annotator):
    project = services.project_create(name="Shop", user=owner, kind=Project.Kind.MULTI)
    services.membership_set(project=project, username=annotator.username, role="annotator")
    return project


@pytest.fixture
def tags(tag_project):
    return [
        services.label_class_create(project=tag_project, name=name)
        for name in ("striped", "leather", "rounded")
    ]


def states(image) -> dict[str, str]:
    """Each tag's state in force, by name, read from the stored rows."""
    rows = TagAnnotation.objects.filter(image=image, is_current=True).select_related("tag")
    return {row.tag.name: row.state for row in rows}


def test_a_project_is_single_label_unless_created_multi_label(owner):
    plain = services.project_create(name="Pets", user=owner)
    tagged = services.project_create(name="Shop", user=owner, kind="multi")
    assert Project.objects.get(pk=plain.pk).kind == "single"
    assert Project.objects.get(pk=tagged.pk).kind == "multi"
    with pytest.raises(ValidationError) as error:
        services.project_create(name="Odd", user=owner, kind="several")
    assert "kind" in error.value.message_dict
    assert not Project.objects.filter(name="Odd").exists()


def test_saving_records_every_tag_present_or_absent(tag_project, tags, annotator):
    image = add_images(tag_project, annotator, 1)[0]
    striped, leather, rounded = tags
    rows = services.image_tags_set(image=image, present=[striped.pk], annotator=annotator)
    assert len(rows) == 3
    assert states(image) == {"striped": PRESENT, "leather": ABSENT, "rounded": ABSENT}
    image.refresh_from_db()
    assert image.tagged and image.label_id is None
    assert image.split != Image.Split.UNASSIGNED
    assert {r.save_id for r in rows} == {rows[0].save_id}
    assert all(r.action == "save" and r.annotator == annotator for r in rows)


def test_saving_again_writes_only_the_tags_that_changed(tag_project, tags, annotator):
    image = add_images(tag_project, annotator, 1)[0]
    striped, leather, _ = tags
    services.image_tags_set(image=image, present=[striped.pk], annotator=annotator)
    assert services.image_tags_set(image=image, present=[striped.pk], annotator=annotator) == []
    changed = services.image_tags_set(
        image=image, present=[striped.pk, leather.pk], annotator=annotator
    )
    assert [(r.tag.name, r.state) for r in changed] == [("leather", PRESENT)]
    assert TagAnnotation.objects.filter(image=image).count() == 4
    assert states(image) == {"striped": PRESENT, "leather": PRESENT, "rounded": ABSENT}


def test_a_bad_tag_or_the_wrong_kind_of_project_is_refused_and_nothing_written(
    tag_project, tags, annotator, project, classes, other_project, owner
):
    image = add_images(tag_project, annotator, 1)[0]
    foreign = services.label_class_create(project=other_project, name="alien")
    for present in ([foreign.pk], [tags[0].pk, 999999], ["x"]):
        with pytest.raises(ValidationError) as error:
            services.image_tags_set(image=image, present=present, annotator=annotator)
        assert "present" in error.value.message_dict
    services.label_class_update(label_class=tags[2], is_active=False, actor=owner)
    with pytest.raises(ValidationError):
        services.image_tags_set(image=image, present=[tags[2].pk], annotator=annotator)
    assert not TagAnnotation.objects.exists()
    image.refresh_from_db()
    assert not image.tagged

    single = add_images(project, owner, 1, start=50)[0]
    with pytest.raises(ValidationError, match="one class per image"):
        services.image_tags_set(image=single, present=[], annotator=owner)
    with pytest.raises(ValidationError, match="multi-label"):
        services.annotation_create(image=image, label_class=tags[0], annotator=annotator)
    assert not image.annotations.exists()


def test_a_tag_added_later_is_not_looked_at_on_images_saved_before(
    tag_project, tags, annotator, owner
):
    image = add_images(tag_project, annotator, 1)[0]
    services.image_tags_set(image=image, present=[tags[0].pk], annotator=annotator)
    later = services.label_class_create(project=tag_project, name="woollen")
    assert later.name not in states(image)
    assert selectors.image_tag_states(image=image).get(later.pk) is None
    services.image_tags_set(image=image, present=[tags[0].pk], annotator=annotator)
    assert states(image)["woollen"] == ABSENT


def test_undo_takes_back_a_whole_save_and_restores_the_states_before(tag_project, tags, annotator):
    first, second = add_images(tag_project, annotator, 2)
    striped, leather, rounded = tags
    services.image_tags_set(image=first, present=[striped.pk], annotator=annotator)
    services.image_tags_set(image=second, present=[striped.pk], annotator=annotator)
    services.image_tags_set(image=second, present=[leather.pk, rounded.pk], annotator=annotator)
    # The newest save in force: `second`'s re-save, back to its first save's states.
    assert services.label_undo_last(project=tag_project, annotator=annotator) == second
    assert states(second) == {"striped": PRESENT, "leather": ABSENT, "rounded": ABSENT}
    second.refresh_from_db()
    assert second.tagged and second.reserved_by == annotator

    # As with classes, a restored state is not undone again: the next undo is `first`'s
    # save, which was its first, so its tags go back to "not looked at".
    assert services.label_undo_last(project=tag_project, annotator=annotator) == first
    assert states(first) == {"striped": UNSET, "leather": UNSET, "rounded": UNSET}
    first.refresh_from_db()
    assert not first.tagged
    assert services.label_undo_last(project=tag_project, annotator=annotator) is None
    # History kept: saves of 3, 3 and 3 rows, and undos of 3 and 3 rows.
    assert TagAnnotation.objects.filter(image__project=tag_project).count() == 15
    assert TagAnnotation.objects.filter(action="undo").count() == 6
    served = services.queue_reserve(project=tag_project, user=annotator, count=5)
    assert [i.pk for i in served] == [first.pk]


def test_a_tag_set_on_a_selection_leaves_other_tags_and_the_queue_alone(
    tag_project, tags, annotator
):
    first, second, third = add_images(tag_project, annotator, 3)
    striped = tags[0]
    services.image_tags_set(image=first, present=[], annotator=annotator)
    changed = services.images_tag_set(
        project=tag_project,
        image_ids=[first.pk, second.pk],
        tag=striped,
        present=True,
        annotator=annotator,
    )
    assert changed == 2
    assert states(first) == {"striped": PRESENT, "leather": ABSENT, "rounded": ABSENT}
    assert states(second) == {"striped": PRESENT}
    second.refresh_from_db()
    assert not second.tagged  # its other tags are still to look at
    assert (
        services.images_tag_set(
            project=tag_project,
            image_ids=[first.pk, second.pk],
            tag=striped,
            present=True,
            annotator=annotator,
        )
        == 0
    )
    with pytest.raises(ValidationError):
        services.images_tag_set(
            project=tag_project,
            image_ids=[third.pk, 999999],
            tag=striped,
            present=True,
            annotator=annotator,
        )
    assert states(third) == {}
    # Undo of the grid change on `second` (the newest) restores "not looked at".
    services.label_undo_last(project=tag_project, annotator=annotator)
    assert states(second) == {"striped": UNSET}


def test_the_queue_serves_untagged_images_only_and_counts_tags(tag_project, tags, annotator):
    images = add_images(tag_project, annotator, 4)
    striped, leather, _ = tags
    services.image_tags_set(image=images[0], present=[striped.pk], annotator=annotator)
    services.image_tags_set(image=images[1], present=[striped.pk, leather.pk], annotator=annotator)
    served = services.queue_reserve(project=tag_project, user=annotator, count=10)
    assert {i.pk for i in served} == {images[2].pk, images[3].pk}
    counts = selectors.project_counts(project=tag_project)
    assert (counts.total, counts.labeled, counts.unlabeled) == (4, 2, 2)
    assert {c.label_class.name: c.count for c in counts.per_class} == {
        "striped": 2,
        "leather": 1,
        "rounded": 0,
    }
    by = {
        key: {i.pk for i in selectors.image_list(project=tag_project, filters={"label": key})}
        for key in ("labeled", "unlabeled", str(leather.pk))
    }
    assert by == {
        "labeled": {images[0].pk, images[1].pk},
        "unlabeled": {images[2].pk, images[3].pk},
        str(leather.pk): {images[1].pk},
    }
