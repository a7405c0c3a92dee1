"""Reads: how the active model does in use, week by week, against its held-out figures
(docs/monitoring.md).

For the predictions the active version answered (the last `WEEKS` weeks, weeks starting
on Monday in the site's time zone, a prediction counted in the week it was made): the
distribution of their confidence, the share that were uncertain (sent to the queue),
and the accuracy on those people confirmed or corrected (the share confirmed). Each
figure comes with its count and a 95% interval, and is marked as resting on few samples
under `FEW`.

The warning rule, one check per week, each firing only when the intervals do not
overlap, so that a few predictions raise an alarm only when even they leave little
doubt (none of two predictions confirmed, against a held-out accuracy of 90%, does):

1. accuracy: the week's accuracy interval (Wilson) lies wholly below the version's
   held-out (test) accuracy interval;
2. confidence: in a week of at least `FEW` predictions, the mean-confidence interval
   lies wholly below the held-out accuracy's lower end minus the version's calibration
   error. A calibrated model's mean confidence on data like its test set is its
   accuracy, within that error; a model unsure of what it is shown is seeing something
   else. (A normal interval of a mean is trusted only from a few dozen values: two
   equal confidences would give it no width at all.);
3. uncertain share: the week's share interval lies wholly above the share of all the
   version's earlier weeks together. The held-out figures say nothing of this share, so
   the version's own first weeks in use are its reference.

Rules 1 and 2 need a held-out accuracy: a multi-label version (measured by mean AP) has
rule 3 only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import numpy as np
from django.db.models import Avg, Count, Q, StdDev
from django.db.models.functions import Mod, TruncWeek
from django.utils import timezone

from feedback.models import Prediction
from labeling.models import Project
from models_app import selectors as learner_selectors
from models_app.models import ModelVersion

WEEKS = 12
FEW = 30
BINS = 10
PERCENTILE_SAMPLE = 20_000
# The same interval as models_app/ml/metrics.py's wilson_interval, which this layer may
# not import (it would load scikit-learn into the web process).
Z_95 = 1.959963984540054


def wilson(successes: int, n: int) -> tuple[float, float] | None:
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + Z_95**2 / n
    centre = (p + Z_95**2 / (2 * n)) / denominator
    half = Z_95 * math.sqrt(p * (1 - p) / n + Z_95**2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(mean: float, sd: float | None, n: int) -> tuple[float, float] | None:
    """A 95% normal interval of a mean, from the sample standard deviation: confidences
    are bounded, so the mean's sampling distribution is near normal from a few dozen
    values (below that it is shown, not used to warn). None under two values."""
    if n < 2 or sd is None:
        return None
    half = Z_95 * sd / math.sqrt(n)
    return max(0.0, mean - half), min(1.0, mean + half)


@dataclass(frozen=True)
class Share:
    count: int
    n: int

    @property
    def value(self) -> float | None:
        return self.count / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson(self.count, self.n)

    @property
    def few(self) -> bool:
        return self.n < FEW


@dataclass(frozen=True)
class Week:
    start: date
    predictions: int
    mean_confidence: float
    mean_confidence_interval: tuple[float, float] | None
    # The 10th, 25th, 50th, 75th and 90th percentiles of confidence.
    percentiles: tuple[float, float, float, float, float]
    # How many predictions fell in each tenth of confidence, 0-10% first.
    histogram: list[int]
    uncertain: Share
    # Confirmed among the confirmed or corrected: the accuracy in use.
    accuracy: Share
    warnings: list[str] = field(default_factory=list)

    @property
    def few(self) -> bool:
        return self.predictions < FEW


@dataclass(frozen=True)
class HeldOut:
    n: int
    accuracy: float
    accuracy_interval: tuple[float, float]
    calibration_error: float

    @property
    def confidence_floor(self) -> float:
        """The least mean confidence the held-out figures lead one to expect."""
        return max(0.0, self.accuracy_interval[0] - self.calibration_error)


@dataclass(frozen=True)
class Monitoring:
    version: ModelVersion | None
    held_out: HeldOut | None
    weeks: list[Week]

    @property
    def warnings(self) -> list[str]:
        """Every week's warnings, newest week first."""
        return [w for week in reversed(self.weeks) for w in week.warnings]


def _held_out(version: ModelVersion) -> HeldOut | None:
    test = version.metrics.get("test") or {}
    if test.get("accuracy") is None or not test.get("accuracy_ci"):
        return None
    return HeldOut(
        n=int(test.get("n") or 0),
        accuracy=float(test["accuracy"]),
        accuracy_interval=(float(test["accuracy_ci"][0]), float(test["accuracy_ci"][1])),
        calibration_error=float(test.get("ece") or 0.0),
    )


def week_start(moment: datetime) -> date:
    day = timezone.localtime(moment).date()
    return day - timedelta(days=day.weekday())


def _pct(x: float) -> str:
    return f"{x:.0%}"


def _span(interval: tuple[float, float]) -> str:
    return f"{interval[0] * 100:.0f}–{interval[1]:.0%}"


def monitoring_report(*, project: Project, now: datetime | None = None) -> Monitoring:
    """The active version's figures in use by week, with the warnings of the rule in
    this module's docstring. Empty weeks are left out. Counts, means and the histogram
    are aggregated by the database; percentiles are computed from each week's
    confidences, or from an even sample of `PERCENTILE_SAMPLE` of them in a busier
    week, so that the page stays quick with millions of predictions."""
    version = learner_selectors.model_version_active(project=project)
    if version is None:
        return Monitoring(version=None, held_out=None, weeks=[])
    first = week_start(now or timezone.now()) - timedelta(weeks=WEEKS - 1)
    since = timezone.make_aware(datetime.combine(first, time.min))
    rows = Prediction.objects.filter(
        model_version=version,
        confidence__isnull=False,
        status__in=(
            Prediction.Status.PREDICTED,
            Prediction.Status.CONFIRMED,
            Prediction.Status.CORRECTED,
        ),
        created_at__gte=since,
    )
    bins = {
        f"bin{i}": Count(
            "id",
            filter=Q(confidence__gte=i / BINS)
            & (Q(confidence__lt=(i + 1) / BINS) if i < BINS - 1 else Q()),
        )
        for i in range(BINS)
    }
    weekly = (
        rows.annotate(week=TruncWeek("created_at"))
        .values("week")
        .annotate(
            n=Count("id"),
            mean=Avg("confidence"),
            sd=StdDev("confidence", sample=True),
            uncertain=Count("id", filter=~Q(uncertain_reason="")),
            resolved=Count("id", filter=~Q(status=Prediction.Status.PREDICTED)),
            confirmed=Count("id", filter=Q(status=Prediction.Status.CONFIRMED)),
            **bins,
        )
        .order_by("week")
    )
    held_out = _held_out(version)
    weeks: list[Week] = []
    earlier = Share(0, 0)
    for row in weekly:
        start = timezone.localtime(row["week"]).date()
        begins = timezone.make_aware(datetime.combine(start, time.min))
        in_week = rows.filter(created_at__gte=begins, created_at__lt=begins + timedelta(weeks=1))
        week = Week(
            start=start,
            predictions=row["n"],
            mean_confidence=row["mean"],
            mean_confidence_interval=mean_interval(row["mean"], row["sd"], row["n"]),
            percentiles=_percentiles(in_week, row["n"]),
            histogram=[row[f"bin{i}"] for i in range(BINS)],
            uncertain=Share(row["uncertain"], row["n"]),
            accuracy=Share(row["confirmed"], row["resolved"]),
        )
        _warn(week, held_out, earlier)
        weeks.append(week)
        earlier = Share(earlier.count + week.uncertain.count, earlier.n + week.uncertain.n)
    return Monitoring(version=version, held_out=held_out, weeks=weeks)


def _percentiles(rows, n: int) -> tuple[float, float, float, float, float]:
    values = np.empty(0)
    if n > PERCENTILE_SAMPLE:  # every k-th by id: an even sample, the same at each visit
        sample = rows.annotate(slot=Mod("id", math.ceil(n / PERCENTILE_SAMPLE))).filter(slot=0)
        values = np.fromiter(sample.values_list("confidence", flat=True), dtype=np.float64)
    if not len(values):
        values = np.fromiter(rows.values_list("confidence", flat=True), dtype=np.float64)
    return tuple(float(p) for p in np.percentile(values, [10, 25, 50, 75, 90]))


def _warn(week: Week, held_out: HeldOut | None, earlier: Share) -> None:
    when = f"Week of {week.start:%b} {week.start.day}"
    accuracy = week.accuracy.interval
    if held_out and accuracy and accuracy[1] < held_out.accuracy_interval[0]:
        week.warnings.append(
            f"{when}: accuracy on the {week.accuracy.n} confirmed or corrected predictions "
            f"is {_pct(week.accuracy.value)} (95% interval {_span(accuracy)}), below the "
            f"version's held-out accuracy of {_pct(held_out.accuracy)} "
            f"({_span(held_out.accuracy_interval)}, {held_out.n} test labels)."
        )
    mean = week.mean_confidence_interval
    if held_out and mean and not week.few and mean[1] < held_out.confidence_floor:
        week.warnings.append(
            f"{when}: mean confidence {_pct(week.mean_confidence)} ({_span(mean)}, "
            f"{week.predictions} predictions) is below the {_pct(held_out.confidence_floor)} "
            f"the held-out figures lead one to expect: the model is less sure of what it is "
            f"shown than of its test images."
        )
    share, before = week.uncertain.interval, earlier.interval
    if share and before and share[0] > before[1]:
        week.warnings.append(
            f"{when}: {_pct(week.uncertain.value)} of predictions were uncertain "
            f"({_span(share)}, {week.uncertain.count} of {week.uncertain.n}), up from "
            f"{_pct(earlier.value)} ({_span(before)}, {earlier.n} predictions) in the "
            f"weeks before."
        )
