"""Taxonomy on a multi-label project: renaming and deactivating a tag keep its rows and
are logged (merge: test_tag_merge; split: tests/models_app/test_tag_split)."""

from __future__ import annotations

import pytest

from labeling import services
from labeling.models import Project, TagAnnotation, TaxonomyChange
from tests.conftest import add_images


@pytest.fixture
def tag_project(owner):
    return services.project_create(name="Shop", user=owner, kind=Project.Kind.MULTI)


@pytest.fixture
def tags(tag_project):
    return [
        services.label_class_create(project=tag_project, name=name)
        for name in ("striped", "leather")
    ]


def _rows(project):
    return list(
        TagAnnotation.objects.filter(image__project=project)
        .order_by("id")
        .values_list("id", "image_id", "tag_id", "state", "is_current")
    )


def test_renaming_and_deactivating_a_tag_keep_its_rows_and_are_logged(tag_project, tags, owner):
    striped, leather = tags
    image = add_images(tag_project, owner, 1)[0]
    services.image_tags_set(image=image, present=[striped.pk], annotator=owner)
    before = _rows(tag_project)
    services.label_class_update(label_class=striped, actor=owner, name="stripes")
    services.label_class_update(label_class=leather, actor=owner, is_active=False)
    assert _rows(tag_project) == before
    striped.refresh_from_db()
    leather.refresh_from_db()
    assert striped.name == "stripes" and not leather.is_active
    logged = list(
        TaxonomyChange.objects.filter(project=tag_project, kind=TaxonomyChange.Kind.UPDATE)
        .order_by("id")
        .values_list("summary", flat=True)
    )
    assert logged[-2:] == [
        "Class 'stripes': name 'striped' → 'stripes'.",
        "Class 'leather': is_active True → False.",
    ]
