"""Several worker processes against one PostgreSQL, with the database or Redis as the
broker: every image is embedded exactly once."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
from django_q.conf import Conf
from django_q.models import Task

from models_app import services
from models_app.models import Embedding
from tests.conftest import add_images, qcluster_start, qcluster_stop
from tests.fashion import wait_for


@pytest.fixture
def redis_url():
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server missing: `make test` installs Debian's redis-server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(params=["orm", "redis"])
def broker(request, monkeypatch):
    """The broker this process enqueues on; the workers get the same through the env."""
    if request.param == "orm":
        return {}
    url = request.getfixturevalue("redis_url")
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", url)
    return {"REDIS_URL": url}


def test_two_workers_embed_every_image_exactly_once(
    broker, transactional_db, media_root, project, owner
):
    # The upload itself enqueues the embedding (on commit); the workers then pass
    # chunks of 3 along, two in flight at a time.
    chunks = {"LEARNER_EMBED_CHUNK": "3", "LEARNER_EMBED_TASKS": "2"}
    workers = [qcluster_start(media_root, f"qcluster-{i}", **broker, **chunks) for i in range(2)]
    try:
        add_images(project, owner, 24)
        wait_for(
            lambda: (
                Embedding.objects.filter(image__project=project, vector__isnull=False).count() == 24
                and Task.objects.filter(func="models_app.tasks.embed_chunk").count() == 8
            ),
            timeout=300,
        )
    finally:
        for worker in workers:
            qcluster_stop(worker)
    assert Embedding.objects.filter(image__project=project).count() == 24
    tasks = Task.objects.filter(func="models_app.tasks.embed_chunk")
    # Each task reports how many vectors it computed: 24 in all, so none twice.
    assert sum(task.result for task in tasks) == 24 and all(task.success for task in tasks)


def test_concurrent_requests_queue_one_training_per_project(
    transactional_db, trainable, project, owner
):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from models_app.models import ModelVersion

    def request(_):
        try:
            return services.model_version_request(project=project, trigger="api").pk
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = set(pool.map(request, range(16)))
    assert len(ids) == 1
    assert ModelVersion.objects.filter(project=project).count() == 1
