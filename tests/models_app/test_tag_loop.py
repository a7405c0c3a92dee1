"""The whole loop of a multi-label project through the REST API and a real worker:
create, add tags, upload real images, tag them from the queue, retrain, predict new
images, correct a prediction, and the correction counts toward the next retrain."""

from __future__ import annotations

import pytest

from labeling.models import Image, TagAnnotation
from models_app import selectors
from models_app.models import ModelVersion
from tests.fashion import fashion_uploads, wait_for
from tests.models_app.test_tag_training import TAGS_OF

pytestmark = pytest.mark.django_db(transaction=True)


def test_upload_tag_retrain_predict_correct_through_a_real_worker(
    worker, owner, annotator, fashion, api
):
    client = api(owner)
    created = client.post("/api/v1/projects/", {"name": "Wardrobe", "kind": "multi"}, format="json")
    assert created.status_code == 201, created.json()
    p = f"/api/v1/projects/{created.json()['id']}"
    tag_ids = {}
    for name in ("footwear", "bag", "has legs"):
        response = client.post(f"{p}/classes/", {"name": name}, format="json")
        assert response.status_code == 201, response.json()
        tag_ids[name] = response.json()["id"]
    member = client.post(
        f"{p}/members/", {"username": annotator.username, "role": "annotator"}, format="json"
    )
    assert member.status_code in (200, 201), member.json()

    uploads = fashion_uploads(fashion, list(TAGS_OF), 10)
    truth = {u.name: TAGS_OF[name] for u, name in uploads}
    sent = client.post(f"{p}/images/", {"files": [u for u, _ in uploads]}, format="multipart")
    assert sent.status_code == 201 and sent.json()["created"] == 40, sent.json()

    # The annotator tags every image the queue serves, with the tags of its true class.
    tagger = api(annotator)
    for _ in range(40):
        served = tagger.post(f"{p}/queue/next/")
        assert served.status_code == 200, served.status_code
        image = served.json()
        present = [tag_ids[t] for t in truth[image["original_name"]]]
        saved = tagger.put(f"{p}/images/{image['id']}/tags/", {"present": present}, format="json")
        assert saved.status_code == 200, saved.json()
    assert tagger.post(f"{p}/queue/next/").status_code == 204
    assert Image.objects.filter(tagged=True).count() == 40

    retrain = client.post(f"{p}/model/retrain/")
    assert retrain.status_code == 202, retrain.json()
    version = ModelVersion.objects.get(pk=retrain.json()["id"])
    wait_for(lambda: ModelVersion.objects.get(pk=version.pk).status in ("succeeded", "failed"))
    version.refresh_from_db()
    assert version.status == "succeeded", version.error
    assert version.is_active and version.is_multi_label

    new = fashion_uploads(fashion, ["Sneaker", "Bag"], 1, skip=10)
    answer = tagger.post(f"{p}/predictions/", {"files": [u for u, _ in new]}, format="multipart")
    assert answer.status_code == 200, answer.json()
    predictions = answer.json()["predictions"]
    assert [a["status"] for a in predictions] == ["predicted", "predicted"]
    for prediction, (_, name) in zip(predictions, new, strict=True):
        assert prediction["model_version"] == version.number
        named = {t["name"] for t in prediction["tags"] if t["present"]}
        assert named == TAGS_OF[name], prediction["tags"]

    # The bag is a bag with legs, says the person who knows it.
    bag = predictions[1]
    corrected = tagger.post(
        f"{p}/predictions/{bag['id']}/resolve/",
        {"present": [tag_ids["bag"], tag_ids["has legs"]]},
        format="json",
    )
    assert corrected.status_code == 200, corrected.json()
    assert corrected.json()["status"] == "corrected"
    states = dict(
        TagAnnotation.objects.filter(image_id=bag["image"], is_current=True).values_list(
            "tag__name", "state"
        )
    )
    assert states == {"footwear": "absent", "bag": "present", "has legs": "present"}
    confirmed = tagger.post(f"{p}/predictions/{predictions[0]['id']}/resolve/", {}, format="json")
    assert confirmed.json()["status"] == "confirmed"
    assert selectors.labels_since(project=version.project, version=version) == 2
