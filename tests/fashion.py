"""Real Fashion-MNIST data for learner tests, and a polling helper."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from labeling import services as labeling_services
from labeling.datasets import FASHION_MNIST_CLASSES

ROOT = Path(__file__).resolve().parents[2]
MISSING = (
    "Fashion-MNIST is missing from {}: the tests need it. Install the Debian package "
    "dataset-fashion-mnist (scripts/test-services.sh does, and `make test` runs it)."
)


def fashion_mnist_dir() -> Path:
    """The Fashion-MNIST folder; a test that needs it fails, never skips, without it."""
    directory = Path(settings.LABELING["FASHION_MNIST_DIR"])
    if not directory.is_dir():
        pytest.fail(MISSING.format(directory), pytrace=False)
    return directory


def fashion_uploads(fashion, class_names: list[str], per_class: int, skip: int = 0):
    """Real Fashion-MNIST images as uploads, `per_class` of each named class."""
    wanted = {FASHION_MNIST_CLASSES.index(name): name for name in class_names}
    taken = dict.fromkeys(wanted, 0)
    out = []
    for index in range(fashion.count):
        label = fashion.labels[index]
        if label in wanted and taken[label] < per_class + skip:
            taken[label] += 1
            if taken[label] > skip:
                out.append((SimpleUploadedFile(f"f{index}.png", fashion.png(index)), wanted[label]))
    return out


def labeled_project(project, owner, fashion, class_names, per_class, unlabeled_per_class=0):
    """Upload real images of `class_names` and label `per_class` of each truthfully."""
    classes = {
        n: labeling_services.label_class_create(project=project, name=n) for n in class_names
    }
    uploads = fashion_uploads(fashion, class_names, per_class)
    results = labeling_services.images_ingest(
        project=project, files=[u for u, _ in uploads], user=owner
    )
    from labeling.models import Image

    for (_, name), result in zip(uploads, results, strict=True):
        if result.status == "created":
            image = Image.objects.get(pk=result.image_id)
            labeling_services.annotation_create(
                image=image, label_class=classes[name], annotator=owner
            )
    if unlabeled_per_class:
        extra = fashion_uploads(fashion, class_names, unlabeled_per_class, skip=per_class)
        labeling_services.images_ingest(project=project, files=[u for u, _ in extra], user=owner)
    return classes


def wait_for(predicate, timeout: float = 240, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s")
