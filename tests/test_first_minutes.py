"""The first minutes of a real user, through `make run` and the REST API.

`make run` serves the login page and its static files, prints an admin password that
logs in through the login form, and runs the web server and a worker. An owner uploads
a class-sorted folder of transparent PNGs (all of one class, then the next), labels at
once, before any embedding exists, retrains, predicts, and scans for mistakes. What a
reviewer checks by hand: the queue does not serve upload order, the first version trains
on nearly every class, thumbnails of transparent images are not black, predictions and
the review scan work in the real worker, and no background task failed. Ctrl-C stops
the web server and the worker."""

from __future__ import annotations

import http.cookiejar
import io
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest
from PIL import Image as PILImage

from labeling.datasets import FASHION_MNIST_CLASSES
from tests.http_api import ApiClient
from tests.make_run import make_run_start, processes_with

pytestmark = pytest.mark.smoke

# Five garments whose shapes differ; the colour is drawn per image, so only the shape
# tells the classes apart.
CLASS_NAMES = ["Trouser", "Pullover", "Sandal", "Bag", "Ankle boot"]
PER_CLASS = 35
LABELS = 60
SIDE = 96


def transparent_png(fashion, index: int, rng: np.random.Generator) -> bytes:
    """A Fashion-MNIST garment as a coloured object on a fully transparent background:
    alpha is the garment's mask, and transparent pixels are black (0, 0, 0, 0), as many
    exporters write them, so an image decoded without compositing comes out black."""
    grey = np.asarray(PILImage.open(io.BytesIO(fashion.png(index))).convert("L"), dtype=np.float32)
    colour = rng.uniform(40, 230, size=3)
    shade = 0.4 + 0.6 * grey / 255.0
    rgb = shade[..., None] * colour
    alpha = np.clip(grey * 4, 0, 255)
    rgb[alpha == 0] = 0
    rgba = np.dstack([rgb, alpha]).astype(np.uint8)
    image = PILImage.fromarray(rgba, "RGBA").resize((SIDE, SIDE), PILImage.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def indices_of(fashion, name: str, count: int, skip: int = 0) -> list[int]:
    label = FASHION_MNIST_CLASSES.index(name)
    found = [i for i in range(fashion.count) if fashion.labels[i] == label]
    return found[skip : skip + count]


def wait_until(predicate, timeout: float, every: float = 1.0, what: str = "it"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class ProgressWatch(threading.Thread):
    """Polls GET .../progress/ every second and notes when embeddings appear."""

    def __init__(self, api: ApiClient, project_id: int, started: float, expected: int):
        super().__init__(daemon=True)
        self.api, self.project_id, self.started = api, project_id, started
        self.expected = expected
        self.first_embedded: float | None = None
        self.all_embedded: float | None = None
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(1.0):
            try:
                reply = self.api.get(f"/api/v1/projects/{self.project_id}/progress/")
            except OSError:
                continue
            if reply.status != 200:
                continue
            progress = reply.json()
            now = time.monotonic() - self.started
            if progress["embedded"] and self.first_embedded is None:
                self.first_embedded = now
            if progress["embedded"] >= self.expected:
                self.all_embedded = now
                return


def form_login(base: str, username: str, password: str) -> str:
    """Log in through the HTML login form as a browser does; the URL it lands on."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    page = opener.open(f"{base}/accounts/login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = {"username": username, "password": password, "csrfmiddlewaretoken": token}
    data = urllib.parse.urlencode(form).encode()
    return opener.open(urllib.request.Request(f"{base}/accounts/login/", data=data)).url


def test_first_minutes_of_a_user_through_the_api(tmp_path, fashion):
    data_dir = tmp_path / "data"
    began = time.monotonic()
    process, output, base, marker = make_run_start(data_dir)
    anon = ApiClient(base)
    facts: dict[str, object] = {}
    rng = np.random.default_rng(0)
    watch = None
    try:
        login_page = None
        while time.monotonic() - began < 240 and process.poll() is None:
            try:
                if (reply := anon.get("/accounts/login/")).status == 200:
                    login_page = reply.body.decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert process.poll() is None and login_page is not None, "".join(output)
        facts["serving_after_s"] = round(time.monotonic() - began, 1)
        assert "Log in" in login_page
        assert anon.get("/static/css/app.css").status == 200
        assert len(processes_with(marker)) >= 3  # make, the server and the worker at least

        # 1. The admin password make run printed logs in through the form, and gets an
        # API token.
        password = re.search(r"password: (\S+)", "".join(output)).group(1)
        assert form_login(base, "admin", password) == f"{base}/", "the password did not log in"
        reply = anon.post("/api/v1/auth/token/", {"username": "admin", "password": password})
        assert reply.status == 200, reply.body
        api = ApiClient(base, token=reply.json()["token"])

        # 2. A project, its classes, and a class-sorted folder uploaded in class order.
        reply = api.post("/api/v1/projects/", {"name": "Garments", "description": "smoke"})
        assert reply.status == 201, reply.body
        project_id = reply.json()["id"]
        p = f"/api/v1/projects/{project_id}"
        class_ids = {}
        for name in CLASS_NAMES:
            reply = api.post(f"{p}/classes/", {"name": name})
            assert reply.status == 201, reply.body
            class_ids[name] = reply.json()["id"]

        truth: dict[int, str] = {}  # image id -> its class name
        uploaded = time.monotonic()
        watch = ProgressWatch(api, project_id, uploaded, expected=PER_CLASS * len(CLASS_NAMES))
        watch.start()
        for name in CLASS_NAMES:
            files = [
                ("files", f"{name.replace(' ', '_').replace('/', '_')}_{i}.png", blob)
                for i, blob in enumerate(
                    transparent_png(fashion, index, rng)
                    for index in indices_of(fashion, name, PER_CLASS)
                )
            ]
            reply = api.post(f"{p}/images/", files=files)
            assert reply.status == 201, reply.body
            body = reply.json()
            assert body["created"] == PER_CLASS, body
            for result in body["results"]:
                truth[result["image_id"]] = name
        facts["upload_s"] = round(time.monotonic() - uploaded, 1)

        # 3. Label at once, as an annotator: next image, its true class, again.
        served: list[str] = []
        label_times = []
        for _ in range(LABELS):
            t0 = time.monotonic()
            reply = api.post(f"{p}/queue/next/")
            assert reply.status == 200, (reply.status, reply.body)
            image = reply.json()
            name = truth[image["id"]]
            served.append(name)
            reply = api.post(
                f"{p}/images/{image['id']}/annotations/", {"label_class": class_ids[name]}
            )
            assert reply.status == 201, (reply.status, reply.body)
            label_times.append(time.monotonic() - t0)
        facts["labeling_s"] = round(time.monotonic() - uploaded - facts["upload_s"], 1)
        facts["label_request_pair_p50_ms"] = round(1000 * float(np.median(label_times)))
        facts["label_request_pair_max_ms"] = round(1000 * max(label_times))
        progress = api.get(f"{p}/progress/").json()
        facts["embedded_when_labeling_ended"] = progress["embedded"]
        # Held-out labels should come from test and validation alike (20% / 10% of draws).
        facts["labeled_by_split"] = progress["labeled"]
        first_30 = served[:30]
        facts["classes_among_first_30"] = {n: first_30.count(n) for n in CLASS_NAMES}
        facts["served_order_first_30"] = [CLASS_NAMES.index(n) for n in first_30]

        reply = api.post(f"{p}/model/retrain/")
        assert reply.status == 202, reply.body
        facts["retrain_returned_version"] = reply.json()["number"]
        trained = time.monotonic()

        def versions():
            return api.get(f"{p}/model/versions/").json()

        wait_until(
            lambda: (vs := versions()) and all(v["status"] in ("succeeded", "failed") for v in vs),
            timeout=240,
            what="the model versions to finish",
        )
        facts["training_wait_s"] = round(time.monotonic() - trained, 1)
        watch.join(timeout=1)
        facts["first_embedding_done_s"] = watch.first_embedded
        facts["all_embedded_s"] = watch.all_embedded
        all_versions = sorted(versions(), key=lambda v: v["number"])
        first = all_versions[0]
        facts["versions"] = [
            {
                "number": v["number"],
                "status": v["status"],
                "trigger": v["trigger"],
                "labels_total": v["labels_total"],
                "error": v["error"],
                "duration_s": v["duration_seconds"],
                "test_accuracy": (v["metrics"].get("test") or {}).get("accuracy"),
            }
            for v in all_versions
        ]
        facts["first_version_label_counts"] = {
            c["name"]: {s: c[s] for s in ("train", "val", "test")}
            for c in first["label_counts"].values()
        }

        # 4a. Thumbnails of transparent images: white where the image is transparent.
        listing = api.get(f"{p}/images/?page_size=500").json()["results"]
        one_per_class = {truth[i["id"]]: i for i in listing if i["id"] in truth}
        dark_corners = {}
        for name, image in one_per_class.items():
            reply = api.get(image["thumbnail_url"])
            assert reply.status == 200, reply.body
            thumb = PILImage.open(io.BytesIO(reply.body)).convert("RGB")
            w, h = thumb.size
            corners = [
                thumb.getpixel(xy) for xy in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1))
            ]
            if min(min(c) for c in corners) < 200:
                dark_corners[name] = corners
        facts["thumbnails_with_dark_corners"] = dark_corners

        # 4b. A prediction for a new transparent PNG, answered by the active version.
        active = next((v for v in all_versions if v["is_active"]), None)
        new_png = transparent_png(fashion, indices_of(fashion, "Bag", 1, skip=PER_CLASS)[0], rng)
        reply = api.post(
            f"{p}/predictions/", files=[("files", "new_bag.png", new_png)], fields={"top_k": "2"}
        )
        assert reply.status in (200, 202), (reply.status, reply.body)
        prediction = reply.json()["predictions"][0]
        if prediction["status"] == "pending":
            prediction = wait_until(
                lambda: (
                    (r := api.get(f"{p}/predictions/{prediction['id']}/").json())["status"]
                    != "pending"
                    and r
                ),
                timeout=60,
                what="the prediction",
            )
        facts["prediction"] = {
            "status": prediction["status"],
            "version": prediction["model_version"],
            "class": prediction["predicted_class_name"],
            "confidence": prediction["confidence"],
            "error": prediction["error"],
        }

        # 4c. A review scan requested through the API finishes.
        scan_started = time.monotonic()
        reply = api.post(f"{p}/review/scan/")
        assert reply.status == 202, reply.body
        scan = wait_until(
            lambda: (
                (r := api.get(f"{p}/review/scan/")).status == 200
                and r.json()["status"] in ("succeeded", "failed")
                and r.json()
            ),
            timeout=180,
            what="the review scan",
        )
        facts["scan"] = {
            "status": scan["status"],
            "seconds": round(time.monotonic() - scan_started, 1),
            "labeled": scan["labeled"],
            "issues": scan["issues"],
            "error": scan["error"],
        }
    finally:
        if watch is not None:
            watch.stop.set()
        # 5. Ctrl-C, as in the terminal.
        os.killpg(process.pid, signal.SIGINT)
        stuck = None
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            # Say what did not stop, and what `make run` printed last, before killing it.
            pids = ",".join(map(str, processes_with(marker))) or "0"
            ps = subprocess.run(
                ["ps", "-o", "pid,ppid,pgid,stat,etime,wchan:20,args", "-p", pids],
                capture_output=True,
                text=True,
            ).stdout
            stuck = f"Ctrl-C did not stop make run in 90 s:\n{ps}\n{''.join(output)[-4000:]}"
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        assert stuck is None, stuck
        deadline = time.monotonic() + 15
        while processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.3)
        process.reader.join(timeout=5)
        facts["total_s"] = round(time.monotonic() - began, 1)
        for key, value in facts.items():
            print(f"FACT {key}: {value}")

    leftovers = processes_with(marker)
    assert leftovers == [], f"processes outlived Ctrl-C: {leftovers}"
    log = "".join(output)
    assert "Q Cluster" in log and "has stopped" in log, log[-3000:]
    server_errors = re.findall(r'"[A-Z]+ (\S+) HTTP/[\d.]+" 5\d\d', log)
    print(f"FACT server_errors: {server_errors}")
    print(f"FACT tracebacks_in_log: {log.count('Traceback')}")

    with sqlite3.connect(data_dir / "db.sqlite3") as db:
        failed = db.execute(
            "SELECT func, substr(result, 1, 500) FROM django_q_task WHERE success = 0"
        ).fetchall()
        done = db.execute("SELECT func, count(*) FROM django_q_task GROUP BY func").fetchall()
    print(f"FACT django_q_tasks: {dict(done)}")
    print(f"FACT failed_tasks: {failed}")

    assert len(set(first_30)) >= 4, f"first 30 served: {facts['classes_among_first_30']}"
    assert first["status"] == "succeeded", first
    trained_on = [c for c in first["label_counts"].values() if c["train"] > 0]
    assert len(first["class_ids"]) >= 0.8 * len(CLASS_NAMES), facts["first_version_label_counts"]
    assert len(trained_on) >= 0.8 * len(CLASS_NAMES), facts["first_version_label_counts"]
    assert dark_corners == {}, f"thumbnails not composited on white: {dark_corners}"
    assert active is not None
    assert prediction["status"] == "predicted", prediction
    assert prediction["model_version"] == active["number"], (prediction, active)
    assert scan["status"] == "succeeded", scan
    assert failed == [], failed
    assert server_errors == [], server_errors
