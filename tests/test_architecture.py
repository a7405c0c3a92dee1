"""The house rules, checked: the layers import downwards only, torch and timm stay in
models_app/ml (which knows nothing of Django), benchmarks share code through the
harness rather than through each other's commands, and no hand-written module grows
past what a reader takes in at once."""

from __future__ import annotations

import ast
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
