from django.contrib import admin

from feedback.models import (
    FeedbackSettings,
    LabelScore,
    Prediction,
    ReviewScan,
    TagLabelScore,
    TagReview,
)


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "image", "status", "predicted_class", "confidence"]
    list_filter = ["status", "project"]
    # Read-only: predictions change through the prediction services only.
    readonly_fields = [f.name for f in Prediction._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(ReviewScan)
class ReviewScanAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "status", "labeled", "issues", "created_at"]
    readonly_fields = [f.name for f in ReviewScan._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(LabelScore)
class LabelScoreAdmin(admin.ModelAdmin):
    list_display = ["image", "label_class", "quality", "is_issue", "suggested_class"]
    readonly_fields = [f.name for f in LabelScore._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(TagLabelScore)
class TagLabelScoreAdmin(admin.ModelAdmin):
    list_display = ["image", "quality", "is_issue", "scan"]
    readonly_fields = [f.name for f in TagLabelScore._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(TagReview)
class TagReviewAdmin(admin.ModelAdmin):
    list_display = ["image", "action", "tag", "state", "reviewer", "created_at"]
    readonly_fields = [f.name for f in TagReview._meta.fields]

    def has_add_permission(self, request):
        return False


admin.site.register(FeedbackSettings)
