"""Managing webhooks through the REST API and the page: owners only (other members get
403, outsiders 404), URLs checked with a message saying what to write, and the secret
shown in full once, in the answer that makes it."""

from __future__ import annotations

import pytest
from django.test import Client

from labeling import services
from labeling.models import Webhook, WebhookDelivery

pytestmark = pytest.mark.django_db

EVENTS = ["model_version.succeeded", "labels.milestone"]


def url(project, rest: str = "") -> str:
    return f"/api/v1/projects/{project.pk}/webhooks/{rest}"


@pytest.fixture
def hook(project, owner) -> Webhook:
    return services.webhook_create(
        project=project, url="https://example.com/hook", events=EVENTS, user=owner
    )


def test_an_owner_adds_a_webhook_and_sees_its_secret_only_then(api, project, owner):
    client = api(owner)
    made = client.post(
        url(project),
        {"url": " https://example.com/hooks/a ", "events": EVENTS[::-1], "description": "CI"},
        format="json",
    )
    assert made.status_code == 201, made.content
    body = made.json()
    webhook = Webhook.objects.get()
    assert body["secret"] == webhook.secret and webhook.secret.startswith("whsec_")
    assert len(webhook.secret) > 40
    assert body["url"] == "https://example.com/hooks/a"
    assert body["events"] == EVENTS  # in the documented order
    assert (body["is_active"], body["description"]) == (True, "CI")
    assert body["secret_hint"] == f"{webhook.secret[:6]}…{webhook.secret[-4:]}"

    for answer in (client.get(url(project)), client.get(url(project, f"{webhook.pk}/"))):
        assert answer.status_code == 200
        assert webhook.secret.encode() not in answer.content
        assert "secret" not in (
            answer.json()[0] if isinstance(answer.json(), list) else answer.json()
        )

    changed = client.patch(url(project, f"{webhook.pk}/"), {"is_active": False}, format="json")
    assert changed.status_code == 200 and "secret" not in changed.json()
    rotated = client.patch(url(project, f"{webhook.pk}/"), {"rotate_secret": True}, format="json")
    webhook.refresh_from_db()
    assert rotated.json()["secret"] == webhook.secret != body["secret"]
    assert webhook.is_active is False


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        ("ftp://example.com/hook", "A webhook URL starts with http:// or https://."),
        ("javascript:alert(1)", "A webhook URL starts with http:// or https://."),
        ("example.com/hook", "A webhook URL starts with http:// or https://."),
        ("https://", "That is not a full URL: write it as https://example.com/hooks/labelloop."),
        ("http://exa mple.com/", "That is not a full URL"),
        ("", "Give the URL the events are sent to."),
    ],
)
def test_a_url_that_is_not_http_or_https_is_refused_saying_why(api, project, owner, sent, message):
    answer = api(owner).post(url(project), {"url": sent, "events": EVENTS}, format="json")
    assert answer.status_code == 400
    assert message in str(answer.json()), answer.json()
    assert not Webhook.objects.exists()


def test_events_must_be_chosen_from_the_list(api, project, owner, hook):
    client = api(owner)
    for events, message in (([], "Choose at least one event"), (["coffee"], "Unknown event")):
        answer = client.post(
            url(project), {"url": "https://example.com/", "events": events}, format="json"
        )
        assert answer.status_code == 400 and message in str(answer.json())
        answer = client.patch(url(project, f"{hook.pk}/"), {"events": events}, format="json")
        assert answer.status_code == 400 and message in str(answer.json())
    hook.refresh_from_db()
    assert hook.events == EVENTS


def test_a_ping_is_recorded_and_listed_with_the_deliveries(api, project, owner, hook):
    client = api(owner)
    answer = client.post(url(project, f"{hook.pk}/ping/"))
    assert answer.status_code == 202
    delivery = WebhookDelivery.objects.get()
    assert answer.json()["delivery_id"] == str(delivery.uid)
    assert answer.json()["status"] == "pending" and answer.json()["event"] == "ping"
    listed = client.get(url(project, f"{hook.pk}/deliveries/")).json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == delivery.pk
    assert listed["results"][0]["attempt_log"] == []

    assert client.delete(url(project, f"{hook.pk}/")).status_code == 204
    assert not Webhook.objects.exists() and not WebhookDelivery.objects.exists()


@pytest.mark.parametrize(("who", "expected"), [("reviewer", 403), ("annotator", 403)])
def test_members_who_do_not_own_the_project_are_refused(api, project, hook, who, expected, request):
    client = api(request.getfixturevalue(who))
    calls = [
        ("get", url(project)),
        ("post", url(project)),
        ("get", url(project, f"{hook.pk}/")),
        ("patch", url(project, f"{hook.pk}/")),
        ("delete", url(project, f"{hook.pk}/")),
        ("post", url(project, f"{hook.pk}/ping/")),
        ("get", url(project, f"{hook.pk}/deliveries/")),
    ]
    for method, path in calls:
        answer = getattr(client, method)(
            path, {"url": "https://evil.example/", "events": EVENTS}, format="json"
        )
        assert answer.status_code == expected, (method, path)
        assert hook.secret.encode() not in answer.content
    page = Client()
    page.force_login(request.getfixturevalue(who))
    assert page.get(f"/projects/{project.pk}/webhooks/").status_code == 403
    assert page.post(f"/projects/{project.pk}/webhooks/{hook.pk}/ping/").status_code == 403
    assert Webhook.objects.count() == 1 and not WebhookDelivery.objects.exists()


def test_outsiders_and_other_projects_webhooks_get_404(api, project, hook, outsider, other_project):
    client = api(outsider)
    assert client.get(url(project)).status_code == 404
    assert client.post(url(project, f"{hook.pk}/ping/")).status_code == 404
    # The owner of another project cannot reach this webhook through their own project.
    assert client.get(url(other_project, f"{hook.pk}/")).status_code == 404
    assert client.get(url(other_project)).json() == []
    assert api().get(url(project)).status_code == 401


def test_the_page_adds_a_webhook_shows_the_secret_once_and_refuses_a_bad_url(
    project, owner, client
):
    client.force_login(owner)
    page = f"/projects/{project.pk}/webhooks/"
    refused = client.post(page, {"url": "ftp://example.com/", "events": EVENTS})
    assert refused.status_code == 400
    assert "A webhook URL starts with http:// or https://." in refused.content.decode()
    assert 'value="ftp://example.com/"' in refused.content.decode()  # kept as typed
    assert not Webhook.objects.exists()

    made = client.post(page, {"url": "https://example.com/in", "events": EVENTS, "is_active": "on"})
    assert made.status_code == 200
    webhook = Webhook.objects.get()
    assert webhook.secret in made.content.decode()
    later = client.get(page).content.decode()
    assert webhook.secret not in later and webhook.secret_hint in later

    edit = f"/projects/{project.pk}/webhooks/{webhook.pk}/"
    prefix = f"hook{webhook.pk}-"
    refused = client.post(
        edit, {prefix + "url": "mailto:me@example.com", prefix + "events": EVENTS}
    )
    assert (
        refused.status_code == 400 and "starts with http:// or https://" in refused.content.decode()
    )
    saved = client.post(
        edit, {prefix + "url": "https://example.com/v2", prefix + "events": ["labels.milestone"]}
    )
    assert saved.status_code == 200
    webhook.refresh_from_db()
    assert (webhook.url, webhook.events, webhook.is_active) == (
        "https://example.com/v2",
        ["labels.milestone"],
        False,  # the box was not ticked
    )
    assert client.post(f"{edit}ping/").status_code == 200
    assert WebhookDelivery.objects.get().event == "ping"
    assert client.post(f"{edit}delete/").status_code == 200
    assert not Webhook.objects.exists()
