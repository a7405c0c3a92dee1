from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from labeling import services as labeling_services
from labeling.datasets import FASHION_MNIST_CLASSES, fashion_mnist_read

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def fashion():
    directory = Path(settings.LABELING["FASHION_MNIST_DIR"])
    if not directory.exists():
        pytest.fail("Fashion-MNIST missing: `make test` installs dataset-fashion-mnist")
    return fashion_mnist_read(directory, "test")


def fashion_uploads(fashion, class_names: list[str], per_class: int, skip: int = 0):
    """Real Fashion-MNIST images as uploads, `per_class` of each named class."""
    wanted = {FASHION_MNIST_CLASSES.index(name): name for name in class_names}
    taken = dict.fromkeys(wanted, 0)
    out = []
    for index in range(fashion.count):
        label = fashion.labels[index]
        if label in wanted and taken[label] < per_class + skip:
            taken[label] += 1
            if taken[label] > skip:
                out.append((SimpleUploadedFile(f"f{index}.png", fashion.png(index)), wanted[label]))
    return out


def labeled_project(project, owner, fashion, class_names, per_class, unlabeled_per_class=0):
    """Upload real images of `class_names` and label `per_class` of each truthfully."""
    classes = {
        n: labeling_services.label_class_create(project=project, name=n) for n in class_names
    }
    uploads = fashion_uploads(fashion, class_names, per_class)
    results = labeling_services.images_ingest(
        project=project, files=[u for u, _ in uploads], user=owner
    )
    from labeling.models import Image

    for (_, name), result in zip(uploads, results, strict=True):
        if result.status == "created":
            image = Image.objects.get(pk=result.image_id)
            labeling_services.annotation_create(
                image=image, label_class=classes[name], annotator=owner
            )
    if unlabeled_per_class:
        extra = fashion_uploads(fashion, class_names, unlabeled_per_class, skip=per_class)
        labeling_services.images_ingest(project=project, files=[u for u, _ in extra], user=owner)
    return classes


@pytest.fixture
def worker(transactional_db, media_root):
    """A real django-q2 worker process on the test database and media folder."""
    db = connection.settings_dict
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    url = f"postgres://{db['USER']}:{db['PASSWORD']}@{host}/{db['NAME']}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "MEDIA_ROOT": str(media_root),
        "Q_WORKERS": "1",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log = open(media_root.parent / "qcluster.log", "w+")  # noqa: SIM115 - read in teardown
    process = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    yield process
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    log.seek(0)
    print(log.read()[-3000:])


def wait_for(predicate, timeout: float = 240, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s")
