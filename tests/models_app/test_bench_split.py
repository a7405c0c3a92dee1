"""The split benchmark, run small: real images and labels, the app's merge and split."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from labeling.models import Project


@pytest.mark.django_db(transaction=True)
def test_the_benchmark_merges_and_splits_both_pairs_back(tmp_path, capsys):
    path = tmp_path / "split.json"
    call_command(
        "bench_split",
        json_path=str(path),
        pool=300,
        repeats=1,
        seeds_per_class=5,
        cache_dir=str(tmp_path / "cache"),
    )
    report = json.loads(path.read_text())
    assert set(report["pairs"]) == {"T-shirt/top+Shirt", "Pullover+Coat"}
    for row in report["pairs"].values():
        assert row["images"] > 30
        # Better than a coin, and never better than the images allow... roughly.
        assert 0.55 <= row["recovered"] <= 1.0
        assert 0.5 <= row["ceiling_2fold"] <= 1.0
    assert "T-shirt/top+Shirt: recovered" in capsys.readouterr().out
    assert not Project.objects.exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [({"repeats": 0}, "at least 1"), ({"pool": 5}, "between 100 and")],
)
def test_bad_options_are_refused(tmp_path, option, message, db):
    with pytest.raises(CommandError, match=message):
        call_command("bench_split", json_path=str(tmp_path / "s.json"), **option)
