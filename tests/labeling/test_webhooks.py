"""Webhook deliveries to a real HTTP receiver on this machine: signed so that a receiver
holding the secret can check them (checked here with the hmac module over the raw body
received), tried again with a doubling wait when the receiver fails, given up after the
last attempt, a receiver that never answers timing out; nothing recorded or sent when
the write that would have announced it rolls back."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import socket
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from labeling import services
from labeling.models import Webhook, WebhookDelivery
from labeling.tasks import webhook_deliver

pytestmark = pytest.mark.django_db


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that gave up waiting (the timeout test) closed the socket


class Receiver:
    """An HTTP server in a thread answering POSTs by a script: a status code per request
    (the last one repeated), or "hang" (answer only after `hang_seconds`). Keeps every
    request's headers and raw body."""

    def __init__(self, script=(200,), hang_seconds: float = 5.0) -> None:
        self.script = list(script)
        self.hang_seconds = hang_seconds
        self.requests: list[tuple[dict, bytes, float]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(
                    ({k.lower(): v for k, v in self.headers.items()}, body, time.time())
                )
                step = receiver.script[min(len(receiver.requests), len(receiver.script)) - 1]
                if step == "hang":
                    time.sleep(receiver.hang_seconds)
                    step = 200
                self.send_response(step)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if step < 300 else b"receiver says no")

            def log_message(self, *args):
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/labelloop"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def verified(secret: str, headers: dict, body: bytes) -> bool:
    """What a receiver does (docs/webhooks.md): HMAC-SHA256 of "<timestamp>.<raw body>"
    with the secret, compared in constant time with the signature header."""
    timestamp = headers["x-labelloop-timestamp"]
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest("sha256=" + expected.hexdigest(), headers["x-labelloop-signature"])


@pytest.fixture
def webhook_to(project, owner):
    def make(url: str, events=("labels.milestone",), **extra) -> Webhook:
        return services.webhook_create(
            project=project, url=url, events=list(events), user=owner, **extra
        )

    return make


@pytest.fixture
def fast_retries(settings):
    settings.WEBHOOKS = {"TIMEOUT_SECONDS": 2.0, "MAX_ATTEMPTS": 4, "BACKOFF_SECONDS": 0.4}
    return settings.WEBHOOKS


def ping(webhook, django_capture_on_commit_callbacks) -> WebhookDelivery:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        delivery = services.webhook_ping(webhook=webhook)
    assert len(callbacks) == 1  # the worker is asked to send it, once committed
    return delivery


def test_a_ping_reaches_the_receiver_signed_with_the_webhook_secret(
    webhook_to, django_capture_on_commit_callbacks, fast_retries
):
    with Receiver([200]) as receiver:
        webhook = webhook_to(receiver.url)
        delivery = ping(webhook, django_capture_on_commit_callbacks)
        assert OrmQ.objects.count() == 1  # enqueued for the worker
        assert webhook_deliver(delivery.pk) == "succeeded"

    [(headers, body, _)] = receiver.requests
    assert verified(webhook.secret, headers, body)
    assert not verified("whsec_someone-else", headers, body)
    tampered = body.replace(b"test ping", b"test pong")
    assert not verified(webhook.secret, headers, tampered)
    assert abs(int(headers["x-labelloop-timestamp"]) - time.time()) < 30
    payload = json.loads(body)
    assert payload["id"] == headers["x-labelloop-delivery"] == str(delivery.uid)
    assert payload["event"] == headers["x-labelloop-event"] == "ping"
    assert payload["project"]["id"] == webhook.project_id
    assert payload["data"]["webhook"] == webhook.pk
    assert headers["content-type"] == "application/json"

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.status_code) == ("succeeded", 1, 200)
    assert delivery.finished_at is not None and delivery.next_attempt_at is None
    [attempt] = delivery.attempt_log.all()
    assert (attempt.number, attempt.status_code, attempt.error) == (1, 200, "")
    assert 0 < attempt.duration_ms < 2000 and attempt.next_retry_at is None
    # Run again (a duplicate task): nothing is sent twice.
    assert webhook_deliver(delivery.pk) == "succeeded"
    assert len(receiver.requests) == 1


def test_a_failing_receiver_is_tried_again_later_each_wait_twice_the_last(
    webhook_to, django_capture_on_commit_callbacks, fast_retries
):
    base = fast_retries["BACKOFF_SECONDS"]
    with Receiver([500, 503, 200]) as receiver:
        webhook = webhook_to(receiver.url)
        delivery = ping(webhook, django_capture_on_commit_callbacks)
        for expected in ("pending", "pending", "succeeded"):
            with django_capture_on_commit_callbacks(execute=True):
                assert webhook_deliver(delivery.pk) == expected
            delivery.refresh_from_db()
            if expected == "pending":
                # Called again before its time (a duplicate task): nothing is sent.
                sent = len(receiver.requests)
                assert webhook_deliver(delivery.pk) == "pending"
                assert len(receiver.requests) == sent
                # The retry is a one-off schedule of the task at the attempt's due time.
                retry = Schedule.objects.get(func="labeling.tasks.webhook_deliver")
                assert retry.schedule_type == Schedule.ONCE
                assert retry.next_run == delivery.next_attempt_at
                retry.delete()
                time.sleep(max(0.0, (delivery.next_attempt_at.timestamp() - time.time())) + 0.05)

    attempts = list(delivery.attempt_log.all())
    assert [a.status_code for a in attempts] == [500, 503, 200]
    assert attempts[0].error == "HTTP 500: receiver says no"
    assert [a.number for a in attempts] == [1, 2, 3]
    for attempt, wait in zip(attempts[:2], (base, 2 * base), strict=True):
        ended = attempt.started_at + timedelta(milliseconds=attempt.duration_ms)
        assert abs((attempt.next_retry_at - ended).total_seconds() - wait) < 0.05
    for before, after in zip(attempts, attempts[1:], strict=False):
        assert after.started_at >= before.next_retry_at  # never sent before its time
    assert attempts[2].next_retry_at is None
    assert (delivery.status, delivery.attempts, delivery.status_code) == ("succeeded", 3, 200)
    # Every attempt carried the same delivery id and body, each signed afresh.
    assert len({h["x-labelloop-delivery"] for h, _, _ in receiver.requests}) == 1
    assert len({b for _, b, _ in receiver.requests}) == 1
    assert all(verified(webhook.secret, h, b) for h, b, _ in receiver.requests)


def test_it_gives_up_after_the_last_attempt(
    webhook_to, django_capture_on_commit_callbacks, fast_retries
):
    fast_retries.update(MAX_ATTEMPTS=2, BACKOFF_SECONDS=0.0)
    with Receiver([500]) as receiver:
        delivery = ping(webhook_to(receiver.url), django_capture_on_commit_callbacks)
        with django_capture_on_commit_callbacks(execute=True):
            assert webhook_deliver(delivery.pk) == "pending"
        with django_capture_on_commit_callbacks(execute=True):
            assert webhook_deliver(delivery.pk) == "failed"
        assert webhook_deliver(delivery.pk) == "failed"
    assert len(receiver.requests) == 2
    delivery.refresh_from_db()
    assert delivery.next_attempt_at is None and delivery.finished_at is not None
    # One retry was scheduled (after the first failure), none after the last.
    assert Schedule.objects.filter(func="labeling.tasks.webhook_deliver").count() == 1
    assert [a.next_retry_at is None for a in delivery.attempt_log.all()] == [False, True]


def test_a_receiver_that_never_answers_times_out(
    webhook_to, django_capture_on_commit_callbacks, fast_retries
):
    fast_retries.update(TIMEOUT_SECONDS=0.5, MAX_ATTEMPTS=1)
    with Receiver(["hang"], hang_seconds=4) as receiver:
        delivery = ping(webhook_to(receiver.url), django_capture_on_commit_callbacks)
        started = time.monotonic()
        assert webhook_deliver(delivery.pk) == "failed"
        took = time.monotonic() - started
    assert len(receiver.requests) == 1  # it arrived; no answer came back in time
    assert 0.45 < took < 2.5
    [attempt] = delivery.attempt_log.all()
    assert attempt.status_code is None
    assert attempt.error == "No answer within 0.5 s."
    assert 450 < attempt.duration_ms < 2500


def test_a_refused_connection_and_a_redirect_are_failures(
    webhook_to, django_capture_on_commit_callbacks, fast_retries
):
    fast_retries.update(MAX_ATTEMPTS=1)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    delivery = ping(webhook_to(f"http://127.0.0.1:{port}/"), django_capture_on_commit_callbacks)
    assert webhook_deliver(delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert delivery.status_code is None and delivery.error.startswith("Could not connect")

    with Receiver([302]) as receiver:
        delivery = ping(webhook_to(receiver.url), django_capture_on_commit_callbacks)
        assert webhook_deliver(delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert delivery.status_code == 302 and len(receiver.requests) == 1


@pytest.mark.django_db(transaction=True)
def test_nothing_is_recorded_or_sent_when_the_write_rolls_back(project, owner):
    with Receiver([200]) as receiver:
        webhook = services.webhook_create(
            project=project, url=receiver.url, events=["labels.milestone"], user=owner
        )
        with pytest.raises(RuntimeError), transaction.atomic():
            services.webhook_ping(webhook=webhook)
            services.webhook_event_emit(
                project=project, event="labels.milestone", data={}, key="labels:10"
            )
            assert WebhookDelivery.objects.count() == 2
            raise RuntimeError("the write fails after the event was recorded")
    assert not WebhookDelivery.objects.exists()
    assert not OrmQ.objects.exists()  # no task was enqueued
    assert receiver.requests == []

    # Committed, the same calls record and enqueue.
    services.webhook_ping(webhook=webhook)
    assert WebhookDelivery.objects.count() == 1 and OrmQ.objects.count() == 1


def test_an_event_is_recorded_once_per_webhook_and_only_for_those_listening(
    project, webhook_to, django_capture_on_commit_callbacks
):
    listening = webhook_to("https://example.com/a", events=["labels.milestone"])
    webhook_to("https://example.com/b", events=["prediction.uncertain"])
    webhook_to("https://example.com/c", events=["labels.milestone"], is_active=False)
    for _ in range(2):  # a retried writer
        with django_capture_on_commit_callbacks(execute=True):
            services.webhook_event_emit(
                project=project, event="labels.milestone", data={"milestone": 10}, key="labels:10"
            )
    [delivery] = WebhookDelivery.objects.all()
    assert delivery.webhook == listening
    with pytest.raises(ValueError):
        services.webhook_event_emit(project=project, event="nonsense", data={})


def test_a_webhook_turned_off_stops_its_retries(
    webhook_to, django_capture_on_commit_callbacks, fast_retries
):
    fast_retries.update(BACKOFF_SECONDS=0.0)
    with Receiver([500]) as receiver:
        webhook = webhook_to(receiver.url)
        with django_capture_on_commit_callbacks(execute=True):
            [delivery] = services.webhook_event_emit(
                project=webhook.project, event="labels.milestone", data={}, key="labels:10"
            )
        with django_capture_on_commit_callbacks(execute=True):
            assert webhook_deliver(delivery.pk) == "pending"
        services.webhook_update(webhook=webhook, is_active=False)
        assert webhook_deliver(delivery.pk) == "failed"
    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert delivery.error == "The webhook was turned off: not sent."


def test_a_delivery_whose_task_was_lost_is_resumed_by_the_command(
    webhook_to, django_capture_on_commit_callbacks, fast_retries
):
    with Receiver([200]) as receiver:
        webhook = webhook_to(receiver.url)
        lost = services.webhook_ping(webhook=webhook)  # its enqueue never ran: no commit
        fresh = services.webhook_ping(webhook=webhook)
        WebhookDelivery.objects.filter(pk=lost.pk).update(
            next_attempt_at=timezone.now() - timedelta(hours=2)
        )
        out = io.StringIO()
        call_command("webhooks_resume", stdout=out)
        assert out.getvalue().strip() == "1 webhook delivery resumed."
        [queued] = OrmQ.objects.all()
        assert (queued.task["func"], queued.task["args"]) == (
            "labeling.tasks.webhook_deliver",
            (lost.pk,),
        )
        assert webhook_deliver(lost.pk) == "succeeded"
    assert len(receiver.requests) == 1
    fresh.refresh_from_db()
    assert fresh.status == "pending"  # not overdue: left to its own task
