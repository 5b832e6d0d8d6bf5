"""The dashboard's charts as server-side SVG, drawn by pygal (a kept library, not hand drawn).

Each function takes the figures of :mod:`service.dashboard.turnaround` and a gettext function for
the reader's language, and returns a standalone SVG document (no scripts: the page's strict CSP
and an ``<img>`` element show it as a picture). CPU work: call it from a thread.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pygal
from pygal.style import Style

Gettext = Callable[[str], str]

STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#1f2933",
    foreground_strong="#1f2933",
    foreground_subtle="#7b8794",
    colors=("#1f6feb", "#f0a30a", "#d1242f", "#2da44e", "#8250df", "#57606a"),
    font_family="system-ui, sans-serif",
    label_font_size=12,
    major_label_font_size=12,
    legend_font_size=12,
    title_font_size=15,
    value_font_size=11,
)
PRIORITIES = ("stat", "urgent", "routine")


def _config(**extra: Any) -> dict[str, Any]:
    return {
        "style": STYLE,
        "width": 640,
        "height": 360,
        "js": [],
        "legend_at_bottom": True,
        "print_values": False,
        "margin": 12,
        "no_data_font_size": 18,
        **extra,
    }


def _priority_labels(_: Gettext) -> dict[str, str]:
    return {"stat": _("Stat"), "urgent": _("Urgent"), "routine": _("Routine")}


def _count_axis(largest: float) -> dict[str, Any]:
    """Whole-number ticks for a count axis (pygal would put 0.2, 0.4… under a count of 2):
    at most about eight of them, from 0 to at least ``largest``."""
    top = max(1, math.ceil(largest))
    step = max(1, math.ceil(top / 8))
    return {"y_labels": list(range(0, top + step, step)), "value_formatter": _whole}


def _whole(value: float) -> str:
    return f"{value:.0f}"


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(max(0.0, seconds) / 60, 1)


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 2)


def tat_by_priority(groups: list[dict[str, Any]], _: Gettext) -> bytes:
    """p50 / p90 / p95 of received -> signed per priority: in minutes while every figure is
    under 2 h (a 20-minute stat target read as "0.3 h" says nothing), else in hours."""
    by_priority = {g["group"]["priority"]: g["stages"]["received_to_signed"] for g in groups}
    present = [p for p in PRIORITIES if p in by_priority]
    figures = [by_priority[p][s] for p in present for s in ("p50", "p90", "p95")]
    in_minutes = all(f is None or f < 7200 for f in figures)
    title = _("Received to signed, minutes") if in_minutes else _("Received to signed, hours")
    convert = _minutes if in_minutes else _hours
    chart = pygal.Bar(**_config(title=title, no_data_text=_("No data")))
    names = _priority_labels(_)
    chart.x_labels = [names[p] for p in present]
    for stat in ("p50", "p90", "p95"):
        chart.add(stat, [convert(by_priority[p][stat]) for p in present])
    return chart.render()


def sla_over_time(groups: list[dict[str, Any]], _: Gettext) -> bytes:
    """Share of SLAs met per week, one line per priority, in percent."""
    chart = pygal.Line(
        **_config(
            title=_("SLA met per week, percent"),
            no_data_text=_("No data"),
            range=(0, 100),
            x_label_rotation=30,
            show_minor_x_labels=True,
        )
    )
    weeks = sorted({g["group"]["week"] for g in groups})
    share = {(g["group"]["week"], g["group"]["priority"]): g["share_met"] for g in groups}
    chart.x_labels = weeks
    names = _priority_labels(_)
    for priority in PRIORITIES:
        values = [share.get((w, priority)) for w in weeks]
        if any(v is not None for v in values):
            chart.add(names[priority], [None if v is None else round(v * 100, 1) for v in values])
    return chart.render()


def queue_now(items: list[dict[str, Any]], _: Gettext) -> bytes:
    """Open consultations per priority, stacked by how long they have been readable."""
    tallest = max((i["open"] for i in items), default=0)
    chart = pygal.StackedBar(
        **_config(
            title=_("Open now, by waiting time"),
            no_data_text=_("No data"),
            **_count_axis(tallest),
        )
    )
    names = _priority_labels(_)
    chart.x_labels = [names[i["priority"]] for i in items]
    buckets = (
        ("lt_1h", _("under 1 h")),
        ("1_4h", _("1–4 h")),
        ("4_24h", _("4–24 h")),
        ("gt_24h", _("over 24 h")),
    )
    for key, label in buckets:
        chart.add(label, [i[key] for i in items])
    chart.add(_("awaiting images or request"), [i["open"] - i["readable"] for i in items])
    return chart.render()


def workload_by_reader(rows: list[dict[str, Any]], _: Gettext, top: int = 30) -> bytes:
    """Reads per reader over the period (the busiest ``top``)."""
    totals: dict[str, int] = {}
    for row in rows:
        totals[row["reader"] or "?"] = totals.get(row["reader"] or "?", 0) + row["reads"]
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:top]
    chart = pygal.HorizontalBar(
        **_config(title=_("Reads per reader"), no_data_text=_("No data"), show_legend=False,
                  height=max(360, 22 * len(ranked) + 90),
                  **_count_axis(max((n for _name, n in ranked), default=0)))
    )  # fmt: skip
    chart.x_labels = [name for name, _n in reversed(ranked)]
    chart.add(_("Reads"), [n for _name, n in reversed(ranked)])
    return chart.render()


def quality_by_facility(items: list[dict[str, Any]], _: Gettext, top: int = 20) -> bytes:
    """Share of good / acceptable / poor ratings per facility (the ``top`` with most poor)."""
    totals: dict[str, dict[str, int]] = {}
    for item in items:
        entry = totals.setdefault(item["facility"], {"good": 0, "acceptable": 0, "poor": 0})
        for rating in entry:
            entry[rating] += item[rating]
    rated = {f: t for f, t in totals.items() if sum(t.values())}
    ranked = sorted(rated, key=lambda f: (-rated[f]["poor"] / sum(rated[f].values()), f))[:top]
    chart = pygal.HorizontalStackedBar(
        **_config(title=_("Image quality per facility, percent"), no_data_text=_("No data"),
                  range=(0, 100), height=max(360, 22 * len(ranked) + 110))
    )  # fmt: skip
    chart.x_labels = list(reversed(ranked))
    labels = {"good": _("Good"), "acceptable": _("Acceptable"), "poor": _("Poor")}
    for rating, label in labels.items():
        chart.add(
            label,
            [round(100 * rated[f][rating] / sum(rated[f].values()), 1) for f in reversed(ranked)],
        )
    return chart.render()
