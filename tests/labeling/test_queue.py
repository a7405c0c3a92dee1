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


def test_the_queue_serves_unlabeled_images_in_upload_order(project, images, classes, annotator):
    services.annotation_create(image=images[0], label_class=classes[0], annotator=annotator)
    served = services.queue_reserve(project=project, user=annotator, count=2)
    assert served == images[1:3]


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
