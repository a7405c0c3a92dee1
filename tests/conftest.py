from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from labeling import services
from labeling.datasets import fashion_mnist_read
from labeling.models import Image, Membership
from tests.factories import UserFactory, image_upload
from tests.make_run import ctrl_c_as_in_a_terminal

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Hashing a password the production way takes most of a second here, and the
    personas below make four users per test: a cheap hasher keeps the suite quick.
    Processes the tests start (make run, gunicorn) hash their own users as usual."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def owner(db):
    return UserFactory(username="olivia-owner")


@pytest.fixture
def reviewer(db):
    return UserFactory(username="rita-reviewer")


@pytest.fixture
def annotator(db):
    return UserFactory(username="anna-annotator")


@pytest.fixture
def outsider(db):
    return UserFactory(username="oscar-outsider")


@pytest.fixture
def project(owner, reviewer, annotator):
    project = services.project_create(name="Pets", user=owner)
    services.membership_set(project=project, username=reviewer.username, role="reviewer")
    services.membership_set(project=project, username=annotator.username, role="annotator")
    return project


@pytest.fixture
def other_project(outsider):
    """A project the personas above do not belong to; `outsider` owns it."""
    return services.project_create(name="Someone else's", user=outsider)


@pytest.fixture
def classes(project):
    return [
        services.label_class_create(project=project, name=name) for name in ("cat", "dog", "bird")
    ]


def no_index_scans() -> None:
    """For the rest of the test's transaction, PostgreSQL reads tables by scan and sort:
    an index ending in id meets ties in id order by itself, a scan meets them in the
    order the rows were last written. Tests of a query's tie-break by id use it."""
    with connection.cursor() as cursor:
        for scan in ("indexscan", "indexonlyscan", "bitmapscan"):
            cursor.execute(f"SET LOCAL enable_{scan} = off")


def add_images(project, user, count: int, start: int = 0) -> list[Image]:
    results = services.images_ingest(
        project=project, files=[image_upload(start + i) for i in range(count)], user=user
    )
    assert all(r.status == "created" for r in results), results
    return list(Image.objects.filter(pk__in=[r.image_id for r in results]).order_by("id"))


@pytest.fixture
def images(project, owner):
    return add_images(project, owner, 6)


def training_labels(project, user, classes, start: int = 900) -> list[Image]:
    """One labeled image of each class in the training split, so that a retrain may be
    asked for (one that cannot succeed is refused). The split is set outright: which
    split a label lands in is a hash draw."""
    images = add_images(project, user, len(classes), start=start)
    for image, label_class in zip(images, classes, strict=True):
        services.annotation_create(image=image, label_class=label_class, annotator=user)
    Image.objects.filter(pk__in=[i.pk for i in images]).update(split=Image.Split.TRAIN)
    return images


@pytest.fixture
def trainable(project, owner, classes):
    training_labels(project, owner, classes[:2])
    return project


@pytest.fixture
def api():
    def client_for(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return client_for


@pytest.fixture
def roles():
    return Membership.Role


def qcluster_start(
    media_root, name: str = "qcluster", *, launcher: str | None = None, **env_extra
) -> subprocess.Popen:
    """A real django-q2 cluster process on the test database and media folder; with
    `launcher`, a test module run with `python -m` that starts the cluster itself
    (tests/barrier_worker.py)."""
    db = connection.settings_dict
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    url = f"postgres://{db['USER']}:{db['PASSWORD']}@{host}/{db['NAME']}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "MEDIA_ROOT": str(media_root),
        "Q_WORKERS": "1",
        "LOG_LEVEL": "WARNING",
        **env_extra,
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log = open(media_root.parent / f"{name}.log", "w+")  # noqa: SIM115 - read in qcluster_stop
    process = subprocess.Popen(
        [sys.executable, "-m", launcher] if launcher else [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=ctrl_c_as_in_a_terminal,
    )
    process.log = log
    return process


def qcluster_stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    process.log.seek(0)
    print(process.log.read()[-3000:])


@pytest.fixture
def worker(transactional_db, media_root):
    process = qcluster_start(media_root)
    yield process
    qcluster_stop(process)


@pytest.fixture(scope="session")
def fashion():
    directory = Path(settings.LABELING["FASHION_MNIST_DIR"])
    if not directory.exists():
        pytest.fail("Fashion-MNIST missing: `make test` installs dataset-fashion-mnist")
    return fashion_mnist_read(directory, "test")
