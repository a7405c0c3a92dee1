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
from models_app.ml.embed import embed_batches
from models_app.ml.finetune import finetune, predictor
from models_app.ml.head import predict_proba, train_head
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


def test_fine_tuning_learns_from_its_labels_even_against_its_probe(tmp_path, fashion, settings):
    """The run above starts from a probe that is already right, so it would pass if
    fine-tuning learned nothing (its validation split keeps the best epoch). Here the
    probe is trained on swapped labels, wrong on every held-out image: a few epochs of
    fine-tuning on the true labels must turn the network around."""
    wanted = {FASHION_MNIST_CLASSES.index("Trouser"): 0, FASHION_MNIST_CLASSES.index("Bag"): 1}
    paths, y = [], []
    for index in range(fashion.count):
        label = wanted.get(fashion.labels[index])
        if label is not None and y.count(label) < 16:
            path = tmp_path / f"f{index}.png"
            path.write_bytes(fashion.png(index))
            paths.append(str(path))
            y.append(label)
    y = np.asarray(y)
    train, held_out = np.arange(0, len(y), 2), np.arange(1, len(y), 2)
    name = settings.LEARNER["BACKBONE"]
    backbone = load_backbone(name)
    x = np.concatenate([batch for _, batch in embed_batches(backbone, paths)])
    probe = train_head(x[train], 1 - y[train], 2)

    def accuracy(proba):
        return float((proba.argmax(axis=1) == y[held_out]).mean())

    assert accuracy(predict_proba(probe, x[held_out])) <= 0.1
    tuned = finetune(
        probe, [paths[i] for i in train], y[train], backbone_name=name, epochs=4, batch_size=4
    )
    network = predictor(tuned, probe, backbone_name=name)
    assert accuracy(network([paths[i] for i in held_out])) >= 0.75
