"""The SVG plots: marks counted, values placed on the axes, text escaped, bytes deterministic."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from moeplace.report import svg


def _parse(text: str) -> ET.Element:
    return ET.fromstring(text)


def test_line_chart_places_points_on_log_axes():
    s = svg.line_chart("t <&>", [{"label": "a", "x": [1, 10, 100], "y": [1, 10, 100]},
                                {"label": "b", "x": [1, 100], "y": [100, 1], "hollow": [True, False]}],
                       xlabel="x", ylabel="y")
    root = _parse(s)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.get("data-marks") == "5"
    circles = root.findall(f"{ns}circle")
    assert len(circles) == 5
    xs = [float(c.get("cx")) for c in circles[:3]]
    ys = [float(c.get("cy")) for c in circles[:3]]
    assert abs((xs[1] - xs[0]) - (xs[2] - xs[1])) < 0.2          # equal steps per decade
    assert abs((ys[0] - ys[1]) - (ys[1] - ys[2])) < 0.2 and ys[0] > ys[2]
    assert circles[3].get("fill") == "white" and circles[4].get("fill") != "white"
    assert "t &lt;&amp;&gt;" in s
    assert s == svg.line_chart("t <&>", [{"label": "a", "x": [1, 10, 100], "y": [1, 10, 100]},
                                         {"label": "b", "x": [1, 100], "y": [100, 1], "hollow": [True, False]}],
                               xlabel="x", ylabel="y")


def test_stacked_bars_and_heatmap_count_their_marks():
    s = svg.stacked_bars("bars", ["0", "1"], [("a", [1.0, 2.0]), ("b", [0.5, 0.0])], ylabel="ms")
    assert _parse(s).get("data-marks") == "3"
    h = svg.heatmap("heat", [[0.0, 0.5], [1.0, -1.0]], xlabel="x", ylabel="y")
    assert _parse(h).get("data-marks") == "3"                    # the negative cell is no link
    assert svg._color(0.0) == "#ffffcc" and svg._color(1.0) == "#800026"
    b = svg.hbars("tiers", ["x"], [("nvlink", [3.0]), ("leaf", [1.0])], xlabel="B")
    assert _parse(b).get("data-marks") == "2"


def test_tick_labels():
    assert [svg.fmt_tick(x) for x in (0, 1, 10, 1000, 2500, 1e6, 0.01)] == ["0", "1", "10", "1k", "2.5k", "1M",
                                                                          "0.01"]
    assert svg._lin_ticks(18.4, 49.7, 4) == [10, 20, 30, 40, 50]
    s = svg.line_chart("narrow", [{"label": "a", "x": [1, 2], "y": [31.0, 33.0]}], xlabel="x", ylabel="y")
    labels = re.findall(r'text-anchor="end">([^<]+)<', s)
    assert len(labels) == len(set(labels))                      # no repeated or crowded tick labels
