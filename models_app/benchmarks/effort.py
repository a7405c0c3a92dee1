"""The time a person takes to label a whole pool, one image at a time from the queue or
checking pages of the model's suggestions (`bench_effort`). Both annotators drive the
app's own services (queue, labels, retrains through the real task, the bulk accept) on
the Fashion-MNIST pool of `Pool`, and err as people do; their time comes from a stated
time model, with every retrain the assisted annotator waits for counted at its real
duration."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np
from django.core.exceptions import ValidationError

from labeling import selectors as labeling_selectors
from labeling import services as labeling_services
from labeling.datasets import FASHION_MNIST_CLASSES
from labeling.models import Annotation, Image
from models_app import services
from models_app.benchmarks.simulation import BenchmarkError
from models_app.benchmarks.through_app import Pool
from models_app.models import ModelVersion


@dataclass(frozen=True)
class TimeModel:
    """Seconds per step and the error rates of the simulated person (sources in the
    command's help)."""

    choose: float = 2.0  # deciding which class one image is, on the labeling page
    glance: float = 0.4  # judging one thumbnail of a grid against its suggestion
    action: float = 0.5  # any click or key press
    wrong_choice: float = 0.02  # one by one: a wrong class chosen
    overlooked: float = 0.05  # on a page: a wrong suggestion left ticked


@dataclass
class Effort:
    """What one run cost the person, and what it gave."""

    seconds: float = 0.0
    actions: int = 0
    waited_seconds: float = 0.0  # for retrains, included in `seconds`
    retrains: int = 0
    pages: int = 0
    glanced: int = 0  # thumbnails judged on pages
    chosen: int = 0  # images labeled one by one

    def report(self, pool: Pool) -> dict:
        rows = Annotation.objects.filter(image__project=pool.project, is_current=True)
        labels = dict(rows.values_list("image_id", "label_class__name"))
        right = sum(FASHION_MNIST_CLASSES[pool.truth[pk]] == name for pk, name in labels.items())
        origins = Counter(rows.values_list("origin", flat=True))
        return {
            **asdict(self),
            "labels_by_origin": dict(sorted(origins.items())),
            "labeled": len(labels),
            "label_accuracy": right / max(len(labels), 1),
        }


class Annotator:
    """A simulated person on `pool`, with its own random draws for its mistakes."""

    def __init__(self, pool: Pool, times: TimeModel, seed: int):
        self.pool, self.times = pool, times
        self.rng = np.random.default_rng(seed)
        self.effort = Effort()
        self.by_index = {FASHION_MNIST_CLASSES.index(n): c for n, c in pool.classes.items()}
        self.labeled_at_retrain = 0

    def _chosen(self, image: Image):
        truth = self.pool.truth[image.pk]
        if self.rng.random() < self.times.wrong_choice:
            truth = int(self.rng.choice([c for c in self.by_index if c != truth]))
        return self.by_index[truth]

    def one_by_one(self, count: int | None = None, retrain_every: int | None = None) -> int:
        """Label from the queue, one key per image, `count` images (all left if None),
        asking for a retrain every `retrain_every` labels (the worker trains while the
        person labels on: not waited for). Returns how many were labeled."""
        done = 0
        while count is None or done < count:
            want = 20 if count is None else min(20, count - done)
            served = labeling_services.queue_reserve(
                project=self.pool.project, user=self.pool.user, count=want
            )
            if not served:
                break
            for image in served:
                chosen = self._chosen(image)
                origin = (
                    Annotation.Origin.SUGGESTION
                    if chosen.pk == image.suggested_class_id
                    else Annotation.Origin.CHOSEN
                )
                labeling_services.annotation_create(
                    image=image, label_class=chosen, annotator=self.pool.user, origin=origin
                )
                self.effort.seconds += self.times.choose + self.times.action
                self.effort.actions += 1
                self.effort.chosen += 1
                done += 1
                if retrain_every and self.labeled() - self.labeled_at_retrain >= retrain_every:
                    self.retrain(waited=False)
        return done

    def labeled(self) -> int:
        return Image.objects.filter(project=self.pool.project, label__isnull=False).count()

    def retrain(self, *, waited: bool) -> None:
        """A retrain through the real task (run here, as a worker runs it), which ranks
        the queue and writes the new suggestions; its duration counts when `waited`."""
        started = time.monotonic()
        self.labeled_at_retrain = self.labeled()
        try:
            version = services.model_version_request(
                project=self.pool.project, trigger=ModelVersion.Trigger.API, user=self.pool.user
            )
        except ValidationError:  # fewer than two classes labeled yet
            return
        version.refresh_from_db()
        if version.status != ModelVersion.Status.SUCCEEDED:
            raise BenchmarkError(f"a retrain failed: {version.error}")
        self.effort.retrains += 1
        if waited:
            duration = time.monotonic() - started
            self.effort.waited_seconds += duration
            self.effort.seconds += duration

    def verify_page(self, label_class, page_size: int) -> int:
        """Check one page of suggestions for `label_class`: glance at each, untick the
        wrong ones (overlooking some), accept with one key. Returns how many it showed."""
        images = list(
            labeling_selectors.suggestion_list(
                project=self.pool.project, label_class=label_class, user=self.pool.user
            )[:page_size]
        )
        if not images:
            return 0
        truth = FASHION_MNIST_CLASSES.index(label_class.name)
        accepted, rejected = [], []
        for image in images:
            self.effort.seconds += self.times.glance
            self.effort.glanced += 1
            wrong = self.pool.truth[image.pk] != truth
            if wrong and self.rng.random() >= self.times.overlooked:
                rejected.append(image.pk)
                self.effort.seconds += self.times.action
                self.effort.actions += 1
            else:
                accepted.append(image.pk)
        labeling_services.suggestions_verify(
            project=self.pool.project,
            label_class=label_class,
            accepted_ids=accepted,
            rejected_ids=rejected,
            annotator=self.pool.user,
        )
        self.effort.seconds += self.times.action
        self.effort.actions += 1
        self.effort.pages += 1
        return len(images)

    def assisted(self, *, first: int, page_size: int, passes: int) -> None:
        """Label `first` images one by one for a first model, then check pages of
        suggestions, the class with most waiting first, retraining (and waiting for it)
        whenever the labels have doubled since the last retrain. When no suggestion is
        left, the images whose suggestion was rejected wait for a retrain to get their
        next most likely class; after `passes` such retrains the rest are labeled one
        by one."""
        self.one_by_one(first)
        self.retrain(waited=True)
        project, user = self.pool.project, self.pool.user
        passes_left = passes
        while Image.objects.filter(project=project, label__isnull=True).exists():
            counts = labeling_selectors.suggestion_counts(project=project, user=user)
            if counts:
                label_class = max(
                    (c for c in self.pool.classes.values() if counts.get(c.pk)),
                    key=lambda c: counts[c.pk],
                )
                self.verify_page(label_class, page_size)
                if self.labeled() >= 2 * self.labeled_at_retrain:
                    self.retrain(waited=True)
                continue
            if not passes_left:
                break
            passes_left -= 1
            self.retrain(waited=True)
        self.one_by_one()
