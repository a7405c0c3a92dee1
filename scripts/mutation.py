"""`make mutation`: mutation testing of the learner's logic and the queue, split and
archive code with mutmut 3, and the score it gives (docs/mutation.md).

    python scripts/mutation.py                 # fresh run over SCOPE, then the score
    python scripts/mutation.py --report        # the score of the last run only
    python scripts/mutation.py 'models_app.ml.metrics.*'   # a narrower scope, fresh

Needs DATABASE_URL (PostgreSQL), as `make test` does. mutmut copies the code into
mutants/ and mutates only that copy; the working tree is never touched. Prints
`mutation score: K of N killed` and every survivor with its diff, and exits non-zero
when fewer than MUTATION_MIN percent (default 80) are killed.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# mutmut names a mutant <module>.x_<function>__mutmut_<n> (methods: xǁClassǁmethod).
# The scope is chosen by function, so a file's other functions are left alone; why
# each part is in or out is in docs/mutation.md.
SCOPE = [
    "models_app.ml.metrics.*",
    "models_app.ml.preprocess.*",
    "models_app.ml.quality.*",
    "models_app.ml.strategies.*",
    "models_app.ml.head.*",
    "models_app.ml.backbone.x_best_device__*",
    "models_app.ml.backbone.x_load_by_position__*",
    "models_app.ml.backbone.x_load_backbone__*",
    "labeling.services.queue.*",
    "labeling.services.annotations.x_split_for__*",
    "labeling.models.xǁImageǁdraw_for__*",
    "labeling.models.xǁImageǁsecond_draw_for__*",
    "models_app.services.splits.*",
    "models_app.archive.*",
    "models_app.archive_tags.*",
    "models_app.archive_numbers.*",
]
SLOTS = 8  # as many as scripts/mutation_pytest.py may hand out
KILLED = {"killed", "timeout", "caught by type check"}
DOC = ROOT / "docs" / "mutation.md"


def test_databases_drop(url: str) -> None:
    """The per-slot test databases (see scripts/mutation_pytest.py) are built afresh each
    run, so a model changed since the last run cannot meet a stale schema."""
    import psycopg

    name = url.rsplit("/", 1)[-1].split("?", 1)[0]
    # Through the server's maintenance database, as Django's test runner does.
    maintenance = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(maintenance, autocommit=True) as connection:
        for slot in range(SLOTS):
            connection.execute(f'DROP DATABASE IF EXISTS "test_{name}_mut{slot}" WITH (FORCE)')
            # The next session in the slot builds it again (scripts/mutation_pytest.py).
            (ROOT / "mutants" / f".mutation-slot-{slot}.ready").unlink(missing_ok=True)


def mutmut_run(scope: list[str], children: int) -> int:
    env = {
        **os.environ,
        # Only the plugins the tests need (see [tool.mutmut] pytest_add_cli_args): the
        # entry-point scan costs more than a short test in each mutant's session.
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        # Two sessions at once on two cores: one compute thread each.
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(children), *scope]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


def results(scope: list[str]) -> dict[str, tuple[str, str]]:
    """Every mutant in `scope` from mutmut's files: name -> (status, source path)."""
    from mutmut.stats import status_by_exit_code

    found = {}
    for meta in sorted((ROOT / "mutants").rglob("*.py.meta")):
        source = str(meta.relative_to(ROOT / "mutants"))[: -len(".meta")]
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in scope):
                found[name] = (status_by_exit_code[code], source)
    return found


def report(scope: list[str], minimum: float) -> int:
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    found = results(scope)
    if not found:
        print("no mutation results: run `make mutation` first")
        return 2
    listed = DOC.read_text() if DOC.exists() else ""
    survivors = sorted(name for name, (status, _) in found.items() if status not in KILLED)
    lines = []
    for name in (n for n in survivors if found[n][0] != "not checked"):
        status, source = found[name]
        note = "listed in docs/mutation.md" if name in listed else "NOT LISTED"
        lines.append(f"\n## {name} ({status}; {note})")
        try:
            lines.append(get_diff_for_mutant(name, path=source))
        except Exception as error:  # a diff is a courtesy; the status stands
            lines.append(f"(no diff: {error})")
    (ROOT / "mutants" / "survivors.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    killed = len(found) - len(survivors)
    by_status: dict[str, int] = {}
    for status, _ in found.values():
        by_status[status] = by_status.get(status, 0) + 1
    unlisted = sum(1 for name in survivors if name not in listed)
    unchecked = by_status.get("not checked", 0)
    print()
    print("by status: " + ", ".join(f"{s} {n}" for s, n in sorted(by_status.items())))
    print(
        f"not killed: {len(survivors)} ({unlisted} not listed in docs/mutation.md), "
        f"of which {unchecked} not checked"
    )
    if unchecked:
        print(f"the run stopped early: {killed} of {len(found) - unchecked} checked were killed")
    print(f"mutation score: {killed} of {len(found)} killed")
    share = 100.0 * killed / len(found)
    print(
        f"{share:.1f}% killed on {datetime.now(UTC):%Y-%m-%d}; survivors in mutants/survivors.txt"
    )
    return 0 if share >= minimum else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scope", nargs="*", help="mutant name patterns (default: SCOPE)")
    parser.add_argument("--report", action="store_true", help="score the last run only")
    parser.add_argument("--children", type=int, default=int(os.environ.get("MUTATION_JOBS", 2)))
    args = parser.parse_args()
    scope = args.scope or SCOPE
    minimum = float(os.environ.get("MUTATION_MIN", 80))
    if args.report:
        return report(scope, minimum)

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        print("DATABASE_URL must name the PostgreSQL server (make mutation sets it)")
        return 2
    os.chdir(ROOT)
    test_databases_drop(url)
    shutil.rmtree(ROOT / "mutants", ignore_errors=True)
    started = time.monotonic()
    code = mutmut_run(scope, args.children)
    minutes = (time.monotonic() - started) / 60
    print(f"\nmutmut run exited {code} after {minutes:.1f} min")
    test_databases_drop(url)
    if code != 0:
        return code
    return report(scope, minimum)


if __name__ == "__main__":
    sys.exit(main())
