"""Merging tags: the merged tag is the union of their states (present where any is,
absent where every one was saved absent, else not looked at), written as rows of one
save; undo puts back exactly the states before, keeping what changed since."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from labeling import services
from labeling.models import ClassMerge, LabelClass, Project, TagAnnotation, TaxonomyChange
from models_app import selectors as learner_selectors
from models_app.models import ModelVersion
from tests.conftest import add_images
from tests.factories import PASSWORD


@pytest.fixture
def shop(owner):
    """Tags striped and rounded, then leather added later: image 3 was saved before
    leather existed (leather not looked at), image 4 never saved.
      0: striped present, leather absent, rounded absent
      1: striped absent, leather present, rounded present
      2: all absent
      3: striped absent, rounded absent (leather not looked at)"""
    project = services.project_create(name="Shop", user=owner, kind=Project.Kind.MULTI)
    striped = services.label_class_create(project=project, name="striped")
    rounded = services.label_class_create(project=project, name="rounded")
    images = add_images(project, owner, 5)
    services.image_tags_set(image=images[3], present=[], annotator=owner)
    leather = services.label_class_create(project=project, name="leather")
    services.image_tags_set(image=images[0], present=[striped.pk], annotator=owner)
    services.image_tags_set(image=images[1], present=[leather.pk, rounded.pk], annotator=owner)
    services.image_tags_set(image=images[2], present=[], annotator=owner)
    return project, {"striped": striped, "leather": leather, "rounded": rounded}, images


def states(tag, images) -> list[str | None]:
    current = dict(
        TagAnnotation.objects.filter(tag=tag, is_current=True).values_list("image_id", "state")
    )
    return [current.get(image.pk) for image in images]


def test_merging_into_a_new_tag_writes_the_union_and_retires_the_sources(shop, owner):
    project, tags, images = shop
    ModelVersion.objects.create(project=project, number=1, trigger="api", status="succeeded")
    merge = services.label_class_merge(
        project=project, classes=[tags["striped"], tags["leather"]], name="pattern", actor=owner
    )
    pattern = LabelClass.objects.get(project=project, name="pattern")
    assert merge.target == pattern and merge.target_created
    assert states(pattern, images) == ["present", "present", "absent", None, None]
    rows = TagAnnotation.objects.filter(tag=pattern)
    assert {r.save_id for r in rows} == {merge.tag_save_id}
    assert {(r.action, r.annotator_id) for r in rows} == {("merge", owner.pk)}
    tags["striped"].refresh_from_db()
    tags["leather"].refresh_from_db()
    assert not tags["striped"].is_active and not tags["leather"].is_active and pattern.is_active
    # The sources keep their rows; rounded is untouched.
    assert states(tags["striped"], images) == ["present", "absent", "absent", "absent", None]
    assert states(tags["rounded"], images) == ["absent", "present", "absent", "absent", None]
    log = TaxonomyChange.objects.filter(project=project, kind="merge").get()
    assert log.summary == (
        "Merged tags 'striped', 'leather' into 'pattern': 3 images' 'pattern' state written."
    )
    # A merge reshapes the project, so a trained one retrains.
    assert learner_selectors.projects_reshaped_since_last_version() == [project]


def test_merging_into_one_of_them_and_undoing_restores_the_states_before(shop, owner):
    project, tags, images = shop
    striped, leather = tags["striped"], tags["leather"]
    before = TagAnnotation.objects.count()
    merge = services.label_class_merge(
        project=project, classes=[striped, leather], name="Striped", actor=owner
    )
    assert merge.target == striped and not merge.target_created
    # Image 1 gains striped (leather was present); image 3 had striped absent but
    # leather never looked at, so the union is unknown there.
    assert states(striped, images) == ["present", "present", "absent", "unset", None]
    assert TagAnnotation.objects.count() == before + 2

    restored = services.label_class_merge_undo(merge=merge, actor=owner)
    assert restored == 2
    assert states(striped, images) == ["present", "absent", "absent", "absent", None]
    leather.refresh_from_db()
    assert leather.is_active and states(leather, images) == [
        "absent",
        "present",
        "absent",
        None,
        None,
    ]
    undo_rows = TagAnnotation.objects.filter(action="undo", tag=striped)
    assert undo_rows.count() == 2
    assert {r.reverts.save_id for r in undo_rows} == {merge.tag_save_id}
    with pytest.raises(ValidationError, match="already undone"):
        services.label_class_merge_undo(merge=ClassMerge.objects.get(pk=merge.pk), actor=owner)


def test_undo_keeps_states_changed_since_and_retires_an_unused_new_tag(shop, owner):
    project, tags, images = shop
    merge = services.label_class_merge(
        project=project, classes=[tags["striped"], tags["leather"]], name="pattern", actor=owner
    )
    pattern = merge.target
    # Someone looks again at image 0 and says no pattern.
    services.image_tags_set(image=images[0], present=[tags["rounded"].pk], annotator=owner)
    assert states(pattern, images)[0] == "absent"
    assert services.label_class_merge_undo(merge=merge, actor=owner) == 2
    assert states(pattern, images) == ["absent", "unset", "unset", None, None]
    pattern.refresh_from_db()
    assert pattern.is_active  # image 0's saved state still uses it
    log = TaxonomyChange.objects.filter(project=project, kind="unmerge").get()
    assert log.summary.endswith(
        "2 images' 'pattern' state restored, 1 changed since kept as they are."
    )

    # Without a use left, a tag the merge created is retired by the undo.
    again = services.label_class_merge(
        project=project, classes=[tags["striped"], tags["leather"]], name="motif", actor=owner
    )
    services.label_class_merge_undo(merge=again, actor=owner)
    again.target.refresh_from_db()
    assert not again.target.is_active


def test_the_merge_form_merges_tags_and_refuses_bad_input(shop, owner):
    project, tags, images = shop
    client = Client()
    client.login(username=owner.username, password=PASSWORD)
    url = f"/projects/{project.pk}/taxonomy/merge/"
    rows = TagAnnotation.objects.count()
    bad = client.post(url, {"classes": [tags["striped"].pk], "name": "x"}, HTTP_HX_REQUEST="true")
    assert bad.status_code == 400 and "Choose at least two classes" in bad.content.decode()
    nameless = client.post(
        url,
        {"classes": [tags["striped"].pk, tags["leather"].pk], "name": " "},
        HTTP_HX_REQUEST="true",
    )
    assert nameless.status_code == 400
    assert TagAnnotation.objects.count() == rows and not ClassMerge.objects.exists()

    good = client.post(
        url, {"classes": [tags["rounded"].pk, tags["leather"].pk], "name": "soft"}, follow=True
    )
    assert good.status_code == 200 and "Merged into soft" in good.content.decode()
    soft = LabelClass.objects.get(project=project, name="soft")
    assert states(soft, images) == ["absent", "present", "absent", None, None]
