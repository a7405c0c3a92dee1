from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from labeling import services
from labeling.models import Image
from tests.conftest import add_images
from tests.factories import UserFactory


def _no_holdout(project):
    project.test_fraction = project.val_fraction = 0.0
    project.save()


def _prioritise(project, images, priorities):
    services.image_suggestions_write(
        project=project,
        suggestions=[
            services.Suggestion(image_id=i.pk, class_id=None, confidence=None, priority=p)
            for i, p in zip(images, priorities, strict=True)
        ],
    )


def test_unranked_images_are_served_in_random_order_never_upload_order(
    project, classes, owner, annotator
):
    """Before embeddings and a ranking exist, a folder uploaded sorted by class must not
    be served one class at a time: the hash draw orders the queue."""
    _no_holdout(project)
    images = add_images(project, owner, 60)
    served = []
    for _ in range(20):
        [image] = services.queue_reserve(project=project, user=annotator, count=1)
        services.annotation_create(image=image, label_class=classes[0], annotator=annotator)
        served.append(image)
    assert [i.pk for i in served] == [i.pk for i in sorted(images, key=lambda i: i.draw)[:20]]
    # Upload order would serve images 0..19; a random third of them is what a draw gives.
    first_uploaded = {i.pk for i in images[:20]}
    assert len(first_uploaded & {i.pk for i in served}) < 14


def test_a_reload_shows_the_image_that_was_on_screen_not_the_earlier_upload(
    project, classes, owner, annotator
):
    _no_holdout(project)
    add_images(project, owner, 6)
    current, preloaded = services.queue_reserve(project=project, user=annotator, count=2)
    # Make the preloaded image the older upload: held images used to come back in
    # upload order, so a reload swapped them.
    Image.objects.filter(pk=preloaded.pk).update(created_at=current.created_at - timedelta(days=1))
    again = services.queue_reserve(project=project, user=annotator, count=2)
    assert again == [current, preloaded]
    # Labeling the current one moves the preloaded one to the screen, in that order.
    services.annotation_create(image=current, label_class=classes[0], annotator=annotator)
    after = services.queue_reserve(project=project, user=annotator, count=2)
    assert after[0] == preloaded and after[1] not in (current, preloaded)


def test_the_queue_serves_the_highest_priority_first(project, images, annotator):
    _no_holdout(project)
    _prioritise(project, images, [0.1, 0.9, 0.3, 0.8, 0.2, 0.5])
    served = services.queue_reserve(project=project, user=annotator, count=3)
    assert served == [images[1], images[3], images[5]]


def test_held_out_images_are_interleaved_at_the_set_rate(project, classes, owner, annotator):
    """Whatever the strategy prefers, val + test labels come at their rate, in random
    (hash) order, and every label's split says how it was served."""
    images = add_images(project, owner, 60)
    rate = project.test_fraction + project.val_fraction
    held_out = [i for i in images if i.draw < rate]
    assert 8 <= len(held_out) <= 30  # the draws are uniform: about 18 of 60
    # The strategy prefers everything else, and ranks held-out images last.
    _prioritise(project, images, [0.0 if i.draw < rate else 1.0 + i.pk for i in images])
    order = []
    for _ in range(30):
        [image] = services.queue_reserve(project=project, user=annotator, count=1)
        services.annotation_create(image=image, label_class=classes[0], annotator=annotator)
        order.append(image)
    image_ids = [i.pk for i in order]
    labeled = {i.pk: i for i in Image.objects.filter(pk__in=image_ids)}
    holdout_served = [i for i in order if i.draw < rate]
    assert abs(len(holdout_served) - rate * 30) <= 1
    for i in order:
        expected = {"test", "val"} if i.draw < rate else {"train"}
        assert labeled[i.pk].split in expected
    # Held-out images in draw order, the others by priority (highest first).
    assert holdout_served == sorted(held_out, key=lambda i: i.draw)[: len(holdout_served)]
    strategy_served = [i.pk for i in order if i.draw >= rate]
    assert strategy_served == sorted(strategy_served, reverse=True)


def test_validation_labels_come_from_the_start_not_after_every_test_image(
    project, classes, owner, annotator
):
    """Held-out images are served in draw order; which of test and validation each
    joins is an independent draw, so both fill up together (deciding by the draw once
    served every test image before the first validation one)."""
    project.test_fraction, project.val_fraction = 0.5, 0.5  # everything is held out
    project.save()
    add_images(project, owner, 40)
    splits = []
    for _ in range(20):
        [image] = services.queue_reserve(project=project, user=annotator, count=1)
        services.annotation_create(image=image, label_class=classes[0], annotator=annotator)
        image.refresh_from_db()
        splits.append(image.split)
    assert 5 <= splits.count("val") <= 15 and 5 <= splits.count("test") <= 15
    assert "val" in splits[:8] and "test" in splits[:8]


def test_when_one_kind_runs_out_the_other_fills_every_slot(project, images, annotator):
    project.test_fraction, project.val_fraction = 0.5, 0.5  # everything is held out
    project.save()
    served = services.queue_reserve(project=project, user=annotator, count=6)
    assert sorted(i.pk for i in served) == sorted(i.pk for i in images)


def test_a_reload_shows_the_same_image(project, images, annotator):
    first = services.queue_reserve(project=project, user=annotator, count=2)
    again = services.queue_reserve(project=project, user=annotator, count=2)
    assert first == again


def test_two_annotators_get_different_images(project, images, annotator, reviewer):
    mine = services.queue_reserve(project=project, user=annotator, count=2)
    theirs = services.queue_reserve(project=project, user=reviewer, count=2)
    assert not set(mine) & set(theirs)


def test_an_expired_reservation_is_served_again(project, images, annotator, reviewer):
    [held] = services.queue_reserve(project=project, user=annotator, count=1)
    Image.objects.filter(pk=held.pk).update(reserved_until=timezone.now() - timedelta(seconds=1))
    assert services.queue_reserve(project=project, user=reviewer, count=1) == [held]


def test_skip_releases_the_image(project, images, annotator, reviewer):
    [held] = services.queue_reserve(project=project, user=annotator, count=1)
    services.queue_release(image=held, user=annotator)
    assert services.queue_reserve(project=project, user=reviewer, count=1) == [held]


def test_skip_releases_that_image_only_and_only_for_its_holder(
    project, images, annotator, reviewer
):
    first, second = services.queue_reserve(project=project, user=annotator, count=2)
    [theirs] = services.queue_reserve(project=project, user=reviewer, count=1)
    services.queue_release(image=theirs, user=annotator)  # not annotator's to give back
    services.queue_release(image=first, user=annotator)

    def holder(image):
        image.refresh_from_db()
        return image.reserved_by, image.reserved_until is not None

    assert holder(first) == (None, False)
    assert holder(second) == (annotator, True)
    assert holder(theirs) == (reviewer, True)


@pytest.mark.django_db(transaction=True)
def test_concurrent_callers_never_receive_the_same_image(project, owner):
    assert connection.vendor == "postgresql", "this test is about PostgreSQL's row locks"
    add_images(project, owner, 60)
    users = [UserFactory(username=f"worker{i}") for i in range(12)]
    for user in users:
        services.membership_set(project=project, username=user.username, role="annotator")
    served: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(users))

    def ask(user):
        try:
            barrier.wait()
            got = []
            for _ in range(2):  # each annotator asks twice, holding what it got
                got += [i.pk for i in services.queue_reserve(project=project, user=user, count=2)]
            served[user.username] = got
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=ask, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    everything = [pk for got in served.values() for pk in set(got)]
    assert len(everything) == len(set(everything)), "an image went to two annotators"
    assert len(everything) == 24  # 12 annotators × 2 held images, all served
    held = Image.objects.filter(project=project, reserved_by__isnull=False)
    assert held.count() == 24


def test_the_labeling_page_says_which_order_the_queue_serves(project, classes, owner, annotator):
    from django.test import Client

    images = add_images(project, owner, 4)
    client = Client()
    client.force_login(annotator)

    def order() -> str:
        page = client.get(f"/projects/{project.pk}/label/").content.decode()
        return page.split('data-order="')[1].split('"')[0]

    assert order() == "random"  # nothing embedded and ranked yet
    _prioritise(project, images, [0.4, 0.3, 0.2, 0.1])
    assert order() == "cold-start"
    services.image_suggestions_write(
        project=project,
        suggestions=[
            services.Suggestion(image_id=i.pk, class_id=classes[0].pk, confidence=0.6, priority=0.5)
            for i in images
        ],
    )
    assert order() == "model"
