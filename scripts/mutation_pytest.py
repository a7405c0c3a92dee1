"""A pytest plugin for `make mutation` only (loaded with `-p scripts.mutation_pytest` from
pyproject's [tool.mutmut]); `make test` never loads it.

mutmut runs one short pytest session per mutant, two at a time, each forked from one
process that has imported everything. What keeps those sessions quick and apart:

- each session takes a free slot (a file lock) and with it its own test database, so
  two mutants' tests never wait on each other's rows or flush each other's tables;
- the first session in a slot builds its test database; the later ones only point
  Django at it (pytest-django's setup checks every table again: a third of a short
  session);
- the tests of a mutant run in the order most likely to stop early: first those that
  killed the most earlier mutants of the same function in this run (each session
  appends its killing test to `.mutation-kills`), then of the same module, then the
  fastest first (durations from mutmut's own stats);
- the forking process, once collection is done, runs what the libraries load lazily on
  first use (torch's optimisers pull in some 900 modules, 1.6 s of CPU) and freezes its
  objects, so the garbage collector never walks (and copies) the inherited heap.
"""

from __future__ import annotations

import fcntl
import gc
import json
import os
from pathlib import Path

import pytest

SLOTS = 8
_held = None
_slot: int | None = None


def ready_marker(slot: int) -> Path:
    """Exists once slot `slot`'s test database is built (scripts/mutation.py removes it
    with the database at the start of a run)."""
    return Path.cwd() / f".mutation-slot-{slot}.ready"


def _claim_slot() -> int:
    global _held
    for slot in range(SLOTS):
        handle = open(Path.cwd() / f".mutation-slot-{slot}.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _held = handle  # released when this process ends
        global _slot
        _slot = slot
        return slot
    raise RuntimeError(f"more than {SLOTS} mutant sessions at once")


def pytest_configure(config: pytest.Config) -> None:
    if config.option.collectonly:
        return
    # pytest-django appends "_<TOX_PARALLEL_ENV>" to the test database's name.
    os.environ["TOX_PARALLEL_ENV"] = f"mut{_claim_slot()}"


@pytest.fixture(scope="session")
def django_db_setup(request, django_test_environment, django_db_blocker):
    """pytest-django's fixture of that name, run only by a slot's first session; later
    sessions find the database built and only point their connections at it."""
    from django.conf import settings
    from django.db import connections

    request.getfixturevalue("django_db_modify_db_settings")  # the slot's name suffix
    marker = ready_marker(_slot)
    if not marker.exists():
        from django.test.utils import setup_databases
        from pytest_django.fixtures import _disable_migrations

        _disable_migrations()  # --no-migrations: the tables come from the models
        with django_db_blocker.unblock():
            setup_databases(verbosity=0, interactive=False, keepdb=True)
        marker.touch()
        yield
        return
    for connection in connections.all():
        name = connection.creation._get_test_db_name()
        connection.close()
        connection.settings_dict["NAME"] = settings.DATABASES[connection.alias]["NAME"] = name
    yield


def _transactional(item: pytest.Item) -> bool:
    marker = item.get_closest_marker("django_db")
    if marker and (marker.kwargs.get("transaction") or (marker.args and marker.args[0])):
        return True
    return "transactional_db" in getattr(item, "fixturenames", ())


KILLS = Path(".mutation-kills")  # one line per killed mutant: "<function> <test id>"


def _mutant_function() -> str | None:
    """The function whose mutant this session tests (None in mutmut's own passes)."""
    name = os.environ.get("MUTANT_UNDER_TEST", "")
    return name.rsplit("__mutmut_", 1)[0] if "__mutmut_" in name else None


def _kills(function: str) -> tuple[dict[str, int], dict[str, int]]:
    """How often each test killed a mutant of `function`, and of its module, so far."""
    module = function.rsplit(".", 1)[0] + "."
    by_function: dict[str, int] = {}
    by_module: dict[str, int] = {}
    if not KILLS.exists():
        return by_function, by_module
    for line in KILLS.read_text().splitlines():
        killed, _, test = line.partition(" ")
        if killed.startswith(module):
            by_module[test] = by_module.get(test, 0) + 1
            if killed == function:
                by_function[test] = by_function.get(test, 0) + 1
    return by_function, by_module


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    function = _mutant_function()
    if function and report.failed:
        # One short write with O_APPEND: two sessions' lines never interleave.
        descriptor = os.open(KILLS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, f"{function} {report.nodeid}\n".encode())
        finally:
            os.close(descriptor)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    stats = Path("mutmut-stats.json")
    if not stats.exists():
        return
    durations = json.loads(stats.read_text()).get("duration_by_test", {})
    function = _mutant_function()
    by_function, by_module = _kills(function) if function else ({}, {})
    # Tests that commit and flush stay after the others, as pytest-django orders them.
    items.sort(
        key=lambda item: (
            _transactional(item),
            -by_function.get(item.nodeid, 0),
            -by_module.get(item.nodeid, 0),
            durations.get(item.nodeid, 0.0),
        )
    )


def _warm_up() -> None:
    """First calls of the libraries the learner uses, on throwaway data."""
    import numpy as np
    import torch
    from sklearn.cluster import KMeans
    from sklearn.neighbors import NearestNeighbors

    model = torch.nn.Linear(2, 2)
    for optimiser in (torch.optim.AdamW(model.parameters()), torch.optim.LBFGS([model.bias])):

        def closure(optimiser=optimiser):
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(torch.ones(2, 2)), torch.tensor([0, 1]))
            loss.backward()
            return loss

        optimiser.step(closure)
    points = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    KMeans(n_clusters=2, n_init=1, random_state=0).fit(points)
    NearestNeighbors(n_neighbors=2).fit(points).kneighbors(points)


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.option.collectonly:
        _warm_up()
        gc.collect()
        gc.freeze()
