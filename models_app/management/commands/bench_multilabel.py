"""Learning curves of the tag query strategies on Fashion-MNIST mosaics.

Pool and test images are 2x2 mosaics of four random Fashion-MNIST images, tagged with
the classes present (`models_app.benchmarks.multilabel` says how they are drawn and
how the simulated annotator labels them). Each strategy labels the pool from zero up
to each of `--budgets`, retraining the app's tag head (`train_tag_head`) and ranking
with the app's `rank_tags` at each; the head is scored by mean average precision on
the test set. The ceiling is the head trained on the whole pool; the report gives
the labels each strategy's mean curve needs to reach 95% of it, and their ratio to
random's.

Embeddings are cached by content hash under DATA_DIR/cache: a first full run embeds
25,000 mosaics (the backbone manages some 30-60 a second on two cores), later runs
take them from the cache.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from labeling.datasets import fashion_mnist_read
from models_app import services
from models_app.benchmarks import embedding_cache, plot, run_facts, summarise
from models_app.benchmarks.multilabel import MosaicPool, full_pool_map, simulate_strategies
from models_app.benchmarks.report import budgets_and_strategies
from models_app.ml.tag_strategies import AUTO_STRATEGY, TAG_STRATEGIES

BUDGETS = (20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
SEEDS = 3


class Command(BaseCommand):
    help = "Compare tag query strategies on Fashion-MNIST mosaics (see the docstring)."

    def add_arguments(self, parser):
        parser.add_argument("--json", dest="json_path", required=True)
        parser.add_argument("--plot", dest="plot_path")
        parser.add_argument("--pool", type=int, default=20000)
        parser.add_argument("--test", type=int, default=5000)
        parser.add_argument("--budgets", default=",".join(map(str, BUDGETS)))
        parser.add_argument("--seeds", type=int, default=SEEDS)
        parser.add_argument("--strategies", default=",".join(TAG_STRATEGIES))
        parser.add_argument("--data-dir", default=settings.LABELING["FASHION_MNIST_DIR"])
        parser.add_argument("--cache-dir", default=str(settings.DATA_DIR / "cache"))

    def handle(self, *args, **options):
        started = time.monotonic()
        budgets, strategies = budgets_and_strategies(options, TAG_STRATEGIES)
        try:
            train = fashion_mnist_read(Path(options["data_dir"]), "train")
            test = fashion_mnist_read(Path(options["data_dir"]), "test")
        except (FileNotFoundError, ValueError) as error:
            raise CommandError(str(error)) from None
        cache = embedding_cache(options["cache_dir"])
        loaded = time.monotonic()
        pool = MosaicPool.of(train, options["pool"], "train", cache)
        tests = MosaicPool.of(test, options["test"], "test", cache)
        cache.save()
        self.stdout.write(
            f"embeddings: {len(pool.y) + len(tests.y) - cache.computed} from the cache "
            f"({cache.path}), {cache.computed} computed, in {time.monotonic() - loaded:.0f} s"
        )
        device = str(services.backbone_load().device)
        ceiling = full_pool_map(pool, tests.x, tests.y, device=device)
        self.stdout.write(f"full pool ({len(pool.y)} mosaics): mAP {ceiling:.4f}")

        def done(name, seed, curve, seconds):
            scores = " ".join(f"{s:.3f}" for s in curve.scores)
            self.stdout.write(f"{name:>20} seed {seed}: {scores}  ({seconds:.0f} s)")

        curves = simulate_strategies(
            pool, strategies, options["seeds"], budgets, tests.x, tests.y, device=device, done=done
        )
        summary = summarise(curves, budgets, "map", target=0.95 * ceiling)
        for row in summary["strategies"].values():
            # Here "classes" are tags: labels until every tag had a positive.
            row["labels_to_every_tag"] = row.pop("labels_to_find_all_classes")
            row["labels_to_every_tag_runs"] = row.pop("labels_to_find_all_classes_runs")
        report = {
            "scenario": "mosaic",
            "full_pool_map": round(ceiling, 4),
            "target_95pct": round(0.95 * ceiling, 4),
            **summary,
            "default_strategy": "auto",
            "auto_is": AUTO_STRATEGY,
            "pool": len(pool.y),
            "test": len(tests.y),
            "seeds": options["seeds"],
            **run_facts(self, "bench_multilabel", options, started, device),
        }
        Path(options["json_path"]).write_text(json.dumps(report, indent=2) + "\n")
        if options["plot_path"]:
            plot(
                report,
                options["plot_path"],
                "map",
                f"test mAP ({report['test']} mosaics)",
                "full_pool_map",
            )
        self._print(report)

    def _print(self, report: dict) -> None:
        budgets = report["budgets"]
        self.stdout.write(f"full pool mAP {report['full_pool_map']:.4f}")
        self.stdout.write("strategy".ljust(20) + "".join(f"{b:>14}" for b in budgets))
        for name, row in report["strategies"].items():
            cells = "".join(
                f"{m:>8.3f}±{s:<5.3f}" for m, s in zip(row["map_mean"], row["map_std"], strict=True)
            )
            self.stdout.write(name.ljust(20) + cells)
        for name, row in report["strategies"].items():
            self.stdout.write(
                f"{name:20} aubc {row['aubc']:.4f}  labels to 95%: {row['labels_to_95pct']}"
                f"  vs random: {row['labels_ratio_vs_random']}"
            )
        self.stdout.write(f"{report['seconds']:.0f} s on {report['machine']}")
