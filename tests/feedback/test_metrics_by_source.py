"""Metrics split by source: uploaded data against data met in use (feedback)."""

from __future__ import annotations

import hashlib

import pytest
from django.test import Client

from feedback import services
from labeling.models import Image
from models_app import services as learner

pytestmark = pytest.mark.django_db(transaction=True)


def _draws(upload) -> tuple[float, float]:
    """The two hash draws: held out or not, and then test or validation."""
    upload.seek(0)
    digest = hashlib.sha256(upload.read()).hexdigest()
    return Image.draw_for(digest), Image.second_draw_for(digest)


def test_test_metrics_and_training_counts_are_split_by_source(
    trained, project, annotator, owner, new_uploads
):
    first, classes = trained
    candidates = new_uploads(20)
    test_share = project.test_fraction
    holdout = project.test_fraction + project.val_fraction
    test_of_held_out = test_share / holdout
    to_test = [
        (u, n) for u, n in candidates if _draws(u)[0] < holdout and _draws(u)[1] < test_of_held_out
    ][:3]
    to_train = [(u, n) for u, n in candidates if _draws(u)[0] >= holdout][:4]
    assert len(to_test) == 3 and len(to_train) == 4
    chosen = to_test + to_train
    batch = services.predictions_request(
        project=project, files=[u for u, _ in chosen], user=annotator
    )
    services.predictions_run(prediction_ids=[p.pk for p in batch.predictions])
    for prediction, (_, truth) in zip(batch.predictions, chosen, strict=True):
        services.prediction_resolve(
            prediction=prediction, label_class=classes[truth], user=annotator
        )

    second = learner.model_version_train(
        version_id=learner.model_version_request(project=project, trigger="api").pk
    )
    assert second.status == "succeeded", second.error
    by_source = second.metrics["test_by_source"]
    assert by_source["feedback"]["n"] == 3
    assert by_source["uploaded"]["n"] == first.metrics["test"]["n"]
    assert by_source["feedback"]["n"] + by_source["uploaded"]["n"] == second.metrics["test"]["n"]
    assert second.metrics["sources"]["train"]["feedback"] == 4
    assert "feedback" not in first.metrics.get("test_by_source", {})

    client = Client()
    client.force_login(owner)
    page = client.get(f"/projects/{project.pk}/model/").content.decode()
    assert 'id="accuracy-by-source"' in page
    assert "sent for prediction" in page and "4 training labels came from use" in page
