"""Reads of the feedback loop: predictions, the mistakes review, near-duplicates, and a
project's progress (dataset and learner together, which only this app sees both of)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery

from feedback.models import (
    LabelScore,
    NearDuplicate,
    Prediction,
    ReviewScan,
    TagLabelScore,
    TagReview,
    TagSuspect,
)
from feedback.monitoring import Monitoring, monitoring_report  # noqa: F401 - reads, listed here
from labeling.models import Annotation, Image, LabelClass, Project, TagAnnotation
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


def _live_suspects() -> QuerySet[TagSuspect]:
    """Suspect tag states still in force (the tag active, its state as scored)."""
    in_force = TagAnnotation.objects.filter(
        image=OuterRef("image"), tag=OuterRef("tag"), is_current=True, state=OuterRef("state")
    )
    return TagSuspect.objects.filter(Exists(in_force), tag__is_active=True)


def tag_mistakes_list(*, project: Project) -> QuerySet[TagLabelScore]:
    """Tagged images of a multi-label project with a saved tag state the out-of-sample
    model disputes, most suspect first (lowest multi-label label quality): still in the
    dataset, the disputed state still in force, and not kept by a reviewer since their
    tags last changed. Each has `live_suspects` (the disputed tags, least probable
    first) and `present_rows` (the tags in force present on it)."""
    latest_change = (
        TagAnnotation.objects.filter(image=OuterRef(OuterRef("image")))
        .order_by("-created_at")
        .values("created_at")[:1]
    )
    kept = TagReview.objects.filter(
        image=OuterRef("image"),
        action=TagReview.Action.KEEP,
        created_at__gte=Subquery(latest_change),
    )
    live = _live_suspects()
    return (
        TagLabelScore.objects.filter(
            image__project=project, image__status=Image.Status.ACTIVE, image__tagged=True
        )
        .filter(Exists(live.filter(score=OuterRef("pk"))))
        .exclude(Exists(kept))
        .select_related("image")
        .prefetch_related(
            Prefetch(
                "suspects",
                queryset=live.select_related("tag").order_by("quality", "tag_id"),
                to_attr="live_suspects",
            ),
            Prefetch(
                "image__tag_annotations",
                queryset=TagAnnotation.objects.filter(
                    is_current=True, state=TagAnnotation.State.PRESENT, tag__is_active=True
                )
                .select_related("tag")
                .order_by("tag__order", "tag_id"),
                to_attr="present_rows",
            ),
        )
        .order_by("quality", "image_id")
    )


def tags_present(*, image: Image) -> list[LabelClass]:
    """The tags in force present on `image`, in the project's order."""
    return list(
        LabelClass.objects.filter(
            tag_annotations__image=image,
            tag_annotations__is_current=True,
            tag_annotations__state=TagAnnotation.State.PRESENT,
        ).order_by("order", "id")
    )


def tag_names(*, project: Project) -> dict[int, str]:
    """Every tag (or class) of the project by id, inactive ones included."""
    return dict(LabelClass.objects.filter(project=project).values_list("id", "name"))


def corrected_predictions(*, project: Project) -> QuerySet[Prediction]:
    """Predictions people corrected: the model's mistakes in real use, newest first."""
    return prediction_list(project=project).filter(status=Prediction.Status.CORRECTED)


@dataclass(frozen=True)
class DuplicateGroup:
    """Images of a group carry `label_text` (their class, or their tags present) and
    `label_key` (what two images must share to agree: the class, or the tag set)."""

    images: list[Image]
    similarity: float  # the lowest similarity of a pair that joined the group

    @property
    def labels(self) -> set:
        return {image.label_key for image in self.images}

    @property
    def splits(self) -> set:
        return {image.split for image in self.images}


def near_duplicate_groups(*, project: Project) -> list[DuplicateGroup]:
    """Groups of near-identical labeled images (linked by the newest scan's pairs), with
    the images' current labels (classes, or in a multi-label project the tags present)
    and splits."""
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
    present: dict[int, list[str]] = defaultdict(list)
    if project.kind == Project.Kind.MULTI:
        rows = TagAnnotation.objects.filter(
            image__in=list(images), is_current=True, state=TagAnnotation.State.PRESENT
        ).order_by("tag__order", "tag_id")
        for image_id, name in rows.values_list("image_id", "tag__name"):
            present[image_id].append(name)
    for pk, image in images.items():
        if project.kind == Project.Kind.MULTI:
            image.label_key = tuple(present[pk])
            image.label_text = ", ".join(present[pk]) or "no tag"
        else:
            image.label_key = image.label_id
            image.label_text = image.label.name if image.label else "unlabeled"
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
    backbone, the labeled images (a class, or tags saved) still in the dataset (not
    removed or ambiguous), by split, how many the labeling queue still serves, and the
    active model's number."""
    status = learner_selectors.learner_status(project=project)
    active = Q(status=Image.Status.ACTIVE)
    labeled = active & ~Image.UNLABELED
    counts = Image.objects.filter(project=project).aggregate(
        labeled=Count("id", filter=labeled),
        train=Count("id", filter=labeled & Q(split=Image.Split.TRAIN)),
        val=Count("id", filter=labeled & Q(split=Image.Split.VAL)),
        test=Count("id", filter=labeled & Q(split=Image.Split.TEST)),
        # What `queue_reserve` serves: unlabeled images in the queue, and labeled ones
        # a class split left to relabel.
        in_queue=Count(
            "id",
            filter=active & ((Image.UNLABELED & Q(in_queue=True)) | Q(needs_relabel=True)),
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
