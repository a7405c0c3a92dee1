"""Reads of the dataset for pages and the API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from labeling.filters import ImageFilter
from labeling.models import (
    Annotation,
    ClassMerge,
    ClassSplit,
    Image,
    LabelClass,
    Membership,
    Project,
    SplitAssignment,
    SuggestionRejection,
    TagAnnotation,
    TaxonomyChange,
    Webhook,
    WebhookDelivery,
)


def project_list(*, user: AbstractBaseUser) -> QuerySet[Project]:
    return Project.objects.filter(memberships__user=user).annotate(
        image_count=Count("images", distinct=True)
    )


def label_class_list(*, project: Project, active_only: bool = False) -> QuerySet[LabelClass]:
    """The project's classes; `active_only`: those one may label with now (active, and
    not the parent of an active class: labeling happens at the child level)."""
    classes = LabelClass.objects.filter(project=project).select_related("parent")
    if not active_only:
        return classes
    return classes.filter(is_active=True).exclude(children__is_active=True).distinct()


def taxonomy_change_list(*, project: Project) -> QuerySet[TaxonomyChange]:
    return TaxonomyChange.objects.filter(project=project).select_related("actor")


def class_merge_list(*, project: Project) -> QuerySet[ClassMerge]:
    return ClassMerge.objects.filter(project=project).select_related("target", "created_by")


def class_split_open(*, project: Project) -> QuerySet[ClassSplit]:
    return ClassSplit.objects.filter(project=project, status=ClassSplit.Status.OPEN)


@dataclass(frozen=True)
class SplitProgress:
    images: int  # images of the class being split
    decided: int  # with a new class chosen by the expert or accepted
    suggested: int  # with a suggestion not yet accepted


def split_progress(*, split: ClassSplit) -> SplitProgress:
    rows = split.assignments.filter(image__in=split.source_images())
    return SplitProgress(
        images=split.source_images().count(),
        decided=rows.filter(kind__in=SplitAssignment.DECIDED).count(),
        suggested=rows.filter(kind=SplitAssignment.Kind.SUGGESTED).count(),
    )


def split_assignment_list(*, split: ClassSplit) -> QuerySet[SplitAssignment]:
    """The images of the split class with a new class, surest suggestion first (accept
    from the top, fix near the bottom); the expert's own choices last."""
    return (
        split.assignments.filter(image__in=split.source_images())
        .select_related("image", "label_class")
        .order_by(F("confidence").desc(nulls_last=True), "image_id")
    )


def membership_list(*, project: Project) -> QuerySet[Membership]:
    return Membership.objects.filter(project=project).select_related("user")


@dataclass(frozen=True)
class ClassCount:
    label_class: LabelClass
    count: int


@dataclass(frozen=True)
class ProjectCounts:
    total: int
    labeled: int
    per_class: list[ClassCount]

    @property
    def unlabeled(self) -> int:
        return self.total - self.labeled


def project_counts(*, project: Project) -> ProjectCounts:
    """Labeled / total and per class, in two queries."""
    totals = Image.objects.filter(project=project).aggregate(
        total=Count("id"), labeled=Count("id", filter=~Image.UNLABELED)
    )
    if project.kind == Project.Kind.MULTI:
        # A tag counts the images it is present on.
        by_class = dict(
            TagAnnotation.objects.filter(
                image__project=project, is_current=True, state=TagAnnotation.State.PRESENT
            )
            .values_list("tag")
            .annotate(n=Count("id"))
        )
    else:
        by_class = dict(
            Image.objects.filter(project=project, label__isnull=False)
            .values_list("label")
            .annotate(n=Count("id"))
        )
    classes = LabelClass.objects.filter(project=project)
    return ProjectCounts(
        total=totals["total"],
        labeled=totals["labeled"],
        per_class=[ClassCount(c, by_class.get(c.pk, 0)) for c in classes],
    )


def image_list(*, project: Project, filters: Mapping[str, Any] | None = None) -> QuerySet[Image]:
    """Images of a project, filtered by label (a class id, "labeled" or "unlabeled"),
    suggested class, split and source; in upload order unless `order` says "confidence"
    or "-confidence". Raises ValidationError on a malformed filter."""
    images = Image.objects.filter(project=project).select_related("label", "suggested_class")
    filterset = ImageFilter(filters or {}, queryset=images)
    if not filterset.is_valid():
        raise ValidationError(
            {
                field: [e["message"] for e in errors]
                for field, errors in filterset.errors.get_json_data().items()
            }
        )
    images = filterset.qs
    if filterset.form.cleaned_data.get("order"):
        return images.order_by(*images.query.order_by, "id")  # ties in a stable order
    return images.order_by("created_at", "id")


def image_tag_states(*, image: Image) -> dict[int, str]:
    """Each tag's state in force on `image`, by tag id; a tag never looked at is absent
    from the mapping (or maps to "unset" after an undo)."""
    return dict(
        TagAnnotation.objects.filter(image=image, is_current=True).values_list("tag_id", "state")
    )


def tag_history(*, image: Image) -> QuerySet[TagAnnotation]:
    return (
        TagAnnotation.objects.filter(image=image)
        .select_related("tag", "annotator", "reverts")
        .order_by("created_at", "id")
    )


def annotation_history(*, image: Image) -> QuerySet[Annotation]:
    return (
        Annotation.objects.filter(image=image)
        .select_related("label_class", "annotator", "reverts")
        .order_by("created_at", "id")
    )


@dataclass(frozen=True)
class QueueOrder:
    kind: str  # "random", "cold-start" or "model"
    text: str


def queue_order(*, project: Project) -> QueueOrder:
    """Which order the labeling queue serves now, in words for the labeling page: random
    until the learner has ranked the images (their embeddings are being computed), then
    the query strategy's ranking, with or without a model's suggestions."""
    waiting = Image.objects.filter(
        Image.UNLABELED, project=project, in_queue=True, status=Image.Status.ACTIVE
    )
    if waiting.filter(suggested_class__isnull=False).exists():
        return QueueOrder("model", "The queue serves the images the model learns most from first.")
    if waiting.exclude(priority=0).exists():
        return QueueOrder(
            "cold-start",
            "No model yet: the queue serves typical, varied images first (cold start).",
        )
    return QueueOrder(
        "random",
        "Images are served in random order until they are embedded and ranked "
        "(a minute or two after an upload).",
    )


def suggestions_pending(*, project: Project, user: AbstractBaseUser) -> QuerySet[Image]:
    """Images of `project` waiting for a label that carry the model's suggestion, in the
    dataset and not held by another annotator's labeling page: what the bulk page can
    show `user`."""
    free = Q(reserved_until__isnull=True) | Q(reserved_until__lte=timezone.now())
    return Image.objects.filter(
        free | Q(reserved_by=user),
        Image.UNLABELED,
        project=project,
        status=Image.Status.ACTIVE,
        suggested_class__isnull=False,
    )


def suggestion_counts(*, project: Project, user: AbstractBaseUser) -> dict[int, int]:
    """How many images the bulk page can show `user` for each suggested class, by id."""
    return dict(
        suggestions_pending(project=project, user=user)
        .values_list("suggested_class")
        .annotate(n=Count("id"))
        .order_by()
    )


def suggestion_list(
    *, project: Project, label_class: LabelClass, user: AbstractBaseUser
) -> QuerySet[Image]:
    """The images the model says are `label_class`, most confident first."""
    return (
        suggestions_pending(project=project, user=user)
        .filter(suggested_class=label_class)
        .order_by(F("confidence").desc(nulls_last=True), "id")
    )


def suggestion_rejections(*, project: Project) -> list[tuple[int, int]]:
    """(image id, class id) of every suggestion rejected in `project`."""
    return list(
        SuggestionRejection.objects.filter(image__project=project).values_list(
            "image_id", "label_class_id"
        )
    )


def webhook_list(*, project: Project) -> QuerySet[Webhook]:
    return Webhook.objects.filter(project=project).order_by("id")


def webhook_deliveries(
    *, project: Project, webhook: Webhook | None = None
) -> QuerySet[WebhookDelivery]:
    """A project's webhook deliveries, newest first, each with its attempts."""
    rows = WebhookDelivery.objects.filter(webhook__project=project)
    if webhook is not None:
        rows = rows.filter(webhook=webhook)
    return rows.select_related("webhook").prefetch_related("attempt_log")
