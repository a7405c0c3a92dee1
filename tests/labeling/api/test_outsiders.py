"""Someone outside a project learns nothing about it: every object and file is a 404."""

from __future__ import annotations

import pytest

from labeling import services
from labeling.models import Annotation, Image, LabelClass, Membership, Project


@pytest.fixture
def labeled(project, images, classes, annotator):
    services.annotation_create(image=images[0], label_class=classes[0], annotator=annotator)
    return images[0]


def urls(project, image, label_class, membership):
    p = f"/api/v1/projects/{project.pk}"
    return [
        f"{p}/",
        f"{p}/members/",
        f"{p}/classes/",
        f"{p}/classes/{label_class.pk}/",
        f"{p}/images/",
        f"{p}/images/{image.pk}/",
        f"{p}/images/{image.pk}/file/",
        f"{p}/images/{image.pk}/file/?variant=thumbnail",
        f"{p}/images/{image.pk}/annotations/",
        f"{p}/progress/",
        f"{p}/feedback/settings/",
        f"{p}/review/scan/",
        f"/projects/{project.pk}/",
        f"/projects/{project.pk}/label/",
        f"/projects/{project.pk}/images/",
        f"/projects/{project.pk}/images/{image.pk}/file",
        f"/projects/{project.pk}/images/{image.pk}/thumbnail",
    ]


def test_an_outsider_gets_404_for_everything(api, client, outsider, project, labeled, classes):
    membership = Membership.objects.filter(project=project).first()
    client.force_login(outsider)
    for url in urls(project, labeled, classes[0], membership):
        response = api(outsider).get(url) if url.startswith("/api/") else client.get(url)
        assert response.status_code == 404, url


def everything(project) -> tuple:
    """What an outsider's writes could change, read from the tables."""
    return (
        Project.objects.filter(pk=project.pk).values_list("name", "description").get(),
        set(Membership.objects.filter(project=project).values_list("id", "user", "role")),
        set(LabelClass.objects.filter(project=project).values_list("id", "name", "is_active")),
        set(Image.objects.filter(project=project).values_list("id", "label", "reserved_by")),
        set(Annotation.objects.filter(image__project=project).values_list("id", "is_current")),
    )


def test_an_outsider_cannot_write_anything(api, outsider, project, labeled, classes):
    from tests.factories import image_upload

    p = f"/api/v1/projects/{project.pk}"
    membership = Membership.objects.filter(project=project).first()
    before = everything(project)
    client = api(outsider)
    writes = [
        client.patch(f"{p}/", {"name": "mine"}, format="json"),
        client.post(
            f"{p}/members/", {"username": "oscar-outsider", "role": "owner"}, format="json"
        ),
        client.patch(f"{p}/members/{membership.pk}/", {"role": "annotator"}, format="json"),
        client.delete(f"{p}/members/{membership.pk}/"),
        client.post(f"{p}/classes/", {"name": "x"}, format="json"),
        client.patch(f"{p}/classes/{classes[0].pk}/", {"name": "x"}, format="json"),
        client.post(f"{p}/images/", {"files": [image_upload(99)]}, format="multipart"),
        client.post(
            f"{p}/images/{labeled.pk}/annotations/", {"label_class": classes[1].pk}, format="json"
        ),
        client.post(f"{p}/annotations/undo/"),
        client.post(f"{p}/queue/next/"),
    ]
    assert [w.status_code for w in writes] == [404] * len(writes)
    assert everything(project) == before
    labeled.refresh_from_db()
    assert labeled.label == classes[0]
    assert not Membership.objects.filter(user=outsider, project=project).exists()


def test_an_image_id_from_another_project_is_a_404(api, owner, project, other_project, outsider):
    from tests.conftest import add_images

    foreign = add_images(other_project, outsider, 1, start=40)[0]
    response = api(owner).get(f"/api/v1/projects/{project.pk}/images/{foreign.pk}/file/")
    assert response.status_code == 404
