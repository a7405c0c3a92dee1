"""django-q2 tasks of the feedback loop: thin, idempotent, taking ids."""

from __future__ import annotations

from feedback import services


def predict(prediction_ids: list[int]) -> int:
    return services.predictions_run(prediction_ids=prediction_ids)


def scan(scan_id: int) -> str:
    return services.review_scan_run(scan_id=scan_id).status
