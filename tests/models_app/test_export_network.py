"""The exported network on its own (no database): backbone and head in one module give
the app's probabilities for its stored (float16) embeddings, for a single-label head
and for a tag head, on real photos with heads unsure enough for differences to show."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skimage_data

from models_app.ml.backbone import load_backbone
from models_app.ml.export import network_proba, single_label_network, tag_network
from models_app.ml.head import predict_proba, train_head
from models_app.ml.multilabel import predict_tag_proba, train_tag_head
from models_app.ml.preprocess import preprocess

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "camera")


@pytest.fixture(scope="module")
def photos():
    backbone = load_backbone(device="cpu")
    files = []
    for name in PHOTOS:
        out = io.BytesIO()
        Image.fromarray(getattr(skimage_data, name)()).save(out, format="PNG")
        out.seek(0)
        files.append(out)
    batch = np.stack([preprocess(f, backbone.input) for f in files])
    embedded = backbone.embed(torch.from_numpy(batch)).numpy()
    return backbone, batch, embedded


def noisy_copies(embedded: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Training rows near the photos' embeddings, for heads that are far from sure."""
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(embedded), count)
    noise = rng.normal(0, 0.3, (count, embedded.shape[1])).astype(np.float32)
    return embedded[rows] + noise, rows


def stored(x: np.ndarray) -> np.ndarray:
    """An embedding as the app stores it and reads it back."""
    return x.astype(np.float16).astype(np.float32)


def test_the_single_label_network_answers_as_the_head_on_stored_embeddings(photos):
    backbone, batch, embedded = photos
    x, _ = noisy_copies(embedded, 60)
    head = train_head(x, np.arange(60) % 3, 3, max_epochs=20)
    head.temperature = 1.7
    proba = network_proba(single_label_network(backbone, head), batch)
    app = predict_proba(head, stored(embedded))
    assert 0.05 < proba.max(axis=1).min() < 0.95  # unsure: differences would show
    assert np.abs(proba - app).max() < 1e-6
    # Without the float16 step the network would be off by more than that.
    assert np.abs(proba - predict_proba(head, embedded)).max() > 1e-5


def test_the_tag_network_answers_as_the_tag_head_on_stored_embeddings(photos):
    backbone, batch, embedded = photos
    x, rows = noisy_copies(embedded, 80)
    rng = np.random.default_rng(1)
    y = (rng.random((80, 4)) < np.where(rows[:, None] % 2 == 0, 0.7, 0.3)).astype(np.float32)
    y[rng.random(y.shape) < 0.2] = np.nan  # not looked at
    head = train_tag_head(x, y)
    head.temperatures = np.asarray([0.8, 1.0, 1.5, 3.0], np.float32)
    proba = network_proba(tag_network(backbone, head), batch)
    app = predict_tag_proba(head, stored(embedded))
    assert proba.shape == (len(PHOTOS), 4)
    assert np.abs(proba - app).max() < 1e-6
    assert not np.allclose(proba.sum(axis=1), 1.0)
