"""models_app.ml.backbone with timm's tiny test network and weights files made here:
the device rule, loading by name or by position, and the input settings."""

from __future__ import annotations

import pytest
import timm
import torch

from models_app.ml.backbone import best_device, load_backbone, load_by_position

TINY = "test_efficientnet"


def test_auto_takes_the_gpu_when_there_is_one_else_the_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert best_device("auto") == torch.device(expected)
    assert best_device() == torch.device(expected)
    assert best_device("cpu") == torch.device("cpu")
    assert best_device("meta") == torch.device("meta")


def test_weights_are_copied_in_order_whatever_their_names():
    target = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    source = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    state = {f"other_{i}": t.clone() for i, t in enumerate(source.state_dict().values())}
    load_by_position(target, state)
    for got, want in zip(target.state_dict().values(), state.values(), strict=True):
        assert torch.equal(got, want)


def test_weights_of_another_count_or_shape_are_refused_by_name():
    target = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    state = dict(target.state_dict())
    with pytest.raises(ValueError, match="weights have 3 tensors, the model 4"):
        load_by_position(target, dict(list(state.items())[:3]))
    state["1.weight"] = torch.zeros(1, 4)
    with pytest.raises(ValueError, match=r"shape mismatch: 1.weight \(1, 4\) -> 1.weight \(1, 3\)"):
        load_by_position(target, state)


@pytest.mark.parametrize("layout", ["by name", "by position", "wrapped"])
def test_a_local_weights_file_is_loaded_into_the_named_network(tmp_path, layout):
    torch.manual_seed(1)
    source = timm.create_model(TINY, pretrained=False)
    state = source.state_dict()
    if layout == "by position":
        state = {f"t{i}": t for i, t in enumerate(state.values())}
    if layout == "wrapped":
        state = {"state_dict": state}
    path = tmp_path / "weights.pt"
    torch.save(state, path)
    backbone = load_backbone(TINY, path, device="cpu")
    assert backbone.name == TINY
    assert backbone.device == torch.device("cpu")
    assert not backbone.model.training
    for got, want in zip(
        backbone.model.state_dict().values(), source.state_dict().values(), strict=True
    ):
        assert torch.equal(got, want)
    config = timm.data.resolve_data_config({}, model=source)
    assert backbone.input.size == config["input_size"][-1]
    assert backbone.input.crop_pct == config["crop_pct"]
    assert backbone.input.mean == tuple(config["mean"])
    assert backbone.input.std == tuple(config["std"])
    assert backbone.dim == source.num_features
    # The pooled features are what the network's own classifier reads.
    batch = torch.zeros(2, 3, 32, 32)
    with torch.no_grad():
        source.eval()
        expected = source.forward_head(source.forward_features(batch), pre_logits=True)
    assert torch.allclose(backbone.embed(batch), expected)
    assert backbone.embed(batch).shape == (2, backbone.dim)
