"""The ROC and precision-recall curves of a binary project, checked on hand-worked
examples, and stored with the versions of two-class and one-tag projects."""

from __future__ import annotations

import numpy as np
import pytest
from django.test import Client

from labeling import services as labeling_services
from labeling.models import Image, Project
from models_app import services
from models_app.ml.curves import MAX_POINTS, binary_curves
from tests.fashion import fashion_uploads, labeled_project


def test_four_scores_worked_by_hand():
    # Ranked by score: 0.9 positive, 0.6 negative, 0.4 positive, 0.1 negative.
    truth = np.array([1, 1, 0, 0], dtype=bool)
    score = np.array([0.9, 0.4, 0.6, 0.1])
    curves = binary_curves(truth, score, 0.5)
    # Of the four positive-negative pairs, three rank the positive higher.
    assert curves["roc_auc"] == pytest.approx(0.75)
    # Precision 1 at recall 1/2, then 2/3 at recall 1: AP = 0.5 * 1 + 0.5 * 2/3.
    assert curves["average_precision"] == pytest.approx(0.5 + 1 / 3)
    assert curves["positives"] == 2 and curves["negatives"] == 2
    at = curves["at_threshold"]
    assert (at["tp"], at["fp"], at["fn"], at["tn"]) == (1, 1, 1, 1)
    assert at["tpr"] == 0.5 and at["fpr"] == 0.5 and at["precision"] == 0.5
    low, high = at["tpr_ci"]
    assert low < 0.5 < high and high - low > 0.5  # two positives: a wide interval
    # The ROC runs from (0, 0) to (1, 1) through the hand-worked steps.
    assert curves["roc"][0] == [0.0, 0.0] and curves["roc"][-1] == [1.0, 1.0]
    assert [0.0, 0.5] in curves["roc"] and [0.5, 0.5] in curves["roc"]
    assert [0.5, 1.0] in curves["roc"]
    # Precision-recall, left to right: recall 1/2 at precision 1, recall 1 at 2/3.
    assert [0.5, 1.0] in curves["pr"] and [1.0, 0.6667] in curves["pr"]
    assert [p[0] for p in curves["pr"]] == sorted(p[0] for p in curves["pr"])


def test_the_threshold_moves_the_operating_point():
    truth = np.array([1, 1, 0, 0], dtype=bool)
    score = np.array([0.9, 0.4, 0.6, 0.1])
    at = binary_curves(truth, score, 0.95)["at_threshold"]
    assert (at["tp"], at["fp"]) == (0, 0)
    assert at["precision"] is None and at["precision_ci"] is None
    at = binary_curves(truth, score, 0.3)["at_threshold"]
    assert (at["tp"], at["fp"], at["fn"], at["tn"]) == (2, 1, 0, 1)


def test_no_curve_without_both_kinds():
    assert binary_curves(np.ones(5, dtype=bool), np.linspace(0, 1, 5), 0.5) is None
    assert binary_curves(np.zeros(5, dtype=bool), np.linspace(0, 1, 5), 0.5) is None


def test_a_long_curve_is_thinned_with_its_ends():
    rng = np.random.default_rng(0)
    truth = rng.random(5000) < 0.3
    score = np.where(truth, rng.normal(1, 1, 5000), rng.normal(0, 1, 5000))
    curves = binary_curves(truth, score, 0.5)
    assert len(curves["roc"]) <= MAX_POINTS and len(curves["pr"]) <= MAX_POINTS
    assert curves["roc"][0] == [0.0, 0.0] and curves["roc"][-1] == [1.0, 1.0]
    # Two unit-variance normals one apart: AUC = Phi(1 / sqrt 2) = 0.760.
    assert curves["roc_auc"] == pytest.approx(0.760, abs=0.02)


def _dashboard_section(owner, project) -> str:
    client = Client()
    client.force_login(owner)
    page = client.get(f"/projects/{project.pk}/model/").content.decode()
    assert 'id="binary-curves"' in page, "no yes/no section on the dashboard"
    start = page.index('id="binary-curves"')
    return page[start : page.index("</section>", start)]


def _check_against_rows(curves: dict, held_out, positive: set[int]) -> None:
    """The counts agree with the stored held-out rows, and the stored areas with the
    stored points (trapezoids for the ROC)."""
    ids = {image.pk for image in held_out}
    assert curves["positives"] == len(ids & positive)
    assert curves["negatives"] == len(ids - positive)
    at = curves["at_threshold"]
    assert at["tp"] + at["fn"] == curves["positives"]
    assert at["fp"] + at["tn"] == curves["negatives"]
    xs, ys = np.asarray(curves["roc"]).T
    assert curves["roc_auc"] == pytest.approx(
        np.sum(np.diff(xs) * (ys[1:] + ys[:-1]) / 2), abs=0.02
    )


def test_a_two_class_project_shows_its_roc_and_pr_curves(project, owner, fashion):
    labeled_project(project, owner, fashion, ["Sneaker", "Bag"], per_class=20)
    version = services.model_version_request(project=project, trigger="api", user=owner)
    version = services.model_version_train(version_id=version.pk)
    assert version.status == "succeeded", version.error
    curves = version.metrics["test"]["binary"]
    held_out = Image.objects.filter(project=project, split=Image.Split.TEST)
    bags = set(held_out.filter(label__name="Bag").values_list("pk", flat=True))
    _check_against_rows(curves, held_out, bags)  # the second class is the positive one
    assert curves["threshold"] == 0.5
    assert curves["roc_auc"] > 0.9  # sneakers and bags are easy to tell apart
    section = _dashboard_section(owner, project)
    assert "Bag: yes or no" in section and "<svg" in section
    assert f"ROC AUC {curves['roc_auc']:.3f}" in section
    assert f"{curves['positives']} held-out image" in section
    assert "a threshold of 0.5" in section


def test_a_one_tag_project_shows_its_curves_at_its_threshold(owner, fashion):
    project = labeling_services.project_create(name="Shoes", user=owner, kind=Project.Kind.MULTI)
    footwear = labeling_services.label_class_create(project=project, name="footwear")
    uploads = fashion_uploads(fashion, ["Sneaker", "Sandal", "Bag", "Trouser"], 12)
    results = labeling_services.images_ingest(
        project=project, files=[u for u, _ in uploads], user=owner
    )
    shoes = set()
    for (_, truth), result in zip(uploads, results, strict=True):
        present = truth in ("Sneaker", "Sandal")
        labeling_services.image_tags_set(
            image=Image.objects.get(pk=result.image_id),
            present=[footwear.pk] if present else [],
            annotator=owner,
        )
        if present:
            shoes.add(result.image_id)
    version = services.model_version_request(project=project, trigger="api", user=owner)
    version = services.model_version_train(version_id=version.pk)
    assert version.status == "succeeded", version.error
    curves = version.metrics["test"]["binary"]
    held_out = Image.objects.filter(project=project, split=Image.Split.TEST)
    _check_against_rows(curves, held_out, shoes)
    assert curves["threshold"] == pytest.approx(version.metrics["thresholds"][0])
    section = _dashboard_section(owner, project)
    assert "footwear: yes or no" in section and "<svg" in section
    assert f"average precision {curves['average_precision']:.3f}" in section
    assert "chosen on the validation split" in section


def test_a_three_class_project_has_no_yes_no_section(project, owner, fashion):
    labeled_project(project, owner, fashion, ["Sneaker", "Bag", "Trouser"], per_class=8)
    version = services.model_version_request(project=project, trigger="api", user=owner)
    version = services.model_version_train(version_id=version.pk)
    assert version.status == "succeeded", version.error
    assert "binary" not in version.metrics["test"]
    client = Client()
    client.force_login(owner)
    assert 'id="binary-curves"' not in client.get(f"/projects/{project.pk}/model/").content.decode()
