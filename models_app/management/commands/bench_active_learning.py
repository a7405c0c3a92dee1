"""Learning curves of the query strategies on Fashion-MNIST, through the app itself.

A simulated annotator labels a project of `--pool` real training images from zero
labels: it asks the queue for the next image (`queue_reserve`) and gives the true class
(`annotation_create`). At each budget the project retrains through the real task
(`model_version_request`, run synchronously), which re-ranks the queue with the
project's strategy; the active version is then scored on `--test` held-out test images.
The project's own val/test fractions are 0 here: the held-out test images replace them,
so every label a strategy pays for is a training label.

Embeddings are cached by content hash under DATA_DIR/cache, so a rerun skips the
backbone (about 14 CPU-minutes for 25,000 images on two cores).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from labeling import services as labeling_services
from labeling.datasets import fashion_mnist_read
from models_app.benchmarks import (
    BenchmarkError,
    Pool,
    embedding_cache,
    plot,
    project_delete,
    summarise,
    synchronous_tasks,
)
from models_app.ml.strategies import STRATEGIES

BUDGETS = (10, 20, 50, 100, 200, 500, 1000, 2000)


class Command(BaseCommand):
    help = "Compare query strategies by learning curves on Fashion-MNIST (see the docstring)."

    def add_arguments(self, parser):
        parser.add_argument("--json", dest="json_path", required=True)
        parser.add_argument("--plot", dest="plot_path", required=True)
        parser.add_argument("--pool", type=int, default=20000)
        parser.add_argument("--test", type=int, default=5000)
        parser.add_argument("--budgets", default=",".join(map(str, BUDGETS)))
        parser.add_argument("--seeds", type=int, default=5)
        parser.add_argument("--strategies", default=",".join(STRATEGIES))
        parser.add_argument("--data-dir", default=settings.LABELING["FASHION_MNIST_DIR"])
        parser.add_argument("--cache-dir", default=str(settings.DATA_DIR / "cache"))

    def handle(self, *args, **options):
        budgets, strategies = self._parse(options)
        try:
            train = fashion_mnist_read(Path(options["data_dir"]), "train")
            test = fashion_mnist_read(Path(options["data_dir"]), "test")
        except (FileNotFoundError, ValueError) as error:
            raise CommandError(str(error)) from None
        if options["pool"] > train.count or options["test"] > test.count:
            raise CommandError(f"--pool is at most {train.count}, --test at most {test.count}.")
        cache = embedding_cache(options["cache_dir"])
        user, _ = get_user_model().objects.get_or_create(username="bench-active-learning")
        project = labeling_services.project_create(
            name="bench_active_learning (temporary)", user=user
        )
        with synchronous_tasks():
            try:
                pool = Pool.build(self.stdout.write, project, user, train, options["pool"], cache)
                x_test = cache.vectors([test.png(i) for i in range(options["test"])])
                y_test = np.frombuffer(test.labels, np.uint8)[: options["test"]].astype(np.int64)
                cache.save()
                ceiling = pool.full_pool_accuracy(x_test, y_test)
                self.stdout.write(f"full pool ({pool.size} labels): accuracy {ceiling:.4f}")
                curves = {
                    name: [
                        pool.simulate(name, seed, budgets, x_test, y_test)
                        for seed in range(options["seeds"])
                    ]
                    for name in strategies
                }
            except BenchmarkError as error:
                raise CommandError(str(error)) from None
            finally:
                project_delete(project)
        report = summarise(curves, budgets, ceiling)
        report.update(pool=pool.size, test=len(y_test), seeds=options["seeds"])
        Path(options["json_path"]).write_text(json.dumps(report, indent=2) + "\n")
        plot(report, options["plot_path"])
        self._print(report)

    def _parse(self, options) -> tuple[list[int], list[str]]:
        try:
            budgets = sorted({int(b) for b in options["budgets"].split(",")})
        except ValueError:
            raise CommandError("--budgets is a comma-separated list of numbers.") from None
        if not budgets or budgets[0] < 1 or budgets[-1] > options["pool"]:
            raise CommandError("Budgets must be between 1 and the pool size.")
        strategies = [s.strip() for s in options["strategies"].split(",") if s.strip()]
        unknown = set(strategies) - set(STRATEGIES)
        if unknown or not strategies:
            raise CommandError(f"Strategies are some of: {', '.join(STRATEGIES)}.")
        if "random" not in strategies:
            strategies.insert(0, "random")  # the baseline every ratio needs
        if options["seeds"] < 1 or options["pool"] < 10 or options["test"] < 10:
            raise CommandError("--seeds must be at least 1, --pool and --test at least 10.")
        return budgets, strategies

    def _print(self, report: dict) -> None:
        budgets = report["budgets"]
        self.stdout.write(f"full-pool accuracy {report['full_pool_accuracy']:.4f}")
        self.stdout.write("strategy".ljust(18) + "".join(f"{b:>14}" for b in budgets))
        for name, row in report["strategies"].items():
            cells = "".join(
                f"{m:>8.3f}±{s:<5.3f}"
                for m, s in zip(row["accuracy_mean"], row["accuracy_std"], strict=True)
            )
            self.stdout.write(name.ljust(18) + cells)
        for name, row in report["strategies"].items():
            self.stdout.write(
                f"{name:18} aubc {row['aubc']:.4f}  labels to 95%: {row['labels_to_95pct']}"
                f"  vs random: {row['labels_ratio_vs_random']}"
            )
