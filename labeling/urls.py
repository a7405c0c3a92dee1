from django.urls import path

from labeling import views

app_name = "labeling"

urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("projects/<int:project_id>/", views.project_detail, name="project-detail"),
    path("projects/<int:project_id>/classes/", views.label_class_create, name="class-create"),
    path("projects/<int:project_id>/taxonomy/", views.classes_page, name="classes"),
    path(
        "projects/<int:project_id>/taxonomy/<int:class_id>/",
        views.class_update,
        name="class-update",
    ),
    path("projects/<int:project_id>/taxonomy/merge/", views.classes_merge, name="class-merge"),
    path(
        "projects/<int:project_id>/taxonomy/merges/<int:merge_id>/undo/",
        views.merge_undo,
        name="merge-undo",
    ),
    path("projects/<int:project_id>/taxonomy/split/", views.split_start, name="split-start"),
    path("projects/<int:project_id>/taxonomy/history/", views.taxonomy_history, name="history"),
    path("projects/<int:project_id>/members/", views.member_set, name="member-set"),
    path(
        "projects/<int:project_id>/members/<int:member_id>/remove/",
        views.member_remove,
        name="member-remove",
    ),
    path("projects/<int:project_id>/upload/", views.images_upload, name="upload"),
    path("projects/<int:project_id>/label/", views.label_page, name="label"),
    path("projects/<int:project_id>/label/undo/", views.label_undo, name="label-undo"),
    path("projects/<int:project_id>/label/<int:image_id>/", views.label_image, name="label-image"),
    path(
        "projects/<int:project_id>/label/<int:image_id>/skip/", views.label_skip, name="label-skip"
    ),
    path(
        "projects/<int:project_id>/label/<int:image_id>/tags/", views.label_tags, name="label-tags"
    ),
    path("projects/<int:project_id>/tags/export/", views.tags_export, name="tags-export"),
    path("projects/<int:project_id>/tags/import/", views.tags_import, name="tags-import"),
    path("projects/<int:project_id>/webhooks/", views.webhooks_page, name="webhooks"),
    path(
        "projects/<int:project_id>/webhooks/<int:webhook_id>/",
        views.webhook_update,
        name="webhook-update",
    ),
    path(
        "projects/<int:project_id>/webhooks/<int:webhook_id>/delete/",
        views.webhook_delete,
        name="webhook-delete",
    ),
    path(
        "projects/<int:project_id>/webhooks/<int:webhook_id>/ping/",
        views.webhook_ping,
        name="webhook-ping",
    ),
    path("projects/<int:project_id>/verify/", views.verify_page, name="verify"),
    path("projects/<int:project_id>/verify/accept/", views.verify_accept, name="verify-accept"),
    path("projects/<int:project_id>/images/", views.image_grid, name="grid"),
    path("projects/<int:project_id>/images/assign/", views.grid_assign, name="grid-assign"),
    path(
        "projects/<int:project_id>/images/<int:image_id>/file",
        views.image_file,
        name="image-file",
    ),
    path(
        "projects/<int:project_id>/images/<int:image_id>/thumbnail",
        views.image_thumbnail,
        name="image-thumbnail",
    ),
]
