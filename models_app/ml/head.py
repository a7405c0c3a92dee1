"""A classifier head on cached embeddings: linear or a small MLP, class-weighted,
stopped early on the validation split, optionally self-trained on the unlabeled pool
(`train_head_self`) and calibrated by temperature scaling on out-of-fold logits over
every label (`calibration_temperature`)."""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

HEAD_KINDS = ("linear", "mlp")


@dataclass
class TrainedHead:
    kind: str
    n_classes: int
    dim: int
    state: dict[str, torch.Tensor]
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    temperature: float
    epochs: int


def _module(kind: str, dim: int, n_classes: int) -> nn.Module:
    if kind == "linear":
        return nn.Linear(dim, n_classes)
    if kind == "mlp":
        return nn.Sequential(
            nn.Linear(dim, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, n_classes)
        )
    raise ValueError(f"unknown head kind {kind!r}; use one of {HEAD_KINDS}")


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)


def _prepare(stats: tuple[np.ndarray, np.ndarray], x: np.ndarray) -> torch.Tensor:
    """L2-normalise, then standardise with the training set's statistics."""
    mean, scale = stats
    return torch.from_numpy((_normalise(x) - mean) / scale)


def feature_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and scale of L2-normalised features, for standardising."""
    unit = _normalise(x)
    return unit.mean(axis=0), unit.std(axis=0) + 1e-3


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse class frequency, so rare classes count as much as common ones."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float32)
    weights = np.where(counts > 0, len(y) / (np.count_nonzero(counts) * np.maximum(counts, 1)), 0)
    return weights.astype(np.float32)


def train_head(
    x_train: np.ndarray,
    y_train: np.ndarray,
    n_classes: int,
    *,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    kind: str = "linear",
    weight_decay: float = 1e-3,
    lr: float = 3e-3,
    batch_size: int = 256,
    max_epochs: int = 200,
    patience: int = 10,
    seed: int = 0,
    device: str = "cpu",
    stats: tuple[np.ndarray, np.ndarray] | None = None,
) -> TrainedHead:
    if len(x_train) == 0:
        raise ValueError("no training examples")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    stats = stats or feature_stats(x_train)
    mean, scale = stats
    xt = _prepare(stats, x_train).to(device)
    yt = torch.as_tensor(y_train, dtype=torch.long, device=device)
    has_val = x_val is not None and y_val is not None and len(y_val) >= 2
    if has_val:
        xv = _prepare(stats, x_val).to(device)
        yv = torch.as_tensor(y_val, dtype=torch.long, device=device)

    model = _module(kind, xt.shape[1], n_classes).to(device)
    weights = torch.as_tensor(class_weights(np.asarray(y_train), n_classes), device=device)
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    batches_per_epoch = math.ceil(len(xt) / batch_size)
    # Few examples make short epochs: give the optimiser enough steps either way.
    epochs = max(20, min(max_epochs, math.ceil(600 / batches_per_epoch)))
    best_loss, best_state, best_epoch, waited = math.inf, None, 0, 0
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(xt), generator=generator).to(device)
        for start in range(0, len(xt), batch_size):
            idx = order[start : start + batch_size]
            optimiser.zero_grad(set_to_none=True)
            loss_fn(model(xt[idx]), yt[idx]).backward()
            optimiser.step()
        if not has_val:
            continue
        model.eval()
        with torch.no_grad():
            val_loss = nn.functional.cross_entropy(model(xv), yv).item()
        if val_loss < best_loss - 1e-4:
            best_loss, best_epoch, waited = val_loss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
            if waited >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_epoch = epochs
    model.eval()
    return TrainedHead(
        kind=kind,
        n_classes=n_classes,
        dim=xt.shape[1],
        state={k: v.detach().cpu() for k, v in model.state_dict().items()},
        feature_mean=mean,
        feature_scale=scale,
        temperature=1.0,
        epochs=best_epoch,
    )


def train_head_self(
    x_train: np.ndarray,
    y_train: np.ndarray,
    n_classes: int,
    *,
    x_pool: np.ndarray,
    keep: float = 0.5,
    calibrate: bool = True,
    **kwargs,
) -> TrainedHead:
    """Self-training on the unlabeled pool: fit on the labels, give the most confident
    `keep` fraction of `x_pool` its predicted class, and fit again on both. Features are
    standardised with the pool's statistics, which few labels estimate badly. With
    `calibrate`, the temperature comes from `calibration_temperature` over every label
    given (training and validation), never from the pseudo-labels."""
    stats = feature_stats(np.concatenate([x_train, x_pool]) if len(x_pool) else x_train)
    head = train_head(x_train, y_train, n_classes, stats=stats, **kwargs)
    if len(x_pool) and keep > 0:
        proba = predict_proba(head, x_pool)
        confidence = proba.max(axis=1)
        sure = confidence >= np.quantile(confidence, 1.0 - keep)
        head = train_head(
            np.concatenate([x_train, x_pool[sure]]),
            np.concatenate([y_train, proba[sure].argmax(axis=1)]),
            n_classes,
            stats=stats,
            **kwargs,
        )
    if calibrate:
        x_val, y_val = kwargs.get("x_val"), kwargs.get("y_val")
        x_all, y_all = x_train, y_train
        if x_val is not None and y_val is not None and len(y_val):
            x_all, y_all = np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val])
        # The fold heads are trained as this head was (kind, epochs, rate, ...).
        options = {k: v for k, v in kwargs.items() if k not in ("x_val", "y_val")}
        head.temperature = calibration_temperature(x_all, y_all, n_classes, stats=stats, **options)
    return head


# Below this many labels (or two per class in at least two classes) a temperature is
# noise: 4 validation images once gave T = 0.21 and every suggestion read 100%.
MIN_CALIBRATION_LABELS = 20
CALIBRATION_FOLDS = 5


def calibration_temperature(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    stats: tuple[np.ndarray, np.ndarray],
    seed: int = 0,
    device: str = "cpu",
    **options,
) -> float:
    """The temperature that minimises the NLL of out-of-fold logits: each fold is
    scored by a head trained on the other folds (stratified k-fold over every label), so
    the temperature rests on all the labels instead of a handful of validation images.
    The fold heads are trained with `options` (`train_head`'s: kind, max_epochs, lr,
    ...). 1.0 (no rescaling) while there are too few labels to tell."""
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y, dtype=np.int64)
    counts = np.bincount(y, minlength=n_classes)
    if len(y) < MIN_CALIBRATION_LABELS or np.count_nonzero(counts >= 2) < 2:
        return 1.0
    folds = int(min(CALIBRATION_FOLDS, counts[counts >= 2].max()))
    # Classes with a single label cannot be stratified; they stay in every training fold.
    keep = counts[y] >= 2
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    logits, truth = [], []
    index = np.flatnonzero(keep)
    with warnings.catch_warnings():
        # "The least populated class has fewer members than n_splits": expected here.
        warnings.simplefilter("ignore", UserWarning)
        splits = list(splitter.split(index, y[index]))
    for _, held_rows in splits:
        held = index[held_rows]
        train = np.setdiff1d(np.arange(len(y)), held)
        if len(np.unique(y[train])) < 2:
            continue
        fold_head = train_head(
            x[train], y[train], n_classes, device=device, stats=stats, seed=seed, **options
        )
        model = restore_module(fold_head, device)
        with torch.no_grad():
            logits.append(model(_prepare(stats, x[held]).to(device)).cpu())
        truth.append(torch.as_tensor(y[held], dtype=torch.long))
    if not logits:
        return 1.0
    return fit_temperature(torch.cat(logits), torch.cat(truth))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature minimising validation NLL (Guo et al., 2017), kept in [0.05, 20]."""
    log_t = torch.zeros(1, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100)

    def closure():
        optimiser.zero_grad()
        loss = nn.functional.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def restore_module(head: TrainedHead, device: str = "cpu") -> nn.Module:
    model = _module(head.kind, head.dim, head.n_classes)
    model.load_state_dict(head.state)
    return model.to(device).eval()


def predict_proba(
    head: TrainedHead, x: np.ndarray, *, device: str = "cpu", batch_size: int = 65536
) -> np.ndarray:
    """Calibrated class probabilities, float32 (N, n_classes)."""
    model = restore_module(head, device)
    out = np.empty((len(x), head.n_classes), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            chunk = _prepare((head.feature_mean, head.feature_scale), x[start : start + batch_size])
            logits = model(chunk.to(device)) / head.temperature
            out[start : start + len(chunk)] = torch.softmax(logits, dim=1).cpu().numpy()
    return out


def head_to_bytes(head: TrainedHead) -> bytes:
    buffer = io.BytesIO()
    torch.save(
        {
            "kind": head.kind,
            "n_classes": head.n_classes,
            "dim": head.dim,
            "state": head.state,
            "feature_mean": torch.from_numpy(head.feature_mean),
            "feature_scale": torch.from_numpy(head.feature_scale),
            "temperature": head.temperature,
            "epochs": head.epochs,
        },
        buffer,
    )
    return buffer.getvalue()


def head_from_bytes(data: bytes) -> TrainedHead:
    saved = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    return TrainedHead(
        kind=saved["kind"],
        n_classes=saved["n_classes"],
        dim=saved["dim"],
        state=saved["state"],
        feature_mean=saved["feature_mean"].numpy(),
        feature_scale=saved["feature_scale"].numpy(),
        temperature=float(saved["temperature"]),
        epochs=int(saved["epochs"]),
    )
