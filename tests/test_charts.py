"""The dashboard's pygal charts: counts on whole-number axes, short turnarounds in minutes."""

from __future__ import annotations

import re

from service.dashboard import charts


def tick_labels(svg: bytes) -> set[str]:
    """The numbers written on the chart (axis ticks)."""
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg.decode())
    return {t for t in texts if re.fullmatch(r"-?[\d.]+", t)}


def same(text: str) -> str:
    return text


def test_count_axes_have_whole_number_ticks():
    """Two open consultations drew ticks 0.2, 0.4…; three reads drew 2.2, 2.4…"""
    queue = charts.queue_now(
        [{"priority": "stat", "lt_1h": 1, "1_4h": 0, "4_24h": 0, "gt_24h": 0,
          "open": 2, "readable": 1}],
        same,
    )  # fmt: skip
    assert tick_labels(queue) == {"0", "1", "2"}
    reads = charts.workload_by_reader([{"reader": "liwei", "reads": 37}], same)
    ticks = tick_labels(reads)
    assert all(float(t).is_integer() for t in ticks) and max(map(int, ticks)) >= 37
    assert len(ticks) <= 10


def test_turnaround_chart_in_minutes_below_two_hours_else_hours():
    def group(seconds: float) -> dict:
        figures = {"p50": seconds, "p90": seconds, "p95": seconds}
        return {"group": {"priority": "stat"}, "stages": {"received_to_signed": figures}}

    short = charts.tat_by_priority([group(20 * 60)], same).decode()
    assert "Received to signed, minutes" in short
    long = charts.tat_by_priority([group(3 * 3600)], same).decode()
    assert "Received to signed, hours" in long
