"""The predict page's monitoring chart: a server-rendered SVG (matplotlib), as on the
model dashboard (models_app/charts.py)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the non-GUI backend

from feedback.monitoring import Monitoring  # noqa: E402

plt.rcParams["svg.fonttype"] = "none"


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _errors(values, intervals):
    """Distances below and above each value for matplotlib's error bars (0 without an
    interval)."""
    low = [v - i[0] if i else 0.0 for v, i in zip(values, intervals, strict=True)]
    high = [i[1] - v if i else 0.0 for v, i in zip(values, intervals, strict=True)]
    return [low, high]


def monitoring_svg(report: Monitoring) -> str:
    """Left: each week's confidence (box from the 25th to the 75th percentile, whiskers
    at the 10th and 90th, the mean as a dot) with the least mean confidence the held-out
    figures expect. Right: the uncertain share and the accuracy in use with their 95%
    intervals, beside the held-out accuracy interval."""
    weeks = report.weeks
    labels = [f"{w.start:%b} {w.start.day}" for w in weeks]
    xs = list(range(len(weeks)))
    figure, (spread, rates) = plt.subplots(1, 2, figsize=(8.5, 3.2))
    spread.bxp(
        [
            {
                "whislo": w.percentiles[0],
                "q1": w.percentiles[1],
                "med": w.percentiles[2],
                "q3": w.percentiles[3],
                "whishi": w.percentiles[4],
                "mean": w.mean_confidence,
                "fliers": [],
            }
            for w in weeks
        ],
        positions=xs,
        showmeans=True,
        widths=0.5,
    )
    held_out = report.held_out
    if held_out:
        spread.axhline(
            held_out.confidence_floor,
            color="C3",
            linestyle="--",
            linewidth=1,
            label="expected mean from held-out",
        )
        spread.legend(fontsize=7, loc="lower left")
    spread.set_title("Confidence of predictions", fontsize=9)
    share = [w.uncertain.value for w in weeks]
    rates.errorbar(
        xs,
        share,
        yerr=_errors(share, [w.uncertain.interval for w in weeks]),
        fmt="o-",
        color="C1",
        capsize=3,
        label="uncertain share",
    )
    known = [(x, w) for x, w in zip(xs, weeks, strict=True) if w.accuracy.n]
    if known:
        values = [w.accuracy.value for _, w in known]
        rates.errorbar(
            [x for x, _ in known],
            values,
            yerr=_errors(values, [w.accuracy.interval for _, w in known]),
            fmt="s-",
            color="C0",
            capsize=3,
            label="accuracy on resolved",
        )
    if held_out:
        rates.axhspan(
            *held_out.accuracy_interval, color="C0", alpha=0.12, label="held-out accuracy"
        )
    rates.set_title("By week, with 95% intervals", fontsize=9)
    rates.legend(fontsize=7, loc="center left")
    for axes in (spread, rates):
        axes.set_xticks(xs, labels, fontsize=7, rotation=30)
        axes.set_ylim(-0.02, 1.02)
        axes.set_xlim(-0.6, len(weeks) - 0.4)
        axes.grid(alpha=0.3)
    return _svg(figure)
