"""Periodic work that never piles up behind a busy worker.

django-q2's scheduler enqueues an interval schedule whenever its time comes, whether or
not the previous run has left the queue: behind an hour of embedding, sixty ticks wait.
Our periodic schedules are one-shot instead (`ONCE` with one repeat left): the scheduler
enqueues the tick and sets its repeats to 0, and `tick_rearm`, the tick's hook, arms it
again `minutes` after the tick has run. A tick whose task was lost (its worker died and
every retry with it) is armed again by the next tick of any schedule, or by
`manage.py ticks_arm`, which `make run` calls before it starts.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django_q.models import Schedule

PREFIX = "labelloop: "
HOOK = "models_app.ticks.tick_rearm"


def _ticks():
    return Schedule.objects.filter(name__startswith=PREFIX, schedule_type=Schedule.ONCE)


def tick_rearm(task) -> int:
    """django-q2 hook, called with the finished Task of a tick (success or failure):
    arm its schedule (the task's group is the schedule's name) for its next run, and
    any stale one beside it. Returns how many were armed."""
    armed = 0
    for schedule in _ticks().filter(name=task.group, repeats=0):
        _arm(schedule)
        armed += 1
    return armed + ticks_arm_stale()


def ticks_arm_stale() -> int:
    """Arm the ticks that were enqueued long ago and never finished (their task was
    lost): longer than the task timeout plus their interval."""
    armed = 0
    now = timezone.now()
    for schedule in _ticks().filter(repeats=0):
        late = timedelta(seconds=settings.Q_CLUSTER["timeout"], minutes=schedule.minutes or 1)
        if schedule.next_run is None or schedule.next_run < now - late:
            _arm(schedule)
            armed += 1
    return armed


def _arm(schedule: Schedule) -> None:
    next_run = timezone.now() + timedelta(minutes=schedule.minutes or 1)
    Schedule.objects.filter(pk=schedule.pk, repeats=0).update(repeats=1, next_run=next_run)
