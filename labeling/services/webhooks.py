"""Webhooks: owners point a project's events at their own URLs (docs/webhooks.md).

An event is written as one `WebhookDelivery` per listening webhook inside the
transaction of the write it reports, and the worker is asked to send each only once
that transaction has committed: a rolled-back write sends nothing, a committed one is
never lost between the commit and the queue. The worker signs the stored body
(HMAC-SHA256 with the webhook's secret), sends it, and logs every attempt; a failure
(no 2xx answer, a timeout, a refused connection) is tried again later, waiting twice as
long each time, until `WEBHOOKS["MAX_ATTEMPTS"]` attempts have failed.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import URLValidator
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task, schedule

from labeling.models import (
    Image,
    LabelMilestone,
    Project,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)

Event = Webhook.Event
SIGNATURE_HEADER = "X-Labelloop-Signature"
TIMESTAMP_HEADER = "X-Labelloop-Timestamp"
DELIVERY_HEADER = "X-Labelloop-Delivery"
EVENT_HEADER = "X-Labelloop-Event"
DELIVER_TASK = "labeling.tasks.webhook_deliver"
# Labeled-image counts announced: the first few (a new project's first steps), then
# every thousand.
MILESTONES_FIRST = (10, 50, 100, 250, 500)
MILESTONE_STEP = 1000


# --- managing webhooks ------------------------------------------------------------------


def _url_clean(url: str) -> str:
    url = (url or "").strip()
    if not url:
        raise ValidationError({"url": "Give the URL the events are sent to."})
    if url.split(":", 1)[0].lower() not in ("http", "https"):
        raise ValidationError({"url": "A webhook URL starts with http:// or https://."})
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        raise ValidationError(
            {"url": "That is not a full URL: write it as https://example.com/hooks/labelloop."}
        ) from None
    if len(url) > 2000:
        raise ValidationError({"url": "Keep the URL under 2,000 characters."})
    return url


def _events_clean(events: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(events or []))
    unknown = [e for e in chosen if e not in Event.values]
    if unknown:
        raise ValidationError({"events": f"Unknown event {', '.join(map(str, unknown))}."})
    if not chosen:
        raise ValidationError({"events": "Choose at least one event to send."})
    return [e for e in Event.values if e in chosen]


def _secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


@transaction.atomic
def webhook_create(
    *,
    project: Project,
    url: str,
    events: Iterable[str],
    user: AbstractBaseUser | None,
    is_active: bool = True,
    description: str = "",
) -> Webhook:
    """Add a webhook to `project` with a new random secret (the caller shows it once:
    pages and the API show only its hint afterwards). Refuses a URL that is not http or
    https and an empty or unknown choice of events. Owners only (callers check)."""
    webhook = Webhook.objects.create(
        project=project,
        url=_url_clean(url),
        events=_events_clean(events),
        is_active=is_active,
        description=(description or "").strip()[:200],
        secret=_secret(),
        created_by=user,
    )
    _milestones_mark_passed(webhook)
    return webhook


@transaction.atomic
def webhook_update(
    *,
    webhook: Webhook,
    url: str | None = None,
    events: Iterable[str] | None = None,
    is_active: bool | None = None,
    description: str | None = None,
    rotate_secret: bool = False,
) -> Webhook:
    """Change what is given; `rotate_secret` makes a new secret (shown once, as at
    creation). Deliveries already made keep the body they were made with and are signed
    with the secret in force when they are sent. Owners only (callers check)."""
    webhook = Webhook.objects.select_for_update().get(pk=webhook.pk)
    was_listening = _listens_for_milestones(webhook)
    if url is not None:
        webhook.url = _url_clean(url)
    if events is not None:
        webhook.events = _events_clean(events)
    if is_active is not None:
        webhook.is_active = is_active
    if description is not None:
        webhook.description = description.strip()[:200]
    if rotate_secret:
        webhook.secret = _secret()
    webhook.save()
    if not was_listening:
        _milestones_mark_passed(webhook)
    return webhook


@transaction.atomic
def webhook_delete(*, webhook: Webhook) -> None:
    """Remove the webhook and its delivery log; retries still scheduled find nothing."""
    Webhook.objects.filter(pk=webhook.pk).delete()


def webhook_ping(*, webhook: Webhook) -> WebhookDelivery:
    """Send a `ping` event to this one webhook now (on or off, whatever its events), to
    check that the receiver answers and verifies the signature."""
    data = {"webhook": webhook.pk, "message": "A test ping from labelloop."}
    with transaction.atomic():
        return _delivery_add(webhook, Webhook.PING, data, key="")


# --- emitting events --------------------------------------------------------------------


def _listening(project_id: int, event: str) -> list[Webhook]:
    hooks = Webhook.objects.filter(project_id=project_id, is_active=True)
    return [hook for hook in hooks if event in hook.events]


def webhook_event_emit(
    *, project: Project, event: str, data: dict, key: str = ""
) -> list[WebhookDelivery]:
    """Record `event` of `project` for every active webhook that chose it, to be sent by
    the worker once the caller's transaction commits (nothing is sent if it rolls
    back). With `key` (what happened, as "model_version:12") the event is recorded once
    per webhook however often this is called: a retried task announces nothing twice.
    Called by the services that make the write the event reports, inside their
    transaction. Returns the deliveries recorded now."""
    if event not in Event.values:
        raise ValueError(f"unknown webhook event {event!r}")
    made = []
    with transaction.atomic():
        for hook in _listening(project.pk, event):
            if key and WebhookDelivery.objects.filter(webhook=hook, event=event, key=key).exists():
                continue
            try:
                with transaction.atomic():
                    made.append(_delivery_add(hook, event, data, key=key, project=project))
            except IntegrityError:  # the same event recorded by a concurrent writer
                continue
    return made


def _delivery_add(
    webhook: Webhook, event: str, data: dict, *, key: str, project: Project | None = None
) -> WebhookDelivery:
    """One delivery with its body fixed now; its sending enqueued on commit. Callers
    hold a transaction."""
    project = project or webhook.project
    delivery = WebhookDelivery(
        webhook=webhook, event=event, key=key, next_attempt_at=timezone.now()
    )
    delivery.body = json.dumps(
        {
            "id": str(delivery.uid),
            "event": event,
            "created_at": timezone.now().isoformat(),
            "project": {"id": project.pk, "name": project.name},
            "data": data,
        },
        cls=DjangoJSONEncoder,
        separators=(",", ":"),
    )
    delivery.save()
    transaction.on_commit(
        lambda: async_task(DELIVER_TASK, delivery.pk, task_name=f"webhook {delivery.pk}"),
        # The write it reports has committed: a broker that fails now must not turn it
        # into an error page (the delivery stays pending, logged).
        robust=True,
    )
    return delivery


# --- label milestones -------------------------------------------------------------------


def milestones_upto(count: int) -> list[int]:
    """The milestones a project with `count` labeled images has passed."""
    return [m for m in MILESTONES_FIRST if m <= count] + [
        MILESTONE_STEP * k for k in range(1, count // MILESTONE_STEP + 1)
    ]


def _labeled_count(project_id: int) -> int:
    return (
        Image.objects.filter(project_id=project_id, status=Image.Status.ACTIVE)
        .exclude(Image.UNLABELED)
        .count()
    )


class _MilestoneCheck:
    """The check one transaction runs on commit for one project (at most one, however
    many images it labeled)."""

    def __init__(self, project_id: int, listening: bool) -> None:
        self.project_id = project_id
        self.listening = listening
        self.ran = False

    def __call__(self) -> None:
        self.ran = True
        if self.listening:
            label_milestones_check(project_id=self.project_id)


# Checks waiting for their transaction's commit, by thread and project. Django drops a
# rolled-back transaction's callbacks, and with them the entry here.
_pending_checks: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def labels_added(*, project_id: int) -> None:
    """An image of the project has become labeled (a class, or a full save of its tags):
    once the caller's transaction commits, see whether the project's labeled images
    have reached a milestone. Costs one small query (whether a webhook listens) per
    transaction, and a count after its commit when one does. Called by labeling's
    label services inside their transaction."""
    slot = (threading.get_ident(), connection.alias, project_id)
    waiting = _pending_checks.get(slot)
    if waiting is not None and not waiting.ran and connection.in_atomic_block:
        return  # this transaction checks already: a bulk label costs no query per image
    check = _MilestoneCheck(project_id, bool(_listening(project_id, Event.LABEL_MILESTONE)))
    _pending_checks[slot] = check
    # The labels are committed by then: a failed check is logged, never the label's error.
    transaction.on_commit(check, robust=True)


def label_milestones_check(*, project_id: int) -> LabelMilestone | None:
    """Record every milestone the project's labeled images (in the dataset, classes or
    saved tags) have reached and that was not recorded yet, and announce the highest
    of them (`labels.milestone`, listing the others passed at once, as by a bulk
    import). Counted on committed rows, so two labels committed together are both
    seen by the later check; each milestone is recorded once (a unique row), so undo
    and relabel never announce it again. Returns the milestone announced, if any."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return None
    count = _labeled_count(project_id)
    reached = milestones_upto(count)
    if not reached:
        return None
    known = set(
        LabelMilestone.objects.filter(project_id=project_id, count__in=reached).values_list(
            "count", flat=True
        )
    )
    with transaction.atomic():
        new = []
        for m in reached:
            if m in known:
                continue
            _, created = LabelMilestone.objects.get_or_create(project_id=project_id, count=m)
            if created:
                new.append(m)
        if not new:
            return None
        top = LabelMilestone.objects.get(project_id=project_id, count=new[-1])
        webhook_event_emit(
            project=project,
            event=Event.LABEL_MILESTONE,
            data={"milestone": new[-1], "labeled_images": count, "milestones_passed": new},
            key=f"labels:{new[-1]}",
        )
    return top


def _listens_for_milestones(webhook: Webhook) -> bool:
    return webhook.is_active and Event.LABEL_MILESTONE in webhook.events


def _milestones_mark_passed(webhook: Webhook) -> None:
    """Milestones passed while no webhook of the project listened for them are recorded
    as passed, not announced, when one starts listening: a webhook added at 340 labels
    hears of 500, not of 250. While another one listens they are being recorded
    already (and one reached a moment ago may be on its way: it is left alone)."""
    if not _listens_for_milestones(webhook):
        return
    others = _listening(webhook.project_id, Event.LABEL_MILESTONE)
    if any(other.pk != webhook.pk for other in others):
        return
    passed = milestones_upto(_labeled_count(webhook.project_id))
    LabelMilestone.objects.bulk_create(
        [LabelMilestone(project_id=webhook.project_id, count=m, notified=False) for m in passed],
        ignore_conflicts=True,
    )


# --- delivering ---------------------------------------------------------------------------


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: HMAC-SHA256 over "<timestamp>.<raw body>"."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def retry_delay(attempt: int) -> timedelta:
    """How long to wait after failed attempt number `attempt` (1, 2, ...): the base
    delay, doubled after each failure, at most an hour."""
    base = settings.WEBHOOKS["BACKOFF_SECONDS"]
    return timedelta(seconds=min(base * 2 ** (attempt - 1), 3600.0))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A 3xx is an answer other than 2xx, so a failure: following it would turn the POST
    # into a GET, or send the signed body to another host.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def _send(webhook: Webhook, delivery: WebhookDelivery) -> tuple[int | None, str]:
    """POST the delivery's body, signed now; (status code or None, error text)."""
    body = delivery.body.encode()
    timestamp = str(int(time.time()))
    request = urllib.request.Request(
        webhook.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "labelloop-webhooks/1",
            SIGNATURE_HEADER: webhook_signature(
                secret=webhook.secret, timestamp=timestamp, body=body
            ),
            TIMESTAMP_HEADER: timestamp,
            DELIVERY_HEADER: str(delivery.uid),
            EVENT_HEADER: delivery.event,
        },
    )
    try:
        with _opener.open(request, timeout=settings.WEBHOOKS["TIMEOUT_SECONDS"]) as response:
            response.read(4096)
            return response.status, ""
    except urllib.error.HTTPError as error:
        answer = error.read(300).decode("utf-8", "replace").strip()
        return error.code, f"HTTP {error.code}" + (f": {answer}" if answer else "")
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, TimeoutError):
            return None, f"No answer within {settings.WEBHOOKS['TIMEOUT_SECONDS']:g} s."
        return None, f"Could not connect: {reason}"
    except TimeoutError:
        return None, f"No answer within {settings.WEBHOOKS['TIMEOUT_SECONDS']:g} s."
    except (OSError, ValueError, http.client.HTTPException) as error:
        return None, f"{type(error).__name__}: {error}"


def webhook_delivery_attempt(*, delivery_id: int) -> WebhookDelivery | None:
    """Make the next attempt at a pending delivery that is due, and log it.

    A 2xx answer delivers it; anything else (another status, a timeout, a connection
    refused) schedules the next attempt `retry_delay` later, until the last allowed
    attempt has failed. Idempotent and safe to run twice at once: the attempt is
    claimed first (its due time pushed past the send's timeout), so a duplicate or
    early run of the task finds nothing due and sends nothing. Called by the worker's
    task only: it waits on the network. Returns the delivery, or None if it is gone.
    """
    now = timezone.now()
    delivery = WebhookDelivery.objects.filter(pk=delivery_id).first()
    if delivery is None or delivery.status != WebhookDelivery.Status.PENDING:
        return delivery
    lease = now + timedelta(seconds=settings.WEBHOOKS["TIMEOUT_SECONDS"] + 60)
    claimed = WebhookDelivery.objects.filter(
        pk=delivery.pk,
        status=WebhookDelivery.Status.PENDING,
        attempts=delivery.attempts,
        next_attempt_at__lte=now,
    ).update(next_attempt_at=lease)
    if not claimed:
        return delivery
    webhook = Webhook.objects.filter(pk=delivery.webhook_id).first()
    if webhook is None:  # deleted since the claim, its deliveries with it
        return None
    started = time.monotonic()
    if webhook.is_active or delivery.event == Webhook.PING:
        status_code, error = _send(webhook, delivery)
    else:  # turned off since: its owner wants nothing more sent there
        status_code, error = None, "The webhook was turned off: not sent."
    duration_ms = (time.monotonic() - started) * 1000
    number = delivery.attempts + 1
    succeeded = status_code is not None and 200 <= status_code < 300
    finished = timezone.now()
    give_up = not succeeded and (
        number >= settings.WEBHOOKS["MAX_ATTEMPTS"] or not webhook.is_active
    )
    next_retry = None if succeeded or give_up else finished + retry_delay(number)
    with transaction.atomic():
        if not WebhookDelivery.objects.select_for_update().filter(pk=delivery.pk).exists():
            return None  # deleted with its webhook while it was being sent
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=number,
            started_at=now,
            duration_ms=duration_ms,
            status_code=status_code,
            error=error,
            next_retry_at=next_retry,
        )
        delivery.attempts = number
        delivery.status_code = status_code
        delivery.error = error
        delivery.next_attempt_at = next_retry
        if succeeded or give_up:
            delivery.status = (
                WebhookDelivery.Status.SUCCEEDED if succeeded else WebhookDelivery.Status.FAILED
            )
            delivery.finished_at = finished
        delivery.save(
            update_fields=[
                "attempts",
                "status_code",
                "error",
                "next_attempt_at",
                "status",
                "finished_at",
            ]
        )
        if next_retry is not None:
            transaction.on_commit(
                lambda: schedule(
                    DELIVER_TASK,
                    delivery.pk,
                    schedule_type=Schedule.ONCE,
                    repeats=-1,
                    next_run=next_retry,
                )
            )
    return delivery


def webhook_deliveries_resume(*, stale_after: timedelta = timedelta(minutes=30)) -> int:
    """Ask the worker again for every pending delivery overdue by more than
    `stale_after`: its task was lost (a broker unreachable at commit, a worker killed
    past django-q2's own retries). Safe at any time: a delivery whose task is merely
    waiting in a busy queue is still attempted once (the attempt is claimed), never
    before it is due. Returns how many were asked for (`manage.py webhooks_resume`)."""
    cutoff = timezone.now() - stale_after
    overdue = list(
        WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.PENDING, next_attempt_at__lt=cutoff
        ).values_list("pk", flat=True)
    )
    for pk in overdue:
        async_task(DELIVER_TASK, pk, task_name=f"webhook {pk}")
    return len(overdue)
