"""A django-q2 cluster whose training stops for good at a known step (tests only).

`python -m tests.barrier_worker` runs `manage.py qcluster` after wrapping one function
that `models_app.services.versions` calls while training (`BARRIER_STEP`, a name in
that module): the first call writes `BARRIER_FILE` and then never returns, so a test
can wait for the file and kill the cluster at exactly that step, whatever the speed of
the machine. Workers are forked from this process (django-q2 forks where it can), so
they inherit the wrapper. Production code knows nothing of it.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path


def hold_at(step: str, flag: Path) -> None:
    from models_app.services import versions

    original = getattr(versions, step)

    def held(*args, **kwargs):
        flag.write_text(f"{step} reached in process {os.getpid()}\n")
        threading.Event().wait()  # until the test kills the process

    held.__wrapped__ = original
    setattr(versions, step, held)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    hold_at(os.environ["BARRIER_STEP"], Path(os.environ["BARRIER_FILE"]))
    from django.core.management import execute_from_command_line

    execute_from_command_line([sys.argv[0], "qcluster"])


if __name__ == "__main__":
    main()
