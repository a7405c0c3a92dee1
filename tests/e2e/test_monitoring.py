"""The predict page's monitoring in a real browser: a model drifting in use is named in
a warning beside its weekly figures and chart; one in line with its held-out figures
is shown without."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from feedback.models import Prediction
from tests.e2e.test_labeling_flow import log_in
from tests.feedback.test_monitoring import LATEST, WEEK_B, drifting  # noqa: F401 - fixture

pytestmark = pytest.mark.e2e


def test_a_drifting_model_is_named_in_a_warning_on_the_predict_page(
    page,
    project,
    annotator,
    drifting,  # noqa: F811
):
    log_in(page, annotator)
    page.goto(f"/projects/{project.pk}/")
    page.get_by_role("link", name="Predict").click()
    section = page.locator("#monitoring")
    expect(section.get_by_role("heading", name="Monitoring: model v2 in use")).to_be_visible()
    expect(section).to_contain_text(
        "Held-out: accuracy 90% (95% interval 85–94%) on 200 test labels"
    )
    warning = page.get_by_test_id("monitoring-warning")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("The model in use is moving away from its held-out figures.")
    expect(warning.locator("li")).to_have_count(3)
    expect(warning).to_contain_text(
        f"{LATEST}: accuracy on the 20 confirmed or corrected predictions is 40%"
    )
    rows = section.locator("#monitoring-table tbody tr")
    expect(rows).to_have_count(2)
    latest = section.locator(f'tr[data-week="{WEEK_B.date().isoformat()}"]')
    expect(latest).to_contain_text("75% (60–86%), 30 of 40")
    expect(latest).to_contain_text("40% (22–61%), 8 of 20 few")
    expect(section.locator(".chart svg")).to_be_visible()


def test_a_model_in_line_with_its_held_out_figures_shows_no_warning(
    page,
    project,
    annotator,
    drifting,  # noqa: F811
):
    # Keep only the steady week.
    Prediction.objects.filter(created_at__gte=WEEK_B.replace(hour=0)).delete()
    log_in(page, annotator)
    page.goto(f"/projects/{project.pk}/predict/")
    expect(page.locator("#monitoring-table tbody tr")).to_have_count(1)
    expect(page.locator("#monitoring")).to_contain_text("90% (70–97%), 18 of 20")
    expect(page.get_by_test_id("monitoring-warning")).to_have_count(0)
