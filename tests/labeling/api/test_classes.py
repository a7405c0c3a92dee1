from __future__ import annotations

from labeling.models import LabelClass


def test_list_and_detail(api, annotator, project, classes):
    listed = api(annotator).get(f"/api/v1/projects/{project.pk}/classes/").json()
    assert [(c["name"], c["key"]) for c in listed] == [("cat", "1"), ("dog", "2"), ("bird", "3")]
    detail = api(annotator).get(f"/api/v1/projects/{project.pk}/classes/{classes[1].pk}/").json()
    assert detail["name"] == "dog"


def test_a_reviewer_creates_and_updates_classes(api, reviewer, project, classes):
    url = f"/api/v1/projects/{project.pk}/classes/"
    made = api(reviewer).post(url, {"name": "fish", "color": "#00ff00", "key": "F"}, format="json")
    assert made.status_code == 201
    assert (made.json()["key"], made.json()["color"]) == ("f", "#00ff00")
    fish = LabelClass.objects.get(pk=made.json()["id"])
    assert (fish.project, fish.name, fish.key, fish.color, fish.is_active) == (
        project,
        "fish",
        "f",
        "#00ff00",
        True,
    )
    changed = api(reviewer).patch(
        f"{url}{made.json()['id']}/", {"name": "goldfish", "is_active": False}, format="json"
    )
    assert changed.status_code == 200
    assert (changed.json()["name"], changed.json()["is_active"]) == ("goldfish", False)
    fish.refresh_from_db()
    assert (fish.name, fish.key, fish.is_active) == ("goldfish", "f", False)


def test_an_annotator_cannot_change_classes(api, annotator, project, classes):
    url = f"/api/v1/projects/{project.pk}/classes/"
    assert api(annotator).post(url, {"name": "fish"}, format="json").status_code == 403
    renamed = api(annotator).patch(f"{url}{classes[0].pk}/", {"name": "kitty"}, format="json")
    assert renamed.status_code == 403
    assert LabelClass.objects.get(pk=classes[0].pk).name == "cat"
    assert LabelClass.objects.filter(project=project).count() == 3


def test_bad_class_input_is_refused_clearly(api, owner, project, classes):
    url = f"/api/v1/projects/{project.pk}/classes/"
    duplicate = api(owner).post(url, {"name": "CAT"}, format="json")
    assert duplicate.status_code == 400 and "already exists" in str(duplicate.json())
    colour = api(owner).post(url, {"name": "x", "color": "red"}, format="json")
    assert colour.status_code == 400 and "color" in colour.json()
    key = api(owner).post(url, {"name": "x", "key": "1"}, format="json")
    assert key.status_code == 400 and "already used" in str(key.json())
    long = api(owner).post(url, {"name": "x" * 101}, format="json")
    assert long.status_code == 400 and "name" in long.json()
    assert LabelClass.objects.filter(project=project).count() == 3
