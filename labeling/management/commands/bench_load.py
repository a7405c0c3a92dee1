"""Many annotators at once against a large project, over loopback, on PostgreSQL.

Creates a temporary project of `--images` images (rows sharing one stored picture: the
queue and the label endpoints never read the file) and `--annotators` annotators with
API tokens, starts gunicorn on a free loopback port, and lets one thread per annotator
do "get next, label" (`POST .../queue/next/`, `POST .../images/<id>/annotations/`) in a
loop for `--seconds`. Server-side latency comes from gunicorn's access log (%(D)s, the
time spent on each request inside gunicorn); client-side latency, which adds the
queueing of a machine running clients and server together, is reported beside it.

At the end it checks that no image was served to two annotators (reservations outlast
the run) and that the stored labels equal the successful label requests.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import importlib.metadata
import io
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from PIL import Image as PILImage
from rest_framework.authtoken.models import Token

from labeling import services
from labeling.models import Annotation, Image, Project

ROOT = Path(settings.BASE_DIR)


class Command(BaseCommand):
    help = "Load-test the labeling API with many concurrent annotators (see the docstring)."

    def add_arguments(self, parser):
        parser.add_argument("--json", dest="json_path", required=True)
        parser.add_argument("--annotators", type=int, default=50)
        parser.add_argument("--images", type=int, default=100_000)
        parser.add_argument("--seconds", type=float, default=60.0)
        parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1) + 1)

    def handle(self, *args, **options):
        begun = time.monotonic()
        if connection.vendor != "postgresql":
            raise CommandError("bench_load measures PostgreSQL: set DATABASE_URL to one.")
        if options["annotators"] < 1 or options["images"] < 1 or options["seconds"] <= 0:
            raise CommandError("--annotators, --images and --seconds must be positive.")
        project, users, class_ids = self._setup(options["images"], options["annotators"])
        log = Path(tempfile.mkstemp(prefix="bench_load_", suffix=".log")[1])
        try:
            port = _free_port()
            server = self._serve(port, options["workers"], log)
            try:
                run = Run(port, project.pk, class_ids)
                tokens = [Token.objects.get_or_create(user=u)[0].key for u in users]
                run.warm_up(tokens[0], rounds=4 * options["workers"])
                started = time.monotonic()
                threads = [
                    threading.Thread(target=run.annotate, args=(t, started + options["seconds"], i))
                    for i, t in enumerate(tokens)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                elapsed = time.monotonic() - started
            finally:
                server.terminate()
                server.wait(timeout=30)
            report = self._report(run, project, log, elapsed, options)
        finally:
            self._cleanup(project, users)
            log.unlink(missing_ok=True)
        report.update(
            seconds=round(time.monotonic() - begun, 1),
            machine=machine(),
            command=command_line(self, options),
        )
        Path(options["json_path"]).write_text(json.dumps(report, indent=2) + "\n")
        for key, value in report.items():
            self.stdout.write(f"{key}: {value}")

    def _setup(self, count: int, annotators: int):
        started = time.monotonic()
        User = get_user_model()
        owner, _ = User.objects.get_or_create(username="bench-load-owner")
        project = services.project_create(name="bench_load (temporary)", user=owner)
        class_ids = [
            services.label_class_create(project=project, name=f"class {i}").pk for i in range(5)
        ]
        picture = io.BytesIO()
        PILImage.new("L", (28, 28), 128).save(picture, format="PNG")
        name = default_storage.save(
            f"projects/{project.pk}/images/bench.png", ContentFile(picture.getvalue())
        )
        rows = []
        for i in range(count):
            digest = hashlib.sha256(f"bench-load {project.pk} {i}".encode()).hexdigest()
            rows.append(
                Image(
                    project=project,
                    file=name,
                    thumbnail=name,
                    original_name=f"{i}.png",
                    content_hash=digest,
                    draw=Image.draw_for(digest),
                    width=28,
                    height=28,
                    priority=float(np.random.default_rng(i).random()),
                )
            )
        Image.objects.bulk_create(rows, batch_size=5000)
        users = []
        for i in range(annotators):
            user, _ = User.objects.get_or_create(username=f"bench-load-annotator-{i}")
            services.membership_set(project=project, username=user.username, role="annotator")
            users.append(user)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        self.stdout.write(
            f"setup: {count} images, {annotators} annotators in {time.monotonic() - started:.0f} s"
        )
        return project, users, class_ids

    def _serve(self, port: int, workers: int, log: Path) -> subprocess.Popen:
        db = connection.settings_dict
        url = (
            f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}"
        )
        env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING", "DEBUG": "false"}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        server = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "config.wsgi",
                "--bind", f"127.0.0.1:{port}",
                "--workers", str(workers),
                # Import the app (Django, torch) once before forking: workers are ready
                # when the port opens, and the measurement starts warm.
                "--preload",
                "--access-logfile", str(log),
                "--access-logformat", "%(m)s %(U)s %(s)s %(D)s",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return server
            except OSError:
                time.sleep(0.2)
        server.kill()
        raise CommandError("gunicorn did not start within 60 s.")

    def _report(self, run: Run, project: Project, log: Path, elapsed: float, options) -> dict:
        server_ms = []
        for line in log.read_text().splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[0] == "POST" and parts[1].startswith("/api/v1/"):
                server_ms.append(int(parts[3]) / 1000)
        stored = Annotation.objects.filter(
            image__project=project, action=Annotation.Action.LABEL
        ).count()
        served_twice = sum(1 for who in run.served.values() if len(who) > 1)

        def pct(values, q):
            return round(float(np.percentile(values, q)), 1) if values else None

        return {
            "annotators": options["annotators"],
            "images": options["images"],
            "load_seconds": round(elapsed, 1),
            "workers": options["workers"],
            "requests": len(run.client_ms),
            "errors": run.errors,
            "labels": run.labels,
            "p50_ms": pct(server_ms, 50),
            "p95_ms": pct(server_ms, 95),
            "p99_ms": pct(server_ms, 99),
            "client_p50_ms": pct(run.client_ms, 50),
            "client_p95_ms": pct(run.client_ms, 95),
            "client_p99_ms": pct(run.client_ms, 99),
            "requests_per_s": round(len(run.client_ms) / elapsed, 1),
            "served_twice": served_twice,
            "lost_labels": run.labels - stored,
        }

    def _cleanup(self, project: Project, users) -> None:
        Annotation.objects.filter(image__project=project).delete()
        Image.objects.filter(project=project).delete()
        default_storage.delete(f"projects/{project.pk}/images/bench.png")
        project.delete()
        Token.objects.filter(user__in=users).delete()


class Run:
    """The annotators' side: what each was served, labeled and how long it took."""

    def __init__(self, port: int, project_id: int, class_ids: list[int]):
        self.port = port
        self.base = f"/api/v1/projects/{project_id}"
        self.class_ids = class_ids
        self.lock = threading.Lock()
        self.served: dict[int, set[str]] = defaultdict(set)
        self.client_ms: list[float] = []
        self.labels = 0
        self.errors = 0

    def _post(self, token: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(
                "POST",
                path,
                body=json.dumps(body or {}),
                headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
            )
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        with self.lock:
            self.client_ms.append((time.monotonic() - started) * 1000)
        return response.status, (json.loads(data) if data else {})

    def warm_up(self, token: str, rounds: int) -> None:
        """Open each worker's database connection before the clock starts."""
        for _ in range(rounds):
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                conn.request("GET", f"{self.base}/", headers={"Authorization": f"Token {token}"})
                conn.getresponse().read()
            finally:
                conn.close()

    def annotate(self, token: str, deadline: float, seed: int) -> None:
        rng = np.random.default_rng(seed)
        while time.monotonic() < deadline:
            try:
                code, image = self._post(token, f"{self.base}/queue/next/")
                if code == 204:
                    return
                if code != 200:
                    raise RuntimeError(code)
                with self.lock:
                    self.served[image["id"]].add(token)
                label = int(rng.choice(self.class_ids))
                code, _ = self._post(
                    token, f"{self.base}/images/{image['id']}/annotations/", {"label_class": label}
                )
                if code != 201:
                    raise RuntimeError(code)
                with self.lock:
                    self.labels += 1
            except (OSError, RuntimeError, http.client.HTTPException, ValueError):
                with self.lock:
                    self.errors += 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# models_app.benchmarks has the same two for the learner's benches; labeling imports
# nothing from models_app, so this bench keeps its own.
def machine() -> dict:
    cpu_model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model or platform.processor() or None,
        "device": "cpu",  # no model runs in this benchmark
        "torch": importlib.metadata.version("torch"),
        "python": platform.python_version(),
    }


def command_line(command: BaseCommand, options: dict) -> str:
    """`python manage.py bench_load` with every option as given or defaulted."""
    base = {a.dest for a in BaseCommand().create_parser("manage.py", "base")._actions}
    parts = ["python", "manage.py", "bench_load"]
    for action in command.create_parser("manage.py", "bench_load")._actions:
        if action.dest not in base and action.option_strings and action.dest in options:
            parts += [max(action.option_strings, key=len), shlex.quote(str(options[action.dest]))]
    return " ".join(parts)
