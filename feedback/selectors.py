"""Reads of the feedback loop: predictions, the mistakes review, near-duplicates, and a
project's progress (dataset and learner together, which only this app sees both of)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet

from feedback.models import LabelScore, NearDuplicate, Prediction, ReviewScan
from labeling.models import Annotation, Image, Project
from models_app import selectors as learner_selectors
from models_app.models import ModelVersion


def prediction_list(*, project: Project) -> QuerySet[Prediction]:
    return Prediction.objects.filter(project=project).select_related(
        "image", "predicted_class", "resolved_class", "resolved_by", "model_version"
    )


def predictions_wait(*, prediction_ids: Sequence[int], timeout: float) -> list[Prediction]:
    """The predictions, once none is pending any more or `timeout` seconds have passed,
    whichever comes first (the worker answers them)."""
    deadline = time.monotonic() + timeout
    rows = Prediction.objects.filter(pk__in=prediction_ids)
    while rows.filter(status=Prediction.Status.PENDING).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return list(rows.select_related("image", "predicted_class", "model_version").order_by("id"))


@dataclass(frozen=True)
class VersionInUse:
    number: int
    resolved: int
    confirmed: int

    @property
    def accuracy(self) -> float | None:
        return self.confirmed / self.resolved if self.resolved else None


def accuracy_in_use(*, project: Project) -> list[VersionInUse]:
    """Per model version, newest first: how many of its predictions people confirmed
    or corrected, and the share confirmed (its accuracy on the data it meets in use)."""
    rows = (
        Prediction.objects.filter(
            project=project,
            status__in=(Prediction.Status.CONFIRMED, Prediction.Status.CORRECTED),
        )
        .values("model_version__number")
        .annotate(
            resolved=Count("id"),
            confirmed=Count("id", filter=Q(status=Prediction.Status.CONFIRMED)),
        )
        .order_by("-model_version__number")
    )
    return [VersionInUse(r["model_version__number"], r["resolved"], r["confirmed"]) for r in rows]


def projects_due_for_review() -> list[Project]:
    """Projects whose active model is newer than their last review scan (or that have
    never been scanned), with nothing scanning now: the labels have changed enough to
    be scored again."""
    due = []
    active = ModelVersion.objects.filter(is_active=True).select_related("project")
    for version in active:
        latest = review_scan_latest(project=version.project)
        if latest is None or (
            latest.status not in (ReviewScan.Status.QUEUED, ReviewScan.Status.RUNNING)
            and version.finished_at
            and latest.created_at < version.finished_at
        ):
            due.append(version.project)
    return due


def review_scan_latest(*, project: Project) -> ReviewScan | None:
    return ReviewScan.objects.filter(project=project).first()


def mistakes_list(*, project: Project) -> QuerySet[LabelScore]:
    """Labeled images whose label the out-of-sample model disputes (it prefers another
    class), most suspect first (lowest probability of the given label): still labeled
    as scored, still in the dataset, and not kept by a reviewer since. `is_issue` marks
    those confident learning flags."""
    kept = Annotation.objects.filter(
        image=OuterRef("image"), is_current=True, action=Annotation.Action.KEEP
    )
    return (
        LabelScore.objects.filter(
            image__project=project,
            image__label=F("label_class"),
            image__status=Image.Status.ACTIVE,
        )
        .exclude(suggested_class=F("label_class"))
        .exclude(Exists(kept))
        .select_related("image", "label_class", "suggested_class")
        .order_by("quality", "image_id")
    )


def corrected_predictions(*, project: Project) -> QuerySet[Prediction]:
    """Predictions people corrected: the model's mistakes in real use, newest first."""
    return prediction_list(project=project).filter(status=Prediction.Status.CORRECTED)


@dataclass(frozen=True)
class DuplicateGroup:
    images: list[Image]
    similarity: float  # the lowest similarity of a pair that joined the group

    @property
    def labels(self) -> set:
        return {image.label_id for image in self.images}

    @property
    def splits(self) -> set:
        return {image.split for image in self.images}


def near_duplicate_groups(*, project: Project) -> list[DuplicateGroup]:
    """Groups of near-identical labeled images (linked by the newest scan's pairs), with
    the images' current labels and splits."""
    pairs = list(
        NearDuplicate.objects.filter(scan__project=project).values_list(
            "first_id", "second_id", "similarity"
        )
    )
    parent: dict[int, int] = {}

    def root(a: int) -> int:
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b, _ in pairs:
        parent[root(a)] = root(b)
    members: dict[int, list[int]] = defaultdict(list)
    lowest: dict[int, float] = {}
    for pk in list(parent):
        members[root(pk)].append(pk)
    for a, _, s in pairs:
        r = root(a)
        lowest[r] = min(lowest.get(r, 1.0), s)
    images = Image.objects.select_related("label").in_bulk(list(parent))
    return [
        DuplicateGroup(
            images=[images[pk] for pk in sorted(ids) if pk in images], similarity=lowest[r]
        )
        for r, ids in members.items()
    ]


def duplicate_conflicts(*, project: Project) -> list[DuplicateGroup]:
    """Near-duplicate groups whose images carry different labels."""
    return [g for g in near_duplicate_groups(project=project) if len(g.labels) > 1]


def split_leaks(*, project: Project) -> list[DuplicateGroup]:
    """Near-duplicate groups spread over different splits: a test or validation image
    whose twin is trained on makes the evaluation look better than it is."""
    return [g for g in near_duplicate_groups(project=project) if len(g.splits) > 1]


@dataclass(frozen=True)
class ProjectProgress:
    images: int
    embedded: int
    labeled: int
    labeled_train: int
    labeled_val: int
    labeled_test: int
    in_queue: int
    model_version: int | None
    training: bool


def project_progress(*, project: Project) -> ProjectProgress:
    """How far a project is: its images, how many have an embedding for the current
    backbone, the labeled images still in the dataset (not removed or ambiguous), by
    split, how many the labeling queue still serves, and the active model's number."""
    status = learner_selectors.learner_status(project=project)
    active = Q(status=Image.Status.ACTIVE)
    labeled = active & Q(label__isnull=False)
    counts = Image.objects.filter(project=project).aggregate(
        labeled=Count("id", filter=labeled),
        train=Count("id", filter=labeled & Q(split=Image.Split.TRAIN)),
        val=Count("id", filter=labeled & Q(split=Image.Split.VAL)),
        test=Count("id", filter=labeled & Q(split=Image.Split.TEST)),
        # What `queue_reserve` serves: unlabeled images in the queue, and labeled ones
        # a class split left to relabel.
        in_queue=Count(
            "id",
            filter=active & (Q(label__isnull=True, in_queue=True) | Q(needs_relabel=True)),
        ),
    )
    return ProjectProgress(
        images=status.images,
        embedded=status.embedded,
        labeled=counts["labeled"],
        labeled_train=counts["train"],
        labeled_val=counts["val"],
        labeled_test=counts["test"],
        in_queue=counts["in_queue"],
        model_version=status.active.number if status.active else None,
        training=status.pending is not None,
    )
