"""Reads of the learner's state for pages, the API and the scheduler."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from labeling.models import Annotation, Image, LabelClass, Project
from models_app.models import Embedding, LearnerSettings, ModelVersion
from models_app.services import backbone_key


def model_version_list(*, project: Project) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(project=project).order_by("-number")


def model_version_active(*, project: Project) -> ModelVersion | None:
    return ModelVersion.objects.filter(project=project, is_active=True).first()


def model_version_pending(*, project: Project) -> ModelVersion | None:
    return ModelVersion.objects.filter(project=project, status__in=ModelVersion.PENDING).first()


@dataclass(frozen=True)
class LearnerStatus:
    images: int
    embedded: int
    active: ModelVersion | None
    pending: ModelVersion | None
    latest: ModelVersion | None

    @property
    def busy(self) -> bool:
        return self.pending is not None or self.embedded < self.images


def learner_status(*, project: Project) -> LearnerStatus:
    return LearnerStatus(
        images=Image.objects.filter(project=project).count(),
        embedded=Embedding.objects.filter(
            image__project=project, backbone=backbone_key(), vector__isnull=False
        ).count(),
        active=model_version_active(project=project),
        pending=model_version_pending(project=project),
        latest=model_version_list(project=project).first(),
    )


def projects_fully_embedded(*, embedding_ids: list[int]) -> list[Project]:
    """The projects of these embeddings that have every image embedded."""
    embedded = Embedding.objects.filter(backbone=backbone_key(), vector__isnull=False)
    project_ids = set(
        Embedding.objects.filter(pk__in=embedding_ids).values_list("image__project", flat=True)
    )
    return [
        project
        for project in Project.objects.filter(pk__in=project_ids)
        if not Image.objects.filter(project=project)
        .exclude(pk__in=embedded.values("image_id"))
        .exists()
    ]


def projects_due_for_training() -> list[Project]:
    """Projects with automatic retraining on, nothing queued or running, and at least
    `retrain_every` labels added since their last version was requested."""
    due = []
    for learner in LearnerSettings.objects.filter(retrain_every__gt=0).select_related("project"):
        project = learner.project
        if model_version_pending(project=project):
            continue
        last = model_version_list(project=project).first()
        labels = Annotation.objects.filter(
            image__project=project, label_class__isnull=False, action=Annotation.Action.LABEL
        )
        if last is not None:
            labels = labels.filter(created_at__gt=last.created_at)
        if labels.count() >= learner.retrain_every:
            due.append(project)
    return due


@dataclass(frozen=True)
class CurvePoint:
    labels: int
    accuracy: float
    version: int
    strategy: str


def learning_curve(*, project: Project) -> list[CurvePoint]:
    """Test accuracy against the number of labels, one point per successful version,
    with the query strategy that was choosing the labels."""
    points = []
    versions = ModelVersion.objects.filter(
        project=project, status=ModelVersion.Status.SUCCEEDED
    ).order_by("number")
    for version in versions:
        if version.accuracy is not None:
            points.append(
                CurvePoint(version.labels_total, version.accuracy, version.number, version.strategy)
            )
    return points


def class_names(*, version: ModelVersion) -> list[str]:
    names = dict(LabelClass.objects.filter(pk__in=version.class_ids).values_list("id", "name"))
    return [names.get(pk, f"#{pk}") for pk in version.class_ids]
