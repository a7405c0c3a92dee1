from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from labeling.admin import ProjectAdmin
from labeling.models import Project
from models_app import services
from models_app.models import Embedding, LearnerSettings, ModelVersion


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "project",
        "number",
        "status",
        "is_active",
        "trigger",
        "labels_total",
        "accuracy",
        "created_at",
    ]
    list_filter = ["status", "is_active", "trigger"]
    search_fields = ["project__name", "error"]
    raw_id_fields = ["project", "requested_by"]
    readonly_fields = [f.name for f in ModelVersion._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(LearnerSettings)
class LearnerSettingsAdmin(admin.ModelAdmin):
    list_display = ["project", "retrain_every", "head_kind"]
    raw_id_fields = ["project"]


@admin.register(Embedding)
class EmbeddingAdmin(admin.ModelAdmin):
    list_display = ["id", "image", "backbone", "dim", "claimed_at", "created_at"]
    list_filter = ["backbone"]
    raw_id_fields = ["image"]
    exclude = ["vector"]


# The Retrain action belongs to the learner, so it is added to the project admin here
# rather than in `labeling`, which knows nothing of models.
admin.site.unregister(Project)


@admin.register(Project)
class ProjectWithLearnerAdmin(ProjectAdmin):
    actions = ["retrain"]

    @admin.action(description="Retrain the model")
    def retrain(self, request, queryset):
        for project in queryset:
            try:
                version = services.model_version_request(
                    project=project, trigger=ModelVersion.Trigger.ADMIN, user=request.user
                )
            except ValidationError as error:
                self.message_user(request, f"{project}: {' '.join(error.messages)}", messages.ERROR)
                continue
            self.message_user(
                request, f"{project}: v{version.number} {version.status}.", messages.INFO
            )
