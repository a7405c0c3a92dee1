"""Reads of the learner's state for pages, the API and the scheduler."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, QuerySet
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.brokers.orm import ORM as OrmBroker
from django_q.brokers.redis_broker import Redis as RedisBroker
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signing import BadSignature, SignedPackage

from labeling.models import (
    Annotation,
    Image,
    LabelClass,
    Project,
    TagAnnotation,
    TaxonomyChange,
)
from models_app.models import Embedding, LearnerSettings, ModelVersion


def backbone_key() -> str:
    """Names the features an embedding holds: the model, and its weights if not default."""
    config = settings.LEARNER
    weights = config["BACKBONE_WEIGHTS"]
    return f"{config['BACKBONE']}:{weights.rsplit('/', 1)[-1]}" if weights else config["BACKBONE"]


def model_version_list(*, project: Project) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(project=project).order_by("-number")


def model_version_active(*, project: Project) -> ModelVersion | None:
    return ModelVersion.objects.filter(project=project, is_active=True).first()


def model_version_pending(*, project: Project) -> ModelVersion | None:
    return ModelVersion.objects.filter(project=project, status__in=ModelVersion.PENDING).first()


def task_queue_position(*, task_name: str) -> int | None:
    """How many tasks wait in the worker's queue ahead of the task named `task_name`
    (0: it is next), or None when it is not waiting there (running, done, or a broker
    this cannot read). Reads the database broker's rows or the Redis list in order."""
    broker = get_broker()
    if isinstance(broker, OrmBroker):
        payloads = (
            OrmQ.objects.using(Conf.ORM or "default")
            .filter(key=broker.list_key, lock__lte=timezone.now())
            .order_by("id")
            .values_list("payload", flat=True)
        )
    elif isinstance(broker, RedisBroker):
        payloads = broker.connection.lrange(broker.list_key, 0, -1)
    else:
        return None
    for position, payload in enumerate(payloads):
        try:
            name = SignedPackage.loads(payload).get("name")
        except BadSignature:
            continue
        if name == task_name:
            return position
    return None


@dataclass(frozen=True)
class LearnerStatus:
    images: int
    embedded: int
    active: ModelVersion | None
    pending: ModelVersion | None
    latest: ModelVersion | None

    @property
    def pending_queue_position(self) -> int | None:
        """Tasks ahead of the queued version's training in the worker's queue."""
        if self.pending is None or self.pending.status != ModelVersion.Status.QUEUED:
            return None
        return task_queue_position(task_name=self.pending.task_name)

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
    """Projects with nothing queued or running and either a merge, an undone merge or
    a finished split since their last version was requested (whatever the setting),
    or automatic retraining on and at least `retrain_every` labels added since."""
    due = projects_reshaped_since_last_version()
    for learner in LearnerSettings.objects.filter(retrain_every__gt=0).select_related("project"):
        if learner.project in due:
            continue
        project = learner.project
        if model_version_pending(project=project):
            continue
        last = model_version_list(project=project).first()
        if labels_since(project=project, version=last) >= learner.retrain_every:
            due.append(project)
    return due


def labels_since(*, project: Project, version: ModelVersion | None) -> int:
    """New labels since `version` was requested (all of them without one): class labels
    given, or, in a multi-label project, images whose tags were saved or set (an image
    counts once however many of its tags changed in that time). A tag set on an image
    whose tags were never saved does not count: training reads saved images only."""
    multi = project.kind == Project.Kind.MULTI
    if multi:
        rows = TagAnnotation.objects.filter(
            image__project=project,
            image__tagged=True,
            action__in=[TagAnnotation.Action.SAVE, TagAnnotation.Action.SET],
        ).exclude(state=TagAnnotation.State.UNSET)
    else:
        rows = Annotation.objects.filter(
            image__project=project, label_class__isnull=False, action=Annotation.Action.LABEL
        )
    if version is not None:
        rows = rows.filter(created_at__gt=version.created_at)
    return rows.values("image_id").distinct().count() if multi else rows.count()


def projects_reshaped_since_last_version() -> list[Project]:
    """Projects with a merge, an undone merge or a finished split since their last
    version was requested, and nothing queued or running."""
    changes = TaxonomyChange.objects.filter(kind__in=TaxonomyChange.RETRAIN)
    due = []
    for project in Project.objects.filter(pk__in=changes.values("project")):
        if model_version_pending(project=project):
            continue
        last = model_version_list(project=project).first()
        mine = changes.filter(project=project)
        # A retraining: a project that never trained waits for its first labels.
        if last is not None and mine.filter(created_at__gt=last.created_at).exists():
            due.append(project)
    return due


@dataclass(frozen=True)
class CurvePoint:
    labels: int
    accuracy: float
    version: int
    strategy: str


def learning_curve(*, project: Project) -> list[CurvePoint]:
    """Test accuracy (mean AP for tags) against the number of labels, one point per
    successful version, with the query strategy that was choosing the labels."""
    points = []
    versions = ModelVersion.objects.filter(
        project=project, status=ModelVersion.Status.SUCCEEDED
    ).order_by("number")
    for version in versions:
        # Multi-label versions: mean average precision over the tags.
        score = version.mean_ap if version.is_multi_label else version.accuracy
        if score is not None:
            points.append(CurvePoint(version.labels_total, score, version.number, version.strategy))
    return points


def class_names(*, version: ModelVersion) -> list[str]:
    return class_names_of(class_ids=version.class_ids)


def class_names_of(*, class_ids: list[int]) -> list[str]:
    names = dict(LabelClass.objects.filter(pk__in=class_ids).values_list("id", "name"))
    return [names.get(pk, f"#{pk}") for pk in class_ids]


@dataclass(frozen=True)
class MergeHint:
    first: str
    second: str
    confused: int  # test images of either class taken for the other
    rate: float  # that count over both classes' test images


@dataclass(frozen=True)
class ThinClass:
    name: str
    labels: int
    needed: int


def labels_needed(n_classes: int) -> int:
    """About how many labels a class needs: ~20 for a binary task, ~50 from 20
    classes on, in between linearly (practitioners' rule of thumb for small data)."""
    if n_classes <= 2:
        return 20
    return min(50, round(20 + (n_classes - 2) * 30 / 18))


def merge_hints(*, version: ModelVersion, limit: int = 3, min_rate: float = 0.1) -> list[MergeHint]:
    """The class pairs the version confuses most on the test split, in both directions,
    when at least `min_rate` of their test images are taken for the other: candidates
    for a merge."""
    test = version.metrics.get("test") or {}
    confusion = test.get("confusion") or []
    names = class_names(version=version)
    hints = []
    for i in range(len(confusion)):
        for j in range(i + 1, len(confusion)):
            confused = confusion[i][j] + confusion[j][i]
            support = sum(confusion[i]) + sum(confusion[j])
            if support and confused / support >= min_rate:
                hints.append(MergeHint(names[i], names[j], confused, confused / support))
    return sorted(hints, key=lambda h: -h.rate)[:limit]


def thin_classes(*, project: Project) -> list[ThinClass]:
    """Classes one labels with (active, and not the parent of active classes: their
    images are labeled with the children) holding fewer labels than a task of this
    many classes needs; in a multi-label project, tags saved present on fewer images."""
    classes = list(
        LabelClass.objects.filter(project=project, is_active=True)
        .exclude(children__is_active=True)
        .distinct()
    )
    needed = labels_needed(len(classes))
    if project.kind == Project.Kind.MULTI:
        # A tag's examples are the images it is saved present on (absent ones abound).
        counts = dict(
            TagAnnotation.objects.filter(
                tag__in=classes,
                is_current=True,
                state=TagAnnotation.State.PRESENT,
                image__status=Image.Status.ACTIVE,
            )
            .values_list("tag")
            .annotate(n=Count("id"))
        )
    else:
        counts = dict(
            Image.objects.filter(project=project, label__in=classes, status=Image.Status.ACTIVE)
            .values_list("label")
            .annotate(n=Count("id"))
        )
    return [
        ThinClass(c.name, counts.get(c.pk, 0), needed)
        for c in classes
        if counts.get(c.pk, 0) < needed
    ]


@dataclass(frozen=True)
class BinaryView:
    """A binary version's yes/no figures for the dashboard: the positive class or tag,
    its test curves (models_app.ml.curves), the decision rule, or why there are none."""

    positive: str
    curves: dict | None
    rule: str
    missing: str = ""


def binary_view(*, version: ModelVersion | None) -> BinaryView | None:
    """For a two-class project or a one-tag project, what its active version's test split
    says of the yes/no decision; None for any other version."""
    if version is None or version.status != ModelVersion.Status.SUCCEEDED:
        return None
    multi = version.is_multi_label
    if len(version.class_ids) != (1 if multi else 2):
        return None
    names = class_names(version=version)
    positive = names[0] if multi else names[1]
    if multi:
        rule = (
            f"{positive} is present when its probability reaches the threshold, chosen on "
            "the validation split (best F1)."
        )
    else:
        rule = (
            f"{positive} is predicted when its probability exceeds {names[0]}'s: a "
            "threshold of 0.5."
        )
    curves = (version.metrics.get("test") or {}).get("binary")
    missing = ""
    if curves is None:
        missing = (
            f"No ROC or precision-recall curve yet: the test split needs images with and "
            f"without {positive}. Label more images; a share of them is held out for the test."
        )
    return BinaryView(positive=positive, curves=curves, rule=rule, missing=missing)
