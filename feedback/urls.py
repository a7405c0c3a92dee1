from django.urls import path

from feedback import views

app_name = "feedback"

P = "projects/<int:project_id>"

urlpatterns = [
    path(f"{P}/predict/", views.predict_page, name="predict"),
    path(f"{P}/predict/settings/", views.settings_update, name="settings"),
    path(
        f"{P}/predict/<int:prediction_id>/resolve/",
        views.prediction_resolve,
        name="resolve",
    ),
    path(f"{P}/review/", views.review_page, name="review"),
    path(f"{P}/review/scan/", views.review_scan, name="review-scan"),
    path(f"{P}/review/<int:image_id>/", views.review_decide, name="review-decide"),
]
