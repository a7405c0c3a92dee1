"""The REST API of multi-label projects: create one, save an image's tags, set a tag on
a selection, undo; and the errors each bad input gets."""

from __future__ import annotations

from labeling import services
from labeling.models import Image, Project, TagAnnotation
from tests.conftest import add_images


def _multi_project(api, owner, annotator):
    response = api(owner).post(
        "/api/v1/projects/", {"name": "Defects", "kind": "multi"}, format="json"
    )
    assert response.status_code == 201 and response.json()["kind"] == "multi"
    project = Project.objects.get(pk=response.json()["id"])
    services.membership_set(project=project, username=annotator.username, role="annotator")
    tags = [services.label_class_create(project=project, name=n) for n in ("scratch", "dent")]
    return project, tags


def test_project_kind_is_chosen_at_creation_and_then_fixed(api, owner):
    client = api(owner)
    plain = client.post("/api/v1/projects/", {"name": "Pets"}, format="json").json()
    assert plain["kind"] == "single"
    bad = client.post("/api/v1/projects/", {"name": "X", "kind": "tags"}, format="json")
    assert bad.status_code == 400 and "kind" in bad.json()
    assert not Project.objects.filter(name="X").exists()
    patched = client.patch(f"/api/v1/projects/{plain['id']}/", {"kind": "multi"}, format="json")
    assert patched.status_code == 400 and "kind" in patched.json()
    assert Project.objects.get(pk=plain["id"]).kind == "single"


def test_put_saves_every_tag_and_get_reads_them(api, owner, annotator):
    project, (scratch, dent) = _multi_project(api, owner, annotator)
    image = add_images(project, owner, 1)[0]
    url = f"/api/v1/projects/{project.pk}/images/{image.pk}/tags/"
    before = api(annotator).get(url).json()
    assert before == {
        "image": image.pk,
        "tagged": False,
        "tags": [
            {"tag": scratch.pk, "name": "scratch", "state": "unset"},
            {"tag": dent.pk, "name": "dent", "state": "unset"},
        ],
    }
    saved = api(annotator).put(url, {"present": [dent.pk]}, format="json")
    assert saved.status_code == 200
    assert [(t["name"], t["state"]) for t in saved.json()["tags"]] == [
        ("scratch", "absent"),
        ("dent", "present"),
    ]
    assert saved.json()["tagged"] is True
    assert Image.objects.get(pk=image.pk).tagged
    assert dict(
        TagAnnotation.objects.filter(image=image, is_current=True).values_list("tag", "state")
    ) == {scratch.pk: "absent", dent.pk: "present"}
    image_json = api(annotator).get(f"/api/v1/projects/{project.pk}/images/{image.pk}/").json()
    assert image_json["tagged"] is True and image_json["label"] is None

    undone = api(annotator).post(f"/api/v1/projects/{project.pk}/annotations/undo/")
    assert undone.status_code == 200 and undone.json()["tagged"] is False


def test_bad_tag_input_is_refused_with_the_field_and_nothing_saved(
    api, owner, annotator, outsider, other_project
):
    project, (scratch, _) = _multi_project(api, owner, annotator)
    image = add_images(project, owner, 1)[0]
    url = f"/api/v1/projects/{project.pk}/images/{image.pk}/tags/"
    foreign = services.label_class_create(project=other_project, name="alien")
    for body in ({}, {"present": "scratch"}, {"present": [0]}, {"present": [foreign.pk]}):
        response = api(annotator).put(url, body, format="json")
        assert response.status_code == 400, body
        assert "present" in response.json(), response.json()
    assert api(outsider).put(url, {"present": []}, format="json").status_code == 404
    assert not TagAnnotation.objects.exists()


def test_tags_on_a_single_label_project_are_refused(api, annotator, project, images, classes):
    url = f"/api/v1/projects/{project.pk}/images/{images[0].pk}/tags/"
    response = api(annotator).put(url, {"present": [classes[0].pk]}, format="json")
    assert response.status_code == 400
    assert "one class per image" in str(response.json())
    assert not TagAnnotation.objects.exists()


def test_assign_sets_one_tag_on_a_selection(api, owner, annotator):
    project, (scratch, dent) = _multi_project(api, owner, annotator)
    first, second = add_images(project, owner, 2)
    url = f"/api/v1/projects/{project.pk}/tags/assign/"
    body = {"images": [first.pk, second.pk], "tag": scratch.pk, "present": True}
    assert api(annotator).post(url, body, format="json").json() == {"changed": 2}
    assert api(annotator).post(url, body, format="json").json() == {"changed": 0}
    assert set(
        TagAnnotation.objects.filter(is_current=True).values_list("image", "tag", "state")
    ) == {(first.pk, scratch.pk, "present"), (second.pk, scratch.pk, "present")}
    missing = api(annotator).post(url, {**body, "images": [first.pk, 999999]}, format="json")
    assert missing.status_code == 400 and "images" in missing.json()
    assert api(annotator).post(url, {**body, "present": "maybe"}, format="json").status_code == 400
    assert api(annotator).post(url, {**body, "images": []}, format="json").status_code == 400
    assert TagAnnotation.objects.count() == 2
