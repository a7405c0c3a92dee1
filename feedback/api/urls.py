from django.urls import path

from feedback.api import monitoring, views

P = "projects/<int:project_id>"

urlpatterns = [
    path(f"{P}/predictions/", views.PredictionListApi.as_view(), name="prediction-list"),
    path(
        f"{P}/predictions/<int:prediction_id>/",
        views.PredictionDetailApi.as_view(),
        name="prediction-detail",
    ),
    path(
        f"{P}/predictions/<int:prediction_id>/resolve/",
        views.PredictionResolveApi.as_view(),
        name="prediction-resolve",
    ),
    path(
        f"{P}/feedback/settings/",
        views.FeedbackSettingsApi.as_view(),
        name="feedback-settings",
    ),
    path(f"{P}/progress/", views.ProgressApi.as_view(), name="project-progress"),
    path(f"{P}/monitoring/", monitoring.MonitoringApi.as_view(), name="monitoring"),
    path(f"{P}/review/mistakes/", views.MistakeListApi.as_view(), name="mistake-list"),
    path(f"{P}/review/scan/", views.ReviewScanApi.as_view(), name="review-scan"),
    path(
        f"{P}/images/<int:image_id>/review/",
        views.ReviewDecisionApi.as_view(),
        name="review-decision",
    ),
]
