"""Writes of the feedback loop, one module per domain: options (the threshold under
which a prediction enters the queue), predictions (in real use, their confirmations and
corrections, by class or by tag) and review (the label-quality scan and reviewers'
decisions, for classes and for tags). The public names are importable from here.

Predictions and scans run in django-q2 workers (the web process never runs the
backbone); the web process stores the images, enqueues the work and may wait for it
briefly.
"""

from __future__ import annotations

from django.conf import settings

from feedback.services.options import feedback_settings, feedback_settings_update
from feedback.services.predictions import (
    MAX_TOP_K,
    PredictionBatch,
    prediction_resolve,
    predictions_request,
    predictions_run,
)
from feedback.services.review import (
    REVIEW_CHOICES,
    TAG_REVIEW_CHOICES,
    review_decide,
    review_scan_request,
    review_scan_run,
)

__all__ = [
    "MAX_TOP_K",
    "REVIEW_CHOICES",
    "TAG_REVIEW_CHOICES",
    "PredictionBatch",
    "feedback_settings",
    "feedback_settings_update",
    "prediction_resolve",
    "predictions_request",
    "predictions_run",
    "review_decide",
    "review_scan_request",
    "review_scan_run",
    "settings",  # Django's, which callers override in tests (FEEDBACK)
]
