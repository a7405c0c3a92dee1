"""Taxonomy changes over REST and through the pages: who may, and what they return."""

from __future__ import annotations

import pytest
from django.test import Client

from labeling import services
from labeling.models import (
    ClassMerge,
    ClassSplit,
    Image,
    LabelClass,
    SplitAssignment,
    TaxonomyChange,
)
from tests.conftest import add_images


@pytest.fixture
def labeled(project, owner, classes):
    images = add_images(project, owner, 6)
    for image, c in zip(images, [0, 0, 1, 1, 2, 2], strict=True):
        services.annotation_create(image=image, label_class=classes[c], annotator=owner)
    return images


def snapshot(project):
    return (
        dict(Image.objects.filter(project=project).values_list("id", "label_id")),
        list(LabelClass.objects.filter(project=project).values_list("id", "name", "is_active")),
    )


def test_an_annotator_and_an_outsider_are_refused_every_change(
    api, project, annotator, outsider, classes, labeled
):
    split = services.label_class_split_start(label_class=classes[2], names=["a", "b"], actor=None)
    merge = services.label_class_merge(
        project=project, classes=classes[:2], name="pets", actor=None
    )
    before = snapshot(project)
    p = f"/api/v1/projects/{project.pk}"
    calls = [
        ("patch", f"{p}/classes/{classes[0].pk}/", {"name": "x"}),
        ("post", f"{p}/classes/merge/", {"classes": [c.pk for c in classes], "name": "x"}),
        ("post", f"{p}/classes/merges/{merge.pk}/undo/", {}),
        ("post", f"{p}/classes/{classes[0].pk}/split/", {"names": ["c", "d"]}),
        ("post", f"{p}/splits/{split.pk}/assign/", {"images": [labeled[4].pk], "label_class": 1}),
        ("post", f"{p}/splits/{split.pk}/suggest/", {}),
        ("post", f"{p}/splits/{split.pk}/accept/", {}),
        ("post", f"{p}/splits/{split.pk}/finish/", {}),
        ("post", f"{p}/splits/{split.pk}/cancel/", {}),
    ]
    for user, code in ((annotator, 403), (outsider, 404)):
        client = api(user)
        for method, url, body in calls:
            response = getattr(client, method)(url, body, format="json")
            assert response.status_code == code, (user, url, response.content)
    page = Client()
    page.force_login(annotator)
    t = f"/projects/{project.pk}/taxonomy"
    for url, body in [
        (f"{t}/{classes[0].pk}/", {"name": "x", "color": "#000000", "order": 0}),
        (f"{t}/merge/", {"classes": [c.pk for c in classes], "name": "x"}),
        (f"{t}/merges/{merge.pk}/undo/", {}),
        (f"{t}/split/", {"label_class": classes[0].pk, "names": "c, d"}),
        (f"/projects/{project.pk}/splits/{split.pk}/finish/", {}),
    ]:
        assert page.post(url, body).status_code == 403, url
    assert snapshot(project) == before
    # Members may read the history.
    assert page.get(f"{t}/history/").status_code == 200


def test_merge_undo_split_and_history_over_rest(api, project, reviewer, classes, labeled):
    client = api(reviewer)
    p = f"/api/v1/projects/{project.pk}"
    before = snapshot(project)
    merged = client.post(
        f"{p}/classes/merge/",
        {"classes": [classes[0].pk, classes[1].pk], "name": "pets"},
        format="json",
    )
    assert merged.status_code == 201, merged.json()
    assert merged.json()["moved"] == 4 and merged.json()["target"]["name"] == "pets"
    undone = client.post(f"{p}/classes/merges/{merged.json()['id']}/undo/")
    assert undone.status_code == 200 and undone.json()["undone_at"]
    assert snapshot(project)[0] == before[0]
    again = client.post(f"{p}/classes/merges/{merged.json()['id']}/undo/")
    assert again.status_code == 400 and "already undone" in str(again.json())

    started = client.post(
        f"{p}/classes/{classes[2].pk}/split/", {"names": ["sparrow", "crow"]}, format="json"
    )
    assert started.status_code == 201 and started.json()["images"] == 2
    split_id = started.json()["id"]
    sparrow, crow = (t["id"] for t in started.json()["targets"])
    assigned = client.post(
        f"{p}/splits/{split_id}/assign/",
        {"images": [labeled[4].pk], "label_class": sparrow},
        format="json",
    )
    assert assigned.json()["decided"] == 1
    wrong = client.post(
        f"{p}/splits/{split_id}/assign/",
        {"images": [labeled[0].pk], "label_class": crow},
        format="json",
    )
    assert wrong.status_code == 400
    finished = client.post(f"{p}/splits/{split_id}/finish/")
    assert finished.json()["status"] == "finished"
    assert Image.objects.get(pk=labeled[4].pk).label_id == sparrow
    assert Image.objects.get(pk=labeled[5].pk).needs_relabel

    history = client.get(f"{p}/classes/history/").json()["results"]
    kinds = [h["kind"] for h in history]
    assert kinds[:4] == ["split_finish", "split_start", "create", "create"]
    assert {"merge", "unmerge"} <= set(kinds)
    assert all(h["actor"] == reviewer.username for h in history[:4])


def test_parent_over_rest_and_bad_parent(api, project, reviewer, classes, other_project):
    client = api(reviewer)
    p = f"/api/v1/projects/{project.pk}"
    ok = client.patch(f"{p}/classes/{classes[0].pk}/", {"parent": classes[1].pk}, format="json")
    assert ok.status_code == 200 and ok.json()["parent"] == classes[1].pk

    def parents():
        return dict(LabelClass.objects.filter(project=project).values_list("name", "parent"))

    assert parents() == {"cat": classes[1].pk, "dog": None, "bird": None}
    stranger = services.label_class_create(project=other_project, name="stranger")
    bad = client.patch(f"{p}/classes/{classes[2].pk}/", {"parent": stranger.pk}, format="json")
    assert bad.status_code == 404
    assert parents() == {"cat": classes[1].pk, "dog": None, "bird": None}
    cleared = client.patch(f"{p}/classes/{classes[0].pk}/", {"parent": None}, format="json")
    assert cleared.json()["parent"] is None
    assert parents() == {"cat": None, "dog": None, "bird": None}


def test_the_pages_merge_undo_and_split(project, owner, classes, labeled):
    page = Client()
    page.force_login(owner)
    t = f"/projects/{project.pk}/taxonomy"
    assert "Merge classes" in page.get(f"{t}/").content.decode()
    page.post(f"{t}/merge/", {"classes": [classes[0].pk, classes[1].pk], "name": "pets"})
    merge = ClassMerge.objects.get()
    assert Image.objects.filter(label=merge.target).count() == 4
    page.post(f"{t}/merges/{merge.pk}/undo/")
    merge.refresh_from_db()
    assert merge.undone_at
    response = page.post(f"{t}/split/", {"label_class": classes[2].pk, "names": "sparrow, crow"})
    split = ClassSplit.objects.get()
    assert response.url == f"/projects/{project.pk}/splits/{split.pk}/"
    split_page = page.get(response.url).content.decode()
    assert "Splitting bird into sparrow, crow" in split_page
    no_seeds = page.post(f"/projects/{project.pk}/splits/{split.pk}/suggest/", follow=True)
    assert "at least one image for each new class" in no_seeds.content.decode()
    page.post(f"/projects/{project.pk}/splits/{split.pk}/cancel/")
    split.refresh_from_db()
    assert split.status == "cancelled"
    history = page.get(f"{t}/history/").content.decode()
    assert "Cancelled the split of" in history and "Merged" in history
    assert TaxonomyChange.objects.filter(actor=owner).count() >= 4
    page.post(
        f"{t}/{classes[0].pk}/",
        {"name": "Cat", "color": "#123456", "key": "c", "order": 3, "is_active": "on"},
    )
    classes[0].refresh_from_db()
    assert (classes[0].name, classes[0].key, classes[0].order) == ("Cat", "c", 3)


@pytest.mark.parametrize(
    "body, said",
    [
        ({"min_confidence": True}, "A valid number is required."),
        ({"min_confidence": 1.5}, "Ensure this value is less than or equal to 1.0."),
        ({"min_confidence": "high"}, "A valid number is required."),
    ],
)
def test_a_bad_minimum_confidence_to_accept_is_refused_and_decides_nothing(
    api, project, reviewer, classes, labeled, body, said
):
    split = services.label_class_split_start(
        label_class=classes[2], names=["sparrow", "crow"], actor=reviewer
    )
    # A suggestion of full confidence: a JSON true read as 1 would accept it.
    suggested = SplitAssignment.objects.create(
        split=split,
        image=labeled[4],
        label_class=split.targets.first(),
        kind=SplitAssignment.Kind.SUGGESTED,
        confidence=1.0,
    )
    refused = api(reviewer).post(
        f"/api/v1/projects/{project.pk}/splits/{split.pk}/accept/", body, format="json"
    )
    assert refused.status_code == 400
    assert refused.json() == {"min_confidence": [said]}
    suggested.refresh_from_db()
    assert suggested.kind == SplitAssignment.Kind.SUGGESTED
