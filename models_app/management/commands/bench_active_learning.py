"""Learning curves of the query strategies on Fashion-MNIST, as the app would draw them.

A simulated annotator labels a project of `--pool` real training images from zero
labels, taking images in the order the queue serves them and giving their true class.
At each budget the project retrains, re-ranks the queue with its strategy, and the new
head is scored on `--test` held-out Fashion-MNIST test images. The project's own
val/test fractions are 0 here: the held-out test images replace them, so every label a
strategy pays for is a training label.

What is the app's and what is simulated. By default the loop runs on arrays
(`models_app.benchmarks.simulate`), calling the app's own functions: the same stored
(float16) embeddings, the same head training (`train_head_self`, as a retrain calls
it), the same ranking (`models_app.ml.strategies.rank`, with the project's strategy,
the next batch's size and the seed a retrain derives from the labels), and the queue's
order (highest priority first, ties by hash draw, then upload order). What it skips is
the database: no rows, reservations or tasks, which made a run take about an hour.
`--through-app` runs the same loop through the services instead (`queue_reserve`,
`annotation_create`, the retrain task); on the same pool and seed both label the same
images and score the same (tests/models_app/test_bench_active_learning.py checks it).

Scenarios: `balanced` (the first `--pool` training images, about equal classes; scored
by accuracy, with labels to reach 95% of the full-pool accuracy) and `long-tail` (the
same pool with class sizes falling exponentially to a ratio of `--ratio` between the
largest and the smallest class, a new draw of sizes and images per seed, and a balanced
test set; scored by macro-F1, with the labels needed until every class has one).

Embeddings are cached by content hash under DATA_DIR/cache: a first run embeds 25,000
images (about 14 CPU-minutes on two cores), later runs take them from the cache.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from labeling import services as labeling_services
from labeling.datasets import FASHION_MNIST_CLASSES, fashion_mnist_read
from models_app import services
from models_app.benchmarks import (
    ArrayPool,
    BenchmarkError,
    Pool,
    accuracy,
    balanced_rows,
    embedding_cache,
    full_pool_score,
    long_tail_rows,
    macro_f1,
    plot,
    project_delete,
    run_facts,
    simulate_many,
    summarise,
    synchronous_tasks,
)
from models_app.benchmarks.report import budgets_and_strategies
from models_app.ml.strategies import STRATEGIES

BUDGETS = {
    "balanced": (10, 20, 50, 100, 200, 500, 1000, 2000),
    "long-tail": (10, 20, 40, 100, 200, 500, 1000),
}
SEEDS, FULL_SEEDS = 3, 5


class Command(BaseCommand):
    help = "Compare query strategies by learning curves on Fashion-MNIST (see the docstring)."

    def add_arguments(self, parser):
        parser.add_argument("--json", dest="json_path", required=True)
        parser.add_argument("--plot", dest="plot_path")
        parser.add_argument("--scenario", choices=tuple(BUDGETS), default="balanced")
        parser.add_argument("--pool", type=int, default=20000)
        parser.add_argument("--test", type=int, default=5000)
        parser.add_argument("--budgets", help="default: " + str(BUDGETS))
        parser.add_argument("--seeds", type=int, help=f"default {SEEDS}, {FULL_SEEDS} with --full")
        parser.add_argument("--full", action="store_true", help=f"{FULL_SEEDS} seeds")
        parser.add_argument("--strategies", default=",".join(STRATEGIES))
        parser.add_argument(
            "--ratio", type=float, default=100.0, help="long-tail: largest/smallest"
        )
        parser.add_argument("--through-app", action="store_true", help="balanced, via the database")
        parser.add_argument(
            "--jobs",
            type=int,
            default=os.cpu_count() or 1,
            help="worker processes of one torch thread each; 1: in this process",
        )
        parser.add_argument("--data-dir", default=settings.LABELING["FASHION_MNIST_DIR"])
        parser.add_argument("--cache-dir", default=str(settings.DATA_DIR / "cache"))

    def handle(self, *args, **options):
        started = time.monotonic()
        if options["seeds"] is None:
            options["seeds"] = FULL_SEEDS if options["full"] else SEEDS
        if options["budgets"] is None:
            options["budgets"] = ",".join(map(str, BUDGETS[options["scenario"]]))
        budgets, strategies = self._parse(options)
        try:
            train = fashion_mnist_read(Path(options["data_dir"]), "train")
            test = fashion_mnist_read(Path(options["data_dir"]), "test")
        except (FileNotFoundError, ValueError) as error:
            raise CommandError(str(error)) from None
        if options["pool"] > train.count or options["test"] > test.count:
            raise CommandError(f"--pool is at most {train.count}, --test at most {test.count}.")
        self.cache = cache = embedding_cache(options["cache_dir"])
        loaded = time.monotonic()
        pool = ArrayPool.of(train, range(options["pool"]), cache)
        tests = ArrayPool.of(test, range(options["test"]), cache)
        cache.save()
        self.stdout.write(
            f"embeddings: {len(pool.y) + len(tests.y) - cache.computed} from the cache "
            f"({cache.path}), {cache.computed} computed, in {time.monotonic() - loaded:.0f} s. "
            "The cache is what makes a rerun fast: a first run embeds 25,000 images, "
            "about 14 CPU-minutes on two cores."
        )
        device = str(services.backbone_load().device)
        try:
            if options["scenario"] == "balanced":
                report = self._balanced(options, pool, tests, budgets, strategies, device)
            else:
                report = self._long_tail(options, pool, tests, budgets, strategies, device)
        except BenchmarkError as error:
            raise CommandError(str(error)) from None
        report.update(run_facts(self, "bench_active_learning", options, started, device))
        Path(options["json_path"]).write_text(json.dumps(report, indent=2) + "\n")
        if options["plot_path"]:
            metric = "accuracy" if options["scenario"] == "balanced" else "macro_f1"
            plot(
                report,
                options["plot_path"],
                metric,
                f"test {metric.replace('_', '-')} ({report['test']} Fashion-MNIST test images)",
                f"full_pool_{metric}",
            )
        self._print(report)

    def _balanced(self, options, pool, tests, budgets, strategies, device) -> dict:
        ceiling = full_pool_score(pool, tests.x, tests.y, accuracy)
        self.stdout.write(f"full pool ({len(pool.y)} labels): accuracy {ceiling:.4f}")
        if options["through_app"]:
            curves = self._through_app(options, budgets, strategies, tests)
        else:
            runs = [(name, seed, None) for name in strategies for seed in range(options["seeds"])]
            curves = self._simulate(options, runs, pool, tests, budgets, accuracy, device)
        return {
            "scenario": "balanced",
            "full_pool_accuracy": round(ceiling, 4),
            "target_95pct": round(0.95 * ceiling, 4),
            **summarise(curves, budgets, "accuracy", target=0.95 * ceiling),
            "pool": len(pool.y),
            "test": len(tests.y),
            "seeds": options["seeds"],
        }

    def _long_tail(self, options, pool, tests, budgets, strategies, device) -> dict:
        n_classes = len(FASHION_MNIST_CLASSES)
        tests = tests.subset(balanced_rows(tests.y, len(tests.y) // n_classes, n_classes))
        runs, ceilings = [], []
        for seed in range(options["seeds"]):
            rows = long_tail_rows(pool.y, n_classes, options["ratio"], np.random.default_rng(seed))
            tail = pool.subset(rows)
            if budgets[-1] > len(tail.y):
                raise BenchmarkError(
                    f"The long-tail pool holds {len(tail.y)} images: budgets must stay below."
                )
            ceilings.append(full_pool_score(tail, tests.x, tests.y, macro_f1))
            sizes = sorted(np.bincount(tail.y, minlength=n_classes).tolist(), reverse=True)
            self.stdout.write(
                f"seed {seed}: long-tail pool of {len(tail.y)} (classes {sizes}), "
                f"full-pool macro-F1 {ceilings[-1]:.4f}"
            )
            runs += [(name, seed, rows) for name in strategies]
        curves = self._simulate(options, runs, pool, tests, budgets, macro_f1, device)
        return {
            "scenario": "long-tail",
            "full_pool_macro_f1": round(float(np.mean(ceilings)), 4),
            **summarise(curves, budgets, "macro_f1", target=None),
            "pool": len(tail.y),
            "class_sizes": sizes,
            "ratio": options["ratio"],
            "test": len(tests.y),
            "seeds": options["seeds"],
        }

    def _simulate(self, options, runs, pool, tests, budgets, score, device) -> dict:
        """Curves by strategy, each strategy's in seed order."""
        started = time.monotonic()

        def done(strategy, seed, curve):
            self.stdout.write(
                f"{strategy:>16} seed {seed}: "
                + " ".join(f"{s:.3f}" for s in curve.scores)
                + f"  ({time.monotonic() - started:.0f} s since the first)"
            )

        found = simulate_many(
            runs,
            pool,
            tests.x,
            tests.y,
            budgets=budgets,
            score=score,
            device=device,
            jobs=options["jobs"],
            done=done,
        )
        curves = {name: [] for name, _, _ in runs}
        for (name, _, _), curve in zip(runs, found, strict=True):
            curves[name].append(curve)
        return curves

    def _through_app(self, options, budgets, strategies, tests) -> dict:
        """The same loop through the services and the database (slow: for checking)."""
        cache = self.cache
        train = fashion_mnist_read(Path(options["data_dir"]), "train")
        user, _ = get_user_model().objects.get_or_create(username="bench-active-learning")
        project = labeling_services.project_create(
            name="bench_active_learning (temporary)", user=user
        )
        with synchronous_tasks():
            try:
                pool = Pool.build(self.stdout.write, project, user, train, options["pool"], cache)
                return {
                    name: [
                        pool.simulate(name, seed, budgets, tests.x, tests.y)
                        for seed in range(options["seeds"])
                    ]
                    for name in strategies
                }
            finally:
                project_delete(project)

    def _parse(self, options) -> tuple[list[int], list[str]]:
        budgets, strategies = budgets_and_strategies(options, STRATEGIES)
        if options["jobs"] < 1:
            raise CommandError("--jobs is at least 1.")
        if options["ratio"] < 1:
            raise CommandError("--ratio is at least 1.")
        if options["through_app"] and options["scenario"] != "balanced":
            raise CommandError("--through-app runs the balanced scenario.")
        return budgets, strategies

    def _print(self, report: dict) -> None:
        metric = "accuracy" if report["scenario"] == "balanced" else "macro_f1"
        budgets = report["budgets"]
        self.stdout.write(f"{report['scenario']}: full pool {report[f'full_pool_{metric}']:.4f}")
        self.stdout.write("strategy".ljust(18) + "".join(f"{b:>14}" for b in budgets))
        for name, row in report["strategies"].items():
            cells = "".join(
                f"{m:>8.3f}±{s:<5.3f}"
                for m, s in zip(row[f"{metric}_mean"], row[f"{metric}_std"], strict=True)
            )
            self.stdout.write(name.ljust(18) + cells)
        for name, row in report["strategies"].items():
            line = f"{name:18} aubc {row['aubc']:.4f}"
            if "labels_to_95pct" in row:
                line += (
                    f"  labels to 95%: {row['labels_to_95pct']}"
                    f"  vs random: {row['labels_ratio_vs_random']}"
                )
            line += f"  labels to find all classes: {row['labels_to_find_all_classes_runs']}"
            self.stdout.write(line)
        self.stdout.write(f"best by area under the curve: {report['best_by_aubc']}")
        self.stdout.write(f"{report['seconds']:.0f} s on {report['machine']}")
