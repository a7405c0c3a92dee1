"""Full fine-tuning (backbone unfrozen, with augmentation), for GPU machines.

Linear probe, then fine-tune (LP-FT, Kumar et al. 2022): the network starts from the
head already trained on frozen embeddings, so its first predictions are the probe's and
a few epochs on few labels can only refine them, instead of a random head tearing at
the pretrained features.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.transforms import v2

from labeling.decoding import open_rgb
from models_app.ml.backbone import Backbone, InputConfig, load_backbone
from models_app.ml.head import (
    MIN_CALIBRATION_LABELS,
    TrainedHead,
    class_weights,
    fit_temperature,
    head_from_bytes,
    head_to_bytes,
    restore_module,
)
from models_app.ml.preprocess import preprocess


class FineTuneNet(nn.Module):
    """Backbone features -> the probe's normalisation -> the head."""

    def __init__(self, backbone: nn.Module, head: nn.Module, mean: np.ndarray, scale: np.ndarray):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.register_buffer("mean", torch.as_tensor(mean))
        self.register_buffer("scale", torch.as_tensor(scale))
        self.n_classes = head(torch.zeros(1, len(mean))).shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True)
        unit = features / features.norm(dim=1, keepdim=True).clamp_min(1e-6)
        return self.head((unit - self.mean) / self.scale)


@dataclass
class FineTuned:
    state: dict[str, torch.Tensor]
    temperature: float
    epochs: int
    n_classes: int


def _augment(config: InputConfig) -> v2.Compose:
    return v2.Compose(
        [
            v2.RandomResizedCrop(config.size, scale=(0.6, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(config.mean, config.std),
        ]
    )


class _Files(torch.utils.data.Dataset):
    def __init__(self, paths: Sequence[str | Path], labels: np.ndarray, transform):
        self.paths, self.labels, self.transform = list(paths), labels, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return self.transform(open_rgb(self.paths[i])), int(self.labels[i])


def _network(backbone: Backbone, probe: TrainedHead) -> FineTuneNet:
    net = FineTuneNet(
        backbone.model, restore_module(probe), probe.feature_mean, probe.feature_scale
    )
    return net.to(backbone.device)


def _logits(net: FineTuneNet, paths, config: InputConfig, device, batch_size: int) -> torch.Tensor:
    net.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(paths), batch_size):
            batch = np.stack([preprocess(p, config) for p in paths[start : start + batch_size]])
            out.append(net(torch.from_numpy(batch).to(device)).float().cpu())
    return torch.cat(out) if out else torch.zeros((0, net.n_classes))


def finetune(
    probe: TrainedHead,
    train_paths: Sequence[str | Path],
    y_train: np.ndarray,
    *,
    val_paths: Sequence[str | Path] = (),
    y_val: np.ndarray | None = None,
    backbone_name: str,
    weights: Path | None = None,
    epochs: int = 5,
    batch_size: int = 32,
    lr: float = 1e-4,
    device: str = "auto",
    seed: int = 0,
) -> FineTuned:
    """Fine-tune the whole network from `probe`, keeping the epoch with the lowest
    validation loss, then calibrate its temperature on validation."""
    torch.manual_seed(seed)
    backbone = load_backbone(backbone_name, weights, device)  # a private copy to change
    net = _network(backbone, probe)
    loader = torch.utils.data.DataLoader(
        _Files(train_paths, y_train, _augment(backbone.input)),
        batch_size=batch_size,
        shuffle=True,
        num_workers=0,
        generator=torch.Generator().manual_seed(seed),
    )
    weights_t = torch.as_tensor(class_weights(y_train, probe.n_classes), device=backbone.device)
    loss_fn = nn.CrossEntropyLoss(weight=weights_t)
    optimiser = torch.optim.AdamW(
        [
            {"params": net.backbone.parameters(), "lr": lr},
            {"params": net.head.parameters(), "lr": lr * 10},
        ],
        weight_decay=1e-4,
    )
    steps = max(1, epochs * math.ceil(len(train_paths) / batch_size))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    has_val = len(val_paths) >= 2 and y_val is not None
    yv = torch.as_tensor(y_val) if has_val else None
    best_loss, best_state, best_epoch = math.inf, None, epochs
    for epoch in range(1, epochs + 1):
        net.train()
        # Small batches of few labels would overwrite the pretrained BatchNorm
        # statistics with noise; keep them as ImageNet left them.
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        for images, labels in loader:
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(net(images.to(backbone.device)), labels.to(backbone.device))
            loss.backward()
            optimiser.step()
            schedule.step()
        if has_val:
            logits = _logits(net, val_paths, backbone.input, backbone.device, batch_size)
            val_loss = nn.functional.cross_entropy(logits, yv).item()
            if val_loss < best_loss:
                best_loss, best_epoch = val_loss, epoch
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    if best_state is not None:
        net.load_state_dict(best_state)
    # Cross-fitting whole fine-tunes is too dear: the validation split calibrates, and
    # only once it is large enough to mean something (a handful once gave T = 0.2).
    temperature = 1.0
    if has_val and len(yv) >= MIN_CALIBRATION_LABELS:
        temperature = fit_temperature(
            _logits(net, val_paths, backbone.input, backbone.device, batch_size), yv
        )
    return FineTuned(
        state={k: v.detach().cpu() for k, v in net.state_dict().items()},
        temperature=temperature,
        epochs=best_epoch,
        n_classes=probe.n_classes,
    )


def predictor(
    tuned: FineTuned,
    probe: TrainedHead,
    *,
    backbone_name: str,
    weights: Path | None = None,
    device: str = "auto",
    batch_size: int = 64,
) -> Callable[[Sequence[str | Path]], np.ndarray]:
    """A function from image files to the fine-tuned network's calibrated probabilities."""
    backbone = load_backbone(backbone_name, weights, device)
    net = _network(backbone, probe)
    net.load_state_dict(tuned.state)

    def proba(paths: Sequence[str | Path]) -> np.ndarray:
        logits = _logits(net, list(paths), backbone.input, backbone.device, batch_size)
        return torch.softmax(logits / tuned.temperature, dim=1).numpy()

    return proba


def finetuned_to_bytes(tuned: FineTuned, probe: TrainedHead) -> bytes:
    """The whole network and the probe it grew from (which fixes the head's shape)."""
    buffer = io.BytesIO()
    torch.save(
        {
            "state": tuned.state,
            "temperature": tuned.temperature,
            "epochs": tuned.epochs,
            "n_classes": tuned.n_classes,
            "probe": head_to_bytes(probe),
        },
        buffer,
    )
    return buffer.getvalue()


def finetuned_from_bytes(data: bytes) -> tuple[FineTuned, TrainedHead]:
    """The network and probe that `finetuned_to_bytes` stored."""
    saved = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    tuned = FineTuned(
        state=saved["state"],
        temperature=saved["temperature"],
        epochs=saved["epochs"],
        n_classes=saved["n_classes"],
    )
    return tuned, head_from_bytes(saved["probe"])
