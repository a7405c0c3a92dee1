from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from labeling.models import Image
from models_app import services as learner
from tests.fashion import fashion_uploads, labeled_project

CLASSES = ["Trouser", "Bag", "Sneaker"]


@pytest.fixture
def trained(project, owner, fashion):
    """A project with 15 real images of each of three classes labeled, and version 1."""
    classes = labeled_project(project, owner, fashion, CLASSES, per_class=15)
    version = learner.model_version_request(project=project, trigger="api", user=owner)
    version = learner.model_version_train(version_id=version.pk)
    assert version.status == "succeeded", version.error
    return version, classes


@pytest.fixture
def new_uploads(fashion):
    """Images of the project's classes that it has not seen: (upload, true class name)."""

    def make(per_class: int, names=CLASSES, skip: int = 15):
        return fashion_uploads(fashion, list(names), per_class, skip=skip)

    return make


def held_out(image: Image) -> bool:
    return image.draw < image.project.test_fraction + image.project.val_fraction


def twin_upload(image: Image, name: str) -> SimpleUploadedFile:
    """The same picture as a stored image with one pixel changed: other bytes (not an
    exact duplicate), the same content (a near-duplicate)."""
    with image.file.open("rb") as f:
        picture = PILImage.open(f).convert("L")
        picture.load()
    picture.putpixel((0, 0), (picture.getpixel((0, 0)) + 1) % 256)
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return SimpleUploadedFile(name, out.getvalue())
