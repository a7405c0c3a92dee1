"""Automatic retraining of a multi-label project counts images whose tags were saved or
set since the last version was requested, each image once."""

from __future__ import annotations

import pytest

from labeling import services as labeling_services
from labeling.models import Project
from models_app import selectors
from models_app.models import LearnerSettings, ModelVersion
from tests.conftest import add_images


def queued_version(project) -> ModelVersion:
    """A version requested now (its training is not what these tests are about: a
    request refuses tags too few to train on)."""
    return ModelVersion.objects.create(project=project, number=1, trigger="auto")


@pytest.fixture
def tag_project(owner):
    return labeling_services.project_create(name="Shop", user=owner, kind=Project.Kind.MULTI)


@pytest.fixture
def tags(tag_project):
    return [
        labeling_services.label_class_create(project=tag_project, name=name)
        for name in ("striped", "leather")
    ]


def test_tag_saves_make_a_retrain_due_after_n_images(tag_project, tags, owner):
    striped, leather = tags
    LearnerSettings.objects.create(project=tag_project, retrain_every=3)
    images = add_images(tag_project, owner, 7)
    # Two images saved, one of them twice, and a tag set on the same two: still two images.
    for image in images[:2]:
        labeling_services.image_tags_set(image=image, present=[striped.pk], annotator=owner)
    labeling_services.image_tags_set(image=images[0], present=[leather.pk], annotator=owner)
    labeling_services.images_tag_set(
        project=tag_project,
        image_ids=[i.pk for i in images[:2]],
        tag=leather,
        present=True,
        annotator=owner,
    )
    assert selectors.labels_since(project=tag_project, version=None) == 2
    assert selectors.projects_due_for_training() == []
    labeling_services.image_tags_set(image=images[2], present=[], annotator=owner)
    assert selectors.labels_since(project=tag_project, version=None) == 3
    assert selectors.projects_due_for_training() == [tag_project]

    version = queued_version(tag_project)
    assert selectors.projects_due_for_training() == []  # one is queued already
    ModelVersion.objects.filter(pk=version.pk).update(status="failed")
    assert selectors.labels_since(project=tag_project, version=version) == 0
    # A tag set on images never saved does not count (training reads saved images only);
    # set on saved images, it does.
    labeling_services.images_tag_set(
        project=tag_project,
        image_ids=[i.pk for i in images[3:6]],
        tag=striped,
        present=False,
        annotator=owner,
    )
    assert selectors.labels_since(project=tag_project, version=version) == 0
    # Striped is absent on images 0 and 2 and present on image 1: two images change.
    labeling_services.images_tag_set(
        project=tag_project,
        image_ids=[i.pk for i in images[:3]],
        tag=striped,
        present=True,
        annotator=owner,
    )
    assert selectors.labels_since(project=tag_project, version=version) == 2
    assert selectors.projects_due_for_training() == []
    labeling_services.image_tags_set(image=images[6], present=[striped.pk], annotator=owner)
    assert selectors.projects_due_for_training() == [tag_project]


def test_undo_does_not_count_as_a_new_label(tag_project, tags, owner):
    striped, _ = tags
    LearnerSettings.objects.create(project=tag_project, retrain_every=1)
    image = add_images(tag_project, owner, 1)[0]
    labeling_services.image_tags_set(image=image, present=[striped.pk], annotator=owner)
    version = queued_version(tag_project)
    ModelVersion.objects.filter(pk=version.pk).update(status="failed")
    labeling_services.image_tags_undo_last(project=tag_project, annotator=owner)
    assert selectors.labels_since(project=tag_project, version=version) == 0
    assert selectors.projects_due_for_training() == []
