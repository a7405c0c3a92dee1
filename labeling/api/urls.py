from django.urls import path
from rest_framework.authtoken.views import obtain_auth_token

from labeling.api import suggestions, tag_exchange, tags, views, webhooks

P = "projects/<int:project_id>"

urlpatterns = [
    path("auth/token/", obtain_auth_token, name="token"),
    path("projects/", views.ProjectListApi.as_view(), name="project-list"),
    path(f"{P}/", views.ProjectDetailApi.as_view(), name="project-detail"),
    path(f"{P}/members/", views.MemberListApi.as_view(), name="member-list"),
    path(f"{P}/members/<int:member_id>/", views.MemberDetailApi.as_view(), name="member-detail"),
    path(f"{P}/classes/", views.ClassListApi.as_view(), name="class-list"),
    path(f"{P}/classes/<int:class_id>/", views.ClassDetailApi.as_view(), name="class-detail"),
    path(f"{P}/classes/history/", views.TaxonomyHistoryApi.as_view(), name="taxonomy-history"),
    path(f"{P}/classes/merge/", views.MergeApi.as_view(), name="class-merge"),
    path(
        f"{P}/classes/merges/<int:merge_id>/undo/",
        views.MergeUndoApi.as_view(),
        name="class-merge-undo",
    ),
    path(f"{P}/classes/<int:class_id>/split/", views.SplitStartApi.as_view(), name="split-start"),
    path(f"{P}/splits/<int:split_id>/", views.SplitDetailApi.as_view(), name="split-detail"),
    path(f"{P}/splits/<int:split_id>/assign/", views.SplitAssignApi.as_view(), name="split-assign"),
    path(f"{P}/splits/<int:split_id>/accept/", views.SplitAcceptApi.as_view(), name="split-accept"),
    path(f"{P}/splits/<int:split_id>/finish/", views.SplitFinishApi.as_view(), name="split-finish"),
    path(f"{P}/splits/<int:split_id>/cancel/", views.SplitCancelApi.as_view(), name="split-cancel"),
    path(f"{P}/images/", views.ImageListApi.as_view(), name="image-list"),
    path(f"{P}/images/<int:image_id>/", views.ImageDetailApi.as_view(), name="image-detail"),
    path(f"{P}/images/<int:image_id>/file/", views.ImageFileApi.as_view(), name="image-file"),
    path(
        f"{P}/images/<int:image_id>/annotations/",
        views.AnnotationListApi.as_view(),
        name="annotation-list",
    ),
    path(f"{P}/images/<int:image_id>/tags/", tags.ImageTagsApi.as_view(), name="image-tags"),
    path(f"{P}/tags/assign/", tags.TagAssignApi.as_view(), name="tag-assign"),
    path(f"{P}/tags/export/", tag_exchange.TagsExportApi.as_view(), name="tags-export"),
    path(f"{P}/tags/import/", tag_exchange.TagsImportApi.as_view(), name="tags-import"),
    path(f"{P}/annotations/undo/", views.AnnotationUndoApi.as_view(), name="annotation-undo"),
    path(f"{P}/queue/next/", views.QueueNextApi.as_view(), name="queue-next"),
    path(f"{P}/suggestions/", suggestions.SuggestionListApi.as_view(), name="suggestion-list"),
    path(f"{P}/suggestions/verify/", suggestions.VerifyApi.as_view(), name="suggestion-verify"),
    path(f"{P}/webhooks/", webhooks.WebhookListApi.as_view(), name="webhook-list"),
    path(
        f"{P}/webhooks/<int:webhook_id>/",
        webhooks.WebhookDetailApi.as_view(),
        name="webhook-detail",
    ),
    path(
        f"{P}/webhooks/<int:webhook_id>/ping/",
        webhooks.WebhookPingApi.as_view(),
        name="webhook-ping",
    ),
    path(
        f"{P}/webhooks/<int:webhook_id>/deliveries/",
        webhooks.WebhookDeliveryListApi.as_view(),
        name="webhook-delivery-list",
    ),
]
