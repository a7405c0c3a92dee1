"""models_app.ml.head on tiny hand-made embeddings: what the head computes (checked
against numpy by hand), how long it trains, how it weighs classes, and that it travels
through bytes unchanged. Seconds in all, so it runs for every mutant."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.model_selection import StratifiedKFold

from models_app.ml.head import (
    HEAD_KINDS,
    MIN_CALIBRATION_LABELS,
    _module,
    _normalise,
    _prepare,
    calibration_temperature,
    class_weights,
    feature_stats,
    fit_temperature,
    head_from_bytes,
    head_to_bytes,
    predict_proba,
    restore_module,
    train_head,
    train_head_self,
)


def two_groups(n_each=10, seed=0, noise=0.05):
    """Two separable groups of 3-d points, around (1, 0, 0) and (0, 1, 0)."""
    rng = np.random.default_rng(seed)
    a = np.array([1.0, 0.0, 0.0]) + rng.normal(0, noise, (n_each, 3))
    b = np.array([0.0, 1.0, 0.0]) + rng.normal(0, noise, (n_each, 3))
    return np.vstack([a, b]).astype(np.float32), np.array([0] * n_each + [1] * n_each)


def by_hand(head, x):
    """The linear head's calibrated probabilities in numpy: L2-normalise, standardise
    with the stored statistics, W x + b, divide by the temperature, softmax."""
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)
    z = (unit - head.feature_mean) / head.feature_scale
    logits = z @ head.state["weight"].numpy().T + head.state["bias"].numpy()
    logits = logits / head.temperature
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_the_modules_are_a_linear_layer_or_a_small_mlp():
    linear = _module("linear", 5, 3)
    assert isinstance(linear, torch.nn.Linear)
    assert (linear.in_features, linear.out_features) == (5, 3)
    mlp = _module("mlp", 5, 3)
    layers = list(mlp)
    assert [type(layer) for layer in layers] == [
        torch.nn.Linear,
        torch.nn.ReLU,
        torch.nn.Dropout,
        torch.nn.Linear,
    ]
    assert (layers[0].in_features, layers[0].out_features) == (5, 256)
    assert (layers[3].in_features, layers[3].out_features) == (256, 3)
    assert layers[2].p == pytest.approx(0.2)
    with pytest.raises(ValueError, match="unknown head kind 'forest'; use one of"):
        _module("forest", 5, 3)
    assert HEAD_KINDS == ("linear", "mlp")


def test_features_are_unit_rows_standardised_by_the_training_statistics():
    x = np.array([[3.0, 4.0], [0.0, 2.0], [0.0, 0.0]])
    unit = _normalise(x)
    assert unit.dtype == np.float32
    assert unit == pytest.approx(np.array([[0.6, 0.8], [0.0, 1.0], [0.0, 0.0]]))
    mean, scale = feature_stats(x)
    assert mean == pytest.approx([0.2, 0.6])
    assert scale == pytest.approx(np.std(unit, axis=0) + 1e-3)
    prepared = _prepare((mean, scale), x)
    assert isinstance(prepared, torch.Tensor)
    assert prepared.numpy() == pytest.approx((unit - mean) / scale, abs=1e-6)


def test_class_weights_are_inverse_frequencies_over_the_classes_present():
    # 4 labels, 2 classes present: 4 / (2 * 3) and 4 / (2 * 1); the absent class 0.
    weights = class_weights(np.array([0, 0, 0, 1]), 3)
    assert weights.dtype == np.float32
    assert weights == pytest.approx([2 / 3, 2.0, 0.0])
    assert class_weights(np.array([2, 2]), 3) == pytest.approx([0.0, 0.0, 1.0])


def test_a_trained_head_separates_two_groups_and_computes_as_by_hand():
    x, y = two_groups()
    head = train_head(x, y, 2)
    assert (head.kind, head.n_classes, head.dim, head.temperature) == ("linear", 2, 3, 1.0)
    mean, scale = feature_stats(x)
    assert head.feature_mean == pytest.approx(mean)
    assert head.feature_scale == pytest.approx(scale)
    proba = predict_proba(head, x)
    assert proba.dtype == np.float32
    assert proba.shape == (20, 2)
    assert (proba.argmax(axis=1) == y).all()
    assert proba == pytest.approx(by_hand(head, x), abs=1e-5)
    # Held back, the temperature scales the logits.
    head.temperature = 2.5
    assert predict_proba(head, x) == pytest.approx(by_hand(head, x), abs=1e-5)
    # In chunks, the same.
    assert predict_proba(head, x, batch_size=3) == pytest.approx(predict_proba(head, x))


def test_without_validation_the_head_trains_for_600_steps_within_the_bounds():
    x, y = two_groups()
    # 20 examples, one batch an epoch: 600 steps capped at 200 epochs.
    assert train_head(x, y, 2).epochs == 200
    assert train_head(x, y, 2, max_epochs=30).epochs == 30
    # Never fewer than 20 epochs.
    assert train_head(x, y, 2, max_epochs=5).epochs == 20
    # Batches of 4: 5 steps an epoch, 120 epochs make 600 steps.
    assert train_head(x, y, 2, batch_size=4).epochs == 120
    # One validation example is too few to stop on: trained as without.
    assert train_head(x, y, 2, x_val=x[:1], y_val=y[:1], max_epochs=30).epochs == 30


def test_with_validation_training_stops_and_keeps_the_best_epoch():
    x, y = two_groups()
    # Validation labels the other way round: the loss on them only grows as the head
    # learns, so the first epoch is the best and the weights are those after it,
    # however long the head waits for an improvement that does not come.
    x_val, y_val = two_groups(n_each=2, seed=1)
    heads = [train_head(x, y, 2, x_val=x_val, y_val=1 - y_val, patience=p, lr=0.05) for p in (2, 5)]
    assert [h.epochs for h in heads] == [1, 1]
    for key in heads[0].state:
        assert torch.equal(heads[0].state[key], heads[1].state[key]), key
    # Trained on, the same head ends elsewhere.
    longer = train_head(x, y, 2, max_epochs=20, lr=0.05)
    assert not torch.equal(longer.state["weight"], heads[0].state["weight"])
    # Validation labels that agree: the loss keeps falling, and no stop comes early.
    agreeing = train_head(x, y, 2, x_val=x_val, y_val=y_val, max_epochs=30, lr=0.05)
    assert agreeing.epochs > 20


def test_the_seed_decides_the_weights():
    x, y = two_groups()
    one, same, other = (train_head(x, y, 2, seed=s, max_epochs=20) for s in (0, 0, 1))
    assert torch.equal(one.state["weight"], same.state["weight"])
    assert not torch.equal(one.state["weight"], other.state["weight"])


def test_given_statistics_are_used_instead_of_the_training_sets():
    x, y = two_groups()
    stats = (np.zeros(3, np.float32), np.full(3, 2.0, np.float32))
    head = train_head(x, y, 2, stats=stats, max_epochs=20)
    assert head.feature_mean.tolist() == [0.0, 0.0, 0.0]
    assert head.feature_scale.tolist() == [2.0, 2.0, 2.0]


def test_no_training_examples_is_refused_for_a_class_head():
    with pytest.raises(ValueError, match="no training examples"):
        train_head(np.zeros((0, 3), np.float32), np.zeros(0, int), 2)


def test_rare_classes_weigh_as_much_as_common_ones():
    # Every example at the same point: only the biases learn, towards the (weighted)
    # share of each class. 18 against 2 weighted equally: an even split, not 0.9 / 0.1.
    x = np.ones((20, 2), np.float32)
    y = np.array([0] * 18 + [1] * 2)
    head = train_head(x, y, 2, lr=0.1, weight_decay=0.0)
    assert predict_proba(head, x[:1])[0] == pytest.approx([0.5, 0.5], abs=0.05)


def test_the_mlp_head_learns_and_restores():
    x, y = two_groups()
    head = train_head(x, y, 2, kind="mlp", max_epochs=40)
    assert head.kind == "mlp"
    assert set(head.state) == {"0.weight", "0.bias", "3.weight", "3.bias"}
    assert (predict_proba(head, x).argmax(axis=1) == y).all()
    module = restore_module(head)
    assert not module.training
    assert isinstance(module, torch.nn.Sequential)


def test_a_head_travels_through_bytes_unchanged():
    x, y = two_groups()
    head = train_head(x, y, 2, max_epochs=20)
    head.temperature = 1.75
    back = head_from_bytes(head_to_bytes(head))
    assert (back.kind, back.n_classes, back.dim, back.epochs) == ("linear", 2, 3, 20)
    assert back.temperature == 1.75
    assert back.feature_mean.tolist() == head.feature_mean.tolist()
    assert back.feature_scale.tolist() == head.feature_scale.tolist()
    assert set(back.state) == set(head.state)
    for key in head.state:
        assert torch.equal(back.state[key], head.state[key])
    assert predict_proba(back, x).tolist() == predict_proba(head, x).tolist()


def test_the_temperature_of_a_known_case():
    # Logits (1, 0) for all; three of four are class 0. The best probability is 3/4,
    # so sigmoid(1 / T) = 3/4 and T = 1 / ln 3.
    logits = torch.tensor([[1.0, 0.0]] * 4)
    labels = torch.tensor([0, 0, 0, 1])
    assert fit_temperature(logits, labels) == pytest.approx(1 / math.log(3), abs=5e-3)
    # Half right: flatter is always better, up to the bound of 20.
    t = fit_temperature(logits, torch.tensor([0, 1, 0, 1]))
    assert 5.0 < t <= 20.0
    # All right: sharper is always better, down to the bound of 0.05.
    t = fit_temperature(logits, torch.tensor([0, 0, 0, 0]))
    assert 0.05 <= t < 0.5


def test_calibration_needs_twenty_labels_and_two_classes_of_two():
    x, y = two_groups(n_each=10)
    stats = feature_stats(x)
    assert MIN_CALIBRATION_LABELS == 20
    assert calibration_temperature(x[1:], y[1:], 2, stats=stats) == 1.0
    # Twenty labels, but all of one class but one: nothing to stratify.
    y_one = np.array([0] * 19 + [1])
    assert calibration_temperature(x, y_one, 2, stats=stats) == 1.0


def test_out_of_fold_calibration_sharpens_a_clean_problem_and_flattens_noise():
    x, y = two_groups(n_each=12, noise=0.05)
    stats = feature_stats(x)
    assert calibration_temperature(x, y, 2, stats=stats, max_epochs=20) < 1.0
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 1, (24, 3)).astype(np.float32)
    coin = rng.integers(0, 2, 24)
    assert calibration_temperature(noise, coin, 2, stats=feature_stats(noise), max_epochs=20) > 1.0


def test_a_single_label_class_stays_in_every_training_fold():
    x, y = two_groups(n_each=12)
    x = np.vstack([x, [[0.0, 0.0, 1.0]]]).astype(np.float32)
    y = np.append(y, 2)
    t = calibration_temperature(x, y, 3, stats=feature_stats(x), max_epochs=20)
    assert 0.05 <= t <= 20.0
    assert t != 1.0


@pytest.mark.parametrize("pool_size, kept", [(16, 8), (15, 8)])
def test_self_training_fits_again_on_the_confident_part_of_the_pool(pool_size, kept):
    x, y = two_groups(n_each=3, seed=4)
    pool = two_groups(n_each=8, seed=5)[0][:pool_size]
    head = train_head_self(x, y, 2, x_pool=pool, keep=0.5, calibrate=False, max_epochs=20)
    stats = feature_stats(np.concatenate([x, pool]))
    assert head.feature_mean == pytest.approx(stats[0])
    assert head.temperature == 1.0
    # The documented steps by hand: fit on the labels, take the most confident half of
    # the pool with its predicted class, fit again on both.
    first = train_head(x, y, 2, stats=stats, max_epochs=20)
    proba = predict_proba(first, pool)
    confidence = proba.max(axis=1)
    # At least as sure as the median: with an odd pool, the median image too.
    sure = confidence >= np.quantile(confidence, 0.5)
    assert sure.sum() == kept
    second = train_head(
        np.concatenate([x, pool[sure]]),
        np.concatenate([y, proba[sure].argmax(axis=1)]),
        2,
        stats=stats,
        max_epochs=20,
    )
    for key in second.state:
        assert torch.allclose(head.state[key], second.state[key]), key


def test_self_training_without_a_pool_or_keep_is_plain_training():
    x, y = two_groups(n_each=3, seed=4)
    pool, _ = two_groups(n_each=8, seed=5)
    stats = feature_stats(np.concatenate([x, pool]))
    plain = train_head(x, y, 2, stats=stats, max_epochs=20)
    head = train_head_self(x, y, 2, x_pool=pool, keep=0.0, calibrate=False, max_epochs=20)
    assert torch.equal(head.state["weight"], plain.state["weight"])
    empty = train_head_self(x, y, 2, x_pool=np.zeros((0, 3), np.float32), calibrate=False)
    assert empty.feature_mean == pytest.approx(feature_stats(x)[0])


def test_self_training_calibrates_on_every_label_given():
    x, y = two_groups(n_each=8, seed=6)
    x_val, y_val = two_groups(n_each=3, seed=7)
    pool, _ = two_groups(n_each=4, seed=8)
    head = train_head_self(
        x, y, 2, x_pool=pool, x_val=x_val, y_val=y_val, max_epochs=20, kind="linear"
    )
    stats = feature_stats(np.concatenate([x, pool]))
    # The fold heads train as the head did: 20 epochs, a linear layer.
    expected = calibration_temperature(
        np.concatenate([x, x_val]), np.concatenate([y, y_val]), 2, stats=stats, max_epochs=20
    )
    assert expected != 1.0
    assert head.temperature == pytest.approx(expected)
    longer = calibration_temperature(
        np.concatenate([x, x_val]), np.concatenate([y, y_val]), 2, stats=stats, max_epochs=25
    )
    assert head.temperature != pytest.approx(longer)
    # Training labels alone (16) are too few to calibrate on.
    alone = train_head_self(x, y, 2, x_pool=pool, max_epochs=20)
    assert alone.temperature == 1.0


class _Anything:
    """Not a tensor, a number or a string: a weights-only load refuses it."""


def test_a_model_file_holding_other_objects_is_refused(tmp_path):
    import io
    import pickle

    buffer = io.BytesIO()
    torch.save({"kind": _Anything()}, buffer)
    with pytest.raises(pickle.UnpicklingError):
        head_from_bytes(buffer.getvalue())


def _calibrated_by_hand(x, y, n_classes, *, seed):
    """calibration_temperature's docstring step by step: stratified folds (at most 5, at
    most the largest class's count among classes of two or more), classes of one kept
    in every training fold, a 20-epoch head a fold with the given statistics and seed,
    the out-of-fold logits' NLL-minimising temperature."""
    stats = feature_stats(x)
    counts = np.bincount(y, minlength=n_classes)
    folds = int(min(5, counts[counts >= 2].max()))
    index = np.flatnonzero(counts[y] >= 2)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        parts = list(splitter.split(index, y[index]))
    logits, truth = [], []
    for _, rows in parts:
        held = index[rows]
        train = np.setdiff1d(np.arange(len(y)), held)
        head = train_head(x[train], y[train], n_classes, stats=stats, seed=seed, max_epochs=20)
        with torch.no_grad():
            logits.append(restore_module(head)(_prepare(stats, x[held])))
        truth.append(torch.as_tensor(y[held]))
    return fit_temperature(torch.cat(logits), torch.cat(truth))


@pytest.mark.parametrize(
    "sizes",
    [
        (10, 10),  # exactly twenty labels
        (18, 2),  # a class of exactly two still counts
        (9, 9, 2),  # ... and is still held out fold by fold
        (2,) * 10,  # at most two of any class: two folds
        (11, 8, 1),  # a class of one stays in every training fold
    ],
)
def test_the_temperature_follows_the_documented_steps(sizes):
    rng = np.random.default_rng(len(sizes) * 100 + sizes[-1])
    n_classes = len(sizes)
    centres = np.eye(max(n_classes, 3))[:n_classes]
    x = np.vstack(
        [centres[c] + rng.normal(0, 0.4, (n, centres.shape[1])) for c, n in enumerate(sizes)]
    )
    y = np.repeat(np.arange(n_classes), sizes)
    stats = feature_stats(x.astype(np.float32))
    got = calibration_temperature(
        x.astype(np.float32), y, n_classes, stats=stats, seed=3, max_epochs=20
    )
    assert got != 1.0
    assert got == pytest.approx(
        _calibrated_by_hand(x.astype(np.float32), y, n_classes, seed=3), abs=1e-6
    )


def _trained_by_hand(x, y, n_classes, x_val=None, y_val=None, *, lr=3e-3):
    """train_head's documented steps, its defaults written out here: weight decay 1e-3,
    batches of 256, at most 200 epochs but about 600 steps (never under 20 epochs),
    patience 10, seed 0; AdamW on a class-weighted cross-entropy, each epoch's order
    from a generator of the seed, the model built after seeding torch with it; with two
    or more validation labels, a stop after 10 epochs without an improvement of more
    than 1e-4 in validation loss, keeping the best epoch's weights."""
    decay, batch, max_epochs, patience, seed = 1e-3, 256, 200, 10, 0
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    stats = feature_stats(x)
    xt, yt = _prepare(stats, x), torch.as_tensor(y, dtype=torch.long)
    model = _module("linear", x.shape[1], n_classes)
    weights = torch.as_tensor(class_weights(y, n_classes))
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=decay)
    epochs = max(20, min(max_epochs, math.ceil(600 / math.ceil(len(x) / batch))))
    validate = y_val is not None and len(y_val) >= 2
    best, kept, best_epoch, waited = math.inf, None, epochs, 0
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch):
            rows = order[start : start + batch]
            optimiser.zero_grad()
            loss_fn(model(xt[rows]), yt[rows]).backward()
            optimiser.step()
        if not validate:
            continue
        model.eval()
        with torch.no_grad():
            val_x, val_y = _prepare(stats, x_val), torch.as_tensor(y_val, dtype=torch.long)
            loss = torch.nn.functional.cross_entropy(model(val_x), val_y).item()
        if loss < best - 1e-4:
            best, best_epoch, waited = loss, epoch, 0
            kept = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
            if waited == patience:
                break
    if kept is not None:
        model.load_state_dict(kept)
    return {k: v.detach() for k, v in model.state_dict().items()}, best_epoch


def _three_classes(sizes, seed, spread):
    rng = np.random.default_rng(seed)
    x = np.vstack([np.eye(3)[c] + rng.normal(0, spread, (n, 3)) for c, n in enumerate(sizes)])
    return x.astype(np.float32), np.repeat(np.arange(3), sizes)


def _same_as_by_hand(head, by_hand):
    state, epochs = by_hand
    assert head.epochs == epochs
    assert set(head.state) == set(state)
    for key in state:
        assert torch.equal(head.state[key], state[key]), key


def test_with_its_defaults_the_head_trains_by_the_documented_steps():
    # 300 examples: two batches an epoch (256 and 44), 200 epochs; classes of uneven size.
    x, y = _three_classes((150, 100, 50), seed=11, spread=0.6)
    _same_as_by_hand(train_head(x, y, 3), _trained_by_hand(x, y, 3))


def test_early_stopping_follows_the_documented_steps():
    # Overlapping classes and a quick rate: the validation loss wanders, so when the
    # run stops, and which epoch it keeps, depend on the patience and the margin.
    x, y = _three_classes((20, 20, 20), seed=12, spread=0.9)
    x_val, y_val = _three_classes((10, 10, 10), seed=13, spread=0.9)
    head = train_head(x, y, 3, x_val=x_val, y_val=y_val, lr=0.2)
    assert 1 < head.epochs < 200
    _same_as_by_hand(head, _trained_by_hand(x, y, 3, x_val, y_val, lr=0.2))
    # Two validation labels are enough to stop on.
    head = train_head(x, y, 3, x_val=x_val[:2], y_val=y_val[:2], lr=0.2)
    _same_as_by_hand(head, _trained_by_hand(x, y, 3, x_val[:2], y_val[:2], lr=0.2))


# Data whose validation loss, after the run stops, improves again later (seed 14), by
# less than the 1e-4 margin (35), or in the epoch after the patience runs out (272): the
# stop and the epoch kept then depend on each of those rules.
@pytest.mark.parametrize("seed, lr", [(14, 0.2), (35, 0.2), (272, 0.5)])
def test_the_stop_and_the_epoch_kept_follow_the_documented_rules(seed, lr):
    x, y = _three_classes((20, 20, 20), seed=seed, spread=0.9)
    x_val, y_val = _three_classes((10, 10, 10), seed=seed + 1, spread=0.9)
    head = train_head(x, y, 3, x_val=x_val, y_val=y_val, lr=lr)
    _same_as_by_hand(head, _trained_by_hand(x, y, 3, x_val, y_val, lr=lr))


def test_validation_features_without_their_labels_are_not_a_validation_set():
    x, y = two_groups()
    alone = train_head(x, y, 2, max_epochs=20)
    for head in (
        train_head(x, y, 2, x_val=x[:4], max_epochs=20),
        train_head(x, y, 2, y_val=y[:4], max_epochs=20),
    ):
        assert head.epochs == 20
        assert torch.equal(head.state["weight"], alone.state["weight"])


def test_no_training_examples_is_refused_in_those_words():
    with pytest.raises(ValueError, match=r"^no training examples$"):
        train_head(np.zeros((0, 3), np.float32), np.zeros(0, int), 2)


def test_the_default_calibration_seed_is_zero():
    # Classes apart enough for a temperature inside its bounds (5.3 with seed 0, 8.4
    # with seed 1); at a spread of 0.5 every seed gave the upper bound, 20.
    x, y = _three_classes((10, 8, 6), seed=14, spread=0.2)
    got = calibration_temperature(x, y, 3, stats=feature_stats(x), max_epochs=20)
    assert got == pytest.approx(_calibrated_by_hand(x, y, 3, seed=0), abs=1e-6)


def test_self_training_with_validation_features_but_no_labels_calibrates_on_training():
    x, y = two_groups(n_each=12, seed=6)
    pool, _ = two_groups(n_each=4, seed=8)
    head = train_head_self(x, y, 2, x_pool=pool, x_val=x[:3], max_epochs=20)
    stats = feature_stats(np.concatenate([x, pool]))
    expected = calibration_temperature(x, y, 2, stats=stats, max_epochs=20)
    assert expected != 1.0
    assert head.temperature == pytest.approx(expected)
