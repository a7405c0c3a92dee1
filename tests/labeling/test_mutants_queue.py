"""The queue's choices worked out by hand on images whose draws, priorities and states
are set outright: which images a call serves, in which order, from which project.

Quick enough to run for every mutant of labeling/services/queue.py (`make mutation`);
the test of concurrent callers is in test_queue.py.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.utils import timezone

from labeling import services
from labeling.models import Image
from tests.conftest import add_images, no_index_scans


def _set(images, **fields):
    Image.objects.filter(pk__in=[i.pk for i in images]).update(**fields)


def _rate(project, rate):
    project.test_fraction = project.val_fraction = rate / 2
    project.save()


def _serve(project, user, count, **kwargs):
    return services.queue_reserve(project=project, user=user, count=count, **kwargs)


@pytest.fixture
def six(project, owner):
    """Six unlabeled images, none held out, ranked 6 (first) down to 1 (last)."""
    _rate(project, 0.0)
    images = add_images(project, owner, 6)
    for n, image in enumerate(images):
        _set([image], priority=6 - n, draw=0.5 + n / 100)
    return images


@pytest.fixture
def other_project(owner):
    other = services.project_create(name="Elsewhere", user=owner)
    _rate(other, 0.0)
    return other


@pytest.mark.django_db
def test_two_images_unless_told(project, six, annotator):
    assert services.queue_reserve(project=project, user=annotator) == six[:2]


@pytest.mark.django_db
def test_only_this_projects_queued_active_unlabeled_images(
    project, six, other_project, owner, annotator, classes
):
    theirs = add_images(other_project, owner, 2, start=50)
    _set(theirs, priority=100)
    _set(six[:1], in_queue=False)
    _set(six[1:2], status=Image.Status.REMOVED)
    services.annotation_create(image=six[2], label_class=classes[0], annotator=owner)
    assert _serve(project, annotator, 3) == six[3:6]


@pytest.mark.django_db
def test_split_leftovers_come_first_from_this_project_only(
    project, six, other_project, owner, annotator
):
    theirs = add_images(other_project, owner, 1, start=50)
    _set(theirs, needs_relabel=True)  # made before this project's leftovers
    leftovers = six[4:6]
    _set(leftovers, needs_relabel=True)
    # A removed image is no leftover, whatever it needed.
    _set(six[3:4], needs_relabel=True, status=Image.Status.REMOVED)
    assert _serve(project, annotator, 3) == [*leftovers, six[0]]


@pytest.mark.django_db
def test_no_more_leftovers_than_asked_for(project, six, annotator):
    _set(six[3:6], needs_relabel=True)
    assert _serve(project, annotator, 2) == six[3:5]


@pytest.mark.django_db
def test_a_leftover_held_by_another_is_not_served_until_it_expires(
    project, six, annotator, reviewer
):
    _set(six[5:6], needs_relabel=True)
    assert _serve(project, reviewer, 1) == [six[5]]
    assert _serve(project, annotator, 1) == [six[0]]
    _set(six[5:6], reserved_until=timezone.now() - timedelta(seconds=1))
    assert _serve(project, annotator, 2) == [six[0], six[5]]


@pytest.mark.django_db
def test_an_expired_hold_is_not_held_any_more(project, six, annotator):
    assert _serve(project, annotator, 1, exclude_ids=[six[0].pk]) == [six[1]]
    _set(six[1:2], reserved_until=timezone.now() - timedelta(seconds=1))
    # Not served again first as if still held: the best free image is.
    assert _serve(project, annotator, 1) == [six[0]]


@pytest.fixture
def half_held_out(project, owner):
    """Rate 0.5: images h0..h3 held out (draws 0.1..0.4), n0..n3 not (0.6..0.9, n0 the
    strategy's first choice)."""
    _rate(project, 0.5)
    images = add_images(project, owner, 8)
    for n, image in enumerate(images[:4]):
        _set([image], draw=0.1 * (n + 1), priority=0.0)
    for n, image in enumerate(images[4:]):
        _set([image], draw=0.6 + 0.1 * n, priority=10.0 - n)
    return images[:4], images[4:]


@pytest.mark.django_db
def test_held_out_and_strategy_picks_alternate_at_the_rate(project, half_held_out, annotator):
    held, ranked = half_held_out
    served = _serve(project, annotator, 7)
    # 0 < 0.5 x 1: held out; 1 < 0.5 x 2 no; 1 < 0.5 x 3 yes; 2 < 0.5 x 4 no; ...
    assert served == [held[0], ranked[0], held[1], ranked[1], held[2], ranked[2], held[3]]


@pytest.mark.django_db
def test_a_draw_equal_to_the_rate_is_not_held_out(project, half_held_out, annotator):
    held, ranked = half_held_out
    _set(ranked[:1], draw=0.5)
    served = _serve(project, annotator, 3)
    assert served == [held[0], ranked[0], held[1]]


@pytest.mark.django_db
def test_at_exactly_the_rate_the_strategy_is_served(project, half_held_out, owner, annotator):
    held, ranked = half_held_out
    services.annotation_create(
        image=held[0],
        label_class=services.label_class_create(project=project, name="cat", actor=owner),
        annotator=owner,
    )
    # One label, held out: 1 < 0.5 x (1 + 1) is false.
    assert _serve(project, annotator, 1) == [ranked[0]]


@pytest.mark.django_db
def test_others_reservations_count_as_served(project, half_held_out, reviewer, annotator):
    held, ranked = half_held_out
    assert _serve(project, reviewer, 2, exclude_ids=[ranked[0].pk]) == [held[0], ranked[1]]
    # Counted: one held out of two served, so held out comes first again, then ranked.
    assert _serve(project, annotator, 2) == [held[1], ranked[0]]


@pytest.mark.django_db
def test_a_reserved_leftover_counts_once(project, half_held_out, owner, reviewer, annotator):
    held, ranked = half_held_out
    cat = services.label_class_create(project=project, name="cat", actor=owner)
    for image in (held[0], ranked[3]):
        services.annotation_create(image=image, label_class=cat, annotator=owner)
    _set(held[:1], needs_relabel=True)
    assert _serve(project, reviewer, 1) == [held[0]]  # the leftover, first
    # Labeled: one held out of two. 1 < 0.5 x 3: held out next.
    assert _serve(project, annotator, 1) == [held[1]]


@pytest.mark.django_db
def test_another_projects_labels_and_holds_do_not_count(
    project, half_held_out, other_project, owner, reviewer, annotator
):
    held, ranked = half_held_out
    _rate(other_project, 0.5)
    theirs = add_images(other_project, owner, 4, start=60)
    _set(theirs, draw=0.2)
    dog = services.label_class_create(project=other_project, name="dog", actor=owner)
    for image in theirs[:2]:
        services.annotation_create(image=image, label_class=dog, annotator=owner)
    _serve(other_project, reviewer, 2)
    assert _serve(project, annotator, 2) == [held[0], ranked[0]]


@pytest.mark.django_db(transaction=True)
def test_a_caller_never_waits_for_the_rows_another_is_reserving(
    project, owner, annotator, reviewer
):
    """SKIP LOCKED on both kinds of pick: while one annotator's reservation is still
    being written (its transaction open), another is served the next images at once."""
    _rate(project, 0.0)
    images = add_images(project, owner, 4)
    _set(images[:1], needs_relabel=True)
    holding, served = threading.Event(), threading.Event()
    first: list = []

    def reserve_and_hold():
        try:
            with transaction.atomic():
                first.extend(_serve(project, annotator, 2))
                holding.set()
                first.append(served.wait(timeout=5))
        finally:
            connections.close_all()

    thread = threading.Thread(target=reserve_and_hold)
    thread.start()
    assert holding.wait(timeout=10)
    second = _serve(project, reviewer, 2)
    served.set()
    thread.join()
    leftover, best = first[:2]
    assert (leftover, first[2]) == (images[0], True), "the second caller waited"
    assert not {leftover.pk, best.pk} & {i.pk for i in second}


@pytest.mark.django_db
def test_others_held_out_reservations_send_the_next_picks_to_the_strategy(
    project, half_held_out, reviewer, annotator
):
    held, ranked = half_held_out
    # The reviewer holds two held-out images (the ranked ones kept from it).
    assert _serve(project, reviewer, 2, exclude_ids=[i.pk for i in ranked]) == held[:2]
    # Two held out of two served: 2 < 0.5 x 3 is false, and so is 2 < 0.5 x 4.
    assert _serve(project, annotator, 2) == ranked[:2]


@pytest.mark.django_db
def test_asked_for_more_than_there_is_every_image_is_served_and_held(project, six, annotator):
    assert _serve(project, annotator, 8) == six
    held = Image.objects.filter(reserved_by=annotator, reserved_until__gt=timezone.now())
    assert held.count() == 6


def _moved_to_the_end_of_the_table(image):
    """Rewrite the row twice, changing an indexed column and back: PostgreSQL stores
    each new version after the others (and indexes it anew), so a scan meets it last,
    and only an explicit tie-break by id still serves the rows in id order."""
    draw = Image.objects.get(pk=image.pk).draw
    Image.objects.filter(pk=image.pk).update(draw=draw + 1.0)
    Image.objects.filter(pk=image.pk).update(draw=draw)


# Which of two tied rows is rewritten last: whatever order a scan or a sort leaves
# ties in, one of the two differs from id order unless the query breaks ties by id.
@pytest.mark.parametrize("moved", [0, 1])
@pytest.mark.django_db
def test_equal_draws_are_served_oldest_first(project, half_held_out, annotator, moved):
    held, ranked = half_held_out
    _set(held[:2], draw=0.15)
    _set(ranked[:2], draw=0.65, priority=10.0)
    for image in (held[moved], ranked[moved]):
        _moved_to_the_end_of_the_table(image)
    no_index_scans()
    assert _serve(project, annotator, 4) == [held[0], ranked[0], held[1], ranked[1]]


@pytest.mark.parametrize("moved", [0, 1])
@pytest.mark.django_db
def test_held_images_ending_at_the_same_time_are_served_oldest_first(
    project, six, annotator, moved
):
    until = timezone.now() + timedelta(minutes=3)
    _set(six[2:4], reserved_by=annotator, reserved_until=until)
    _moved_to_the_end_of_the_table(six[2 + moved])
    no_index_scans()
    assert _serve(project, annotator, 2) == six[2:4]
