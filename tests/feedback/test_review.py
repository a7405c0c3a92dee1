"""The mistakes review: out-of-sample label scores, reviewer decisions, near-duplicates."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from feedback import selectors, services
from labeling import services as labeling_services
from labeling.models import Annotation, Image
from models_app import services as learner
from tests.fashion import labeled_project
from tests.feedback.conftest import twin_upload

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def noisy(project, owner, fashion):
    """90 real images of three classes, four of them given a wrong label."""
    classes = labeled_project(project, owner, fashion, ["Trouser", "Bag", "Sneaker"], per_class=30)
    images = list(Image.objects.filter(project=project).select_related("label").order_by("id"))
    names = list(classes)
    wrong = {}
    for image in (images[0], images[25], images[45], images[70]):
        # The next class round: surely not the true one.
        wrong[image.pk] = names[(names.index(image.label.name) + 1) % 3]
        labeling_services.annotation_create(
            image=image, label_class=classes[wrong[image.pk]], annotator=owner
        )
    return classes, wrong


def scan(project, user):
    requested = services.review_scan_request(project=project, user=user)
    result = services.review_scan_run(scan_id=requested.pk)
    assert result.status == "succeeded", result.error
    return result


def test_the_review_ranks_wrong_labels_first(noisy, project, reviewer):
    _, wrong = noisy
    result = scan(project, reviewer)
    assert result.labeled == 90 and result.issues >= 3
    suspects = [score.image_id for score in selectors.mistakes_list(project=project)]
    # Four wrong labels among 90: all of them in the first eight the reviewer sees (a
    # few true labels of odd-looking images can rank among them).
    assert set(wrong) <= set(suspects[:8]), suspects
    first = selectors.mistakes_list(project=project).first()
    assert first.suggested_class != first.label_class and first.quality < 0.5


def test_each_decision_is_a_history_row_and_takes_the_image_off_the_list(noisy, project, reviewer):
    classes, wrong = noisy
    scan(project, reviewer)
    keep, relabel, ambiguous, remove = (Image.objects.get(pk=pk) for pk in wrong)
    services.review_decide(image=keep, action="keep", reviewer=reviewer)
    truth = Annotation.objects.filter(image=relabel).order_by("id").first().label_class
    services.review_decide(image=relabel, action="relabel", reviewer=reviewer, label_class=truth)
    services.review_decide(image=ambiguous, action="ambiguous", reviewer=reviewer)
    removed = services.review_decide(image=remove, action="remove", reviewer=reviewer)
    assert not selectors.mistakes_list(project=project).filter(image_id__in=list(wrong)).exists()

    actions = {
        pk: list(
            Annotation.objects.filter(image_id=pk).order_by("id").values_list("action", flat=True)
        )
        for pk in wrong
    }
    assert actions[keep.pk] == ["label", "label", "keep"]
    assert actions[relabel.pk] == ["label", "label", "label"]
    assert actions[ambiguous.pk] == ["label", "label", "ambiguous"]
    assert actions[remove.pk] == ["label", "label", "remove"]
    # Removal is soft: the label stays, the image leaves training; restore brings it back.
    assert (removed.status, removed.label.name) == ("removed", wrong[remove.pk])
    version = learner.model_version_request(project=project, trigger="api", user=reviewer)
    version = learner.model_version_train(version_id=version.pk)
    assert version.labels_total == 88
    restored = services.review_decide(image=removed, action="restore", reviewer=reviewer)
    assert (restored.status, restored.label.name) == ("active", wrong[remove.pk])
    with pytest.raises(ValidationError, match="already in the dataset"):
        services.review_decide(image=restored, action="restore", reviewer=reviewer)
    with pytest.raises(ValidationError, match="needs the new class"):
        services.review_decide(image=restored, action="relabel", reviewer=reviewer)
    with pytest.raises(ValidationError, match="Choose one of"):
        services.review_decide(image=restored, action="delete", reviewer=reviewer)


def test_removed_and_ambiguous_images_leave_the_queue(project, owner, annotator, classes, images):
    services.review_decide(image=images[0], action="remove", reviewer=owner)
    services.review_decide(image=images[1], action="ambiguous", reviewer=owner)
    served = labeling_services.queue_reserve(project=project, user=annotator, count=10)
    assert {i.pk for i in served} == {i.pk for i in images[2:]}


def test_near_duplicates_with_other_labels_or_splits_are_shown(project, owner, reviewer, fashion):
    classes = labeled_project(project, owner, fashion, ["Trouser", "Bag"], per_class=10)
    originals = list(Image.objects.filter(project=project).order_by("id"))
    twins = {}
    for original in originals:
        result = labeling_services.images_ingest(
            project=project, files=[twin_upload(original, f"twin-{original.pk}.png")], user=owner
        )[0]
        twins[original.pk] = Image.objects.get(pk=result.image_id)
    conflicting = originals[0]
    labeling_services.annotation_create(
        image=twins[conflicting.pk],
        label_class=classes["Bag"]
        if conflicting.label == classes["Trouser"]
        else classes["Trouser"],
        annotator=owner,
    )
    for original in originals[1:]:
        labeling_services.annotation_create(
            image=twins[original.pk], label_class=original.label, annotator=owner
        )
    scan(project, reviewer)

    conflicts = selectors.duplicate_conflicts(project=project)
    assert [{i.pk for i in g.images} for g in conflicts] == [
        {conflicting.pk, twins[conflicting.pk].pk}
    ]
    leaks = selectors.split_leaks(project=project)
    expected = [
        {o.pk, twins[o.pk].pk}
        for o in originals
        if Image.objects.get(pk=o.pk).split != Image.objects.get(pk=twins[o.pk].pk).split
    ]
    assert expected, "the hash draw put every pair in one split"
    assert sorted(map(sorted, ({i.pk for i in g.images} for g in leaks))) == sorted(
        map(sorted, expected)
    )


def test_a_scan_of_too_few_labels_fails_with_the_reason(project, reviewer, classes, images, owner):
    labeling_services.annotation_create(image=images[0], label_class=classes[0], annotator=owner)
    result = services.review_scan_run(
        scan_id=services.review_scan_request(project=project, user=reviewer).pk
    )
    assert result.status == "failed"
    assert result.error == "A review needs at least 10 labeled images of two classes."


def test_a_new_model_makes_the_project_due_for_a_scan(noisy, project, reviewer, owner):
    from feedback import tasks

    assert tasks.scan_due_projects() == 0  # no model yet
    version = learner.model_version_request(project=project, trigger="api", user=owner)
    learner.model_version_train(version_id=version.pk)
    assert selectors.projects_due_for_review() == [project]
    assert tasks.scan_due_projects() == 1
    assert selectors.projects_due_for_review() == []  # one is queued
    services.review_scan_run(scan_id=selectors.review_scan_latest(project=project).pk)
    assert selectors.projects_due_for_review() == []  # scanned after the model
