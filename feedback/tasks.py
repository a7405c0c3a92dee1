"""django-q2 tasks of the feedback loop: thin, idempotent, taking ids."""

from __future__ import annotations

from feedback import selectors, services


def predict(prediction_ids: list[int]) -> int:
    return services.predictions_run(prediction_ids=prediction_ids)


def scan(scan_id: int) -> str:
    return services.review_scan_run(scan_id=scan_id).status


def scan_due_projects() -> int:
    """Request a review scan for every project whose model changed since its last."""
    due = selectors.projects_due_for_review()
    for project in due:
        services.review_scan_request(project=project, user=None)
    return len(due)
