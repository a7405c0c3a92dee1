from __future__ import annotations

import hashlib

from labeling import services
from labeling.models import Image
from tests.factories import image_bytes, image_upload, upload, zip_bytes


def test_upload_reports_every_file(api, owner, project):
    response = api(owner).post(
        f"/api/v1/projects/{project.pk}/images/",
        {"files": [image_upload(1), upload("x.jpg", b"nope"), image_upload(1, name="again.png")]},
        format="multipart",
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["created"], body["duplicates"], body["rejected"]) == (1, 1, 1)
    assert [r["status"] for r in body["results"]] == ["created", "rejected", "duplicate"]
    assert Image.objects.filter(project=project).count() == 1


def test_a_batch_with_nothing_good_is_a_400(api, owner, project):
    response = api(owner).post(
        f"/api/v1/projects/{project.pk}/images/",
        {"files": [upload("a.gif", b"GIF89a")]},
        format="multipart",
    )
    assert response.status_code == 400
    assert response.json()["results"][0]["status"] == "rejected"


def test_upload_without_files_is_a_400(api, owner, project):
    response = api(owner).post(f"/api/v1/projects/{project.pk}/images/", {}, format="multipart")
    assert response.status_code == 400
    assert "files" in response.json()


def test_a_zip_upload_imports_labels(api, owner, project):
    archive = zip_bytes({"cat/a.png": image_bytes(1), "dog/b.png": image_bytes(2)})
    response = api(owner).post(
        f"/api/v1/projects/{project.pk}/images/",
        {"files": [upload("set.zip", archive)]},
        format="multipart",
    )
    assert response.status_code == 201
    listed = api(owner).get(f"/api/v1/projects/{project.pk}/images/").json()["results"]
    assert sorted(i["label_name"] for i in listed) == ["cat", "dog"]


def test_an_annotator_cannot_upload(api, annotator, project):
    response = api(annotator).post(
        f"/api/v1/projects/{project.pk}/images/", {"files": [image_upload(1)]}, format="multipart"
    )
    assert response.status_code == 403
    assert not Image.objects.exists()


def test_list_filters_and_paginates(api, annotator, project, images, classes):
    services.annotation_create(image=images[0], label_class=classes[0], annotator=annotator)
    services.annotation_create(image=images[1], label_class=classes[1], annotator=annotator)
    url = f"/api/v1/projects/{project.pk}/images/"
    client = api(annotator)
    page1 = client.get(url, {"page_size": 4}).json()
    assert page1["count"] == 6 and len(page1["results"]) == 4 and page1["next"]
    assert len(client.get(page1["next"]).json()["results"]) == 2
    assert client.get(url, {"label": "unlabeled"}).json()["count"] == 4
    assert client.get(url, {"label": "labeled"}).json()["count"] == 2
    by_class = client.get(url, {"label": classes[1].pk}).json()
    assert [i["id"] for i in by_class["results"]] == [images[1].pk]
    assert client.get(url, {"split": "unassigned", "source": "upload"}).json()["count"] == 4
    held_out = sum(client.get(url, {"split": s}).json()["count"] for s in ("train", "val", "test"))
    assert held_out == 2  # labeling put each labeled image in a split
    assert client.get(url, {"label": "cats"}).status_code == 400
    assert client.get(url, {"split": "nonsense"}).status_code == 400


def test_detail_and_file(api, annotator, project, images):
    image = images[0]
    client = api(annotator)
    detail = client.get(f"/api/v1/projects/{project.pk}/images/{image.pk}/").json()
    assert (detail["width"], detail["height"], detail["label"]) == (64, 48, None)
    original = client.get(detail["file_url"])
    assert original.status_code == 200
    body = b"".join(original.streaming_content)
    assert hashlib.sha256(body).hexdigest() == image.content_hash
    thumb = client.get(detail["thumbnail_url"])
    assert thumb.status_code == 200 and b"".join(thumb.streaming_content)[:2] == b"\xff\xd8"
    bad = client.get(f"/api/v1/projects/{project.pk}/images/{image.pk}/file/", {"variant": "huge"})
    assert bad.status_code == 400


def test_list_by_suggested_class_and_confidence(api, annotator, project, images, classes):
    services.image_suggestions_write(
        project=project,
        suggestions=[
            services.Suggestion(image.pk, classes[i % 2].pk, confidence, 1 - confidence)
            for i, (image, confidence) in enumerate(
                zip(images, [0.9, 0.5, 0.7, 0.6, 0.99, 0.3], strict=True)
            )
        ],
    )
    url = f"/api/v1/projects/{project.pk}/images/"
    client = api(annotator)
    dogs = client.get(url, {"suggested": classes[1].pk, "order": "confidence"}).json()["results"]
    assert [i["id"] for i in dogs] == [images[5].pk, images[1].pk, images[3].pk]
    surest = client.get(url, {"order": "-confidence"}).json()["results"][0]
    assert surest["id"] == images[4].pk
    assert client.get(url, {"order": "width"}).status_code == 400


def test_an_image_shows_the_models_suggestion_and_confidence(
    api, annotator, project, images, classes
):
    services.image_suggestions_write(
        project=project,
        suggestions=[services.Suggestion(images[0].pk, classes[1].pk, 0.75, 0.5)],
    )
    p = f"/api/v1/projects/{project.pk}/images"
    one = api(annotator).get(f"{p}/{images[0].pk}/").json()
    assert (one["suggested_class"], one["confidence"]) == (classes[1].pk, 0.75)
    listed = {i["id"]: i for i in api(annotator).get(f"{p}/").json()["results"]}
    assert (listed[images[0].pk]["suggested_class"], listed[images[0].pk]["confidence"]) == (
        classes[1].pk,
        0.75,
    )
    # No model has looked at the others yet.
    assert (listed[images[1].pk]["suggested_class"], listed[images[1].pk]["confidence"]) == (
        None,
        None,
    )
