"""The load benchmark, run small: a real gunicorn, real HTTP, PostgreSQL."""

from __future__ import annotations

import json
import os
import shlex

import pytest
from django.core.management import CommandError, call_command

from labeling.models import Image, Project


@pytest.mark.django_db(transaction=True)
def test_concurrent_annotators_never_share_an_image_and_no_label_is_lost(tmp_path, media_root):
    path = tmp_path / "load.json"
    call_command("bench_load", json_path=str(path), images=500, annotators=4, seconds=3, workers=2)
    report = json.loads(path.read_text())
    for key in (
        "annotators",
        "images",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "requests_per_s",
        "served_twice",
        "lost_labels",
    ):
        assert key in report, key
    assert (report["annotators"], report["images"]) == (4, 500)
    # The run's own facts: the load lasted the 3 s asked, inside the whole run's time,
    # on this machine, and the command gives the same run again.
    assert 3 <= report["load_seconds"] < report["seconds"]
    assert report["machine"]["cores"] == os.cpu_count()
    words = shlex.split(report["command"])
    assert words[:3] == ["python", "manage.py", "bench_load"]
    assert words[words.index("--annotators") + 1] == "4"
    assert words[words.index("--images") + 1] == "500"
    assert report["labels"] > 0 and report["errors"] == 0
    assert report["served_twice"] == 0 and report["lost_labels"] == 0
    assert 0 < report["p50_ms"] <= report["p95_ms"] <= report["p99_ms"]
    assert not Project.objects.exists() and not Image.objects.exists()


@pytest.mark.django_db
def test_bad_options_are_refused(tmp_path):
    with pytest.raises(CommandError, match="must be positive"):
        call_command("bench_load", json_path=str(tmp_path / "l.json"), annotators=0)
