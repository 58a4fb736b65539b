"""Blocks to `report.md` and to a self-contained `report.html` (inline CSS, inline SVG, no network).

The HTML carries a ten-line script that, once the page is laid out, checks that every plot rendered (a
non-empty box and its data marks drawn) and records the result on <html> as `data-plots-rendered`,
`data-plots-expected` and `data-plots-failed`, with the layout: `data-summary-bottom` (where the summary
ends, px from the top), `data-overflow-x` (px the page is wider than the window), `data-images-expected` and
`data-images-decoded` (<img> with naturalWidth > 0), so a headless browser can verify the page.

Blocks ("open", id) and ("close",) wrap a <section>; ("nav",) places the list of sections. Table cells that
say "holds", "fails" or "n/a" are coloured (green, red, grey); the word stays beside the colour.
"""

from __future__ import annotations

import re
from html import escape

from moeplace.report.document import Block

CSS = """
body { font-family: Helvetica, Arial, sans-serif; margin: 16px auto; padding: 0 24px; max-width: 1400px; box-sizing: border-box; color: #222; }
h1 { font-size: 24px; } h2 { font-size: 19px; margin-top: 32px; border-bottom: 1px solid #ccc; }
h3 { font-size: 15px; margin-top: 20px; }
table { border-collapse: collapse; font-size: 12px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 6px; vertical-align: top; }
th { background: #f3f3f3; } td.r { text-align: right; font-variant-numeric: tabular-nums; }
tr.nofit td { color: #999; }
figure { display: block; margin: 12px 0 20px 0; }
svg.plot { display: block; max-width: 100%; height: auto; }
details > summary { cursor: pointer; font-size: 13px; color: #245; margin: 6px 0; }
figcaption { font-size: 12px; color: #555; }
td.ok { background: #d9f2d9; color: #14521b; font-weight: bold; }
td.bad { background: #f8d7d3; color: #8a1c10; font-weight: bold; }
td.na { background: #eee; color: #555; }
#top-summary { border: 1px solid #ccc; padding: 4px 16px 8px 16px; }
#top-summary h2 { margin-top: 8px; } #top-summary figure { margin: 4px 0; } #top-summary table { font-size: 13px; }
nav { font-size: 13px; margin: 12px 0; }
.table-wrap { overflow-x: auto; }
code { background: #f3f3f3; padding: 0 3px; }
"""

CHECK = """
window.addEventListener('load', function () {
  var plots = document.querySelectorAll('svg.plot'), ok = 0, failed = [];
  plots.forEach(function (s, i) {
    var box = s.getBoundingClientRect(), marks = s.querySelectorAll('rect, circle, polyline, polygon').length;
    var want = Number(s.dataset.marks || 0);
    if (box.width > 0 && box.height > 0 && want > 0 && marks >= want) { ok += 1; }
    else { failed.push(i); }
  });
  var root = document.documentElement, summary = document.getElementById('top-summary');
  if (summary) { root.dataset.summaryBottom = String(Math.ceil(summary.getBoundingClientRect().bottom + window.scrollY)); }
  root.dataset.overflowX = String(Math.max(0, root.scrollWidth - root.clientWidth));
  var imgs = document.querySelectorAll('img'), decoded = 0;
  imgs.forEach(function (im) { if (im.complete && im.naturalWidth > 0) { decoded += 1; } });
  root.dataset.imagesExpected = String(imgs.length);
  root.dataset.imagesDecoded = String(decoded);
  root.dataset.plotsExpected = String(plots.length);
  root.dataset.plotsRendered = String(ok);
  root.dataset.plotsFailed = failed.join(',');
});
"""


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
            out += ["#" * int(kind[1]) + " " + b[1], ""]
        elif kind == "p":
            out += [b[1], ""]
        elif kind == "ul":
            out += [f"- {x}" for x in b[1]] + [""]
        elif kind == "table":
            _, cols, rows, right = b
            out.append("| " + " | ".join(_md_cell(c) for c in cols) + " |")
            out.append("|" + "|".join("---:" if i in right else "---" for i in range(len(cols))) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
            out.append("")
        elif kind in ("open", "close", "nav"):
            continue
        elif kind == "plot":
            m = re.search(r"<title>(.*?)</title>", b[1])
            out += [f"_Plot in report.html: {m.group(1) if m else 'plot'} ({_md_cell(b[2])})_", ""]
    return "\n".join(out).rstrip() + "\n"


def _inline(text: str) -> str:
    """Escape, then render `code` spans."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


FOLD_ROWS = 20  # longer tables start folded in report.html (a click shows them; report.md has them all open)
VERDICT_CLASS = {"holds": "ok", "fails": "bad", "n/a": "na"}


def _td(i: int, x: str, right: tuple) -> str:
    cls = "r" if i in right else VERDICT_CLASS.get(str(x))
    return f'<td class="{cls}">{_inline(x)}</td>' if cls else f"<td>{_inline(x)}</td>"


def html(blocks: list[Block], title: str) -> str:
    body: list[str] = []
    toc: list[str] = []
    nav_at = 0
    for b in blocks:
        kind = b[0]
        if kind == "open":
            body.append(f'<section id="{escape(b[1])}">')
        elif kind == "close":
            body.append("</section>")
        elif kind == "nav":
            nav_at = len(body)
        elif kind in ("h1", "h2", "h3"):
            slug = _slug(b[1])
            if kind == "h2":
                toc.append(f'<a href="#{slug}">{_inline(b[1])}</a>')
            body.append(f'<{kind} id="{slug}">{_inline(b[1])}</{kind}>')
        elif kind == "p":
            body.append(f"<p>{_inline(b[1])}</p>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in b[1]) + "</ul>")
        elif kind == "table":
            _, cols, rows, right = b
            head = "".join(f"<th>{_inline(c)}</th>" for c in cols)
            trs = []
            for r in rows:
                cls = ' class="nofit"' if any(str(x).startswith("no (limit") for x in r) else ""
                tds = "".join(_td(i, x, right) for i, x in enumerate(r))
                trs.append(f"<tr{cls}>{tds}</tr>")
            table = (f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(trs)}</tbody>'
                     "</table></div>")
            if len(rows) > FOLD_ROWS:
                table = f"<details><summary>show the table ({len(rows)} rows)</summary>{table}</details>"
            body.append(table)
        elif kind == "plot":
            body.append(f"<figure>{b[1]}<figcaption>{_inline(b[2])}</figcaption></figure>")
    if toc:
        body.insert(nav_at, "<nav>Sections: " + " · ".join(toc) + "</nav>")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width">\n<title>{escape(title)}</title>\n'
            f"<style>{CSS}</style>\n<script>{CHECK}</script>\n</head>\n<body>\n" + "\n".join(body)
            + "\n</body>\n</html>\n")
