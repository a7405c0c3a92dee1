"""A project archive whose numbers are JSON's true or false is refused, naming the
boolean, and leaves nothing behind: Python takes true for 1 and false for 0, so without
a check `"version": true` reads as version 1, a ref true as ref 1, a width true as 1."""

from __future__ import annotations

import io

import pytest
from django.core.exceptions import ValidationError

from labeling import services
from labeling.models import Annotation, Image, LabelClass, Project, TagAnnotation
from models_app.archive import project_import
from models_app.models import LearnerSettings
from tests.conftest import add_images
from tests.models_app.test_mutants_archive import _rewritten, exported

LEARNER_FIELDS = ("retrain_every", "head_kind", "fine_tune", "fine_tune_epochs", "strategy")


@pytest.fixture
def class_archive(owner) -> bytes:
    project = services.project_create(name="Pets", user=owner)
    cat, _ = (services.label_class_create(project=project, name=n) for n in ("cat", "dog"))
    first, _ = add_images(project, owner, 2)
    services.annotation_create(image=first, label_class=cat, annotator=owner)
    return exported(project)


@pytest.fixture
def tag_archive(owner) -> bytes:
    project = services.project_create(name="Shop", user=owner, kind=Project.Kind.MULTI)
    striped, _ = (services.label_class_create(project=project, name=n) for n in ("striped", "red"))
    for image in add_images(project, owner, 2):
        services.image_tags_set(image=image, present=[striped.pk], annotator=owner)
    return exported(project)


def _rows() -> dict:
    models = (Project, LabelClass, Image, Annotation, TagAnnotation, LearnerSettings)
    return {model.__name__: model.objects.count() for model in models}


def _learner(document, **values):
    document["learner"] = {f: getattr(LearnerSettings(), f) for f in LEARNER_FIELDS} | values


CLASS_CASES = {
    "version true": (
        lambda d: d.update(version=True),
        'Not a labelloop-project archive of a version this server reads (1 to 3): its "version" '
        "is true, a boolean, not a number.",
    ),
    "version false": (lambda d: d.update(version=False), '"version" is false, a boolean'),
    "an image's class ref true": (
        lambda d: d["images"][0].update(label=True),
        "refers to class True, which it does not define",
    ),
    "a label's image ref true": (
        lambda d: d["annotations"][0].update(image=True),
        "refers to image True, which it does not define",
    ),
    "a class numbered true": (
        lambda d: d["classes"][1].update(ref=True),
        "holds class True twice or unnumbered",
    ),
    "an image's width true": (
        lambda d: d["images"][1].update(width=True),
        "width is true, a boolean, not a number.",
    ),
    "a class's order false": (
        lambda d: d["classes"][0].update(order=False),
        "Class 'cat': order is false, a boolean, not a number.",
    ),
    "the project's test fraction false": (
        lambda d: d["project"].update(test_fraction=False),
        "The project: test_fraction is false, a boolean, not a number.",
    ),
    "the learner's retrain_every true": (
        lambda d: _learner(d, retrain_every=True),
        "The learner settings: retrain_every is true, a boolean, not a number.",
    ),
}


def _refused(data: bytes, change, message: str, user, media_root) -> None:
    before = _rows()
    files = {p for p in media_root.rglob("*") if p.is_file()}
    with pytest.raises(ValidationError) as error:
        project_import(archive=io.BytesIO(_rewritten(data, change)), user=user, name="Bad")
    assert message in error.value.messages[0]
    assert _rows() == before
    assert {p for p in media_root.rglob("*") if p.is_file()} == files


@pytest.mark.parametrize("case", list(CLASS_CASES))
def test_a_boolean_for_a_number_is_refused_by_name(case, class_archive, outsider, media_root):
    change, message = CLASS_CASES[case]
    _refused(class_archive, change, message, outsider, media_root)


def test_the_archive_untouched_imports(class_archive, tag_archive, outsider):
    """The cases above differ from a good archive by their boolean alone."""
    pets = project_import(archive=io.BytesIO(class_archive), user=outsider, name="Pets copy")
    assert Image.objects.filter(project=pets, label__name="cat").count() == 1
    shop = project_import(archive=io.BytesIO(tag_archive), user=outsider, name="Shop copy")
    assert Image.objects.filter(project=shop, tagged=True).count() == 2


def _state_ref(document, ref):
    document["tags"]["states"][1]["ref"] = ref


TAG_CASES = {
    "version true": (
        lambda d: d.update(version=True),
        '"version" is true, a boolean, not a number.',
    ),
    "a tag state numbered true": (
        lambda d: _state_ref(d, True),
        "Tag state True is at place 1: tag states are numbered in order from 0.",
    ),
    "a tagged image ref true": (
        lambda d: d["tags"].update(tagged=[0, True]),
        "refers to image True, which it does not define",
    ),
}


@pytest.mark.parametrize("case", list(TAG_CASES))
def test_a_boolean_in_a_tag_archive_is_refused_by_name(case, tag_archive, outsider, media_root):
    change, message = TAG_CASES[case]
    _refused(tag_archive, change, message, outsider, media_root)
