"""The active-learning benchmark, run small on real Fashion-MNIST images: the same
command gives the same figures, the simulation on arrays labels what the app itself
labels, and the long-tail scenario draws the pool and counts what it says."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from PIL import Image as PILImage

from labeling import services as labeling_services
from labeling.datasets import fashion_mnist_read
from labeling.models import Project
from models_app import services
from models_app.benchmarks import (
    ArrayPool,
    Pool,
    accuracy,
    embedding_cache,
    labels_to_find_all,
    long_tail_rows,
    project_delete,
    simulate,
    synchronous_tasks,
)

DATA = Path(settings.LABELING["FASHION_MNIST_DIR"])
ACCEPTANCE = {"budgets": "10,20,40", "seeds": 2, "strategies": "random,auto"}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One embedding cache for the module: the first run that needs a vector computes it."""
    return str(tmp_path_factory.mktemp("cache"))


def run(tmp_path, cache_dir, capsys, **options) -> tuple[dict, str]:
    path = tmp_path / "al.json"
    call_command("bench_active_learning", json_path=str(path), cache_dir=cache_dir, **options)
    return json.loads(path.read_text()), capsys.readouterr().out


def test_the_same_command_gives_the_same_figures(tmp_path, cache_dir, capsys):
    # No database: the default simulation never touches one (pytest-django would refuse).
    options = {**ACCEPTANCE, "pool": 200, "test": 150, "plot_path": str(tmp_path / "al.png")}
    first, _ = run(tmp_path, cache_dir, capsys, **options)
    second, out = run(tmp_path, cache_dir, capsys, **options)
    assert "350 from the cache" in out and "0 computed" in out
    assert first.pop("seconds") > 0 and second.pop("seconds") > 0
    assert first == second
    # The figures are those of the seeds asked for, and the seeds differ.
    assert first["budgets"] == [10, 20, 40] and first["seeds"] == 2
    assert set(first["strategies"]) == {"random", "auto"}
    for row in first["strategies"].values():
        runs = np.asarray(row["accuracy_runs"])
        assert runs.shape == (2, 3) and ((runs >= 0) & (runs <= 1)).all()
        assert np.allclose(row["accuracy_mean"], runs.mean(axis=0), atol=1e-4)
    assert (
        first["strategies"]["random"]["accuracy_runs"][0]
        != (first["strategies"]["random"]["accuracy_runs"][1])
    )
    assert first["default_strategy"] == "auto" and 0.3 < first["full_pool_accuracy"] <= 1
    # The report says how to get it again, and on what.
    words = shlex.split(first["command"])
    assert words[:3] == ["python", "manage.py", "bench_active_learning"]
    for flag, value in (("--budgets", "10,20,40"), ("--seeds", "2"), ("--pool", "200")):
        assert words[words.index(flag) + 1] == value
    assert first["machine"]["cores"] >= 1 and first["machine"]["device"] in ("cpu", "cuda")
    with PILImage.open(tmp_path / "al.png") as plot:
        assert plot.format == "PNG" and plot.width > 300


@pytest.mark.django_db(transaction=True)
def test_the_simulation_labels_what_the_app_labels(cache_dir):
    """The same pool, seed and budgets through the app's services and on arrays: the
    same images labeled in the same order, the same test accuracy at every budget."""
    train = fashion_mnist_read(DATA, "train")
    test = fashion_mnist_read(DATA, "test")
    cache = embedding_cache(cache_dir)
    arrays = ArrayPool.of(train, range(80), cache)
    tests = ArrayPool.of(test, range(100), cache)
    user = get_user_model().objects.create(username="bench")
    project = labeling_services.project_create(name="bench", user=user)
    budgets = [10, 20]  # a cold start, a model that ranks, a calibrated model
    device = str(services.backbone_load().device)
    with synchronous_tasks():
        pool = Pool.build(print, project, user, train, 80, cache)
        rows = {pk: row for row, pk in enumerate(sorted(pool.truth))}
        # The seed's paths: a random order, then k-means and the model's margins.
        for strategy, seed in (("random", 3), ("cluster_margin", 1)):
            app = pool.simulate(strategy, seed, budgets, tests.x, tests.y)
            fast = simulate(
                arrays, strategy, seed, budgets, tests.x, tests.y, score=accuracy, device=device
            )
            assert [rows[pk] for pk in app.picks] == fast.picks, strategy
            assert app.scores == fast.scores, strategy
            assert app.labels_to_find_all == fast.labels_to_find_all
    project_delete(project)
    assert not Project.objects.exists()


def test_the_long_tail_scenario_scores_macro_f1_on_a_balanced_test_set(tmp_path, cache_dir, capsys):
    options = {"budgets": "10,20,40", "seeds": 1, "strategies": "random", "ratio": 5}
    report, _ = run(
        tmp_path, cache_dir, capsys, scenario="long-tail", pool=200, test=150, jobs=1, **options
    )
    assert report["scenario"] == "long-tail" and report["budgets"] == [10, 20, 40]
    sizes = report["class_sizes"]
    assert len(sizes) == 10 and sizes[0] == 5 * sizes[-1] and report["pool"] == sum(sizes)
    assert report["test"] % 10 == 0  # as many test images of every class
    assert 0 < report["full_pool_macro_f1"] <= 1
    row = report["strategies"]["random"]
    assert len(row["macro_f1_mean"]) == 3 and all(0 <= v <= 1 for v in row["macro_f1_mean"])
    found = row["labels_to_find_all_classes_runs"]
    assert len(found) == 1 and (found[0] is None or 10 <= found[0] <= 40)
    assert row["labels_to_find_all_classes"] == found[0]
    assert report["default_strategy"] == "auto"


def test_long_tail_class_sizes_fall_exponentially_to_the_ratio():
    y = np.random.default_rng(5).permutation(np.repeat(np.arange(10), 200))
    first = long_tail_rows(y, 10, 100, np.random.default_rng(0))
    # 2 x 100^(k/9) for k = 0..9, rounded: the smallest class is 200 / 100.
    expected = [2, 3, 6, 9, 15, 26, 43, 72, 120, 200]
    assert sorted(np.bincount(y[first], minlength=10).tolist()) == expected
    assert len(set(first.tolist())) == len(first) and list(first) == sorted(first)
    second = long_tail_rows(y, 10, 100, np.random.default_rng(1))
    # Another seed gives the sizes to other classes.
    assert np.bincount(y[first]).tolist() != np.bincount(y[second]).tolist()
    with pytest.raises(Exception, match="too small"):
        long_tail_rows(y, 10, 1000, np.random.default_rng(0))


def test_labels_to_find_all_classes_counts_labels_in_the_order_served():
    assert labels_to_find_all([0, 0, 1, 2, 1, 3, 0], 4) == 6
    assert labels_to_find_all([3, 2, 1, 0], 4) == 4
    assert labels_to_find_all([0, 1, 1, 2], 4) is None


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"budgets": "ten"}, "comma-separated"),
        ({"budgets": "10,99999"}, "between 1 and the pool size"),
        ({"strategies": "psychic"}, "Strategies are some of"),
        ({"seeds": 0}, "at least 1"),
        ({"ratio": 0.5}, "--ratio is at least 1"),
        ({"through_app": True, "scenario": "long-tail"}, "runs the balanced scenario"),
    ],
)
def test_bad_options_are_refused_with_a_reason(tmp_path, option, message):
    with pytest.raises(CommandError, match=message):
        call_command(
            "bench_active_learning",
            json_path=str(tmp_path / "a.json"),
            **{"pool": 100, "budgets": "10,20", **option},
        )
