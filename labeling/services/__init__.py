"""Writes to the dataset, one module per domain: projects (and members), classes,
images (ingest), annotations (labels, undo, review decisions, the learner's
suggestions), suggestions (verified in bulk), tags (multi-label projects: each tag's
state per image), taxonomy (merge and split), the queue, and webhooks. Each function
is one transaction unless its docstring says why not; the public names are importable
from here.

Callers (views, API views, admin actions, commands, tasks) check access first with
`labeling.access`; these functions trust that the actor may do what is asked.
"""

from __future__ import annotations

from labeling.services.annotations import (
    REVIEW_ACTIONS,
    Suggestion,
    annotation_create,
    annotation_undo_last,
    annotations_bulk_create,
    image_review,
    image_suggestions_write,
    images_queue_add,
    split_for,
)
from labeling.services.classes import (
    CLASS_COLOURS,
    CLASS_KEYS,
    label_class_create,
    label_class_update,
)
from labeling.services.images import (
    FileResult,
    Upload,
    image_files_save,
    images_embedding_request,
    images_ingest,
    upload_limits,
)
from labeling.services.projects import (
    membership_remove,
    membership_set,
    project_create,
    project_require_kind,
    project_update,
)
from labeling.services.queue import (
    queue_release,
    queue_reserve,
)
from labeling.services.suggestions import VERIFY_MAX, VerifyResult, suggestions_verify
from labeling.services.tag_exchange import (
    TagImportResult,
    project_tags_export,
    project_tags_import,
)
from labeling.services.tags import (
    image_tags_set,
    image_tags_undo_last,
    images_tag_set,
    label_undo_last,
)
from labeling.services.taxonomy import (
    label_class_merge,
    label_class_merge_undo,
    label_class_split_cancel,
    label_class_split_finish,
    label_class_split_start,
    split_accept,
    split_assign,
    split_suggestions_write,
)
from labeling.services.webhooks import (
    label_milestones_check,
    webhook_create,
    webhook_delete,
    webhook_delivery_attempt,
    webhook_event_emit,
    webhook_ping,
    webhook_update,
)

__all__ = [
    "CLASS_COLOURS",
    "CLASS_KEYS",
    "FileResult",
    "REVIEW_ACTIONS",
    "Suggestion",
    "TagImportResult",
    "Upload",
    "VERIFY_MAX",
    "VerifyResult",
    "annotation_create",
    "annotation_undo_last",
    "annotations_bulk_create",
    "image_files_save",
    "image_review",
    "image_suggestions_write",
    "image_tags_set",
    "image_tags_undo_last",
    "images_embedding_request",
    "images_ingest",
    "images_queue_add",
    "images_tag_set",
    "label_class_create",
    "label_class_merge",
    "label_class_merge_undo",
    "label_class_split_cancel",
    "label_class_split_finish",
    "label_class_split_start",
    "label_class_update",
    "label_undo_last",
    "membership_remove",
    "membership_set",
    "project_create",
    "project_require_kind",
    "project_tags_export",
    "project_tags_import",
    "project_update",
    "queue_release",
    "queue_reserve",
    "split_accept",
    "split_assign",
    "split_for",
    "split_suggestions_write",
    "suggestions_verify",
    "upload_limits",
    "label_milestones_check",
    "webhook_create",
    "webhook_delete",
    "webhook_delivery_attempt",
    "webhook_event_emit",
    "webhook_ping",
    "webhook_update",
]
