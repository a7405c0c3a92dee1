from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from labeling import services
from labeling.models import Image, Membership
from tests.factories import UserFactory, image_upload


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def owner(db):
    return UserFactory(username="olivia-owner")


@pytest.fixture
def reviewer(db):
    return UserFactory(username="rita-reviewer")


@pytest.fixture
def annotator(db):
    return UserFactory(username="anna-annotator")


@pytest.fixture
def outsider(db):
    return UserFactory(username="oscar-outsider")


@pytest.fixture
def project(owner, reviewer, annotator):
    project = services.project_create(name="Pets", user=owner)
    services.membership_set(project=project, username=reviewer.username, role="reviewer")
    services.membership_set(project=project, username=annotator.username, role="annotator")
    return project


@pytest.fixture
def other_project(outsider):
    """A project the personas above do not belong to; `outsider` owns it."""
    return services.project_create(name="Someone else's", user=outsider)


@pytest.fixture
def classes(project):
    return [
        services.label_class_create(project=project, name=name) for name in ("cat", "dog", "bird")
    ]


def add_images(project, user, count: int, start: int = 0) -> list[Image]:
    results = services.images_ingest(
        project=project, files=[image_upload(start + i) for i in range(count)], user=user
    )
    assert all(r.status == "created" for r in results), results
    return list(Image.objects.filter(pk__in=[r.image_id for r in results]).order_by("id"))


@pytest.fixture
def images(project, owner):
    return add_images(project, owner, 6)


@pytest.fixture
def api():
    def client_for(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return client_for


@pytest.fixture
def roles():
    return Membership.Role
