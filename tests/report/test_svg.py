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
    assert len(circles) == 4                                      # series a's 3 markers and its legend sample
    squares = [r for r in root.findall(f"{ns}rect") if r.get("stroke") == svg.PALETTE[1]]
    assert len(squares) == 3                                      # series b's 2 markers and its legend sample
    xs = [float(c.get("cx")) for c in circles[:3]]
    ys = [float(c.get("cy")) for c in circles[:3]]
    assert abs((xs[1] - xs[0]) - (xs[2] - xs[1])) < 0.2          # equal steps per decade
    assert abs((ys[0] - ys[1]) - (ys[1] - ys[2])) < 0.2 and ys[0] > ys[2]
    assert squares[0].get("fill") == "white" and squares[1].get("fill") != "white"
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


def test_line_chart_series_differ_in_marker_and_dash_and_the_emphasised_one_is_on_top():
    series = [{"label": f"s{i}", "x": [1, 10], "y": [i + 1, i + 2]} for i in range(4)]
    out = svg.line_chart("t", series, xlabel="x", ylabel="y", emphasis="s0")
    lines = [ln for ln in out.splitlines() if ln.startswith("<polyline") and "stroke-width=\"2.5\"" not in ln]
    assert 'stroke-width="4"' in lines[-1] and svg.PALETTE[0] in lines[-1]  # s0 drawn last, thick
    assert len({ln.split('stroke-dasharray="')[1].split('"')[0] for ln in lines if "dasharray" in ln}) >= 1
    assert out.count("<circle") and out.count("<rect") > 2 and out.count("<polygon") >= 2
    assert "s0 (bold)" in out


def test_panel_bars_label_every_bar_and_say_which_way_is_better():
    out = svg.panel_bars("h", [{"title": "decode", "unit": "tokens/s per GPU", "better": "higher",
                                "values": [[42.8, 85.2], [None, 170.0]], "categories": ["seed", "h100"],
                                "series": ["seed design", "baseline"]},
                               {"title": "latency", "unit": "ms", "better": "lower", "values": [[89.8, 48.4], [1, 2]]}])
    assert 'data-marks="7"' in out and "higher is better" in out and "lower is better" in out
    assert ">42.8<" in out and ">170<" in out and "none fits memory" in out
