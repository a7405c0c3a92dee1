"""The mistakes review of a multi-label project: cleanlab's multi-label scores rank the
images whose saved tags are wrong first, with the disputed tags named; a reviewer keeps
the tags or flips one (a row of the image's tag history); on the page and in the API."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from feedback import selectors, services
from feedback.models import TagReview
from labeling import services as labeling_services
from labeling.models import Image, TagAnnotation
from tests.factories import PASSWORD
from tests.fashion import fashion_uploads
from tests.models_app.test_tag_training import tagged_images

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def noisy_tags(owner, reviewer, fashion):
    """56 real images tagged from their class (footwear, bag, has legs), three sneakers
    of them saved wrongly as "bag" (footwear absent)."""
    project = labeling_services.project_create(name="Wardrobe", user=owner, kind="multi")
    labeling_services.membership_set(project=project, username=reviewer.username, role="reviewer")
    tags = tagged_images(project, owner, fashion, per_class=14)
    names = [u.name for u, _ in fashion_uploads(fashion, ["Sneaker"], 14)]
    sneakers = Image.objects.filter(project=project, original_name__in=names).order_by("id")
    wrong = list(sneakers[:3])
    for image in wrong:
        labeling_services.image_tags_set(image=image, present=[tags["bag"].pk], annotator=owner)
    return project, tags, [i.pk for i in wrong]


def scan(project, user):
    requested = services.review_scan_request(project=project, user=user)
    result = services.review_scan_run(scan_id=requested.pk)
    assert result.status == "succeeded", result.error
    return result


def state(image_id: int, tag) -> str:
    return TagAnnotation.objects.get(image_id=image_id, tag=tag, is_current=True).state


def test_wrong_tags_rank_first_with_the_disputed_tags_named(noisy_tags, reviewer):
    project, tags, wrong = noisy_tags
    result = scan(project, reviewer)
    assert result.labeled == 56 and result.issues >= 2
    ranked = list(selectors.tag_mistakes_list(project=project))
    # Three wrong tag sets among 56: all of them in the first six the reviewer sees.
    assert set(wrong) <= {s.image_id for s in ranked[:6]}, [s.image_id for s in ranked]
    for score in ranked:
        if score.image_id in wrong:
            disputed = {(s.tag_id, s.state) for s in score.live_suspects}
            # Saved "bag" but looks like no bag, or saved without footwear but looks like it.
            assert disputed & {(tags["bag"].pk, "present"), (tags["footwear"].pk, "absent")}
            assert [r.tag.name for r in score.image.present_rows] == ["bag"]
            for suspect in score.live_suspects:
                p = suspect.probability
                assert suspect.quality == pytest.approx(p if suspect.state == "present" else 1 - p)
    assert ranked[0].quality < 0.5


def test_flipping_a_tag_and_keeping_the_tags_take_the_image_off_the_list(
    noisy_tags, owner, reviewer
):
    project, tags, wrong = noisy_tags
    bag, footwear = tags["bag"], tags["footwear"]
    scan(project, reviewer)
    flipped, kept, _ = wrong
    services.review_decide(
        image=Image.objects.get(pk=flipped), action="flip", reviewer=reviewer, tag=bag
    )
    assert state(flipped, bag) == "absent"
    review = TagReview.objects.get(image_id=flipped)
    row = TagAnnotation.objects.get(image_id=flipped, tag=bag, is_current=True)
    assert (review.action, review.tag, review.state, review.save_id) == (
        "flip",
        bag,
        "absent",
        row.save_id,
    )
    assert row.annotator == reviewer
    # A disputed "footwear absent" may remain on the flipped image: flip that too.
    left = selectors.tag_mistakes_list(project=project).filter(image_id=flipped).first()
    if left is not None:
        assert {s.tag_id for s in left.live_suspects} == {footwear.pk}
        services.review_decide(
            image=Image.objects.get(pk=flipped), action="flip", reviewer=reviewer, tag=footwear
        )
    assert state(flipped, footwear) == "present"
    assert not selectors.tag_mistakes_list(project=project).filter(image_id=flipped).exists()

    services.review_decide(image=Image.objects.get(pk=kept), action="keep", reviewer=reviewer)
    assert not selectors.tag_mistakes_list(project=project).filter(image_id=kept).exists()
    assert state(kept, bag) == "present"  # kept as saved
    # A new save of its tags since the keep brings the dispute back.
    labeling_services.image_tags_set(
        image=Image.objects.get(pk=kept), present=[bag.pk, tags["has legs"].pk], annotator=owner
    )
    assert selectors.tag_mistakes_list(project=project).filter(image_id=kept).exists()


def test_bad_tag_decisions_are_refused_with_nothing_written(noisy_tags, owner, reviewer, fashion):
    project, tags, wrong = noisy_tags
    image = Image.objects.get(pk=wrong[0])
    rows = TagAnnotation.objects.count()
    other = labeling_services.project_create(name="Other", user=owner, kind="multi")
    stranger = labeling_services.label_class_create(project=other, name="stranger")
    for kwargs, message in (
        ({"action": "relabel"}, "keeps them or flips one"),
        ({"action": "flip"}, "Flipping needs the tag to flip"),
        ({"action": "flip", "tag": stranger}, "Choose an active tag of this project"),
    ):
        with pytest.raises(ValidationError, match=message):
            services.review_decide(image=image, reviewer=reviewer, **kwargs)
    untagged = labeling_services.images_ingest(
        project=project, files=[fashion_uploads(fashion, ["Bag"], 1, skip=30)[0][0]], user=owner
    )[0]
    with pytest.raises(ValidationError, match="tags were never saved"):
        services.review_decide(
            image=Image.objects.get(pk=untagged.image_id),
            action="flip",
            reviewer=reviewer,
            tag=tags["bag"],
        )
    assert TagAnnotation.objects.count() == rows and not TagReview.objects.exists()


def test_too_few_tagged_images_fail_the_scan_with_the_reason(owner, reviewer, fashion):
    project = labeling_services.project_create(name="Tiny", user=owner, kind="multi")
    tagged_images(project, owner, fashion, per_class=2)
    requested = services.review_scan_request(project=project, user=reviewer)
    result = services.review_scan_run(scan_id=requested.pk)
    assert result.status == "failed"
    assert "at least 10 tagged images" in result.error


def test_the_review_page_and_api_show_and_decide_disputed_tags(noisy_tags, reviewer, api):
    project, tags, wrong = noisy_tags
    scan(project, reviewer)
    client = Client()
    client.login(username=reviewer.username, password=PASSWORD)
    page = client.get(f"/projects/{project.pk}/review/").content.decode()
    assert "Tags the model disputes" in page
    for pk in wrong:
        assert f'id="review-{pk}"' in page

    listed = api(reviewer).get(f"/api/v1/projects/{project.pk}/review/mistakes/").json()
    by_image = {r["image"]["id"]: r for r in listed["results"]}
    assert set(wrong) <= set(by_image)
    suspect = by_image[wrong[0]]["suspects"][0]
    assert set(suspect) == {"tag", "name", "state", "probability", "quality", "is_issue"}

    # The page's flip button, as htmx posts it; then a bad tag id.
    url = f"/projects/{project.pk}/review/{wrong[0]}/"
    response = client.post(
        url, {"action": "flip", "tag": str(suspect["tag"])}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    flipped = "absent" if suspect["state"] == "present" else "present"
    assert state(wrong[0], suspect["tag"]) == flipped
    bad = client.post(url, {"action": "flip", "tag": "abc"}, HTTP_HX_REQUEST="true")
    assert bad.status_code == 400 and "Choose a tag of this project" in bad.content.decode()

    # The API keeps the second image's tags.
    kept = api(reviewer).post(
        f"/api/v1/projects/{project.pk}/images/{wrong[1]}/review/",
        {"action": "keep"},
        format="json",
    )
    assert kept.status_code == 200, kept.json()
    assert TagReview.objects.filter(image_id=wrong[1], action="keep").exists()
    refused = api(reviewer).post(
        f"/api/v1/projects/{project.pk}/images/{wrong[2]}/review/",
        {"action": "flip"},
        format="json",
    )
    assert refused.status_code == 400 and "tag to flip" in str(refused.json())
