"""The optional full fine-tuning mode: backbone unfrozen, starting from the probe."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from django.core.files.storage import default_storage
from scipy.stats import binom

from labeling.datasets import FASHION_MNIST_CLASSES
from labeling.models import Image
from models_app import services
from models_app.ml.backbone import load_backbone
from models_app.models import LearnerSettings
from tests.fashion import labeled_project


def true_class(fashion, image: Image) -> str:
    """The Fashion-MNIST class of an uploaded image, read from the data set by the index
    in its upload name (`f<index>.png`, tests/fashion.py)."""
    index = int(image.original_name.removeprefix("f").removesuffix(".png"))
    return FASHION_MNIST_CLASSES[fashion.labels[index]]


def well_above_chance(correct: int, n: int, classes: int = 2) -> bool:
    """Guessing would score this well less than once in a thousand tries."""
    return binom.sf(correct - 1, n, 1 / classes) < 1e-3


@pytest.mark.django_db(transaction=True)
def test_a_fine_tuned_version_trains_the_backbone_and_learns_the_classes(project, owner, fashion):
    """Trouser against Bag: the pretrained features all but separate them, so a model
    that learned anything gets nearly all of them right."""
    classes = labeled_project(
        project, owner, fashion, ["Trouser", "Bag"], per_class=10, unlabeled_per_class=10
    )
    LearnerSettings.objects.create(project=project, fine_tune=True, fine_tune_epochs=2)
    version = services.model_version_request(project=project, trigger="button", user=owner)
    services.model_version_train(version_id=version.pk)
    version.refresh_from_db()
    assert version.status == "succeeded", version.error
    assert version.fine_tuned and version.is_active
    assert 1 <= version.metrics["fine_tune_epochs"] <= 2

    with default_storage.open(version.artifact, "rb") as f:
        saved = torch.load(io.BytesIO(f.read()), weights_only=True)
    pretrained = load_backbone().model.state_dict()
    tuned = {k.removeprefix("backbone."): v for k, v in saved["state"].items()}
    changed = [
        k for k, v in pretrained.items() if v.is_floating_point() and not torch.equal(v, tuned[k])
    ]
    assert len(changed) > 100, "the backbone was not trained"

    # Its stored guesses for the images nobody labeled are their true classes.
    unlabeled = list(Image.objects.filter(project=project, label__isnull=True))
    assert len(unlabeled) == 20
    name = {c.pk: n for n, c in classes.items()}
    right = sum(name.get(i.suggested_class_id) == true_class(fashion, i) for i in unlabeled)
    assert right >= 18 and well_above_chance(right, 20), right
    assert all(0.5 <= i.confidence <= 1.0 for i in unlabeled)

    # The test split: the served (fine-tuned, from the files) model's answers, counted
    # here, are the accuracy the version reports, and nearly all right.
    test = list(Image.objects.filter(project=project, split="test", label__isnull=False))
    assert test, "the hash draw put no labeled image in the test split"
    model = services.active_model(project=project)
    assert model.version.pk == version.pk
    proba = model.proba([i.pk for i in test])
    guesses = [version.class_ids[int(k)] for k in np.argmax(proba, axis=1)]
    correct = sum(g == i.label_id for g, i in zip(guesses, test, strict=True))
    assert version.metrics["test"]["accuracy"] == pytest.approx(correct / len(test))
    assert correct >= len(test) - 1
    # Over the held-out and the unlabeled images together, far beyond a coin.
    assert well_above_chance(right + correct, len(unlabeled) + len(test))
