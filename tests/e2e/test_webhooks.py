"""The webhooks page in a real browser: a bad URL refused beside the form with what was
typed kept, a good one added with its secret shown once, a test ping sent to a real
local receiver and its answer listed, an edit refused then saved, a delete."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from labeling.models import Webhook, WebhookDelivery
from labeling.tasks import webhook_deliver
from tests.e2e.test_labeling_flow import log_in
from tests.labeling.test_webhooks import Receiver, verified

pytestmark = pytest.mark.e2e


def test_an_owner_adds_pings_edits_and_deletes_a_webhook(page, project, owner):
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, owner)
    page.goto(f"/projects/{project.pk}/")
    page.get_by_role("link", name="Webhooks").click()
    expect(page.get_by_role("heading", name="Add a webhook")).to_be_visible()
    form = page.locator("#webhook-create")

    form.get_by_label("URL").fill("ftp://example.com/hooks")
    form.get_by_label("A model version finished training").check()
    form.get_by_role("button", name="Add webhook").click()
    errors = page.locator("#webhook-create .form-errors")
    expect(errors).to_have_text(re.compile(r"A webhook URL starts with http:// or https://\."))
    expect(page.locator("#webhook-create").get_by_label("URL")).to_have_value(
        "ftp://example.com/hooks"
    )
    expect(
        page.locator("#webhook-create").get_by_label("A model version finished training")
    ).to_be_checked()
    assert not Webhook.objects.exists()

    with Receiver([200]) as receiver:
        form = page.locator("#webhook-create")
        form.get_by_label("URL").fill(receiver.url)
        form.get_by_label("The labeled images reached a milestone").check()
        form.get_by_role("button", name="Add webhook").click()
        secret = page.get_by_test_id("webhook-secret")
        expect(secret).to_have_text(re.compile(r"^whsec_"))
        webhook = Webhook.objects.get()
        assert secret.inner_text() == webhook.secret
        assert webhook.events == ["model_version.succeeded", "labels.milestone"]
        expect(page.locator(f"#webhook-{webhook.pk}")).to_contain_text(webhook.secret_hint)

        page.locator(f"#webhook-{webhook.pk}").get_by_role(
            "button", name="Send a test ping"
        ).click()
        expect(page.locator(".messages")).to_contain_text("Ping queued")
        delivery = WebhookDelivery.objects.get()
        expect(page.locator(f"#delivery-{delivery.pk}")).to_contain_text("Waiting")
        # What the worker runs for it (a worker sends it in tests/labeling/...worker.py).
        assert webhook_deliver(delivery.pk) == "succeeded"
        page.reload()
        row = page.locator(f"#delivery-{delivery.pk}")
        expect(row).to_contain_text("Delivered")
        expect(row).to_contain_text("HTTP 200")
        # Reloaded, the page no longer shows the secret.
        expect(page.get_by_test_id("webhook-secret")).to_have_count(0)
        assert webhook.secret not in page.content()
    [(headers, body, _)] = receiver.requests
    assert verified(webhook.secret, headers, body)

    page.get_by_text(f"Edit webhook {webhook.pk}").click()
    edit = page.locator(f"#webhook-edit-{webhook.pk}")
    edit.get_by_label("URL").fill("not a url at all")
    edit.get_by_role("button", name="Save").click()
    edit = page.locator(f"#webhook-edit-{webhook.pk}")
    expect(edit.locator(".form-errors")).to_contain_text("starts with http:// or https://")
    expect(edit.get_by_label("URL")).to_have_value("not a url at all")
    webhook.refresh_from_db()
    assert webhook.url == receiver.url

    edit.get_by_label("URL").fill("https://example.com/v2")
    edit.get_by_label("Active").uncheck()
    edit.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text(f"Webhook {webhook.pk} saved.")
    webhook.refresh_from_db()
    assert (webhook.url, webhook.is_active) == ("https://example.com/v2", False)
    expect(page.locator(f"#webhook-{webhook.pk}")).to_contain_text("off")

    page.locator(f"#webhook-{webhook.pk}").get_by_role("button", name="Delete").click()
    expect(page.locator("#webhook-table")).to_contain_text("No webhook yet.")
    assert not Webhook.objects.exists()


def test_members_who_are_not_owners_see_no_webhooks_link(page, project, reviewer):
    log_in(page, reviewer)
    page.goto(f"/projects/{project.pk}/")
    expect(page.get_by_role("link", name="Predict")).to_be_visible()
    expect(page.get_by_role("link", name="Webhooks")).to_have_count(0)
    response = page.goto(f"/projects/{project.pk}/webhooks/")
    assert response.status == 403
