"""Every URL of the app, swept as an outsider and as a member of another project: no
page, API answer or file of a project leaks to someone outside it. And every page's
POST needs the CSRF token that htmx sends."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from feedback.models import Prediction
from labeling import services
from labeling.models import ClassMerge, ClassSplit, Membership
from models_app.models import ModelVersion

pytestmark = pytest.mark.django_db

SECRET = "Zebra-secret-project"


def patterns(resolver=None, prefix=""):
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            yield from patterns(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


@pytest.fixture
def victim(owner, classes, images, project):
    project.name = SECRET
    project.save()
    services.annotation_create(image=images[0], label_class=classes[0], annotator=owner)
    merge = services.label_class_merge(project=project, classes=classes[1:], name="m", actor=owner)
    split = services.label_class_split_start(label_class=classes[0], names=["a", "b"], actor=owner)
    version = ModelVersion.objects.create(
        project=project, number=1, trigger="api", status="failed", backbone="x"
    )
    prediction = Prediction.objects.create(project=project, image=images[1], model_version=version)
    webhook = services.webhook_create(
        project=project, url="http://127.0.0.1:9/hook", events=["labels.milestone"], user=owner
    )
    return {
        "project_id": project.pk,
        "image_id": images[0].pk,
        "class_id": classes[0].pk,
        "member_id": Membership.objects.filter(project=project).first().pk,
        "merge_id": merge.pk,
        "split_id": split.pk,
        "prediction_id": prediction.pk,
        "webhook_id": webhook.pk,
        "step": "finish",
        "number": version.number,
        "kind": "onnx",
    }


def concrete(victim) -> list[str]:
    urls = []
    for pattern in patterns():
        if "<int:project_id>" not in pattern:
            continue
        path = pattern
        for name, value in victim.items():
            path = re.sub(rf"<(?:int|slug|str):{name}>", str(value), path)
        assert "<" not in path, f"no value for {pattern}"
        urls.append("/" + path)
    return urls


def test_the_sweep_covers_the_whole_app(victim):
    urls = concrete(victim)
    assert len(urls) > 40
    for part in ("/predictions/", "/review/", "/splits/", "/taxonomy/", "/export/", "/model/"):
        assert any(part in url for url in urls), part


@pytest.mark.parametrize("who", ["outsider", "member_elsewhere"])
def test_nobody_outside_a_project_sees_or_changes_anything_of_it(
    victim, who, outsider, other_project, project
):
    if who == "member_elsewhere":
        from tests.factories import UserFactory

        user = UserFactory(username="elsewhere")
        services.membership_set(project=other_project, username=user.username, role="annotator")
    else:
        user = outsider
    client = Client()
    client.force_login(user)

    def state():
        return (
            ClassMerge.objects.get().undone_at,
            ClassSplit.objects.get().status,
            sorted(project.images.values_list("id", "label_id", "status")),
            project.name,
        )

    before = state()
    for url in concrete(victim):
        for method in ("get", "post", "patch", "delete"):
            response = getattr(client, method)(url)
            assert response.status_code in (401, 403, 404, 405), (method, url, response.status_code)
            if response.status_code != 405:
                assert response.status_code == 404, (method, url, response.status_code)
            body = b"".join(response) if response.streaming else response.content
            assert SECRET.encode() not in body, (method, url)
    project.refresh_from_db()
    assert state() == before


def test_every_page_post_needs_the_csrf_token(victim, owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    pages = [url for url in concrete(victim) if not url.startswith("/api/")]
    assert len(pages) >= 20
    for url in pages:
        assert client.post(url).status_code == 403, url
    # With the token (htmx sends it in the X-CSRFToken header) a POST goes through.
    token = client.get(f"/projects/{victim['project_id']}/").cookies["csrftoken"].value
    ok = client.post(
        f"/projects/{victim['project_id']}/label/undo/",
        HTTP_X_CSRFTOKEN=token,
        HTTP_HX_REQUEST="true",
    )
    assert ok.status_code == 200
