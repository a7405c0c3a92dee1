"""The effort benchmark, run small: real Fashion-MNIST images through the app, both
annotators to the last image, their time summed from the stated time model."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from labeling.models import Project

POOL = 200


@pytest.mark.django_db(transaction=True)
def test_both_runs_label_the_whole_pool_and_their_time_follows_the_time_model(tmp_path):
    path = tmp_path / "effort.json"
    call_command(
        "bench_effort",
        json_path=str(path),
        pool=POOL,
        retrain_every=50,
        first=20,
        cache_dir=str(tmp_path / "cache"),
    )
    report = json.loads(path.read_text())
    times = report["time_model"]
    assert times == {
        "choose": 2.0,
        "glance": 0.4,
        "action": 0.5,
        "wrong_choice": 0.02,
        "overlooked": 0.05,
    }
    assert report["pool"] == POOL
    one, assisted = report["one_by_one"], report["assisted"]
    assert (one["labeled"], one["chosen"], one["actions"], one["pages"]) == (POOL, POOL, POOL, 0)
    assert one["seconds"] == pytest.approx(POOL * 2.5)
    assert one["waited_seconds"] == 0 and one["retrains"] == POOL // 50
    # 2% wrong choices: more than 12 of 200 happens with probability under 0.3%.
    assert one["label_accuracy"] >= 1 - 12 / POOL

    assert assisted["labeled"] == POOL
    assert sum(assisted["labels_by_origin"].values()) == POOL
    assert assisted["labels_by_origin"]["verified"] > POOL // 2
    assert 20 <= assisted["chosen"] < POOL // 2
    # Every second is a glance, a choice, an action or a retrain waited for.
    assert assisted["seconds"] == pytest.approx(
        0.4 * assisted["glanced"]
        + 2.0 * assisted["chosen"]
        + 0.5 * assisted["actions"]
        + assisted["waited_seconds"]
    )
    assert assisted["waited_seconds"] > 0 and assisted["retrains"] >= 2
    assert assisted["seconds"] < one["seconds"]
    assert report["speedup"] == pytest.approx(one["seconds"] / assisted["seconds"])
    assert not Project.objects.filter(name__startswith="bench_effort").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "options, message",
    [
        ({"pool": 50}, "--pool is between 100"),
        ({"first": 1}, "--first is at least 2"),
        ({"page_size": 500}, "--page-size is at most"),
    ],
)
def test_bad_options_are_refused(tmp_path, options, message):
    with pytest.raises(CommandError, match=message):
        call_command("bench_effort", json_path=str(tmp_path / "e.json"), **options)
