"""The learner of multi-label (tag) projects: a one-vs-rest logistic head on cached
embeddings, its per-tag calibration and thresholds, and its metrics. The query
strategies that rank a pool for tagging are in `models_app.ml.tag_strategies`.

A tag matrix `y` is float (N, T): 1 present, 0 absent, NaN not yet looked at. NaN
entries are masked out of the loss, of calibration, of thresholds and of every metric:
"absent" is never guessed from silence.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import average_precision_score, precision_recall_curve
from torch import nn

from models_app.ml.head import _normalise, feature_stats

# A tag needs two examples of each kind before it gets a trained output: one positive
# is one image, not a concept (the output would learn that image's quirks), and two are
# the fewest that show the head any variation while keeping a tag trainable as soon as
# an annotator has confirmed it twice. Below that the tag is reported as untrainable.
TAG_MIN_POSITIVES = 2
TAG_MIN_NEGATIVES = 2
# A temperature and a best-F1 threshold fitted on fewer held-out examples of either
# kind follow a handful of images (a threshold on 2 positives is any gap between two
# scores); below this a tag keeps T = 1 and the threshold 0.5.
CALIBRATION_MIN_POSITIVES = 5
CALIBRATION_MIN_NEGATIVES = 5
# The default L2 penalty on each tag's weights (scikit-learn's 1/C, the loss summed
# over images) is dim / TAG_PRIOR_LOGIT_SD**2: as a Gaussian prior on the weights over
# standardised features it gives a logit a prior spread of TAG_PRIOR_LOGIT_SD whatever
# the embedding's width. On the mosaic bench's 1280-dimensional embeddings penalties of
# 100 to 1000 scored best from 50 to 3000 labels (mAP within 0.01 of each other); a
# much weaker one, as AdamW's weight decay gave, lost 0.05 mAP at 200 labels and 0.04
# on 3000.
TAG_PRIOR_LOGIT_SD = 2.0


@dataclass
class TrainedTagHead:
    """One logistic output per tag. The logits are prior-corrected for the class
    weighting (see `train_tag_head`), so `sigmoid(logit / temperature)` is a calibrated
    probability; untrainable tags have zero weights and their base rate as bias."""

    n_tags: int
    dim: int
    state: dict[str, torch.Tensor]
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    temperatures: np.ndarray
    thresholds: np.ndarray
    trainable: np.ndarray
    epochs: int


def tag_matrix_check(y: np.ndarray, rows: int | None = None) -> np.ndarray:
    """`y` as a float32 (N, T) matrix of 1, 0 and NaN; ValueError for anything else."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 2:
        raise ValueError(f"a tag matrix is (images, tags), got shape {y.shape}")
    if rows is not None and len(y) != rows:
        raise ValueError(f"{len(y)} rows of tags for {rows} embeddings")
    known = ~np.isnan(y)
    if not np.isin(y[known], (0.0, 1.0)).all():
        raise ValueError("tag entries are 1 (present), 0 (absent) or NaN (not looked at)")
    return y


def tag_counts(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Known positives and known negatives per tag."""
    y = tag_matrix_check(y)
    return (y == 1).sum(axis=0), (y == 0).sum(axis=0)


def tag_matrix_untrainable(y: np.ndarray) -> list[int]:
    """Indices of the tags with fewer than TAG_MIN_POSITIVES known positives or
    TAG_MIN_NEGATIVES known negatives: those `train_tag_head` will not train."""
    positives, negatives = tag_counts(y)
    short = (positives < TAG_MIN_POSITIVES) | (negatives < TAG_MIN_NEGATIVES)
    return np.flatnonzero(short).tolist()


def train_tag_head(
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    seed: int = 0,
    device: str = "cpu",
    weight_decay: float | None = None,
    lr: float = 1.0,
    max_epochs: int = 200,
    patience: int = 10,
    stats: tuple[np.ndarray, np.ndarray] | None = None,
) -> TrainedTagHead:
    """Train one logistic output per tag on the known entries of `y_train`.

    Each tag's output minimises, over that tag's known entries, the class-balanced
    logistic loss summed over images plus `weight_decay` / 2 times its squared
    weights (default: dim / TAG_PRIOR_LOGIT_SD**2), as scikit-learn's
    `LogisticRegression(C=1/weight_decay, class_weight="balanced")` would fit each
    tag alone. The problem is convex: full-batch
    L-BFGS (step `lr`, at most `max_epochs` iterations) solves it from zero weights,
    so the result does not depend on `seed` (kept for the signature's sake) and
    needs no early stopping (`patience` is accepted and unused). Summing rather than
    averaging makes the penalty weigh less as labels accumulate, as it should.

    Guarantees:
    - NaN entries never reach the loss, the calibration or the thresholds, and the
      tags do not interact: each tag's output is what training it alone would give.
    - Class balance: the positives and negatives of each tag weigh half its known
      entries each; the bias is then shifted by -log(negatives / positives), the exact
      prior correction for that weighting, so a rare tag's probabilities are not
      inflated.
    - A tag listed by `tag_matrix_untrainable` is not trained: its output is constant,
      the Laplace-smoothed base rate (positives + 1) / (known + 2) of its known
      entries (0.5 with none), and `trainable` is False for it.
    - With `x_val`/`y_val`, a trained tag with at least CALIBRATION_MIN_POSITIVES and
      CALIBRATION_MIN_NEGATIVES known validation entries gets its temperature (NLL on
      validation) and its threshold (best F1 on validation); every other tag T = 1
      and threshold 0.5.
    - The same inputs give the same head.
    """
    del seed, patience
    x_train = np.asarray(x_train, dtype=np.float32)
    y = tag_matrix_check(y_train, len(x_train))
    n_tags, dim = y.shape[1], x_train.shape[1]
    if stats is None:
        if len(x_train):
            stats = feature_stats(x_train)
        else:
            stats = (np.zeros(dim, np.float32), np.ones(dim, np.float32))
    mean, scale = (np.asarray(s, dtype=np.float32) for s in stats)
    positives, negatives = tag_counts(y)
    trainable = (positives >= TAG_MIN_POSITIVES) & (negatives >= TAG_MIN_NEGATIVES)
    known = positives + negatives
    if weight_decay is None:
        weight_decay = dim / TAG_PRIOR_LOGIT_SD**2

    model = nn.Linear(dim, n_tags).to(device)
    iterations = 0
    train_mask = ~np.isnan(y) & trainable[None, :]
    rows = np.flatnonzero(train_mask.any(axis=1))
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    if len(rows):
        y_rows = np.nan_to_num(y[rows])
        # Balanced: each kind of a tag weighs half of its known entries.
        w_pos = known / (2.0 * np.maximum(positives, 1))
        w_neg = known / (2.0 * np.maximum(negatives, 1))
        weights = np.where(y_rows == 1, w_pos[None, :], w_neg[None, :]) * train_mask[rows]
        iterations = _fit(
            model,
            _features(mean, scale, x_train[rows]).to(device),
            torch.from_numpy(y_rows).to(device),
            torch.from_numpy(weights.astype(np.float32)).to(device),
            weight_decay,
            lr,
            max_epochs,
        )
    with torch.no_grad():
        base_rate = (positives + 1.0) / (known + 2.0)
        prior = np.log(np.maximum(negatives, 1) / np.maximum(positives, 1))
        bias = np.where(
            trainable,
            model.bias.cpu().numpy() - prior,
            np.log(base_rate / (1.0 - base_rate)),
        )
        model.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
        model.weight[torch.from_numpy(~trainable)] = 0.0
    head = TrainedTagHead(
        n_tags=n_tags,
        dim=dim,
        state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        feature_mean=mean,
        feature_scale=scale,
        temperatures=np.ones(n_tags, dtype=np.float32),
        thresholds=np.full(n_tags, 0.5, dtype=np.float32),
        trainable=trainable,
        epochs=iterations,
    )
    if x_val is not None and y_val is not None and len(y_val):
        _calibrate(head, np.asarray(x_val, np.float32), tag_matrix_check(y_val, len(x_val)))
    return head


def _features(mean: np.ndarray, scale: np.ndarray, x: np.ndarray) -> torch.Tensor:
    """L2-normalised, then standardised with the head's statistics (as `head.py`)."""
    return torch.from_numpy(((_normalise(x) - mean) / scale).astype(np.float32))


def _fit(
    model: nn.Linear,
    x: torch.Tensor,
    y: torch.Tensor,
    weights: torch.Tensor,
    l2: float,
    lr: float,
    max_iter: int,
) -> int:
    """Full-batch L-BFGS on the weighted logistic loss summed over entries plus l2/2
    times the squared weights (bias unpenalised), both divided by the row count for
    conditioning (the minimiser is the same). Returns the iterations taken."""
    optimiser = torch.optim.LBFGS(
        model.parameters(),
        lr=lr,
        max_iter=max_iter,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-6,
        tolerance_change=1e-9,
    )
    rows = len(x)

    def closure():
        optimiser.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(
            model(x), y, weight=weights, reduction="sum"
        )
        loss = (loss + 0.5 * l2 * (model.weight**2).sum()) / rows
        loss.backward()
        return loss

    optimiser.step(closure)
    model.eval()
    state = optimiser.state[optimiser._params[0]]
    return int(state.get("n_iter", 0))


def _calibrate(head: TrainedTagHead, x_val: np.ndarray, y_val: np.ndarray) -> None:
    """Per-tag temperature and best-F1 threshold from the validation entries, for the
    trained tags that have enough of both kinds there."""
    logits = tag_logits(head, x_val)
    positives, negatives = tag_counts(y_val)
    fit = (
        head.trainable
        & (positives >= CALIBRATION_MIN_POSITIVES)
        & (negatives >= CALIBRATION_MIN_NEGATIVES)
    )
    for t in np.flatnonzero(fit):
        known = ~np.isnan(y_val[:, t])
        z, truth = logits[known, t], y_val[known, t]
        head.temperatures[t] = fit_tag_temperature(z, truth)
        head.thresholds[t] = best_f1_threshold(truth, _sigmoid(z / head.temperatures[t]))


def fit_tag_temperature(logits: np.ndarray, truth: np.ndarray) -> float:
    """The T in [0.05, 20] minimising the NLL of sigmoid(logits / T) against `truth`
    (0/1), found by LBFGS on log T as `head.fit_temperature` does for softmax."""
    z = torch.as_tensor(logits, dtype=torch.float64)
    target = torch.as_tensor(truth, dtype=torch.float64)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100)

    def closure():
        optimiser.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(z / log_t.exp(), target)
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def best_f1_threshold(truth: np.ndarray, proba: np.ndarray) -> float:
    """The probability threshold (predict present when proba >= it) with the best F1
    on these entries, set midway between the lowest score it keeps and the next lower
    score so that it does not sit on one validation image; the highest such threshold
    on ties. 0.5 without both kinds of entries."""
    truth = np.asarray(truth)
    if not ((truth == 1).any() and (truth == 0).any()):
        return 0.5
    precision, recall, cuts = precision_recall_curve(truth, proba)
    f1 = np.where(
        precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0
    )[:-1]
    best = int(np.flatnonzero(f1 >= f1.max() - 1e-12).max())
    lower = np.asarray(proba)[np.asarray(proba) < cuts[best]]
    threshold = (cuts[best] + lower.max()) / 2 if len(lower) else cuts[best]
    return float(threshold)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def _module(head: TrainedTagHead, device: str) -> nn.Module:
    model = nn.Linear(head.dim, head.n_tags)
    model.load_state_dict(head.state)
    return model.to(device).eval()


def tag_logits(
    head: TrainedTagHead, x: np.ndarray, *, device: str = "cpu", batch_size: int = 65536
) -> np.ndarray:
    """Prior-corrected logits before temperature, float32 (N, n_tags)."""
    model = _module(head, device)
    out = np.empty((len(x), head.n_tags), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            chunk = _features(head.feature_mean, head.feature_scale, x[start : start + batch_size])
            out[start : start + len(chunk)] = model(chunk.to(device)).cpu().numpy()
    return out


def predict_tag_proba(head: TrainedTagHead, x: np.ndarray, *, device: str = "cpu") -> np.ndarray:
    """Calibrated probability of each tag being present, float32 (N, n_tags)."""
    x = np.asarray(x, dtype=np.float32).reshape(-1, head.dim)
    z = tag_logits(head, x, device=device) / head.temperatures[None, :]
    return _sigmoid(z).astype(np.float32)


def tag_head_to_bytes(head: TrainedTagHead) -> bytes:
    buffer = io.BytesIO()
    torch.save(
        {
            "n_tags": head.n_tags,
            "dim": head.dim,
            "state": head.state,
            "feature_mean": torch.from_numpy(np.asarray(head.feature_mean, np.float32)),
            "feature_scale": torch.from_numpy(np.asarray(head.feature_scale, np.float32)),
            "temperatures": torch.from_numpy(np.asarray(head.temperatures, np.float32)),
            "thresholds": torch.from_numpy(np.asarray(head.thresholds, np.float32)),
            "trainable": torch.from_numpy(np.asarray(head.trainable, bool)),
            "epochs": head.epochs,
        },
        buffer,
    )
    return buffer.getvalue()


def tag_head_from_bytes(data: bytes) -> TrainedTagHead:
    """The head `tag_head_to_bytes` wrote, loaded without unpickling code."""
    saved = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    return TrainedTagHead(
        n_tags=int(saved["n_tags"]),
        dim=int(saved["dim"]),
        state=saved["state"],
        feature_mean=saved["feature_mean"].numpy(),
        feature_scale=saved["feature_scale"].numpy(),
        temperatures=saved["temperatures"].numpy(),
        thresholds=saved["thresholds"].numpy(),
        trainable=saved["trainable"].numpy(),
        epochs=int(saved["epochs"]),
    )


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else float(numerator / denominator)


def tag_metrics(y_true: np.ndarray, proba: np.ndarray, thresholds) -> dict:
    """Held-out metrics of a tag head, JSON-serialisable; NaN entries are left out.

    `tags`: per tag (in tag order) `ap` (average precision; None unless the tag has a
    known positive and a known negative), `precision`, `recall`, `f1` at its threshold
    (None where 0/0), `tp`, `fp`, `fn`, `tn`, `support` (known positives), `n` (known
    entries), `threshold`. `map`: mean AP over the tags that have one (None if none);
    `micro_f1` from the counts pooled over tags; `macro_f1`: mean F1 over the tags with
    one; `n_images`: rows with at least one known entry. Never raises on empty input.
    """
    y_true = tag_matrix_check(y_true)
    proba = np.asarray(proba, dtype=np.float64).reshape(y_true.shape)
    thresholds = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (y_true.shape[1],))
    tags = []
    for t in range(y_true.shape[1]):
        known = ~np.isnan(y_true[:, t])
        truth, score = y_true[known, t] == 1, proba[known, t]
        predicted = score >= thresholds[t]
        tp = int((predicted & truth).sum())
        fp = int((predicted & ~truth).sum())
        fn = int((~predicted & truth).sum())
        tn = int((~predicted & ~truth).sum())
        both = 0 < truth.sum() < len(truth)
        tags.append(
            {
                "ap": float(average_precision_score(truth, score)) if both else None,
                "precision": _ratio(tp, tp + fp),
                "recall": _ratio(tp, tp + fn),
                "f1": _ratio(2 * tp, 2 * tp + fp + fn),
                "tp": tp,
                "fp": fp,
                "fn": fn,
                "tn": tn,
                "support": int(truth.sum()),
                "n": int(known.sum()),
                "threshold": float(thresholds[t]),
            }
        )
    aps = [row["ap"] for row in tags if row["ap"] is not None]
    f1s = [row["f1"] for row in tags if row["f1"] is not None]
    tp, fp, fn = (sum(row[k] for row in tags) for k in ("tp", "fp", "fn"))
    return {
        "tags": tags,
        "map": float(np.mean(aps)) if aps else None,
        "micro_f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "macro_f1": float(np.mean(f1s)) if f1s else None,
        "n_images": int((~np.isnan(y_true)).any(axis=1).sum()),
    }
