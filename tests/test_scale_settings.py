"""The settings that switch on the parts for running at scale, read from the
environment as a deployment sets them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def settings_under(env: dict) -> dict:
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({'q': s.Q_CLUSTER, 'storage': s.STORAGES['default'], "
        "'db': s.DATABASES['default']['ENGINE']}, default=str))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MEDIA_S3", "REDIS"))}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_defaults_are_the_embedded_ones():
    current = settings_under({"DATABASE_URL": ""})
    assert current["q"]["orm"] == "default" and "redis" not in current["q"]
    assert current["storage"]["BACKEND"].endswith("FileSystemStorage")
    assert current["db"].endswith("sqlite3")


def test_redis_s3_and_postgresql_are_switched_on_by_the_environment():
    current = settings_under(
        {
            "REDIS_URL": "redis://queue.internal:6379/0",
            "MEDIA_S3_BUCKET": "labels",
            "MEDIA_S3_ENDPOINT_URL": "http://minio.internal:9000",
            "DATABASE_URL": "postgres://u:p@db.internal:5432/labelloop",
        }
    )
    assert current["q"]["redis"] == "redis://queue.internal:6379/0" and "orm" not in current["q"]
    assert current["storage"]["BACKEND"] == "storages.backends.s3.S3Storage"
    options = current["storage"]["OPTIONS"]
    assert (options["bucket_name"], options["endpoint_url"]) == (
        "labels",
        "http://minio.internal:9000",
    )
    assert options["querystring_auth"] is True and options["file_overwrite"] is False
    assert current["db"].endswith("postgresql")


def test_a_malformed_value_stops_start_up_with_its_name():
    with pytest.raises(subprocess.CalledProcessError) as failure:
        settings_under({"FEEDBACK_NEAR_DUPLICATE_SIMILARITY": "very"})
    assert "FEEDBACK_NEAR_DUPLICATE_SIMILARITY must be a number" in failure.value.stderr
