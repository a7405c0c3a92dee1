"""The dashboard of a tag project in a real browser: the per-tag metrics table (eleven
columns, a row per tag) stays inside its card, scrolling there when it must, instead of
running past the card's edge (a new user's walk found it did)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from labeling import services
from models_app.models import ModelVersion
from tests.e2e.test_labeling_flow import log_in
from tests.factories import UserFactory

pytestmark = pytest.mark.e2e

ROW = {
    "ap": 0.8125,
    "precision": 0.75,
    "recall": 0.6875,
    "f1": 0.71875,
    "tp": 1234,
    "fp": 567,
    "fn": 890,
    "tn": 12345,
    "support": 2124,
    "n": 15036,
    "threshold": 0.4375,
}


@pytest.mark.parametrize("width", [1280, 900, 420])
def test_the_per_tag_metrics_table_stays_inside_its_card(page, width):
    owner = UserFactory(username="olivia")
    project = services.project_create(name="Shop", user=owner, kind="multi")
    names = ["striped", "leather", "a tag with a rather long descriptive name", "rounded"]
    tags = [services.label_class_create(project=project, name=n) for n in names]
    ModelVersion.objects.create(
        project=project,
        number=1,
        status="succeeded",
        is_active=True,
        trigger="api",
        backbone="x",
        class_ids=[t.pk for t in tags],
        metrics={
            "kind": "multi",
            "tags": [t.pk for t in tags],
            "thresholds": [0.4375] * 4,
            "untrainable": [],
            "test": {
                "tags": [ROW] * 4,
                "map": 0.8,
                "micro_f1": 0.7,
                "macro_f1": 0.7,
                "n_images": 15036,
            },
        },
    )
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, owner)
    page.goto(f"/projects/{project.pk}/model/")
    table = page.locator("#tag-metrics")
    expect(table).to_contain_text("a tag with a rather long descriptive name")
    card = page.locator("section.card", has=table)
    overflow = card.evaluate("c => c.scrollWidth - c.clientWidth")
    assert overflow <= 0, f"the card's content is {overflow}px wider than the card"
    card_box, table_box = (
        card.bounding_box(),
        page.locator(".table-scroll", has=table).bounding_box(),
    )
    assert table_box["x"] + table_box["width"] <= card_box["x"] + card_box["width"] + 0.5
    # Every figure can still be reached: the table scrolls inside its card.
    scroller = page.locator(".table-scroll", has=table)
    scroller.evaluate("s => { s.scrollLeft = s.scrollWidth; }")
    expect(table.locator("tbody tr").first.locator("td").last).to_be_in_viewport()
