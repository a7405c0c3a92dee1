"""The tag learner (models_app.ml.multilabel) on hand-made matrices and toy data whose
right answers are known without it."""

from __future__ import annotations

import numpy as np
import pytest

from models_app.ml.multilabel import (
    TAG_MIN_NEGATIVES,
    TAG_MIN_POSITIVES,
    best_f1_threshold,
    fit_tag_temperature,
    predict_tag_proba,
    tag_head_from_bytes,
    tag_head_to_bytes,
    tag_matrix_untrainable,
    tag_metrics,
    train_tag_head,
)
from models_app.ml.strategies import typiclust
from models_app.ml.tag_strategies import (
    AUTO_STRATEGY,
    TAG_STRATEGIES,
    WARM_START_LABELS,
    rank_tags,
    tag_uncertainty,
)

NAN = np.nan


def toy(n: int, seed: int = 0, dim: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Tag 0 is present when x[0] > 0, tag 1 when x[1] + x[2] > 0.5 |x|: each separable
    by a hyperplane through the origin, so also after the head's L2 normalisation."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    norm = np.linalg.norm(x, axis=1)
    y = np.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0.5 * norm / 4], axis=1)
    return x, y.astype(np.float32)


# tag 0: scores 0.9 (+), 0.8 (-), 0.7 (+), 0.1 (-): AP = (1/1 + 2/3) / 2.
# tag 1: the NaN entry has the top score; read as absent it would be a false positive
# and halve the AP.
Y = np.array([[1, 0], [0, 1], [1, NAN], [0, 0]], dtype=np.float32)
P = np.array([[0.9, 0.2], [0.8, 0.6], [0.7, 0.99], [0.1, 0.4]])


def test_metrics_match_a_hand_computed_example():
    m = tag_metrics(Y, P, [0.5, 0.5])
    first, second = m["tags"]
    assert first["ap"] == pytest.approx(5 / 6)
    assert (first["tp"], first["fp"], first["fn"], first["tn"]) == (2, 1, 0, 1)
    assert first["precision"] == pytest.approx(2 / 3) and first["recall"] == 1.0
    assert first["f1"] == pytest.approx(0.8)
    assert (first["support"], first["n"], first["threshold"]) == (2, 4, 0.5)
    assert second["ap"] == 1.0 and second["f1"] == 1.0
    assert (second["tp"], second["fp"], second["fn"], second["tn"]) == (1, 0, 0, 2)
    assert (second["support"], second["n"]) == (1, 3)
    assert m["map"] == pytest.approx((5 / 6 + 1) / 2)
    assert m["micro_f1"] == pytest.approx(6 / 7)  # tp 3, fp 1, fn 0 pooled
    assert m["macro_f1"] == pytest.approx(0.9)
    assert m["n_images"] == 4


def test_metrics_use_each_tags_threshold():
    m = tag_metrics(Y, P, [0.75, 0.5])
    assert (m["tags"][0]["tp"], m["tags"][0]["fp"], m["tags"][0]["fn"]) == (1, 1, 1)
    assert m["tags"][0]["threshold"] == 0.75


def test_metrics_never_raise_on_empty_or_one_sided_data():
    empty = tag_metrics(np.zeros((0, 3)), np.zeros((0, 3)), [0.5] * 3)
    assert empty["map"] is None and empty["micro_f1"] is None and empty["n_images"] == 0
    assert all(row["n"] == 0 and row["ap"] is None and row["f1"] is None for row in empty["tags"])
    # Tag 0 unseen, tag 1 only positives, tag 2 both kinds: only tag 2 counts for mAP.
    y = np.array([[NAN, 1, 1], [NAN, 1, 0]], dtype=np.float32)
    m = tag_metrics(y, np.array([[0.5, 0.9, 0.8], [0.5, 0.2, 0.3]]), 0.5)
    assert m["tags"][0]["n"] == 0 and m["tags"][0]["ap"] is None
    assert m["tags"][1]["ap"] is None and m["tags"][1]["recall"] == 0.5
    assert m["map"] == 1.0 and m["n_images"] == 2
    # Nothing predicted present and nothing present: precision and F1 are 0/0.
    quiet = tag_metrics(np.array([[0.0], [0.0]]), np.array([[0.1], [0.2]]), 0.5)
    assert quiet["tags"][0]["precision"] is None and quiet["tags"][0]["f1"] is None
    assert quiet["tags"][0]["tn"] == 2


def test_tag_entries_other_than_present_absent_unknown_are_refused():
    with pytest.raises(ValueError):
        tag_matrix_untrainable(np.array([[1.0, 2.0]]))
    with pytest.raises(ValueError):
        train_tag_head(np.zeros((2, 4)), np.zeros((3, 1)))


def test_a_trained_head_separates_separable_tags():
    x, y = toy(400)
    x_test, y_test = toy(400, seed=1)
    head = train_tag_head(x, y, seed=0)
    assert head.trainable.all() and head.n_tags == 2 and head.dim == 16
    proba = predict_tag_proba(head, x_test)
    assert proba.dtype == np.float32 and proba.shape == (400, 2)
    m = tag_metrics(y_test, proba, head.thresholds)
    assert m["map"] > 0.97 and m["macro_f1"] > 0.85


def test_unknown_entries_are_masked_out_of_training():
    x, y = toy(400)
    x_test, y_test = toy(400, seed=1)
    # Tag 1 known on 50 positives and 50 negatives only. Read as absent, the other 300
    # entries would make the tag look present on 1 image in 8 instead of 1 in 2, and the
    # head would miss most of its images.
    rng = np.random.default_rng(0)
    known = np.concatenate(
        [rng.choice(np.flatnonzero(y[:, 1] == v), 50, replace=False) for v in (0, 1)]
    )
    y_partial = np.full_like(y, NAN)
    y_partial[:, 0] = y[:, 0]
    y_partial[known, 1] = y[known, 1]
    masked = predict_tag_proba(train_tag_head(x, y_partial, seed=0), x_test)[:, 1]
    filled = predict_tag_proba(train_tag_head(x, np.nan_to_num(y_partial), seed=0), x_test)[:, 1]
    masked_tag = tag_metrics(y_test[:, 1:], masked[:, None], 0.5)["tags"][0]
    filled_tag = tag_metrics(y_test[:, 1:], filled[:, None], 0.5)["tags"][0]
    assert masked_tag["ap"] > 0.9 and masked_tag["recall"] > 0.85
    assert filled_tag["recall"] < 0.5


def test_images_never_looked_at_change_nothing():
    x, y = toy(150)
    head = train_tag_head(x, y, seed=0)
    # Rows with no known entry: one batch either way, so only the sum's order differs.
    more = train_tag_head(
        np.concatenate([x, toy(100, seed=9)[0]]),
        np.concatenate([y, np.full((100, 2), NAN, np.float32)]),
        seed=0,
        stats=(head.feature_mean, head.feature_scale),
    )
    x_test = toy(50, seed=1)[0]
    assert np.allclose(predict_tag_proba(head, x_test), predict_tag_proba(more, x_test), atol=1e-5)


def test_tags_with_too_few_examples_are_reported_and_not_trained():
    x, y = toy(60)
    y = np.concatenate([y[:, :1], np.zeros((60, 3), np.float32)], axis=1)
    y[:, 1] = 1.0
    y[: TAG_MIN_NEGATIVES - 1, 1] = 0.0  # one negative short
    y[: TAG_MIN_POSITIVES - 1, 2] = 1.0  # one positive short
    y[:, 3] = NAN  # never looked at
    assert tag_matrix_untrainable(y) == [1, 2, 3]
    head = train_tag_head(x, y)
    assert head.trainable.tolist() == [True, False, False, False]
    proba = predict_tag_proba(head, toy(50, seed=3)[0])
    # Constant: the Laplace-smoothed base rate, and 0.5 for a tag without labels.
    assert np.allclose(proba[:, 1], (60 - (TAG_MIN_NEGATIVES - 1) + 1) / (60 + 2))
    assert np.allclose(proba[:, 2], (TAG_MIN_POSITIVES - 1 + 1) / (60 + 2))
    assert np.allclose(proba[:, 3], 0.5)
    assert proba[:, 0].std() > 0.1
    # One more example of the missing kind makes the tag trainable.
    y[TAG_MIN_NEGATIVES - 1, 1] = 0.0
    assert 1 not in tag_matrix_untrainable(y)


def test_no_labels_at_all_gives_a_head_of_base_rates():
    head = train_tag_head(np.zeros((0, 8), np.float32), np.zeros((0, 3), np.float32))
    assert not head.trainable.any()
    assert np.allclose(predict_tag_proba(head, np.ones((4, 8), np.float32)), 0.5)


def test_bytes_round_trip_gives_identical_probabilities():
    x, y = toy(300)
    x_val, y_val = toy(200, seed=2)
    head = train_tag_head(x, y, x_val=x_val, y_val=y_val)
    again = tag_head_from_bytes(tag_head_to_bytes(head))
    assert np.array_equal(predict_tag_proba(head, x_val), predict_tag_proba(again, x_val))
    assert np.array_equal(again.thresholds, head.thresholds)
    assert np.array_equal(again.temperatures, head.temperatures)
    assert again.trainable.dtype == bool and np.array_equal(again.trainable, head.trainable)
    assert (again.n_tags, again.dim, again.epochs) == (head.n_tags, head.dim, head.epochs)


def test_training_is_deterministic():
    x, y = toy(300)
    x_val, y_val = toy(100, seed=2)
    a = train_tag_head(x, y, x_val=x_val, y_val=y_val, seed=3)
    b = train_tag_head(x, y, x_val=x_val, y_val=y_val, seed=3)
    # A convex problem solved from zero weights: the seed has nothing to change.
    c = train_tag_head(x, y, x_val=x_val, y_val=y_val, seed=4)
    for other in (b, c):
        assert all(np.array_equal(a.state[k], other.state[k]) for k in a.state)
        assert np.array_equal(a.thresholds, other.thresholds) and a.epochs == other.epochs


def test_the_penalty_matches_scikit_learns_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    x, y = toy(300)
    head = train_tag_head(x, y, weight_decay=10.0)
    features = (x / np.linalg.norm(x, axis=1, keepdims=True) - head.feature_mean) / (
        head.feature_scale
    )
    reference = LogisticRegression(C=0.1, class_weight="balanced", tol=1e-8, max_iter=1000)
    reference.fit(features, y[:, 1])
    assert np.allclose(head.state["weight"][1].numpy(), reference.coef_[0], atol=2e-3)
    # The bias is the balanced one shifted by the prior correction log(neg / pos).
    positives = y[:, 1].sum()
    shift = np.log((300 - positives) / positives)
    assert head.state["bias"][1].item() == pytest.approx(reference.intercept_[0] - shift, abs=2e-3)


def test_temperature_recovers_a_known_overconfidence():
    rng = np.random.default_rng(0)
    z = rng.normal(scale=2.0, size=20000)
    truth = (rng.random(20000) < 1 / (1 + np.exp(-z))).astype(np.float64)
    assert fit_tag_temperature(3.0 * z, truth) == pytest.approx(3.0, rel=0.08)
    assert fit_tag_temperature(z, truth) == pytest.approx(1.0, rel=0.08)


def test_best_f1_threshold_by_hand():
    # Cutting at 0.6 keeps 3 of 3 positives and 1 negative: F1 6/7, the best; the
    # threshold sits midway to the next lower score, 0.2.
    truth = np.array([1, 1, 0, 1, 0])
    assert best_f1_threshold(truth, np.array([0.9, 0.8, 0.7, 0.6, 0.2])) == pytest.approx(0.4)
    assert best_f1_threshold(np.array([1, 1]), np.array([0.3, 0.9])) == 0.5


def test_validation_sets_thresholds_only_where_it_can_tell():
    x, y = toy(400)
    x_val, y_val = toy(300, seed=2)
    y_val = y_val.copy()
    # Tag 1 keeps 4 validation positives: too few to choose a threshold on.
    y_val[np.flatnonzero(y_val[:, 1] == 1)[4:], 1] = NAN
    head = train_tag_head(x, y, x_val=x_val, y_val=y_val)
    assert head.thresholds[1] == 0.5 and head.temperatures[1] == 1.0
    assert head.thresholds[0] != 0.5 and head.temperatures[0] != 1.0
    # The chosen threshold is at least as good on validation as 0.5.
    proba = predict_tag_proba(head, x_val)
    tuned = tag_metrics(y_val, proba, head.thresholds)["tags"][0]["f1"]
    assert tuned >= tag_metrics(y_val, proba, 0.5)["tags"][0]["f1"]


def test_uncertainty_is_one_at_the_threshold_and_zero_at_certainty():
    u = tag_uncertainty(np.array([[0.3, 0.0, 1.0, 0.65]]), np.array([0.3, 0.3, 0.3, 0.3]))
    assert np.allclose(u, [[1.0, 0.0, 0.0, 0.5]])


def pool_with_proba(n: int = 300):
    x, y = toy(n)
    labeled = np.zeros(n, bool)
    labeled[:40] = True
    head = train_tag_head(x[labeled], y[labeled])
    return x, y, labeled, predict_tag_proba(head, x), head.thresholds


@pytest.mark.parametrize("strategy", TAG_STRATEGIES)
def test_every_strategy_ranks_every_row_deterministically(strategy):
    x, y, labeled, proba, thresholds = pool_with_proba()
    kwargs = {
        "embeddings": x,
        "labeled": labeled,
        "proba": proba,
        "thresholds": thresholds,
        "y_labeled": y[labeled],
        "batch_size": 20,
        "seed": 5,
    }
    first = rank_tags(strategy, **kwargs)
    assert first.shape == (300,) and np.isfinite(first[~labeled]).all()
    assert np.array_equal(first, rank_tags(strategy, **kwargs))
    # A full (N, T) matrix is read as well as the labeled rows alone.
    assert np.array_equal(first, rank_tags(strategy, **{**kwargs, "y_labeled": y}))
    if strategy not in ("random", "typiclust", "auto"):  # auto: random below 200 labels
        assert first[labeled].max() < first[~labeled].min()


def test_an_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown strategy"):
        rank_tags("vibes", embeddings=np.zeros((3, 2)), labeled=np.zeros(3, bool))


def test_without_a_model_the_cold_start_is_typiclust():
    x, _ = toy(200)
    labeled = np.zeros(200, bool)
    for strategy in ("typiclust", "max_uncertainty", "badge"):
        priority = rank_tags(strategy, embeddings=x, labeled=labeled, batch_size=10, seed=1)
        # rank_tags draws the clustering seed from its own seed, as strategies.rank does
        seed = int(np.random.default_rng(1).integers(2**31))
        assert np.array_equal(priority, typiclust(x, labeled, 10, seed=seed))


def test_auto_is_random_until_the_warm_start_then_its_strategy():
    x, y = toy(WARM_START_LABELS + 100)
    labeled = np.zeros(len(x), bool)
    labeled[:WARM_START_LABELS] = True
    proba = predict_tag_proba(train_tag_head(x[labeled], y[labeled]), x)
    kwargs = {"embeddings": x, "batch_size": 10, "seed": 2}
    warm = {"labeled": labeled, "proba": proba, "y_labeled": y[labeled], **kwargs}
    assert np.array_equal(rank_tags("auto", **warm), rank_tags(AUTO_STRATEGY, **warm))
    few = labeled.copy()
    few[WARM_START_LABELS - 1] = False
    cold = {"labeled": few, "proba": proba, "y_labeled": y[few], **kwargs}
    assert np.array_equal(rank_tags("auto", **cold), rank_tags("random", **cold))
    none = {"labeled": np.zeros(len(x), bool), **kwargs}
    assert np.array_equal(rank_tags("auto", **none), rank_tags("random", **none))


def test_max_uncertainty_asks_first_about_the_tag_nearest_its_threshold():
    x = np.random.default_rng(0).normal(size=(3, 4))
    proba = np.array([[0.05, 0.99], [0.2, 0.3], [0.85, 0.02]])
    priority = rank_tags(
        "max_uncertainty",
        embeddings=x,
        labeled=np.zeros(3, bool),
        proba=proba,
        thresholds=np.array([0.9, 0.3]),
    )
    # Row 1's tag 1 sits on its threshold, row 2's tag 0 just below; row 0 is sure of both.
    assert np.argsort(-priority).tolist() == [1, 2, 0]


def test_rare_uncertainty_favours_the_tag_with_fewer_examples():
    x = np.random.default_rng(0).normal(size=(4, 4))
    labeled = np.array([True, True, False, False])
    y = np.array([[1, 0], [0, 0], [NAN, NAN], [NAN, NAN]], np.float32)
    y_many = np.concatenate([np.tile([[1, 1]], (20, 1)), np.tile([[0, 0]], (20, 1))])
    y_rows = np.concatenate([y[:2], y_many]).astype(np.float32)
    # Tag 1 has 0 positives among the labeled rows, tag 0 has 21.
    x = np.concatenate([x[:2], np.zeros((40, 4)), x[2:]])
    labeled = np.concatenate([labeled[:2], np.ones(40, bool), labeled[2:]])
    proba = np.zeros((44, 2))
    proba[42] = [0.5, 0.1]  # unsure about the common tag
    proba[43] = [0.1, 0.5]  # unsure about the rare tag
    priority = rank_tags(
        "rare_uncertainty", embeddings=x, labeled=labeled, proba=proba, y_labeled=y_rows
    )
    assert priority[43] > priority[42]
    plain = rank_tags("mean_uncertainty", embeddings=x, labeled=labeled, proba=proba)
    assert plain[43] == plain[42]


@pytest.mark.parametrize("strategy", ["badge", "cluster_uncertainty"])
def test_diverse_strategies_do_not_spend_a_batch_on_copies(strategy):
    rng = np.random.default_rng(0)
    # Ten copies of the most uncertain image, and a slightly surer, different one.
    copies = np.tile(rng.normal(size=(1, 8)) + 4, (10, 1))
    other = rng.normal(size=(1, 8)) - 4
    x = np.concatenate([copies, other])
    proba = np.concatenate([np.full((10, 2), 0.5), np.full((1, 2), 0.4)])
    priority = rank_tags(
        strategy, embeddings=x, labeled=np.zeros(11, bool), proba=proba, batch_size=2, seed=0
    )
    top = set(np.argsort(-priority, kind="stable")[:2].tolist())
    assert 10 in top and len(top & set(range(10))) == 1
    plain = rank_tags("mean_uncertainty", embeddings=x, labeled=np.zeros(11, bool), proba=proba)
    assert 10 not in set(np.argsort(-plain, kind="stable")[:2].tolist())


def test_cardinality_asks_about_images_whose_tag_count_is_unusual():
    x = np.random.default_rng(0).normal(size=(4, 4))
    labeled = np.array([True, True, False, False])
    y = np.array([[1, 0, 0], [0, 1, 0], [NAN] * 3, [NAN] * 3], np.float32)  # one tag each
    # Row 3 is the surer of the two (separations 0.85 vs 0.81 in logits) but
    # predicts 3 tags where labeled images have 1.
    proba = np.array([[0, 0, 0], [0, 0, 0], [0.6, 0.4, 0.01], [0.9, 0.9, 0.7]])
    priority = rank_tags(
        "cardinality", embeddings=x, labeled=labeled, proba=proba, y_labeled=y[labeled]
    )
    assert priority[3] > priority[2]
