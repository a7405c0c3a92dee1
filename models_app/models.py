from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from labeling.models import Image, Project

# Query strategies (implemented in models_app/ml/strategies.py), as offered to owners.
STRATEGY_CHOICES = [
    ("auto", "Auto: TypiClust cold start, then smallest margin"),
    ("random", "Random"),
    ("least_confidence", "Least confidence"),
    ("margin", "Smallest margin"),
    ("entropy", "Entropy"),
    ("typiclust", "TypiClust (typical points of uncovered clusters)"),
    ("cluster_margin", "Cluster-margin (diverse uncertain batches)"),
]
DEFAULT_STRATEGY = "auto"


class LearnerSettings(models.Model):
    """How a project's model is trained. Created with defaults on first use."""

    class HeadKind(models.TextChoices):
        LINEAR = "linear", "Linear"
        MLP = "mlp", "Small MLP"

    project = models.OneToOneField(
        Project, on_delete=models.CASCADE, primary_key=True, related_name="learner"
    )
    retrain_every = models.PositiveIntegerField(
        default=50, help_text="Retrain after this many new labels; 0 turns it off."
    )
    head_kind = models.CharField(max_length=10, choices=HeadKind.choices, default="linear")
    fine_tune = models.BooleanField(
        default=False,
        help_text="Also fine-tune the whole backbone with augmentation (slow without a GPU).",
    )
    fine_tune_epochs = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    strategy = models.CharField(
        max_length=20,
        choices=STRATEGY_CHOICES,
        default=DEFAULT_STRATEGY,
        help_text="Which unlabeled images the queue serves first.",
    )

    class Meta:
        verbose_name_plural = "learner settings"

    def __str__(self) -> str:
        return f"learner of {self.project}"


class Embedding(models.Model):
    """One image's features from one backbone, as float16 bytes.

    A row with no vector is a claim: a worker is computing it (since `claimed_at`).
    """

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="embeddings")
    backbone = models.CharField(max_length=200)
    vector = models.BinaryField(null=True)
    dim = models.PositiveIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "backbone"], name="embedding_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.backbone} of image {self.image_id}"


# A version still on its way (queued or running): at most one per project.
PENDING_STATUSES = ("queued", "running")


class ModelVersion(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    PENDING = PENDING_STATUSES

    class Trigger(models.TextChoices):
        BUTTON = "button", "Retrain button"
        ADMIN = "admin", "Admin action"
        AUTO = "auto", "New labels"
        TAXONOMY = "taxonomy", "Class change"
        API = "api", "REST API"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    is_active = models.BooleanField(default=False)
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    backbone = models.CharField(max_length=200)
    head_kind = models.CharField(max_length=10, default="linear")
    # The query strategy in force when the version was requested: the one that chose
    # the labels it learned from (unless the setting changed in between).
    strategy = models.CharField(max_length=20, blank=True)
    fine_tuned = models.BooleanField(default=False)
    progress = models.CharField(max_length=200, blank=True)
    # Which classes the head's outputs are, in order: [class id, ...].
    class_ids = models.JSONField(default=list)
    # Labels per class and split when training started, and how many labels in all.
    label_counts = models.JSONField(default=dict)
    labels_total = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    artifact = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["project", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="modelversion_number"),
            models.UniqueConstraint(
                fields=["project"], condition=Q(is_active=True), name="modelversion_one_active"
            ),
            # One training per project at a time: at most one queued or running version.
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(status__in=PENDING_STATUSES),
                name="modelversion_one_pending",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project} v{self.number} ({self.status})"

    @property
    def task_name(self) -> str:
        """The name its training task carries in the worker's queue."""
        return f"train {self.project_id} v{self.number}"

    @property
    def accuracy(self) -> float | None:
        return (self.metrics.get("test") or {}).get("accuracy")

    @property
    def is_multi_label(self) -> bool:
        return self.metrics.get("kind") == "multi"

    @property
    def mean_ap(self) -> float | None:
        """A multi-label version's mean average precision over its tags on the test split."""
        return (self.metrics.get("test") or {}).get("map")


class ModelExport(models.Model):
    """A version built for use outside the app: one ONNX graph from image to
    probabilities, the same as TorchScript, and the JSON a caller needs (input size,
    normalisation, classes, temperature, thresholds, metrics). Built by a worker; the
    files live in the default storage beside the version's artifact."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Building"
        SUCCEEDED = "succeeded", "Ready"
        FAILED = "failed", "Failed"

    PENDING = PENDING_STATUSES

    version = models.OneToOneField(ModelVersion, on_delete=models.CASCADE, related_name="export")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    progress = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    onnx_file = models.CharField(max_length=300, blank=True)
    torchscript_file = models.CharField(max_length=300, blank=True)
    manifest_file = models.CharField(max_length=300, blank=True)
    # The JSON written beside the model, kept here for the API and the dashboard.
    manifest = models.JSONField(default=dict, blank=True)
    onnx_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    torchscript_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"export of {self.version} ({self.status})"

    @property
    def task_name(self) -> str:
        return f"export {self.version.project_id} v{self.version.number}"

    @property
    def is_pending(self) -> bool:
        return self.status in PENDING_STATUSES
