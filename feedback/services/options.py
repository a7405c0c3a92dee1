"""How a project treats predictions made in real use."""

from __future__ import annotations

import numbers

from django.core.exceptions import ValidationError
from django.db import transaction

from feedback.models import FeedbackSettings
from labeling.models import Project


def feedback_settings(*, project: Project) -> FeedbackSettings:
    return FeedbackSettings.objects.get_or_create(project=project)[0]


@transaction.atomic
def feedback_settings_update(*, project: Project, uncertain_below: float) -> FeedbackSettings:
    """Set the confidence (a fraction, 0 to 1) under which a prediction enters the
    labeling queue. Refuses anything else, NaN included, with nothing saved. Curators
    only (callers check)."""
    # NaN passes the model's range validators (every comparison with it is false).
    # numbers.Real admits numpy's floats, which a caller's arithmetic on scores gives.
    number = isinstance(uncertain_below, numbers.Real) and not isinstance(uncertain_below, bool)
    if not (number and 0.0 <= uncertain_below <= 1.0):
        raise ValidationError(
            {"uncertain_below": "The threshold is a confidence from 0 to 1 (0.6 is 60%)."}
        )
    uncertain_below = float(uncertain_below)
    current = FeedbackSettings.objects.select_for_update().get(
        pk=feedback_settings(project=project).pk
    )
    current.uncertain_below = uncertain_below
    current.full_clean()
    current.save()
    return current
