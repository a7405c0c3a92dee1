"""Calibration that holds with few labels: the temperature comes from out-of-fold logits
over every label, not from a handful of validation images (4 once gave T = 0.21 and
every suggestion read 100%)."""

from __future__ import annotations

import numpy as np
import pytest

from models_app.ml.head import MIN_CALIBRATION_LABELS, predict_proba, train_head_self
from models_app.ml.metrics import expected_calibration_error

CLASSES, DIM = 4, 64


def blobs(seed: int, separation: float):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLASSES, DIM)) * separation

    def sample(n: int):
        y = rng.integers(0, CLASSES, n)
        return (centres[y] + rng.normal(size=(n, DIM))).astype(np.float32), y

    return sample


@pytest.mark.parametrize("seed", [0, 2])
def test_forty_labels_and_four_validation_images_give_calibrated_probabilities(seed):
    # Hard, overlapping classes (about 55% accuracy): a model this unsure must say so.
    sample = blobs(seed, separation=0.25)
    x_train, y_train = sample(40)
    x_val, y_val = sample(4)
    x_pool, _ = sample(500)
    x_test, y_test = sample(5000)
    head = train_head_self(x_train, y_train, CLASSES, x_pool=x_pool, x_val=x_val, y_val=y_val)
    proba = predict_proba(head, x_test)
    assert expected_calibration_error(proba, y_test) < 0.2
    # No suggestion reads "100%" on a problem this hard.
    assert np.quantile(proba.max(axis=1), 0.9) < 0.95
    assert head.temperature > 1.0  # softened, where 4 validation images sharpened it


def test_with_too_few_labels_the_temperature_stays_one():
    sample = blobs(1, separation=0.25)
    x_train, y_train = sample(MIN_CALIBRATION_LABELS - 4)
    x_val, y_val = sample(3)
    x_pool, _ = sample(100)
    head = train_head_self(x_train, y_train, CLASSES, x_pool=x_pool, x_val=x_val, y_val=y_val)
    assert head.temperature == 1.0


def test_an_easy_problem_is_sharpened_not_flattened():
    sample = blobs(0, separation=0.6)
    x_train, y_train = sample(60)
    x_pool, _ = sample(300)
    x_test, y_test = sample(3000)
    head = train_head_self(x_train, y_train, CLASSES, x_pool=x_pool)
    proba = predict_proba(head, x_test)
    assert (proba.argmax(axis=1) == y_test).mean() > 0.95
    assert expected_calibration_error(proba, y_test) < 0.05
