from django.urls import path

from models_app.api import exports, views

urlpatterns = [
    path(
        "projects/<int:project_id>/model/versions/",
        views.ModelVersionListApi.as_view(),
        name="model-version-list",
    ),
    path("projects/<int:project_id>/model/retrain/", views.RetrainApi.as_view(), name="retrain"),
    path(
        "projects/<int:project_id>/model/versions/<int:number>/export/",
        exports.ModelExportApi.as_view(),
        name="model-export",
    ),
    path(
        "projects/<int:project_id>/model/versions/<int:number>/export/<slug:kind>/",
        exports.ModelExportFileApi.as_view(),
        name="model-export-file",
    ),
    path("projects/import/", views.ProjectImportApi.as_view(), name="project-import"),
    path(
        "projects/<int:project_id>/export/", views.ProjectExportApi.as_view(), name="project-export"
    ),
    path(
        "projects/<int:project_id>/splits/<int:split_id>/suggest/",
        views.SplitSuggestApi.as_view(),
        name="split-suggest",
    ),
]
