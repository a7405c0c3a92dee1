"""Verifying suggestions in bulk: the service, its selectors, the pages and the API, on
suggestions written by hand (their classes, confidences and version set outright)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from labeling import selectors, services
from labeling.models import Annotation, Image, Project, SuggestionRejection
from tests.conftest import add_images

VERSION = 7


def suggest(images, label_class, confidences, version=VERSION):
    services.image_suggestions_write(
        project=images[0].project,
        suggestions=[
            services.Suggestion(
                image_id=image.pk,
                class_id=label_class.pk,
                confidence=confidence,
                priority=1 - confidence,
                version_id=version,
            )
            for image, confidence in zip(images, confidences, strict=True)
        ],
    )


@pytest.fixture
def suggested(project, owner, classes):
    """Four images suggested cat (0.9, 0.8, 0.7, 0.6) and two dog (0.95, 0.5)."""
    images = add_images(project, owner, 6)
    cat, dog, _ = classes
    suggest(images[:4], cat, [0.9, 0.8, 0.7, 0.6])
    suggest(images[4:], dog, [0.95, 0.5])
    return images


def test_accepted_images_are_labeled_with_provenance_and_rejected_ones_go_back(
    project, annotator, classes, suggested
):
    cat, dog, _ = classes
    a, b, c, d, *_ = suggested
    Image.objects.filter(pk=c.pk).update(in_queue=False)
    result = services.suggestions_verify(
        project=project,
        label_class=cat,
        accepted_ids=[a.pk, b.pk],
        rejected_ids=[c.pk],
        annotator=annotator,
    )
    assert result == services.VerifyResult(accepted=2, rejected=1, skipped=0)
    rows = Annotation.objects.filter(image__in=[a, b]).order_by("image_id")
    assert [(r.image_id, r.label_class_id, r.origin, r.suggested_by) for r in rows] == [
        (a.pk, cat.pk, "verified", VERSION),
        (b.pk, cat.pk, "verified", VERSION),
    ]
    assert [r.suggestion_confidence for r in rows] == pytest.approx([0.9, 0.8])
    assert all(r.annotator == annotator and r.is_current for r in rows)
    c.refresh_from_db()
    assert (c.label_id, c.suggested_class_id, c.confidence, c.suggested_by, c.in_queue) == (
        None,
        None,
        None,
        None,
        True,
    )
    rejection = SuggestionRejection.objects.get()
    assert (rejection.image_id, rejection.label_class_id, rejection.annotator) == (
        c.pk,
        cat.pk,
        annotator,
    )
    assert (rejection.suggested_by, rejection.confidence) == (VERSION, pytest.approx(0.7))
    d.refresh_from_db()
    assert (d.label_id, d.suggested_class_id) == (None, cat.pk)
    assert selectors.suggestion_rejections(project=project) == [(c.pk, cat.pk)]


def test_the_same_page_sent_twice_adds_nothing(project, annotator, classes, suggested):
    cat = classes[0]
    a, _, c, *_ = suggested
    page = {"project": project, "label_class": cat, "accepted_ids": [a.pk], "rejected_ids": [c.pk]}
    services.suggestions_verify(**page, annotator=annotator)
    again = services.suggestions_verify(**page, annotator=annotator)
    assert again == services.VerifyResult(accepted=0, rejected=1, skipped=1)
    assert Annotation.objects.filter(image=a).count() == 1
    assert SuggestionRejection.objects.count() == 1


def test_images_labeled_or_removed_meanwhile_are_skipped_and_kept(
    project, owner, annotator, classes, suggested
):
    cat, dog, _ = classes
    a, b, c, *_ = suggested
    services.annotation_create(image=a, label_class=dog, annotator=owner)
    Image.objects.filter(pk=b.pk).update(status=Image.Status.REMOVED)
    result = services.suggestions_verify(
        project=project,
        label_class=cat,
        accepted_ids=[a.pk, b.pk],
        rejected_ids=[c.pk],
        annotator=annotator,
    )
    assert result == services.VerifyResult(accepted=0, rejected=1, skipped=2)
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.label_id, b.label_id) == (dog.pk, None)
    assert Annotation.objects.get(image=a).annotator == owner


@pytest.mark.parametrize(
    "accepted, rejected, message",
    [
        ([], [], "Send at least one image, accepted or rejected."),
        (["a"], ["a"], "An image cannot be both accepted and rejected."),
        (["a", "foreign"], [], "Some images do not exist in this project."),
    ],
)
def test_a_bad_page_is_refused_with_nothing_written(
    project, other_project, outsider, annotator, classes, suggested, accepted, rejected, message
):
    foreign = add_images(other_project, outsider, 1, start=50)[0]
    ids = {"a": suggested[0].pk, "foreign": foreign.pk}
    with pytest.raises(ValidationError) as refused:
        services.suggestions_verify(
            project=project,
            label_class=classes[0],
            accepted_ids=[ids[k] for k in accepted],
            rejected_ids=[ids[k] for k in rejected],
            annotator=annotator,
        )
    assert refused.value.messages == [message]
    assert not Annotation.objects.exists()


def test_a_deactivated_class_refuses_the_whole_page(project, annotator, classes, suggested):
    cat = classes[0]
    a, b, c, *_ = suggested
    services.label_class_update(label_class=cat, is_active=False)
    cat.refresh_from_db()
    with pytest.raises(ValidationError, match="deactivated"):
        services.suggestions_verify(
            project=project,
            label_class=cat,
            accepted_ids=[a.pk, b.pk],
            rejected_ids=[c.pk],
            annotator=annotator,
        )
    assert not Annotation.objects.exists()
    assert not SuggestionRejection.objects.exists()
    assert Image.objects.get(pk=c.pk).suggested_class_id == cat.pk


def test_more_than_the_limit_is_refused(project, annotator, classes):
    with pytest.raises(ValidationError, match=f"at most {services.VERIFY_MAX}"):
        services.suggestions_verify(
            project=project,
            label_class=classes[0],
            accepted_ids=list(range(1, services.VERIFY_MAX + 2)),
            rejected_ids=[],
            annotator=annotator,
        )


def test_a_tag_project_is_refused(owner):
    tags = services.project_create(name="Tags", user=owner, kind=Project.Kind.MULTI)
    tag = services.label_class_create(project=tags, name="striped")
    image = add_images(tags, owner, 1)[0]
    with pytest.raises(ValidationError):
        services.suggestions_verify(
            project=tags, label_class=tag, accepted_ids=[image.pk], rejected_ids=[], annotator=owner
        )


def test_the_page_lists_one_class_most_confident_first_less_others_holds(
    project, owner, annotator, classes, suggested
):
    cat, dog, _ = classes
    a, b, c, d, e, f = suggested
    services.annotation_create(image=d, label_class=cat, annotator=owner)  # labeled: gone
    later = timezone.now() + timedelta(minutes=5)
    Image.objects.filter(pk=b.pk).update(reserved_by=owner, reserved_until=later)
    Image.objects.filter(pk=c.pk).update(reserved_by=annotator, reserved_until=later)
    listed = selectors.suggestion_list(project=project, label_class=cat, user=annotator)
    assert list(listed) == [a, c]  # b is held by the owner's labeling page
    assert list(selectors.suggestion_list(project=project, label_class=cat, user=owner)) == [a, b]
    assert selectors.suggestion_counts(project=project, user=annotator) == {cat.pk: 2, dog.pk: 2}
    assert list(selectors.suggestion_list(project=project, label_class=dog, user=owner)) == [e, f]


def test_the_labeling_page_records_an_accepted_suggestion(client, project, annotator, classes):
    cat, dog, _ = classes
    first, second = add_images(project, annotator, 2, start=30)
    suggest([first, second], cat, [0.81, 0.64], version=3)
    client.force_login(annotator)
    for image, label_class in ((first, cat), (second, dog)):
        url = reverse("labeling:label-image", args=[project.pk, image.pk])
        assert client.post(url, {"label_class": label_class.pk}).status_code == 200
    rows = Annotation.objects.filter(image__in=[first, second]).order_by("image_id")
    assert [(r.origin, r.suggested_by) for r in rows] == [("suggestion", 3), ("chosen", None)]
    assert rows[0].suggestion_confidence == pytest.approx(0.81)
    assert rows[1].suggestion_confidence is None


def test_the_verify_page_accepts_the_ticked_and_rejects_the_rest(
    client, project, annotator, classes, suggested
):
    cat = classes[0]
    a, b, c, d, *_ = suggested
    client.force_login(annotator)
    page = client.get(reverse("labeling:verify", args=[project.pk]), {"class": cat.pk})
    assert page.status_code == 200
    assert [i.pk for i in page.context["images"]] == [a.pk, b.pk, c.pk, d.pk]
    assert page.context["waiting"] == 4
    answer = client.post(
        reverse("labeling:verify-accept", args=[project.pk]),
        {"label_class": cat.pk, "shown": [a.pk, b.pk, c.pk], "accepted": [a.pk, c.pk]},
    )
    assert answer.status_code == 200
    assert "Accepted 2 as cat; 1 back to the queue." in answer.content.decode()
    assert [i.pk for i in answer.context["images"]] == [d.pk]
    assert set(Image.objects.filter(label=cat).values_list("id", flat=True)) == {a.pk, c.pk}
    assert SuggestionRejection.objects.get().image_id == b.pk


@pytest.mark.parametrize(
    "post, message",
    [
        ({"shown": ["A"]}, "Choose the class whose suggestions you checked."),
        ({"label_class": "cat", "shown": ["A"]}, "Choose the class whose suggestions you checked."),
        ({"label_class": "CAT"}, "The page showed no images: load it again."),
        ({"label_class": "CAT", "shown": ["A"], "accepted": ["B"]}, "Only images shown"),
        ({"label_class": "CAT", "shown": ["x"]}, "Image ids must be whole numbers."),
    ],
)
def test_a_bad_verify_post_is_refused_with_a_message(
    client, project, annotator, classes, suggested, post, message
):
    names = {"A": str(suggested[0].pk), "B": str(suggested[1].pk), "CAT": str(classes[0].pk)}
    data = {
        k: [names.get(v, v) for v in vs] if isinstance(vs, list) else names.get(vs, vs)
        for k, vs in post.items()
    }
    client.force_login(annotator)
    answer = client.post(reverse("labeling:verify-accept", args=[project.pk]), data)
    assert answer.status_code == 400
    assert message in answer.content.decode()
    assert not Annotation.objects.exists()
    assert not SuggestionRejection.objects.exists()


def test_the_verify_page_before_any_model_says_what_to_do(client, project, annotator, images):
    client.force_login(annotator)
    page = client.get(reverse("labeling:verify", args=[project.pk]))
    assert page.status_code == 200
    assert "No suggestions to check yet" in page.content.decode()


def test_an_outsider_may_not_verify(client, project, outsider, classes, suggested):
    client.force_login(outsider)
    assert client.get(reverse("labeling:verify", args=[project.pk])).status_code == 404
    answer = client.post(
        reverse("labeling:verify-accept", args=[project.pk]),
        {"label_class": classes[0].pk, "shown": [suggested[0].pk], "accepted": [suggested[0].pk]},
    )
    assert answer.status_code == 404
    assert not Annotation.objects.exists()


def test_the_api_lists_suggestions_and_verifies_a_batch(
    api, project, annotator, classes, suggested
):
    cat, dog, _ = classes
    a, b, c, d, *_ = suggested
    client = api(annotator)
    listed = client.get(f"/api/v1/projects/{project.pk}/suggestions/", {"label_class": cat.pk})
    assert listed.status_code == 200
    results = listed.json()["results"]
    assert [(r["id"], r["suggested_by"]) for r in results] == [
        (a.pk, VERSION),
        (b.pk, VERSION),
        (c.pk, VERSION),
        (d.pk, VERSION),
    ]
    assert [r["confidence"] for r in results] == pytest.approx([0.9, 0.8, 0.7, 0.6])
    answer = client.post(
        f"/api/v1/projects/{project.pk}/suggestions/verify/",
        {"label_class": cat.pk, "accepted": [a.pk, b.pk], "rejected": [c.pk]},
        format="json",
    )
    assert answer.status_code == 200
    assert answer.json() == {"accepted": 2, "rejected": 1, "skipped": 0}
    history = client.get(f"/api/v1/projects/{project.pk}/images/{a.pk}/annotations/").json()
    rows = history["results"] if isinstance(history, dict) else history
    assert [(r["origin"], r["suggested_by"]) for r in rows] == [("verified", VERSION)]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"accepted": [1]}, "label_class"),
        ({"label_class": "cat", "accepted": [1]}, "label_class"),
        ({"label_class": 1, "accepted": ["x"]}, "accepted"),
        ({"label_class": 1, "rejected": [0]}, "rejected"),
    ],
)
def test_the_api_refuses_bad_input_by_field(api, project, annotator, classes, body, field):
    answer = api(annotator).post(
        f"/api/v1/projects/{project.pk}/suggestions/verify/", body, format="json"
    )
    assert answer.status_code == 400
    assert field in answer.json()
    assert not Annotation.objects.exists()


def test_the_api_refuses_a_page_with_nothing_and_a_class_of_another_project(
    api, project, other_project, annotator, classes, suggested
):
    foreign = services.label_class_create(project=other_project, name="fox")
    client = api(annotator)
    url = f"/api/v1/projects/{project.pk}/suggestions/verify/"
    empty = client.post(url, {"label_class": classes[0].pk}, format="json")
    assert empty.status_code == 400
    assert "Send at least one image" in str(empty.json())
    other = client.post(
        url, {"label_class": foreign.pk, "accepted": [suggested[0].pk]}, format="json"
    )
    assert other.status_code == 404
    assert not Annotation.objects.exists()
