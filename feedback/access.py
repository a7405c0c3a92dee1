"""Who may see and decide on predictions: members of the prediction's project."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.http import Http404

from feedback.models import Prediction
from labeling.access import ANY_MEMBER, project_access


def prediction_access(
    *, user: AbstractBaseUser, project_id: int, prediction_id: int, roles=ANY_MEMBER
) -> Prediction:
    project = project_access(user=user, project_id=project_id, roles=roles)
    prediction = (
        Prediction.objects.select_related("image", "predicted_class", "model_version")
        .filter(project=project, pk=prediction_id)
        .first()
    )
    if prediction is None:
        raise Http404("No such prediction.")
    return prediction
