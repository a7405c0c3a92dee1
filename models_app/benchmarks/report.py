"""What a bench writes: the summary of learning curves, the plot, and the facts every
report carries (wall time, machine, the command line that gives the figures again)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import os
import platform
import shlex
import time
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from models_app.benchmarks.simulation import Curve
from models_app.ml.embed import compute_threads
from models_app.models import DEFAULT_STRATEGY


def run_facts(command: BaseCommand, name: str, options: dict, started: float, device: str) -> dict:
    """Wall time since `started` (time.monotonic), the machine, and the command line
    that gives the same figures again."""
    return {
        "seconds": round(time.monotonic() - started, 1),
        "machine": machine(device),
        "command": command_line(command, name, options),
    }


def machine(device: str) -> dict:
    cpu_model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model or platform.processor() or None,
        "device": device,
        "torch": importlib.metadata.version("torch"),
        "torch_threads": compute_threads(),
        "python": platform.python_version(),
    }


def command_line(command: BaseCommand, name: str, options: dict) -> str:
    """`python manage.py <name>` with every option of the command as given or
    defaulted (Django's own options left out)."""
    base = {a.dest for a in BaseCommand().create_parser("manage.py", "base")._actions}
    parts = ["python", "manage.py", name]
    for action in command.create_parser("manage.py", name)._actions:
        if action.dest in base or not action.option_strings or action.dest not in options:
            continue
        value, flag = options[action.dest], max(action.option_strings, key=len)
        if action.nargs == 0:  # a switch
            parts += [flag] if value else []
        elif value is not None:
            parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)


def summarise(
    curves: dict[str, list[Curve]], budgets: list[int], metric: str, target: float | None
) -> dict:
    """Per strategy: `<metric>_mean`, `_std` and `_runs` at each budget, the gain over
    random in points, the area under the curve (`aubc`), labels to find every class;
    with a `target`, the labels the mean curve needs to reach it and their ratio to
    random's."""
    strategies = {}
    random_mean = np.asarray([c.scores for c in curves["random"]]).mean(axis=0)
    for name, runs in curves.items():
        scores = np.asarray([c.scores for c in runs])
        mean = scores.mean(axis=0)
        found = [c.labels_to_find_all for c in runs]
        row = {
            f"{metric}_mean": _rounded(mean),
            f"{metric}_std": _rounded(scores.std(axis=0)),
            f"{metric}_runs": [_rounded(s) for s in scores],
            "points_vs_random": _rounded(100 * (mean - random_mean), 2),
            "aubc": round(aubc(budgets, mean), 4),
            # The mean over the runs, or None when a run never found every class.
            "labels_to_find_all_classes": None if None in found else float(np.mean(found)),
            "labels_to_find_all_classes_runs": found,
        }
        if target is not None:
            row["labels_to_95pct"] = labels_to_reach(budgets, mean, target)
        strategies[name] = row
    if target is not None:
        random_labels = strategies["random"]["labels_to_95pct"]
        for row in strategies.values():
            labels = row["labels_to_95pct"]
            row["labels_ratio_vs_random"] = (
                round(labels / random_labels, 3) if labels and random_labels else None
            )
    by_area = sorted(strategies, key=lambda s: -strategies[s]["aubc"])
    return {
        "budgets": budgets,
        "default_strategy": DEFAULT_STRATEGY,
        "best_by_aubc": by_area[0],
        "strategies": strategies,
    }


def aubc(budgets: list[int], scores) -> float:
    """Area under the score curve over log(budget), divided by its width: the mean
    score across the budgets, each decade weighing the same. 1.0 is perfect."""
    if len(budgets) == 1:
        return float(scores[0])
    x = np.log(np.asarray(budgets, dtype=float))
    return float(np.trapezoid(scores, x) / (x[-1] - x[0]))


def labels_to_reach(budgets: list[int], scores, target: float) -> int | None:
    """The labels at which the mean curve first reaches `target`, interpolated linearly
    between the two budgets around it; None if it never does."""
    previous = None
    for budget, value in zip(budgets, scores, strict=True):
        if value >= target:
            if previous is None:
                return budget
            b0, a0 = previous
            return math.ceil(b0 + (budget - b0) * (target - a0) / (value - a0))
        previous = (budget, value)
    return None


def plot(report: dict, path: str, metric: str, ylabel: str, ceiling: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    budgets = report["budgets"]
    for name, row in report["strategies"].items():
        mean, std = np.asarray(row[f"{metric}_mean"]), np.asarray(row[f"{metric}_std"])
        width = 2.5 if name == report["default_strategy"] else 1.2
        ax.plot(budgets, mean, marker="o", linewidth=width, label=f"{name} (AUBC {row['aubc']})")
        ax.fill_between(budgets, mean - std, mean + std, alpha=0.15)
    ax.axhline(report[ceiling], color="black", linestyle="--", label="full pool")
    if "target_95pct" in report:
        ax.axhline(report["target_95pct"], color="grey", linestyle=":", label="95% of full pool")
    ax.set_xscale("log")
    ax.set_xlabel("labels")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{report['scenario']}: pool of {report['pool']}, {report['seeds']} seeds")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _rounded(values, digits: int = 4) -> list[float]:
    return [round(float(v), digits) for v in values]


def budgets_and_strategies(options: dict, known: tuple[str, ...]) -> tuple[list[int], list[str]]:
    """A bench command's --budgets, --strategies, --seeds, --pool and --test, checked
    (a CommandError says what is wrong): budgets sorted and within the pool, strategies
    among `known`, random always among them (the baseline every comparison needs)."""
    try:
        budgets = sorted({int(b) for b in options["budgets"].split(",")})
    except ValueError:
        raise CommandError("--budgets is a comma-separated list of numbers.") from None
    if options["seeds"] < 1 or options["pool"] < 10 or options["test"] < 10:
        raise CommandError("--seeds must be at least 1, --pool and --test at least 10.")
    if not budgets or budgets[0] < 1 or budgets[-1] > options["pool"]:
        raise CommandError("Budgets must be between 1 and the pool size.")
    strategies = [s.strip() for s in options["strategies"].split(",") if s.strip()]
    unknown = set(strategies) - set(known)
    if unknown or not strategies:
        raise CommandError(f"Strategies are some of: {', '.join(known)}.")
    if "random" not in strategies:
        strategies.insert(0, "random")
    return budgets, list(dict.fromkeys(strategies))
