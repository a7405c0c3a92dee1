"""The labeling queue: reservations that never hand one image to two annotators,
held-out images interleaved at their rate, the rest by priority."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from labeling.models import (
    Image,
    Project,
)


def reservation_length() -> timedelta:
    """How long an image shown to an annotator stays theirs."""
    return timedelta(seconds=settings.LABELING["RESERVATION_SECONDS"])


def queue_reserve(
    *,
    project: Project,
    user: AbstractBaseUser,
    count: int = 2,
    exclude_ids: Sequence[int] = (),
) -> list[Image]:
    """Reserve the next `count` unlabeled images for `user` and return them in order.

    Images the user already holds come first (a reload shows the same image), then
    images a class split left to re-label. Each
    further slot goes to a held-out image (`Image.draw` below test + val fraction), in
    random order, while held-out images are less than that fraction of the labeled and
    reserved ones, so validation and test labels stay an unbiased sample at a set rate;
    otherwise to the image the query strategy ranks highest (`Image.priority`), ties
    (and every image while no ranking exists yet) in hash-draw order, a random one,
    never upload order. When one kind runs out the other is served.

    Rows are taken with `SELECT ... FOR UPDATE SKIP LOCKED`, so concurrent callers
    never get the same image. On SQLite, whose IMMEDIATE transactions admit one writer
    at a time, the lock clause is dropped by Django and the guarantee comes from that
    instead. Reservations expire, so an annotator who walks away does not keep images
    forever.
    """
    # A `with` block, not the decorator: mutmut 3 leaves decorated functions alone.
    with transaction.atomic():
        return _reserve(project, user, count, exclude_ids)


def _reserve(
    project: Project, user: AbstractBaseUser, count: int, exclude_ids: Sequence[int]
) -> list[Image]:
    now = timezone.now()
    pending = Image.objects.filter(
        Image.UNLABELED, project=project, in_queue=True, status=Image.Status.ACTIVE
    ).exclude(pk__in=exclude_ids)
    relabel = Image.objects.filter(
        project=project, needs_relabel=True, status=Image.Status.ACTIVE
    ).exclude(pk__in=exclude_ids)
    # Held images in the order they were served (their reservations end a microsecond
    # apart, see below), so a reload shows the image that was on the screen.
    images = list(
        (pending | relabel)
        .select_for_update()
        .filter(reserved_by=user, reserved_until__gt=now)
        .order_by("reserved_until", "id")[:count]
    )
    # Images left without a class by a split come before anything else.
    free_relabel = relabel.filter(Q(reserved_until__isnull=True) | Q(reserved_until__lte=now))
    while len(images) < count:
        image = (
            free_relabel.exclude(pk__in=[i.pk for i in images])
            .order_by("id")
            .select_for_update(skip_locked=True)
            .first()
        )
        if image is None:
            break
        images.append(image)
    rate = project.test_fraction + project.val_fraction
    # Labeled and reserved images counted apart: each count then runs on an index.
    counts = {"all": Count("id"), "holdout": Count("id", filter=Q(draw__lt=rate))}
    labeled = Image.objects.filter(~Image.UNLABELED, project=project).aggregate(**counts)
    reserved = Image.objects.filter(
        Image.UNLABELED, project=project, reserved_until__gt=now
    ).aggregate(**counts)
    totals = {k: labeled[k] + reserved[k] for k in counts}
    free = pending.filter(Q(reserved_until__isnull=True) | Q(reserved_until__lte=now))
    kinds = {
        True: free.filter(draw__lt=rate).order_by("draw", "id"),
        False: free.filter(draw__gte=rate).order_by("-priority", "draw", "id"),
    }
    while len(images) < count:
        holdout = totals["holdout"] < rate * (totals["all"] + 1)
        for kind in (holdout, not holdout):
            image = (
                kinds[kind]
                .exclude(pk__in=[image.pk for image in images])
                .select_for_update(skip_locked=True)
                .first()
            )
            if image is not None:
                images.append(image)
                totals["all"] += 1
                totals["holdout"] += image.draw < rate
                break
        else:
            break
    until = now + reservation_length()
    for position, image in enumerate(images):
        image.reserved_by = user
        image.reserved_until = until + timedelta(microseconds=position)
    Image.objects.bulk_update(images, ["reserved_by", "reserved_until"])
    return images


def queue_release(*, image: Image, user: AbstractBaseUser) -> None:
    """Give back `user`'s reservation of `image` (Skip), so another annotator can take it."""
    Image.objects.filter(pk=image.pk, reserved_by=user).update(
        reserved_by=None, reserved_until=None
    )
