"""Statistics charts as server-side SVG (pygal): they arrive inside the HTML
fragment htmx swaps, need no JavaScript, and pass the page's CSP. Each chart sits
beside a table with the same numbers, so nothing depends on the picture."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pygal
from markupsafe import Markup
from pygal.style import Style

_STYLE = Style(background="transparent", plot_background="transparent",
               colors=("#2f6fd6", "#2e9e5b", "#c9453b", "#d08a1e", "#7a52c7", "#3aa6b9",
                       "#8c8c8c"), font_family="system-ui, sans-serif")
# pygal adds an inline <script> with its tooltip config; the CSP would refuse it anyway.
_SCRIPT = re.compile(r"<script\b.*?</script>", re.S)


def _svg(chart: pygal.graph.graph.Graph) -> Markup:
    svg = chart.render(is_unicode=True)
    return Markup(_SCRIPT.sub("", svg))  # noqa: S704 - pygal escapes the labels it draws


def trend(labels: Sequence[str], series: dict[str, Sequence[int]], title: str) -> Markup:
    chart = pygal.Bar(style=_STYLE, height=280, width=820, js=[],
                      disable_xml_declaration=True, title=title, legend_at_bottom=True,
                      x_label_rotation=0 if len(labels) <= 12 else 45,
                      show_minor_x_labels=len(labels) <= 12,
                      x_labels_major_every=max(1, len(labels) // 8), print_values=False)
    chart.x_labels = list(labels)
    for name, values in series.items():
        chart.add(name, list(values))
    return _svg(chart)


def donut(parts: Sequence[tuple[str, int]], title: str) -> Markup:
    chart = pygal.Pie(style=_STYLE, height=320, width=420, inner_radius=0.45, js=[],
                      disable_xml_declaration=True, title=title, legend_at_bottom=True)
    for label, value in parts:
        chart.add(label, value)
    return _svg(chart)
