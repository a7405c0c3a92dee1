"""How well a class split recovers the classes a merge joined, on Fashion-MNIST.

A temporary project gets `--pool` real training images, each labeled with its true
class through the app. For each pair ("T-shirt/top" + "Shirt", "Pullover" + "Coat") the
two classes are merged (`label_class_merge`), then split back: `--seeds-per-class`
random images of each true class are the expert's seeds (`split_assign`), the learner
suggests a class for every other image (`split_suggest`), every suggestion is accepted
as it stands (`split_accept`) and the split is finished. "recovered" is the share of
the pair's images whose new class is their original one (seeds included). This repeats
`--repeats` times with other seeds (merging the new classes again each time).

For scale it also reports `ceiling_2fold`: the head trained on half the pair's images
with their true labels and tested on the other half, the best any split of these
embeddings can do.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from labeling import services as labeling_services
from labeling.datasets import FASHION_MNIST_CLASSES, fashion_mnist_read
from labeling.models import Image
from models_app import services
from models_app.benchmarks import Pool, embedding_cache, project_delete, run_facts
from models_app.ml.head import predict_proba, train_head

PAIRS = (("T-shirt/top", "Shirt"), ("Pullover", "Coat"))


class Command(BaseCommand):
    help = "Merge class pairs of Fashion-MNIST and split them back (see the docstring)."

    def add_arguments(self, parser):
        parser.add_argument("--json", dest="json_path", required=True)
        parser.add_argument("--pool", type=int, default=20000)
        parser.add_argument("--seeds-per-class", type=int, default=10)
        parser.add_argument("--repeats", type=int, default=3)
        parser.add_argument("--data-dir", default=settings.LABELING["FASHION_MNIST_DIR"])
        parser.add_argument("--cache-dir", default=str(settings.DATA_DIR / "cache"))

    def handle(self, *args, **options):
        started = time.monotonic()
        if options["seeds_per_class"] < 1 or options["repeats"] < 1:
            raise CommandError("--seeds-per-class and --repeats are at least 1.")
        try:
            data = fashion_mnist_read(Path(options["data_dir"]), "train")
        except (FileNotFoundError, ValueError) as error:
            raise CommandError(str(error)) from None
        if not 100 <= options["pool"] <= data.count:
            raise CommandError(f"--pool is between 100 and {data.count}.")
        cache = embedding_cache(options["cache_dir"])
        user, _ = get_user_model().objects.get_or_create(username="bench-split")
        project = labeling_services.project_create(name="bench_split (temporary)", user=user)
        try:
            pool = Pool.build(self.stdout.write, project, user, data, options["pool"], cache)
            cache.save()
            self._label(pool)
            pairs = {
                f"{a}+{b}": self._pair(pool, a, b, options["seeds_per_class"], options["repeats"])
                for a, b in PAIRS
            }
        finally:
            project_delete(project)
        report = {
            "pairs": pairs,
            "pool": pool.size,
            "seeds_per_class": options["seeds_per_class"],
            "repeats": options["repeats"],
            **run_facts(
                self, "bench_split", options, started, str(services.backbone_load().device)
            ),
        }
        Path(options["json_path"]).write_text(json.dumps(report, indent=2) + "\n")
        for name, row in pairs.items():
            self.stdout.write(
                f"{name}: recovered {row['recovered']:.3f} (runs {row['recovered_runs']}), "
                f"{row['images']} images, ceiling {row['ceiling_2fold']:.3f}, "
                f"merge {row['merge_seconds']:.1f} s, suggest {row['suggest_seconds']:.1f} s, "
                f"finish {row['finish_seconds']:.1f} s"
            )

    def _label(self, pool: Pool) -> None:
        started = time.monotonic()
        classes = [pool.classes[name] for name in FASHION_MNIST_CLASSES]
        for image in Image.objects.filter(project=pool.project).order_by("id"):
            labeling_services.annotation_create(
                image=image, label_class=classes[pool.truth[image.pk]], annotator=pool.user
            )
        self.stdout.write(f"labels: {pool.size} in {time.monotonic() - started:.0f} s")

    def _pair(self, pool: Pool, first: str, second: str, per_class: int, repeats: int) -> dict:
        truth_name = {pk: FASHION_MNIST_CLASSES[c] for pk, c in pool.truth.items()}
        ids = [pk for pk, name in truth_name.items() if name in (first, second)]
        current = [pool.classes[first], pool.classes[second]]
        runs, timings = [], {"merge": [], "suggest": [], "finish": []}
        for repeat in range(repeats):
            rng = np.random.default_rng(repeat)
            started = time.monotonic()
            merge = labeling_services.label_class_merge(
                project=pool.project,
                classes=current,
                name=f"{first}+{second} {repeat}",
                actor=pool.user,
            )
            timings["merge"].append(time.monotonic() - started)
            split = labeling_services.label_class_split_start(
                label_class=merge.target,
                names=[f"{first} {repeat}", f"{second} {repeat}"],
                actor=pool.user,
            )
            targets = dict(zip((first, second), split.targets.order_by("id"), strict=True))
            for name, target in targets.items():
                members = sorted(pk for pk in ids if truth_name[pk] == name)
                seeds = rng.choice(members, size=min(per_class, len(members)), replace=False)
                labeling_services.split_assign(
                    split=split, image_ids=[int(pk) for pk in seeds], label_class=target
                )
            started = time.monotonic()
            services.split_suggest(split=split)
            timings["suggest"].append(time.monotonic() - started)
            labeling_services.split_accept(split=split)
            started = time.monotonic()
            labeling_services.label_class_split_finish(split=split, actor=pool.user)
            timings["finish"].append(time.monotonic() - started)
            final = dict(Image.objects.filter(pk__in=ids).values_list("id", "label_id"))
            wanted = {pk: targets[truth_name[pk]].pk for pk in ids}
            runs.append(round(sum(final[pk] == wanted[pk] for pk in ids) / len(ids), 4))
            current = list(targets.values())
            for target in current:
                target.refresh_from_db()
        return {
            "recovered": round(float(np.mean(runs)), 4),
            "recovered_runs": runs,
            "images": len(ids),
            "ceiling_2fold": self._ceiling(pool, ids, truth_name, first),
            **{f"{k}_seconds": round(float(np.mean(v)), 2) for k, v in timings.items()},
        }

    def _ceiling(self, pool: Pool, ids: list[int], truth_name: dict, first: str) -> float:
        x = services.project_embeddings(project=pool.project).of(sorted(ids))
        y = np.asarray([truth_name[pk] != first for pk in sorted(ids)], dtype=np.int64)
        order = np.random.default_rng(0).permutation(len(y))
        half = len(y) // 2
        scores = []
        for train, test in ((order[:half], order[half:]), (order[half:], order[:half])):
            head = train_head(x[train], y[train], 2)
            scores.append(float((predict_proba(head, x[test]).argmax(axis=1) == y[test]).mean()))
        return round(float(np.mean(scores)), 4)
