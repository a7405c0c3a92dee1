"""The review scan in the API: ask for one, then read the latest with its status,
error, times and counts. Owners and reviewers only, as the review is."""

from __future__ import annotations

from feedback import services
from feedback.models import LabelScore, NearDuplicate
from labeling import services as labeling_services
from labeling.models import Image
from tests.fashion import labeled_project
from tests.feedback.conftest import twin_upload


def url(project) -> str:
    return f"/api/v1/projects/{project.pk}/review/scan/"


def test_the_latest_scan_shows_its_state_and_counts(api, reviewer, owner, project, fashion):
    classes = labeled_project(project, owner, fashion, ["Trouser", "Bag"], per_class=6)
    # Something for the scan to find: a trouser labeled Bag, and a labeled near-duplicate.
    trousers = list(Image.objects.filter(project=project, label=classes["Trouser"]))
    labeling_services.annotation_create(
        image=trousers[0], label_class=classes["Bag"], annotator=owner
    )
    [twin] = labeling_services.images_ingest(
        project=project, files=[twin_upload(trousers[1], "twin.png")], user=owner
    )
    labeling_services.annotation_create(
        image=Image.objects.get(pk=twin.image_id), label_class=classes["Trouser"], annotator=owner
    )
    assert api(reviewer).get(url(project)).status_code == 204  # never scanned

    posted = api(reviewer).post(url(project))
    assert posted.status_code == 202
    queued = api(owner).get(url(project))
    assert queued.status_code == 200
    body = queued.json()
    assert body["id"] == posted.json()["id"]
    assert (body["status"], body["requested_by"], body["finished_at"]) == (
        "queued",
        reviewer.username,
        None,
    )
    assert body["created_at"] and body["error"] == ""

    services.review_scan_run(scan_id=body["id"])
    done = api(reviewer).get(url(project)).json()
    assert done["status"] == "succeeded", done["error"]
    assert done["labeled"] == 13 and done["finished_at"] >= done["started_at"] >= done["created_at"]
    # The counts are those of the rows the scan stored.
    issues = LabelScore.objects.filter(scan_id=body["id"], is_issue=True)
    assert done["issues"] == issues.count() > 0
    assert trousers[0].pk in set(issues.values_list("image_id", flat=True))
    pairs = NearDuplicate.objects.filter(scan_id=body["id"])
    assert done["duplicate_pairs"] == pairs.count() > 0
    assert {trousers[1].pk, twin.image_id} in [{d.first_id, d.second_id} for d in pairs]


def test_a_failed_scan_shows_why(api, reviewer, owner, project, fashion):
    labeled_project(project, owner, fashion, ["Trouser", "Bag"], per_class=2)
    scan = services.review_scan_request(project=project, user=None)
    services.review_scan_run(scan_id=scan.pk)
    body = api(reviewer).get(url(project)).json()
    assert body["status"] == "failed" and body["requested_by"] is None
    assert "at least 10 labeled images" in body["error"]
    assert body["finished_at"] is not None


def test_an_annotator_gets_403_and_an_outsider_404(api, annotator, outsider, project):
    services.review_scan_request(project=project, user=None)
    assert api(annotator).get(url(project)).status_code == 403
    assert api(annotator).post(url(project)).status_code == 403
    assert api(outsider).get(url(project)).status_code == 404
    assert api(outsider).post(url(project)).status_code == 404
