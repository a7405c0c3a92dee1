"""`make run` as a user runs it: it serves the login page, prints a working admin
password once, and Ctrl-C stops the web server and the worker."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.smoke


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_with(marker: str) -> list[int]:
    """Pids whose environment carries `marker` (our private DATA_DIR)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


def make_run_start(data_dir: Path):
    """`make run` as a user starts it, on a free port with its own DATA_DIR (SQLite,
    the ORM broker) and no test settings: (process, its output as it comes, the base URL,
    the environment marker of its processes)."""
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")
    }
    env["DATA_DIR"] = str(data_dir)
    process = subprocess.Popen(
        ["make", "run", f"PORT={port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    process.reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    process.reader.start()
    return process, output, f"http://127.0.0.1:{port}", f"DATA_DIR={env['DATA_DIR']}"


def test_make_run_serves_the_login_page_and_stops_on_ctrl_c(tmp_path):
    started = time.monotonic()
    process, output, base, marker = make_run_start(tmp_path / "data")
    try:
        body = None
        while time.monotonic() - started < 120 and process.poll() is None:
            try:
                with urllib.request.urlopen(f"{base}/accounts/login/", timeout=2) as response:
                    body = response.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert body is not None, "".join(output)
        print(f"make run served the login page after {time.monotonic() - started:.1f}s")
        assert "Log in" in body

        with urllib.request.urlopen(f"{base}/static/css/app.css", timeout=5) as css:
            assert css.status == 200

        password = re.search(r"password: (\S+)", "".join(output)).group(1)
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        page = opener.open(f"{base}/accounts/login/").read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode(
            {"username": "admin", "password": password, "csrfmiddlewaretoken": token}
        ).encode()
        landed = opener.open(urllib.request.Request(f"{base}/accounts/login/", data=form))
        assert landed.url == f"{base}/", "the printed admin password did not log in"

        assert len(processes_with(marker)) >= 3  # make, the server and the worker at least
    finally:
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        try:
            # The worker finishes the task in hand first; on a loaded machine that
            # (importing torch, say) has taken over 45 s.
            process.wait(timeout=90)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert processes_with(marker) == [], "the server or the worker outlived Ctrl-C"
    process.reader.join(timeout=5)
    log = "".join(output)
    assert "Q Cluster" in log and "has stopped" in log
