"""Reads of the dataset for pages and the API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet

from labeling.filters import ImageFilter
from labeling.models import Annotation, Image, LabelClass, Membership, Project


def project_list(*, user: AbstractBaseUser) -> QuerySet[Project]:
    return Project.objects.filter(memberships__user=user).annotate(
        image_count=Count("images", distinct=True)
    )


def label_class_list(*, project: Project, active_only: bool = False) -> QuerySet[LabelClass]:
    classes = LabelClass.objects.filter(project=project)
    return classes.filter(is_active=True) if active_only else classes


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
        total=Count("id"), labeled=Count("id", filter=Q(label__isnull=False))
    )
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


def annotation_history(*, image: Image) -> QuerySet[Annotation]:
    return (
        Annotation.objects.filter(image=image)
        .select_related("label_class", "annotator", "reverts")
        .order_by("created_at", "id")
    )
