"""Starting `make run` as a user does, for the smoke tests (tests/test_first_minutes.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ctrl_c_as_in_a_terminal() -> None:
    """For `preexec_fn`: Ctrl-C (SIGINT) back to its default in the child. A child
    inherits an ignored SIGINT, and django-q2 ignores it in any process that has built
    its Sentinel (tests on the same pytest worker do), so `make run` then ignored our
    Ctrl-C and the test waited 90 s for nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
        preexec_fn=ctrl_c_as_in_a_terminal,
    )
    output: list[str] = []
    process.reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    process.reader.start()
    return process, output, f"http://127.0.0.1:{port}", f"DATA_DIR={env['DATA_DIR']}"
