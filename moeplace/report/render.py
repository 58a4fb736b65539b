"""Blocks to `report.md` and to a self-contained `report.html` (inline CSS, inline SVG, no network).

The HTML carries a ten-line script that, once the page is laid out, checks that every plot rendered (a
non-empty box and its data marks drawn) and records the result on <html> as `data-plots-rendered`,
`data-plots-expected` and `data-plots-failed`, so a headless browser can verify the page.
"""

from __future__ import annotations

import re
from html import escape

from moeplace.report.document import Block

CSS = """
body { font-family: Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1500px; color: #222; }
h1 { font-size: 24px; } h2 { font-size: 19px; margin-top: 32px; border-bottom: 1px solid #ccc; }
h3 { font-size: 15px; margin-top: 20px; }
table { border-collapse: collapse; font-size: 12px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 6px; vertical-align: top; }
th { background: #f3f3f3; } td.r { text-align: right; font-variant-numeric: tabular-nums; }
tr.nofit td { color: #999; }
figure { display: inline-block; margin: 8px 12px 8px 0; vertical-align: top; }
figcaption { font-size: 11px; color: #555; max-width: 560px; }
code { background: #f3f3f3; padding: 0 3px; }
"""

CHECK = """
window.addEventListener('load', function () {
  var plots = document.querySelectorAll('svg.plot'), ok = 0, failed = [];
  plots.forEach(function (s, i) {
    var box = s.getBoundingClientRect(), marks = s.querySelectorAll('rect, circle, polyline').length;
    var want = Number(s.dataset.marks || 0);
    if (box.width > 0 && box.height > 0 && want > 0 && marks >= want) { ok += 1; }
    else { failed.push(i); }
  });
  var root = document.documentElement;
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
        elif kind == "plot":
            m = re.search(r"<title>(.*?)</title>", b[1])
            out += [f"_Plot in report.html: {m.group(1) if m else 'plot'} ({_md_cell(b[2])})_", ""]
    return "\n".join(out).rstrip() + "\n"


def _inline(text: str) -> str:
    """Escape, then render `code` spans."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def html(blocks: list[Block], title: str) -> str:
    body: list[str] = []
    toc: list[str] = []
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
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
                tds = "".join(f'<td class="r">{_inline(x)}</td>' if i in right else f"<td>{_inline(x)}</td>"
                              for i, x in enumerate(r))
                trs.append(f"<tr{cls}>{tds}</tr>")
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(trs)}</tbody></table>")
        elif kind == "plot":
            body.append(f"<figure>{b[1]}<figcaption>{_inline(b[2])}</figcaption></figure>")
    nav = "<p>" + " · ".join(toc) + "</p>" if toc else ""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{escape(title)}</title>\n'
            f"<style>{CSS}</style>\n<script>{CHECK}</script>\n</head>\n<body>\n{nav}\n" + "\n".join(body)
            + "\n</body>\n</html>\n")
