"""The split benchmark, run small: real images and labels, the app's merge and split."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from scipy.stats import binom

from labeling.datasets import FASHION_MNIST_CLASSES, fashion_mnist_read
from labeling.models import Project

POOL = 300
SEEDS_PER_CLASS = 5
REPEATS = 3


def pair_counts(first: str, second: str) -> tuple[int, int]:
    """How many of the pool's images (the first POOL of the training split, none of
    them an exact duplicate) are of each class of the pair, read from the data itself."""
    data = fashion_mnist_read(Path(settings.LABELING["FASHION_MNIST_DIR"]), "train")
    counts = Counter(FASHION_MNIST_CLASSES[label] for label in data.labels[:POOL])
    return counts[first], counts[second]


@pytest.mark.django_db(transaction=True)
def test_the_benchmark_splits_both_pairs_back_better_than_a_coin_or_a_constant(tmp_path, capsys):
    path = tmp_path / "split.json"
    call_command(
        "bench_split",
        json_path=str(path),
        pool=POOL,
        repeats=REPEATS,
        seeds_per_class=SEEDS_PER_CLASS,
        cache_dir=str(tmp_path / "cache"),
    )
    report = json.loads(path.read_text())
    assert set(report["pairs"]) == {"T-shirt/top+Shirt", "Pullover+Coat"}
    for name, row in report["pairs"].items():
        first, second = name.split("+")
        n_first, n_second = pair_counts(first, second)
        total = n_first + n_second
        assert row["images"] == total
        assert len(row["recovered_runs"]) == REPEATS

        # "recovered" counts the seeds, which the expert placed by hand: leave them
        # out. What a suggestion did is the share of the other images it got right.
        seeds = min(SEEDS_PER_CLASS, n_first) + min(SEEDS_PER_CLASS, n_second)
        rest = total - seeds
        right = []
        for share in row["recovered_runs"]:
            count = round(share * total)
            assert abs(count / total - share) < 1e-3, "a share of whole images"
            right.append(count - seeds)  # at worst the seeds were lost too: conservative
        rest_share = sum(right) / (REPEATS * rest)

        # A constant suggestion gets the larger class's non-seeds right; a coin flip
        # gets each non-seed right with probability 1/2, so over all runs it stays
        # under the binomial's 99.9% quantile but once in a thousand.
        constant = max(n_first, n_second) - min(SEEDS_PER_CLASS, max(n_first, n_second))
        constant_share = constant / rest
        coin_share = binom.ppf(0.999, REPEATS * rest, 0.5) / (REPEATS * rest)
        baseline = max(constant_share, coin_share)
        assert rest_share > baseline + 0.05, (name, rest_share, constant_share, coin_share)
        assert row["recovered"] == pytest.approx(sum(row["recovered_runs"]) / REPEATS, abs=1e-3)

        # The ceiling (a head on half the pair's true labels, tested on the other
        # half) also beats always answering the larger class.
        assert max(n_first, n_second) / total < row["ceiling_2fold"] <= 1.0
    out = capsys.readouterr().out
    assert "T-shirt/top+Shirt: recovered" in out
    assert "Pullover+Coat: recovered" in out
    assert not Project.objects.exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [({"repeats": 0}, "at least 1"), ({"pool": 5}, "between 100 and")],
)
def test_bad_options_are_refused(tmp_path, option, message, db):
    with pytest.raises(CommandError, match=message):
        call_command("bench_split", json_path=str(tmp_path / "s.json"), **option)
