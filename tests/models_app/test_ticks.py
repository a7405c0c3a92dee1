"""Periodic ticks never pile up: however long the worker is busy, each schedule has at
most one tick waiting, and the tick arms itself again once it has run."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import OrmQ, Schedule, Task
from django_q.scheduler import scheduler

from models_app.ticks import HOOK, tick_rearm, ticks_arm_stale
from tests.fashion import wait_for

EMBED = "labelloop: embed new images"
TICKS = {
    EMBED: ("models_app.tasks.dispatch_embeddings", 1),
    "labelloop: retrain after new labels": ("models_app.tasks.retrain_due_projects", 1),
    "labelloop: review scan after training": ("feedback.tasks.scan_due_projects", 5),
    "labelloop: resume webhook deliveries": ("labeling.tasks.webhooks_resume", 10),
}


def test_the_migrations_leave_every_periodic_schedule_a_self_arming_tick(db):
    rows = {s.name: s for s in Schedule.objects.filter(name__startswith="labelloop: ")}
    assert set(rows) == set(TICKS)
    for name, (func, minutes) in TICKS.items():
        row = rows[name]
        assert (row.func, row.minutes, row.schedule_type) == (func, minutes, Schedule.ONCE)
        assert row.hook == HOOK and row.repeats == 1


@pytest.fixture
def ticks(transactional_db):
    """The schedules as the migrations leave them (a transactional test flushes them)."""
    for name, (func, minutes) in TICKS.items():
        Schedule.objects.update_or_create(
            name=name,
            defaults={
                "func": func,
                "minutes": minutes,
                "schedule_type": Schedule.ONCE,
                "repeats": 1,
                "hook": HOOK,
                "next_run": timezone.now() + timedelta(minutes=minutes),
            },
        )


def queued_funcs() -> list[str]:
    from django_q.signing import SignedPackage

    return [SignedPackage.loads(row.payload)["func"] for row in OrmQ.objects.all()]


def due(name: str, minutes_ago: int = 1) -> None:
    Schedule.objects.filter(name=name).update(
        next_run=timezone.now() - timedelta(minutes=minutes_ago)
    )


def test_a_busy_worker_finds_one_tick_per_schedule_however_long_it_was_busy(ticks):
    broker = get_broker()
    OrmQ.objects.all().delete()
    names = list(
        Schedule.objects.filter(name__startswith="labelloop: ").values_list("name", flat=True)
    )
    assert set(names) == set(TICKS)
    for _ in range(10):  # ten minutes of scheduler passes with nobody taking tasks
        for name in names:
            due(name)
        scheduler(broker=broker)
    funcs = queued_funcs()
    assert funcs.count("models_app.tasks.dispatch_embeddings") == 1
    assert funcs.count("models_app.tasks.retrain_due_projects") == 1
    assert len(funcs) == len(names)

    # The tick ran: its hook arms it for a minute later, and only then may it come again.
    tick_rearm(SimpleNamespace(group=EMBED))
    schedule = Schedule.objects.get(name=EMBED)
    assert schedule.repeats == 1
    assert timezone.now() < schedule.next_run <= timezone.now() + timedelta(minutes=1)
    due(EMBED)
    scheduler(broker=broker)
    assert queued_funcs().count("models_app.tasks.dispatch_embeddings") == 2


def test_a_lost_tick_is_armed_again_after_the_task_timeout(db, settings):
    Schedule.objects.filter(name=EMBED).update(repeats=0, next_run=timezone.now())
    assert ticks_arm_stale() == 0  # enqueued just now: its task may still be waiting
    late = settings.Q_CLUSTER["timeout"] + 120
    Schedule.objects.filter(name=EMBED).update(next_run=timezone.now() - timedelta(seconds=late))
    assert ticks_arm_stale() == 1
    assert Schedule.objects.get(name=EMBED).repeats == 1


def test_the_real_worker_runs_a_tick_and_its_hook_arms_it_again(ticks, worker):
    due(EMBED)
    task = wait_for(
        lambda: Task.objects.filter(func="models_app.tasks.dispatch_embeddings").first(),
        timeout=120,
    )
    assert task.success, task.result
    schedule = wait_for(lambda: Schedule.objects.filter(name=EMBED, repeats=1).first(), timeout=30)
    assert schedule.next_run > task.stopped
