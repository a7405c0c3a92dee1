from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower


class Project(models.Model):
    class Kind(models.TextChoices):
        SINGLE = "single", "Single-label: one class per image"
        MULTI = "multi", "Multi-label: any number of tags per image"

    name = models.CharField(max_length=200)
    # Chosen at creation and fixed: it decides what a label is (one class, or a state per
    # tag), the head, the metrics and the label widget. A multi-label project's classes
    # are its tags.
    kind = models.CharField(max_length=6, choices=Kind.choices, default=Kind.SINGLE)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Held-out labels are a random sample: an image whose hash draw falls below
    # test_fraction + val_fraction is held out (see Image.draw), and the queue serves
    # those at that rate, in random order, whatever the query strategy prefers.
    test_fraction = models.FloatField(
        default=0.2, validators=[MinValueValidator(0.0), MaxValueValidator(0.5)]
    )
    val_fraction = models.FloatField(
        default=0.1, validators=[MinValueValidator(0.0), MaxValueValidator(0.5)]
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        REVIEWER = "reviewer", "Reviewer"
        ANNOTATOR = "annotator", "Annotator"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"


_colour = RegexValidator(r"^#[0-9a-fA-F]{6}$", "Colour must look like #1f77b4.")
_key = RegexValidator(r"^[0-9a-z]$", "Key must be one character: a digit or a lowercase letter.")


class LabelClass(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="classes")
    name = models.CharField(max_length=100)
    color = models.CharField(max_length=7, validators=[_colour])
    key = models.CharField(max_length=1, blank=True, validators=[_key])
    order = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    # One level of hierarchy (vehicle > car): images are labeled with the child; metrics
    # are reported at both levels.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "order", "id"]
        verbose_name_plural = "label classes"
        constraints = [
            models.UniqueConstraint(Lower("name"), "project", name="labelclass_unique_name_ci"),
            models.UniqueConstraint(
                fields=["project", "key"],
                condition=Q(is_active=True) & ~Q(key=""),
                name="labelclass_unique_active_key",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        self.name = (self.name or "").strip()
        if not self.name:
            raise ValidationError({"name": "A class needs a name."})


class Image(models.Model):
    class Source(models.TextChoices):
        UPLOAD = "upload", "Upload"
        IMPORT = "import", "Import"
        FEEDBACK = "feedback", "Feedback"

    class Status(models.TextChoices):
        ACTIVE = "active", "In the dataset"
        AMBIGUOUS = "ambiguous", "Ambiguous"
        REMOVED = "removed", "Removed"

    class Split(models.TextChoices):
        UNASSIGNED = "unassigned", "Unassigned"
        TRAIN = "train", "Train"
        VAL = "val", "Validation"
        TEST = "test", "Test"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="images")
    file = models.FileField(max_length=300)
    thumbnail = models.FileField(max_length=300)
    # For a file browsers cannot show (TIFF): a JPEG of it, served in its place.
    preview = models.FileField(max_length=300, blank=True)
    original_name = models.CharField(max_length=255)
    content_hash = models.CharField(max_length=64, help_text="SHA-256 of the uploaded bytes")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.UPLOAD)
    split = models.CharField(max_length=12, choices=Split.choices, default=Split.UNASSIGNED)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # The current label, kept equal to the current Annotation by labeling services so the
    # queue, counters and grid filter are single-table queries.
    label = models.ForeignKey(
        LabelClass, null=True, blank=True, on_delete=models.PROTECT, related_name="images"
    )
    # A queue reservation: the image is shown to this annotator only until it expires.
    reserved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reserved_until = models.DateTimeField(null=True, blank=True)
    # The active model's view of the image, written by the learner through
    # `image_suggestions_write`.
    suggested_class = models.ForeignKey(
        LabelClass, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    confidence = models.FloatField(null=True, blank=True)
    # The model version (its id) whose suggestion this is; a label accepted from the
    # suggestion records it as its provenance.
    suggested_by = models.PositiveIntegerField(null=True, blank=True)
    # Queue order among non-held-out images: higher is served sooner. Written by the
    # learner's query strategy.
    priority = models.FloatField(default=0.0)
    # A uniform number in [0, 1) fixed by the content hash: below the project's
    # test + val fraction the image is held out for evaluation (its split is decided by
    # it), and held-out images are served in this order, a random one.
    draw = models.FloatField(default=0.0)
    # Whether the labeling queue serves this image while unlabeled. Predictions sent in
    # real use (source feedback) join the queue only when the model was unsure of them.
    in_queue = models.BooleanField(default=True)
    # Reviewers take an image out of the dataset (removed: soft, reversible) or mark it
    # ambiguous; either way it leaves the queue, training and evaluation, label kept.
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    # Labeled, but its class was split and no new class was chosen for it: the queue
    # serves it before anything else.
    needs_relabel = models.BooleanField(default=False)
    # Multi-label projects: an annotator has saved this image's tags (each one present or
    # absent), so the queue counts it as labeled. `label` stays empty in such projects.
    tagged = models.BooleanField(default=False)

    # Still to label: no class (single-label) and tags never saved (multi-label). A
    # single-label image is never `tagged` and a multi-label one never has a `label`, so
    # this one condition serves both kinds.
    UNLABELED = Q(label__isnull=True, tagged=False)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "content_hash"], name="image_unique_content_hash"
            ),
        ]
        indexes = [
            models.Index(fields=["project", "label", "created_at", "id"], name="image_queue"),
            models.Index(fields=["project", "label", "priority"], name="image_queue_priority"),
            models.Index(fields=["project", "label", "draw"], name="image_queue_holdout"),
            # The queue's picks walk these in order and stop at the first free image.
            models.Index(
                # Equal priorities (no ranking yet) fall back to the hash draw: a random
                # order, never upload order (a folder sorted by class would serve one
                # class for hundreds of images).
                fields=["project", "-priority", "draw", "id"],
                condition=Q(label__isnull=True),
                name="image_queue_next_draw",
            ),
            models.Index(
                fields=["project", "draw", "id"],
                condition=Q(label__isnull=True),
                name="image_queue_next_holdout",
            ),
            models.Index(
                fields=["project", "-priority", "draw", "id"],
                condition=Q(tagged=False),
                name="image_tag_queue_next",
            ),
            models.Index(
                fields=["project", "id"], condition=Q(needs_relabel=True), name="image_relabel"
            ),
            models.Index(
                fields=["project", "reserved_until"],
                condition=Q(reserved_until__isnull=False),
                name="image_reserved",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.original_name}"

    @staticmethod
    def draw_for(content_hash: str) -> float:
        return int(content_hash[:12], 16) / 16**12

    @staticmethod
    def second_draw_for(content_hash: str) -> float:
        """Another uniform number from the hash, independent of `draw_for`."""
        return int(content_hash[12:24], 16) / 16**12


class Annotation(models.Model):
    """One labeling event. Rows are only ever added; `is_current` marks the one in force.

    A row with no class records that the image's label was withdrawn (an undo back to
    unlabeled), so the history alone tells the whole story. A reviewer's decision that
    does not change the class (keep, ambiguous, remove, restore) is a row too, with the
    class in force and its `action`.
    """

    class Action(models.TextChoices):
        LABEL = "label", "Labeled"
        KEEP = "keep", "Reviewed and kept"
        AMBIGUOUS = "ambiguous", "Marked ambiguous"
        REMOVE = "remove", "Removed from the dataset"
        RESTORE = "restore", "Restored to the dataset"
        MERGE = "merge", "Moved by a class merge"
        UNMERGE = "unmerge", "Restored by undoing a merge"
        SPLIT = "split", "Moved by a class split"

    class Origin(models.TextChoices):
        CHOSEN = "chosen", "Chosen by the annotator"
        SUGGESTION = "suggestion", "Accepted suggestion"
        VERIFIED = "verified", "Accepted suggestion, in bulk"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="annotations")
    label_class = models.ForeignKey(
        LabelClass, null=True, blank=True, on_delete=models.PROTECT, related_name="annotations"
    )
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    action = models.CharField(max_length=10, choices=Action.choices, default=Action.LABEL)
    is_current = models.BooleanField(default=True)
    reverts = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reverted_by",
        help_text="The annotation this row undoes.",
    )
    # How the annotator came to this class: chosen with the model's suggestion absent or
    # different, the shown suggestion accepted on the labeling page, or accepted in a page
    # of suggestions checked at a glance. With a suggestion: its version and confidence.
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.CHOSEN)
    suggested_by = models.PositiveIntegerField(null=True, blank=True)
    suggestion_confidence = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["image"], condition=Q(is_current=True), name="annotation_one_current"
            ),
        ]
        indexes = [models.Index(fields=["annotator", "-created_at"], name="annotation_recent")]

    def __str__(self) -> str:
        return f"{self.image_id} -> {self.label_class or 'unlabeled'}"


class SuggestionRejection(models.Model):
    """An annotator unticked the model's suggestion for an image on the bulk page: the
    image is not of that class. The queue's ranking reads it as evidence (the class's
    probability set to zero and the rest renormalised), so the image gets its next most
    likely class as suggestion and never comes back to a page of the rejected class."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="rejections")
    label_class = models.ForeignKey(LabelClass, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    suggested_by = models.PositiveIntegerField(null=True, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["image", "label_class"], name="suggestion_rejection_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.image_id} is not {self.label_class_id}"


class TagAnnotation(models.Model):
    """One tag's state on one image in a multi-label project: present or absent, as an
    annotator said it. Rows are only ever added; `is_current` marks the one in force. An
    image with no row in force for a tag has not been looked at for it, so "absent" is
    never guessed from silence; a row in force with state `unset` records an undo back
    to that. The rows one save wrote share its `save_id`, so undo takes back the save.
    An image counts as labeled (`Image.tagged`) while a full save of its tags (action
    `save`) stands that no undo has taken back."""

    class State(models.TextChoices):
        PRESENT = "present", "Present"
        ABSENT = "absent", "Absent"
        UNSET = "unset", "Not looked at"

    class Action(models.TextChoices):
        SAVE = "save", "Tags saved"
        SET = "set", "Set on a selection"
        UNDO = "undo", "Undone"
        MERGE = "merge", "Written by a tag merge"
        SPLIT = "split", "Written by a tag split"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="tag_annotations")
    tag = models.ForeignKey(LabelClass, on_delete=models.PROTECT, related_name="tag_annotations")
    state = models.CharField(max_length=7, choices=State.choices)
    action = models.CharField(max_length=5, choices=Action.choices)
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    save_id = models.UUIDField()
    is_current = models.BooleanField(default=True)
    reverts = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reverted_by",
        help_text="The tag annotation this row undoes.",
    )

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["image", "tag"], condition=Q(is_current=True), name="tag_one_current"
            ),
        ]
        indexes = [
            models.Index(fields=["annotator", "-created_at"], name="tag_annotation_recent"),
            models.Index(fields=["tag", "state"], condition=Q(is_current=True), name="tag_state"),
        ]

    def __str__(self) -> str:
        return f"{self.image_id}: {self.tag_id} {self.state}"


class TaxonomyChange(models.Model):
    """The audit log of a project's classes: who changed what, when."""

    class Kind(models.TextChoices):
        CREATE = "create", "Class created"
        UPDATE = "update", "Class changed"
        MERGE = "merge", "Classes merged"
        UNMERGE = "unmerge", "Merge undone"
        SPLIT_START = "split_start", "Split started"
        SPLIT_FINISH = "split_finish", "Split finished"
        SPLIT_CANCEL = "split_cancel", "Split cancelled"

    # Changes after which the model must learn again.
    RETRAIN = (Kind.MERGE, Kind.UNMERGE, Kind.SPLIT_FINISH)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="taxonomy_changes")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    summary = models.CharField(max_length=500)
    details = models.JSONField(default=dict)

    class Meta:
        ordering = ["project", "-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.summary}"


class ClassMerge(models.Model):
    """Classes merged into `target`; `moves` remember every label it changed, so undo
    restores exactly the labels before."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="merges")
    target = models.ForeignKey(LabelClass, on_delete=models.CASCADE, related_name="+")
    # The merged classes other than the target, as ids (they stay, deactivated).
    source_ids = models.JSONField(default=list)
    target_created = models.BooleanField(default=False)
    # A merge of tags (multi-label projects): the save_id of the target's rows it wrote.
    tag_save_id = models.UUIDField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["project", "-created_at", "-id"]

    def __str__(self) -> str:
        return f"merge {self.pk} into {self.target}"


class ClassMergeMove(models.Model):
    merge = models.ForeignKey(ClassMerge, on_delete=models.CASCADE, related_name="moves")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    previous_class = models.ForeignKey(LabelClass, on_delete=models.CASCADE, related_name="+")
    # The history row the merge added; undo only touches images still holding it.
    annotation = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="+")

    def __str__(self) -> str:
        return f"image {self.image_id} was {self.previous_class_id} before merge {self.merge_id}"


class ClassSplit(models.Model):
    """Class `source` being split into `targets`: the expert labels seeds, the learner
    suggests a target for every other image, the expert accepts or fixes, then finishes.
    Until then the source class keeps working and the targets stay inactive."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        FINISHED = "finished", "Finished"
        CANCELLED = "cancelled", "Cancelled"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="splits")
    source = models.ForeignKey(LabelClass, on_delete=models.CASCADE, related_name="+")
    targets = models.ManyToManyField(LabelClass, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source"], condition=Q(status="open"), name="classsplit_one_open"
            ),
        ]

    def __str__(self) -> str:
        return f"split of {self.source} ({self.status})"

    def source_images(self) -> models.QuerySet[Image]:
        """The images of the class being split: labeled with it, or in a multi-label
        project with the tag present in force."""
        images = Image.objects.filter(project_id=self.project_id)
        if self.project.kind == Project.Kind.MULTI:
            present = TagAnnotation.objects.filter(
                tag_id=self.source_id, is_current=True, state=TagAnnotation.State.PRESENT
            )
            return images.filter(pk__in=present.values("image_id"))
        return images.filter(label_id=self.source_id)


class SplitAssignment(models.Model):
    """Which new class an image of a split class goes to, and on whose word."""

    class Kind(models.TextChoices):
        EXPERT = "expert", "Chosen by the expert"
        SUGGESTED = "suggested", "Suggested"
        ACCEPTED = "accepted", "Suggestion accepted"

    split = models.ForeignKey(ClassSplit, on_delete=models.CASCADE, related_name="assignments")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    label_class = models.ForeignKey(LabelClass, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    confidence = models.FloatField(null=True, blank=True)

    DECIDED = (Kind.EXPERT, Kind.ACCEPTED)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["split", "image"], name="splitassignment_unique"),
        ]

    def __str__(self) -> str:
        return f"image {self.image_id} -> {self.label_class_id} ({self.kind})"


# Webhooks live in their own module; imported here so Django finds them in this app.
from labeling.models_webhooks import (  # noqa: E402, F401
    LabelMilestone,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)
