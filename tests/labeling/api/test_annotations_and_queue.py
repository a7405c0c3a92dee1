from __future__ import annotations

from labeling.models import Annotation, Image


def test_create_and_history(api, annotator, reviewer, project, images, classes):
    url = f"/api/v1/projects/{project.pk}/images/{images[0].pk}/annotations/"
    first = api(annotator).post(url, {"label_class": classes[0].pk}, format="json")
    assert first.status_code == 201 and first.json()["label_name"] == "cat"
    assert api(reviewer).post(url, {"label_class": classes[1].pk}, format="json").status_code == 201
    assert Image.objects.get(pk=images[0].pk).label == classes[1]
    history = api(annotator).get(url).json()
    assert [(a["label_name"], a["annotator"], a["is_current"]) for a in history] == [
        ("cat", "anna-annotator", False),
        ("dog", "rita-reviewer", True),
    ]


def test_create_refuses_bad_classes(api, annotator, project, other_project, images):
    from labeling import services

    url = f"/api/v1/projects/{project.pk}/images/{images[0].pk}/annotations/"
    foreign = services.label_class_create(project=other_project, name="cat")
    assert api(annotator).post(url, {"label_class": foreign.pk}, format="json").status_code == 404
    assert api(annotator).post(url, {"label_class": "x"}, format="json").status_code == 400
    assert api(annotator).post(url, {}, format="json").status_code == 400
    assert not Annotation.objects.exists()


def test_undo(api, annotator, project, images, classes):
    client = api(annotator)
    url = f"/api/v1/projects/{project.pk}/annotations/undo/"
    assert client.post(url).status_code == 204
    client.post(
        f"/api/v1/projects/{project.pk}/images/{images[2].pk}/annotations/",
        {"label_class": classes[0].pk},
        format="json",
    )
    undone = client.post(url)
    assert undone.status_code == 200
    assert (undone.json()["id"], undone.json()["label"]) == (images[2].pk, None)
    assert Image.objects.get(pk=images[2].pk).label is None
    current = Annotation.objects.get(image=images[2], is_current=True)
    assert (current.label_class, current.annotator) == (None, annotator)


def test_queue_next_reserves_distinct_images(api, annotator, reviewer, owner, project, images):
    url = f"/api/v1/projects/{project.pk}/queue/next/"
    served = [api(user).post(url).json()["id"] for user in (annotator, reviewer, owner)]
    # The order is the queue's (a hash draw until a ranking exists), not upload order.
    assert len(set(served)) == 3 and set(served) <= {i.pk for i in images}
    assert api(annotator).post(url).json()["id"] == served[0]  # still mine
    held = dict(Image.objects.filter(reserved_by__isnull=False).values_list("id", "reserved_by"))
    assert held == dict(zip(served, (annotator.pk, reviewer.pk, owner.pk), strict=True))


def test_queue_next_when_everything_is_labeled(api, annotator, project, images, classes):
    from labeling import services

    services.annotations_bulk_create(
        project=project,
        image_ids=[i.pk for i in images],
        label_class=classes[0],
        annotator=annotator,
    )
    assert api(annotator).post(f"/api/v1/projects/{project.pk}/queue/next/").status_code == 204
