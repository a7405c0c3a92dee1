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


def _tiny_weights(path):
    torch.manual_seed(2)
    torch.save(timm.create_model(TINY, pretrained=False).state_dict(), path)
    return path


def test_without_a_device_the_backbone_goes_where_auto_says(tmp_path):
    backbone = load_backbone(TINY, _tiny_weights(tmp_path / "w.pt"))
    assert backbone.device == best_device("auto")
    assert {p.device for p in backbone.model.parameters()} == {best_device("auto")}


def test_without_a_weights_file_the_packaged_one_is_loaded(tmp_path, monkeypatch):
    from models_app.ml import backbone as module

    packaged = _tiny_weights(tmp_path / "packaged.pt")
    # The packaged file is EfficientNet-Lite0's; here the tiny network's stands in.
    monkeypatch.setattr(module, "default_weights_path", lambda: packaged)
    loaded = load_backbone(TINY, None, device="cpu")
    want = torch.load(packaged, weights_only=True)
    for key, tensor in loaded.model.state_dict().items():
        assert torch.equal(tensor, want[key]), key


class _Payload:
    """Not a tensor, a number or a string: a weights-only load refuses it."""


def test_a_weights_file_holding_other_objects_is_refused(tmp_path):
    import pickle

    path = tmp_path / "bad.pt"
    torch.save({"state_dict": {}, "extra": _Payload()}, path)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_backbone(TINY, path, device="cpu")
