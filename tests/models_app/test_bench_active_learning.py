"""The active-learning benchmark, run small: real images, the app's services, a report."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from PIL import Image as PILImage

from labeling.models import Project


@pytest.mark.django_db(transaction=True)
def test_the_benchmark_writes_curves_a_plot_and_reuses_its_cache(tmp_path, capsys):
    options = {
        "json_path": str(tmp_path / "al.json"),
        "plot_path": str(tmp_path / "al.png"),
        "pool": 150,
        "test": 60,
        "budgets": "10,30",
        "seeds": 2,
        "strategies": "auto,margin",
        "cache_dir": str(tmp_path / "cache"),
    }
    call_command("bench_active_learning", **options)
    first = capsys.readouterr().out
    assert "150 computed" in first
    report = json.loads((tmp_path / "al.json").read_text())
    assert report["budgets"] == [10, 30]
    assert report["default_strategy"] == "auto"
    assert 0.3 < report["full_pool_accuracy"] <= 1.0
    assert set(report["strategies"]) == {"random", "auto", "margin"}  # random always runs
    for row in report["strategies"].values():
        assert len(row["accuracy_mean"]) == len(row["accuracy_std"]) == 2
        assert all(0.0 <= a <= 1.0 for a in row["accuracy_mean"])
        assert {"aubc", "labels_to_95pct", "labels_ratio_vs_random"} <= set(row)
    with PILImage.open(tmp_path / "al.png") as plot:
        assert plot.format == "PNG" and plot.width > 300
    # The temporary project is gone; a rerun takes every embedding from the cache.
    assert not Project.objects.exists()
    call_command("bench_active_learning", **{**options, "seeds": 1, "strategies": "random"})
    assert "150 from the cache, 0 computed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"budgets": "ten"}, "comma-separated"),
        ({"budgets": "10,99999"}, "between 1 and the pool size"),
        ({"strategies": "psychic"}, "Strategies are some of"),
        ({"seeds": 0}, "at least 1"),
    ],
)
def test_bad_options_are_refused_with_a_reason(tmp_path, option, message, db):
    with pytest.raises(CommandError, match=message):
        call_command(
            "bench_active_learning",
            json_path=str(tmp_path / "a.json"),
            plot_path=str(tmp_path / "a.png"),
            **{"pool": 100, "budgets": "10,20", **option},
        )
