"""Monitoring the active model in use: figures by week computed from stored predictions
checked against hand-computed ones, and the warning rule against the version's held-out
figures (feedback/monitoring.py), on the page and in the API."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, time, timedelta

import numpy as np
import pytest
from django.test import Client

from feedback import selectors
from feedback.models import Prediction
from models_app.ml.metrics import wilson_interval
from models_app.models import ModelVersion
from tests.conftest import add_images

pytestmark = pytest.mark.django_db

# The site's time zone is UTC: weeks start on Monday at midnight UTC. The page shows the
# last twelve weeks from today, so the rows are placed this week and the week before.
NOW = datetime.now(UTC)
WEEK_B = datetime.combine(NOW.date() - timedelta(days=NOW.weekday()), time(9), tzinfo=UTC)
WEEK_A = WEEK_B - timedelta(weeks=1)
LATEST = f"Week of {WEEK_B:%b} {WEEK_B.day}"
HELD_OUT = {"n": 200, "accuracy": 0.9, "accuracy_ci": [0.85, 0.935], "ece": 0.03}


def version(project, number=1, active=True, test=HELD_OUT) -> ModelVersion:
    return ModelVersion.objects.create(
        project=project,
        number=number,
        trigger="api",
        status="succeeded",
        is_active=active,
        backbone="x",
        metrics={"test": test} if test else {"kind": "multi", "test": {"map": 0.7}},
    )


def predicted(project, image, model, when, confidence, status="predicted", unsure=False):
    row = Prediction.objects.create(
        project=project,
        image=image,
        model_version=model,
        status=status,
        confidence=confidence,
        uncertain_reason="Confidence under 60%." if unsure else "",
    )
    Prediction.objects.filter(pk=row.pk).update(created_at=when)  # auto_now_add otherwise
    return row


@pytest.fixture
def drifting(project, owner):
    """Week A: 40 sure predictions, 2 uncertain, 18 of 20 resolved confirmed. Week B: 40
    unsure ones, 30 uncertain, 8 of 20 confirmed. Plus rows that must not count."""
    images = add_images(project, owner, 3)
    v1 = version(project, number=1, active=False)
    v2 = version(project, number=2)
    for i in range(40):
        status = "predicted" if i >= 20 else ("confirmed" if i < 18 else "corrected")
        at = WEEK_A + timedelta(hours=i)
        conf = (0.95, 0.9, 0.85, 0.8)[i % 4]
        predicted(project, images[i % 3], v2, at, conf, status, unsure=i < 2)
    for i in range(40):
        status = "predicted" if i >= 20 else ("confirmed" if i < 8 else "corrected")
        at = WEEK_B + timedelta(hours=i)
        conf = (0.6, 0.55, 0.5, 0.45)[i % 4]
        predicted(project, images[i % 3], v2, at, conf, status, unsure=i < 30)
    # Not counted: another version's, one from 13 weeks ago, a failed and a pending one.
    predicted(project, images[0], v1, WEEK_B, 0.1, "corrected", unsure=True)
    predicted(project, images[0], v2, NOW - timedelta(weeks=13), 0.1, "corrected", unsure=True)
    predicted(project, images[0], v2, WEEK_B, 0.1, "failed")
    predicted(project, images[0], v2, WEEK_B, None, "pending")
    return v2


def interval_of_mean(values):
    half = 1.959963984540054 * statistics.stdev(values) / math.sqrt(len(values))
    return statistics.fmean(values) - half, statistics.fmean(values) + half


def test_the_figures_by_week_are_those_of_the_stored_predictions(project, drifting):
    report = selectors.monitoring_report(project=project, now=NOW)
    assert report.version == drifting
    assert report.held_out.accuracy_interval == (0.85, 0.935)
    assert report.held_out.confidence_floor == pytest.approx(0.82)
    a, b = report.weeks
    assert (a.start, b.start) == (WEEK_A.date(), WEEK_B.date())
    assert (a.predictions, b.predictions) == (40, 40)

    values_a = [0.95, 0.9, 0.85, 0.8] * 10
    assert a.mean_confidence == pytest.approx(0.875)
    assert a.mean_confidence_interval == pytest.approx(interval_of_mean(values_a))
    assert a.mean_confidence_interval == pytest.approx((0.857455, 0.892545), abs=1e-5)
    # Sorted: ten each of 0.8, 0.85, 0.9, 0.95; linear interpolation between ranks.
    assert a.percentiles == pytest.approx((0.8, 0.8375, 0.875, 0.9125, 0.95))
    assert a.histogram == [0] * 8 + [20, 20]
    assert b.histogram == [0, 0, 0, 0, 10, 20, 10, 0, 0, 0]
    assert b.mean_confidence == pytest.approx(0.525)

    assert (a.uncertain.count, a.uncertain.n, b.uncertain.count) == (2, 40, 30)
    assert a.uncertain.value == 0.05 and b.uncertain.value == 0.75
    assert a.uncertain.interval == pytest.approx(wilson_interval(2, 40))
    assert (a.accuracy.count, a.accuracy.n, b.accuracy.count, b.accuracy.n) == (18, 20, 8, 20)
    assert a.accuracy.interval == pytest.approx(wilson_interval(18, 20))
    assert b.accuracy.interval == pytest.approx(wilson_interval(8, 20))
    assert b.accuracy.interval == pytest.approx((0.2188, 0.6134), abs=1e-3)
    assert a.accuracy.few and not a.few  # 20 resolved is under 30; 40 predictions is not


def test_the_week_that_drifts_warns_on_each_rule_and_the_steady_one_does_not(project, drifting):
    a, b = selectors.monitoring_report(project=project, now=NOW).weeks
    assert a.warnings == []
    accuracy, confidence, uncertain = b.warnings
    assert accuracy.startswith(f"{LATEST}: accuracy on the 20 confirmed or corrected")
    assert "is 40% (95% interval 22–61%), below the version's held-out accuracy of 90%" in accuracy
    assert "(85–94%, 200 test labels)" in accuracy
    assert confidence.startswith(f"{LATEST}: mean confidence 52%")
    assert "below the 82% the held-out figures lead one to expect" in confidence
    assert "75% of predictions were uncertain (60–86%, 30 of 40), up from 5%" in uncertain
    assert "up from 5% (1–17%, 40 predictions) in the weeks before." in uncertain


def test_few_predictions_in_line_with_the_held_out_figures_raise_nothing(project, owner):
    [image] = add_images(project, owner, 1)
    model = version(project)
    predicted(project, image, model, WEEK_A, 0.9, "confirmed")
    for status in ("confirmed", "corrected"):
        predicted(project, image, model, WEEK_B, 0.7, status, unsure=True)
    a, b = selectors.monitoring_report(project=project, now=NOW).weeks
    assert b.few and b.accuracy.few and b.uncertain.value == 1.0
    # 1 of 2 right, 2 of 2 uncertain after 0 of 1: the intervals still overlap; two
    # equal confidences of 0.7 have a mean interval of no width, too few to warn on.
    assert b.accuracy.interval[1] > 0.85 and b.warnings == []
    assert b.mean_confidence_interval == pytest.approx((0.7, 0.7))
    assert a.mean_confidence_interval is None  # one value: no interval


def test_a_version_without_held_out_accuracy_is_watched_by_its_uncertain_share(project, owner):
    [image] = add_images(project, owner, 1)
    model = version(project, test=None)
    for i in range(30):
        predicted(project, image, model, WEEK_A, 0.1, "confirmed", unsure=i < 1)
    for i in range(30):
        predicted(project, image, model, WEEK_B, 0.1, "corrected", unsure=i < 25)
    report = selectors.monitoring_report(project=project, now=NOW)
    assert report.held_out is None
    [warning] = report.warnings
    assert "83% of predictions were uncertain" in warning


def test_the_predict_page_and_the_api_show_the_monitoring(project, drifting, annotator, api):
    page = Client()
    page.force_login(annotator)
    html = page.get(f"/projects/{project.pk}/predict/").content.decode()
    assert 'id="monitoring"' in html and 'data-testid="monitoring-warning"' in html
    assert "<svg" in html
    assert "The model in use is moving away from its held-out figures." in html
    answer = api(annotator).get(f"/api/v1/projects/{project.pk}/monitoring/")
    assert answer.status_code == 200
    body = answer.json()
    assert body["model_version"] == 2
    assert body["held_out"]["confidence_floor"] == pytest.approx(0.82)
    assert body["weeks"][-1]["accuracy"] == {
        "count": 8,
        "n": 20,
        "value": 0.4,
        "interval": pytest.approx(list(wilson_interval(8, 20))),
        "few": True,
    }
    assert len(body["warnings"]) == 3


def test_outsiders_get_404_and_a_project_without_a_model_an_empty_report(
    project, other_project, outsider, owner, api
):
    assert api(outsider).get(f"/api/v1/projects/{project.pk}/monitoring/").status_code == 404
    body = api(owner).get(f"/api/v1/projects/{project.pk}/monitoring/").json()
    assert body == {"model_version": None, "held_out": None, "weeks": [], "warnings": []}


def test_a_busy_week_takes_its_percentiles_from_an_even_sample(project, drifting, monkeypatch):
    monkeypatch.setattr("feedback.monitoring.PERCENTILE_SAMPLE", 10)
    a, _ = selectors.monitoring_report(project=project, now=NOW).weeks
    # 40 predictions over a sample of 10: every 4th by id, the rest of the figures exact.
    rows = Prediction.objects.filter(
        model_version=drifting, created_at__gte=WEEK_A, created_at__lt=WEEK_B
    ).values_list("id", "confidence")
    sample = sorted(c for pk, c in rows if pk % 4 == 0)
    assert len(sample) == 10
    assert a.percentiles == pytest.approx(tuple(np.percentile(sample, [10, 25, 50, 75, 90])))
    assert a.predictions == 40 and a.mean_confidence == pytest.approx(0.875)
