"""The mistakes benchmark, run small: real images and labels, the app's review scan."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from feedback.management.commands.bench_mistakes import score
from labeling.models import Project


@pytest.mark.parametrize(
    ("option", "message"),
    [({"flip": 0.0}, "between 0 and 1"), ({"labeled": 10}, "between 100 and")],
)
def test_bad_options_are_refused_with_a_reason(tmp_path, option, message, db):
    with pytest.raises(CommandError, match=message):
        call_command("bench_mistakes", json_path=str(tmp_path / "m.json"), **option)


@pytest.mark.django_db(transaction=True)
def test_the_benchmark_compares_the_review_with_the_flips(tmp_path, capsys):
    path = tmp_path / "mistakes.json"
    options = {"json_path": str(path), "labeled": 200, "cache_dir": str(tmp_path / "cache")}
    call_command("bench_mistakes", **options)
    report = json.loads(path.read_text())
    # A second run of the same command did not always give the same figures (seen
    # once on 2026-12-02): reproducing bench_mistakes is open work (issue 22).
    assert report["seconds"] > 0 and report["scan_seconds"] >= 0
    assert "--labeled 200" in report["command"] and report["machine"]["cores"] >= 1
    assert {"precision_at_50", "precision_at_100", "precision_at_500", "recall_at_10pct"} <= set(
        report
    )
    assert report["labeled"] == 200 and 5 <= report["flipped"] <= 40
    # Far better than chance (a random order finds 10% flips among the first 50).
    assert report["precision_at_50"] >= 0.3
    assert report["recall_at_10pct"] >= 0.4
    assert "precision_at_100:" in capsys.readouterr().out
    assert not Project.objects.exists()


def test_scores_are_precision_at_k_and_recall_in_the_first_tenth():
    ranking = list(range(1, 61))
    flipped = {1, 2, 3, 55, 1000}
    report = score(ranking, flipped, labeled=300)
    assert report["precision_at_50"] == 3 / 50
    assert report["precision_at_100"] == 4 / 100
    assert report["precision_at_500"] == 4 / 500
    assert report["recall_at_10pct"] == 3 / 5  # the first 30 of 300 hold 1, 2 and 3
