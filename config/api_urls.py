from django.urls import include, path

urlpatterns = [
    path("", include("labeling.api.urls")),
    path("", include("models_app.api.urls")),
    path("", include("feedback.api.urls")),
]
