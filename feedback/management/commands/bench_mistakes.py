"""How well the mistakes review finds wrong labels, on Fashion-MNIST, through the app.

A temporary project gets `--labeled` real training images; a random `--flip` share of
them is labeled with a wrong class (uniform among the other nine), the rest with the
true one, through `annotation_create`. The review scan then runs as a worker runs it
(`review_scan_request` + the task), and the review's ranking (`mistakes_list`, the
order the review page shows) is compared with the flips: precision among the first
50, 100 and 500, and recall of the flips among the first 10% of the labeled images.

Embeddings come from the cache `bench_active_learning` keeps (DATA_DIR/cache).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from feedback import selectors, services
from labeling import services as labeling_services
from labeling.datasets import FASHION_MNIST_CLASSES, fashion_mnist_read
from labeling.models import Image
from models_app import services as learner
from models_app.benchmarks import (
    Pool,
    embedding_cache,
    project_delete,
    run_facts,
    synchronous_tasks,
)


class Command(BaseCommand):
    help = "Measure how the mistakes review ranks deliberately flipped labels (see docstring)."

    def add_arguments(self, parser):
        parser.add_argument("--json", dest="json_path", required=True)
        parser.add_argument("--labeled", type=int, default=5000)
        parser.add_argument("--flip", type=float, default=0.1)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--data-dir", default=settings.LABELING["FASHION_MNIST_DIR"])
        parser.add_argument("--cache-dir", default=str(settings.DATA_DIR / "cache"))

    def handle(self, *args, **options):
        begun = time.monotonic()
        if not 0 < options["flip"] < 1:
            raise CommandError("--flip is a share of the labels, between 0 and 1.")
        try:
            data = fashion_mnist_read(Path(options["data_dir"]), "train")
        except (FileNotFoundError, ValueError) as error:
            raise CommandError(str(error)) from None
        if not 100 <= options["labeled"] <= data.count:
            raise CommandError(f"--labeled is between 100 and {data.count}.")
        cache = embedding_cache(options["cache_dir"])
        user, _ = get_user_model().objects.get_or_create(username="bench-mistakes")
        project = labeling_services.project_create(name="bench_mistakes (temporary)", user=user)
        # The scan task runs here and now, as a worker would.
        with synchronous_tasks():
            try:
                pool = Pool.build(self.stdout.write, project, user, data, options["labeled"], cache)
                cache.save()
                flipped = self._label(pool, options["flip"], options["seed"])
                started = time.monotonic()
                scan = services.review_scan_request(project=project, user=user)
                scan.refresh_from_db()
                if scan.status != "succeeded":
                    raise CommandError(f"The review scan {scan.status}: {scan.error}")
                seconds = time.monotonic() - started
                ranking = list(
                    selectors.mistakes_list(project=project).values_list("image_id", flat=True)
                )
                conflicts = len(selectors.duplicate_conflicts(project=project))
            finally:
                project_delete(project)
        report = score(ranking, flipped, labeled=pool.size)
        report.update(
            labeled=pool.size,
            flipped=len(flipped),
            disputed=len(ranking),
            flagged_by_confident_learning=scan.issues,
            near_duplicate_pairs=scan.duplicate_pairs,
            conflicting_duplicate_groups=conflicts,
            scan_seconds=round(seconds, 1),
            folds=settings.FEEDBACK["REVIEW_FOLDS"],
            seed=options["seed"],
            **run_facts(
                self, "bench_mistakes", options, begun, str(learner.backbone_load().device)
            ),
        )
        Path(options["json_path"]).write_text(json.dumps(report, indent=2) + "\n")
        for key, value in report.items():
            self.stdout.write(f"{key}: {value}")

    def _label(self, pool: Pool, share: float, seed: int) -> set[int]:
        """Label every image, a random `share` of them wrongly. Returns the flipped ids."""
        rng = np.random.default_rng(seed)
        classes = [pool.classes[name] for name in FASHION_MNIST_CLASSES]
        flipped = set()
        started = time.monotonic()
        for image in Image.objects.filter(project=pool.project).order_by("id"):
            truth = pool.truth[image.pk]
            label = truth
            if rng.random() < share:
                label = (truth + int(rng.integers(1, len(classes)))) % len(classes)
                flipped.add(image.pk)
            labeling_services.annotation_create(
                image=image, label_class=classes[label], annotator=pool.user
            )
        self.stdout.write(
            f"labels: {pool.size} given, {len(flipped)} flipped, "
            f"in {time.monotonic() - started:.0f} s"
        )
        return flipped


def score(ranking: list[int], flipped: set[int], *, labeled: int) -> dict:
    """Precision of the review's first 50 / 100 / 500 and recall of the flips in its
    first 10% of the labeled images. A ranking shorter than k counts as k anyway (the
    review showed fewer, so it found fewer)."""

    def precision(k: int) -> float:
        return round(sum(pk in flipped for pk in ranking[:k]) / k, 4)

    tenth = max(1, labeled // 10)
    return {
        "precision_at_50": precision(50),
        "precision_at_100": precision(100),
        "precision_at_500": precision(500),
        "recall_at_10pct": round(sum(pk in flipped for pk in ranking[:tenth]) / len(flipped), 4)
        if flipped
        else None,
    }
