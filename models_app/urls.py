from django.urls import path

from models_app import export_views, views

app_name = "models_app"

urlpatterns = [
    path("projects/<int:project_id>/model/", views.dashboard, name="dashboard"),
    path("projects/<int:project_id>/model/status/", views.learner_status, name="status"),
    path("projects/<int:project_id>/model/retrain/", views.retrain, name="retrain"),
    path("projects/<int:project_id>/model/settings/", views.settings_update, name="settings"),
    path(
        "projects/<int:project_id>/model/versions/<int:number>/export/",
        export_views.export_build,
        name="export-build",
    ),
    path(
        "projects/<int:project_id>/model/versions/<int:number>/export/status/",
        export_views.export_status,
        name="export-status",
    ),
    path(
        "projects/<int:project_id>/model/versions/<int:number>/export/<slug:kind>/",
        export_views.export_download,
        name="export-download",
    ),
    path("projects/<int:project_id>/splits/<int:split_id>/", views.split_page, name="split"),
    path("projects/<int:project_id>/export/", views.project_export, name="export"),
    path("projects/import/", views.project_import, name="import"),
    path(
        "projects/<int:project_id>/splits/<int:split_id>/<slug:step>/",
        views.split_step,
        name="split-step",
    ),
]
