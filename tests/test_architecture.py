"""The house rules, checked: the layers import downwards only, torch and timm stay in
models_app/ml (which knows nothing of Django), benchmarks share code through the
harness rather than through each other's commands, no hand-written module grows
past what a reader takes in at once, and the web process starts without the learner's
heavy libraries."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("config", "labeling", "models_app", "feedback")
MAX_LINES = 600


def sources():
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", list(sources()), ids=relative)
def test_the_module_follows_the_house_rules(path):
    found = imports(path)
    where = relative(path)
    heavy = {name for name in found if name.split(".")[0] in ("torch", "timm", "torchvision")}
    inside_ml = where.startswith("models_app/ml/")
    assert inside_ml or not heavy, f"{where} imports {heavy}: torch and timm live in models_app/ml"
    if inside_ml:
        assert not {n for n in found if n.split(".")[0] in ("django", "rest_framework")}
    if not where.startswith("models_app/"):
        assert not {n for n in found if n.startswith("models_app.ml")}, where
    if where.startswith("labeling/"):
        assert not {n for n in found if n.split(".")[0] in ("models_app", "feedback")}, where
    if where.startswith("models_app/"):
        assert not {n for n in found if n.split(".")[0] == "feedback"}, where
    if "/management/commands/" in where:
        assert not {n for n in found if ".management.commands." in n}, where
    assert len(path.read_text().splitlines()) <= MAX_LINES, f"{where} is over {MAX_LINES} lines"


# What a web server, the admin or a management command loads at start-up: settings,
# every app (admin autodiscovery included) and every URL's view module.
WEB_START = """
import sys
import django
django.setup()
from django.urls import get_resolver
def walk(patterns):
    for p in patterns:
        yield from walk(p.url_patterns) if hasattr(p, "url_patterns") else [p]
list(walk(get_resolver().url_patterns))
import config.wsgi
heavy = [m for m in ("torch", "timm", "torchvision", "sklearn", "cleanlab") if m in sys.modules]
print(" ".join(heavy))
"""


def test_the_web_process_starts_without_torch():
    """gunicorn's workers, `manage.py migrate` and the rest of `make run` import the
    apps, the admin and the views: none of that may load torch (seconds of CPU each)
    before a request needs it."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    done = subprocess.run(
        [sys.executable, "-c", WEB_START], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"the web process imported {done.stdout.strip()}"


def test_every_public_name_of_the_learner_services_resolves():
    """The learner's services import each module when a name is first used: every name
    they list must lead to the thing of that name in its module."""
    from models_app import services

    for name in services.__all__:
        assert getattr(services, name).__name__ == name, name
