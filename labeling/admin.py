"""Admin for support work. Label history is read-only here: it is only ever added to,
through the app's services, so an admin cannot rewrite what annotators did."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from labeling import services
from labeling.models import (
    Annotation,
    Image,
    LabelClass,
    Membership,
    Project,
    TagAnnotation,
    TaxonomyChange,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


class LabelClassInline(admin.TabularInline):
    # Read-only: class changes go through the Classes page or the API, which log them.
    model = LabelClass
    extra = 0
    can_delete = False
    fields = ["name", "color", "key", "order", "is_active", "parent"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "kind", "created_by", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name", "description"]
    raw_id_fields = ["created_by"]
    inlines = [MembershipInline, LabelClassInline]

    def get_readonly_fields(self, request, obj=None):
        # A project's kind decides what its labels are: fixed once it exists.
        return ["kind"] if obj else []


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "user", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username", "project__name"]
    raw_id_fields = ["project", "user"]


@admin.register(LabelClass)
class LabelClassAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "project", "key", "swatch", "order", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name", "project__name"]
    # Read-only here: renames, merges and splits go through the Classes page or the
    # API, which keep the taxonomy log and the labels consistent.
    readonly_fields = ["project", "name", "color", "key", "order", "is_active", "parent"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="colour")
    def swatch(self, obj: LabelClass):
        return format_html('<span style="background:{};padding:0 1em">&nbsp;</span>', obj.color)


class AnnotationInline(admin.TabularInline):
    model = Annotation
    fk_name = "image"
    extra = 0
    can_delete = False
    fields = ["created_at", "label_class", "action", "annotator", "is_current", "reverts"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class TagAnnotationInline(admin.TabularInline):
    model = TagAnnotation
    fk_name = "image"
    extra = 0
    can_delete = False
    fields = ["created_at", "tag", "state", "action", "annotator", "is_current", "reverts"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["id", "original_name", "project", "label", "split", "source", "created_at"]
    list_filter = ["source", "split", ("label", admin.EmptyFieldListFilter)]
    search_fields = ["original_name", "content_hash", "project__name"]
    raw_id_fields = ["project", "uploaded_by", "reserved_by"]
    readonly_fields = [
        "file",
        "thumbnail",
        "content_hash",
        "width",
        "height",
        "label",
        "tagged",
        "created_at",
        "preview",
    ]
    inlines = [AnnotationInline, TagAnnotationInline]
    actions = ["release_reservations"]

    @admin.display(description="thumbnail")
    def preview(self, obj: Image):
        if not obj.pk:
            return "-"
        url = f"/projects/{obj.project_id}/images/{obj.pk}/thumbnail"
        return format_html('<img src="{}" style="max-height:160px">', url)

    @admin.action(description="Release queue reservations")
    def release_reservations(self, request, queryset):
        for image in queryset.exclude(reserved_by=None):
            services.queue_release(image=image, user=image.reserved_by)


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ["id", "image", "label_class", "annotator", "is_current", "created_at"]
    list_filter = ["is_current"]
    search_fields = ["image__original_name", "annotator__username", "label_class__name"]
    list_select_related = ["image", "label_class", "annotator"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(TaxonomyChange)
class TaxonomyChangeAdmin(admin.ModelAdmin):
    list_display = ["created_at", "project", "actor", "kind", "summary"]
    list_filter = ["kind"]
    readonly_fields = ["project", "actor", "created_at", "kind", "summary", "details"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
