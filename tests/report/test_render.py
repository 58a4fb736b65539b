"""Blocks to Markdown and HTML."""

from __future__ import annotations

from moeplace.report import svg
from moeplace.report.render import html, markdown

BLOCKS = [("h1", "Title"), ("p", "a `code` | pipe"), ("ul", ["one", "two"]),
          ("table", ["name", "value"], [["a|b", "1,000"], ["c", "no (limit 62)"]], (1,)),
          ("plot", svg.stacked_bars("my plot", ["0"], [("a", [1.0])], ylabel="ms"), "caption <x>")]


def test_markdown():
    md = markdown(BLOCKS)
    assert md.splitlines()[:3] == ["# Title", "", "a `code` | pipe"]
    assert "| name | value |\n|---|---:|\n| a\\|b | 1,000 |\n| c | no (limit 62) |" in md
    assert "_Plot in report.html: my plot (caption <x>)_" in md
    assert md.endswith("\n") and "<svg" not in md


def test_html_is_self_contained_and_self_checking():
    page = html(BLOCKS, "T")
    assert page.startswith("<!DOCTYPE html>")
    assert "<code>code</code>" in page and "caption &lt;x&gt;" in page
    assert '<tr class="nofit">' in page and '<td class="r">1,000</td>' in page
    assert page.count('<svg class="plot"') == 1
    assert "dataset.plotsRendered" in page
    for external in ("http://", "https://", "src=", "@import"):
        assert external not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_verdict_cells_are_coloured_and_keep_their_words():
    page = html([("open", "top-summary"), ("h2", "Summary"),
                 ("table", ["claim", "decode", "prefill", "x"], [["c", "holds", "fails", "n/a"]], ()), ("close",),
                 ("nav",), ("h2", "Details")], "T")
    assert '<td class="ok">holds</td>' in page and '<td class="bad">fails</td>' in page
    assert '<td class="na">n/a</td>' in page
    assert page.index('<section id="top-summary">') < page.index("</section>") < page.index("<nav>")
    assert "markdown" not in markdown([("open", "s"), ("nav",), ("close",), ("p", "x")]) and \
        markdown([("open", "s"), ("close",), ("p", "x")]) == "x\n"
