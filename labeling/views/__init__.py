"""HTML pages. Each view checks access, calls one service or selector and renders;
htmx requests get the named partial of the same template. A refused form answers 400
with that same partial, its errors beside the form and the values typed kept
(static/js/errors.js has htmx swap 400s in like 200s).

The pages live one module per area; their names are importable from here, as urls.py
and tests use them.
"""

from __future__ import annotations

from labeling.views.grid import grid_assign, image_file, image_grid, image_thumbnail
from labeling.views.label import label_image, label_page, label_skip, label_tags, label_undo
from labeling.views.projects import (
    images_upload,
    label_class_create,
    member_remove,
    member_set,
    project_detail,
    project_list,
)
from labeling.views.responses import file_response
from labeling.views.tag_exchange import tags_export, tags_import
from labeling.views.taxonomy import (
    class_update,
    classes_merge,
    classes_page,
    merge_undo,
    split_start,
    taxonomy_history,
)
from labeling.views.verify import verify_accept, verify_page
from labeling.views.webhooks import webhook_delete, webhook_ping, webhook_update, webhooks_page

__all__ = [
    "verify_accept",
    "verify_page",
    "class_update",
    "classes_merge",
    "classes_page",
    "file_response",
    "grid_assign",
    "image_file",
    "image_grid",
    "image_thumbnail",
    "images_upload",
    "label_class_create",
    "label_image",
    "label_page",
    "label_skip",
    "label_tags",
    "label_undo",
    "member_remove",
    "member_set",
    "merge_undo",
    "project_detail",
    "project_list",
    "split_start",
    "tags_export",
    "tags_import",
    "taxonomy_history",
    "webhook_delete",
    "webhook_ping",
    "webhook_update",
    "webhooks_page",
]
