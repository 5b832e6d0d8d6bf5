"""The dashboard's QC trend: poor image quality per month for the facility × exam items with
the highest share over the span (server-side SVG, pygal, as service/dashboard/charts.py)."""

from __future__ import annotations

from typing import Any

import pygal

from .charts import Gettext, _config

TOP = 8


def qc_trend(items: list[dict[str, Any]], _: Gettext, top: int = TOP) -> bytes:
    """``items``: stored QC scores (service/storage/quality.py ``read_scores``)."""
    months = sorted({i["month"] for i in items})
    series: dict[str, dict[str, tuple[int, int]]] = {}
    for item in items:
        name = f"{item['facility']} · {item['modality']} {item['body_part']}".strip()
        series.setdefault(name, {})[item["month"]] = (item["poor"], item["rated"])

    def overall(name: str) -> float:
        poor = sum(p for p, _r in series[name].values())
        rated = sum(r for _p, r in series[name].values())
        return poor / rated if rated else -1.0

    worst = sorted((n for n in series if overall(n) >= 0), key=lambda n: (-overall(n), n))[:top]
    chart = pygal.Line(
        **_config(title=_("Poor image quality per month, percent (highest shares)"),
                  no_data_text=_("No data"), range=(0, 100), allow_interruptions=True,
                  x_label_rotation=30)
    )  # fmt: skip
    chart.x_labels = months
    for name in worst:
        values = []
        for month in months:
            poor, rated = series[name].get(month, (0, 0))
            values.append(round(100 * poor / rated, 1) if rated else None)
        chart.add(name, values)
    return chart.render()
