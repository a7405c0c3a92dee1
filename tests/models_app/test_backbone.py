"""The backbone really is pretrained, and weights that do not fit are refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from skimage import data

from models_app.ml.backbone import load_backbone, load_by_position
from models_app.ml.embed import embed_all
from models_app.ml.preprocess import preprocess


@pytest.fixture(scope="module")
def backbone():
    return load_backbone()


def test_the_cat_photo_scores_an_imagenet_cat_class(backbone):
    buffer = io.BytesIO()
    Image.fromarray(data.chelsea()).save(buffer, format="PNG")
    buffer.seek(0)
    batch = torch.from_numpy(preprocess(buffer, backbone.input))[None]
    top = int(backbone.logits(batch).argmax())
    assert 281 <= top <= 285, f"top-1 ImageNet class {top} is not a cat"


def test_embeddings_are_pooled_features(backbone, tmp_path):
    paths = []
    for name, image in [
        ("cat", data.chelsea()),
        ("coffee", data.coffee()),
        ("rocket", data.rocket()),
    ]:
        path = tmp_path / f"{name}.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    vectors = embed_all(backbone, paths, batch_size=2)
    assert vectors.shape == (3, 1280) and np.isfinite(vectors).all()
    # The same image embeds the same way whatever its batch.
    again = embed_all(backbone, paths[:1], batch_size=1)
    assert np.allclose(vectors[0], again[0], atol=1e-4)
    assert not np.allclose(vectors[0], vectors[1], atol=1e-2)


def test_weights_of_the_wrong_shape_are_refused():
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    state = dict(model.state_dict())
    first = next(iter(state))
    state[first] = torch.zeros(1, 2, 3)
    with pytest.raises(ValueError, match="shape mismatch"):
        load_by_position(model, state)
    with pytest.raises(ValueError, match="tensors"):
        load_by_position(model, dict(list(state.items())[:-1]))
