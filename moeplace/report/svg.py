"""Plots as inline SVG text: line charts (log axes), bar panels, stacked bars and heatmaps, no dependencies.

Pure functions from numbers to an `<svg>` string, deterministic (fixed formatting, no ids from memory),
readable offline. Every plot is an `<svg class="plot" data-marks="N">` with N its data marks, which the
report's self-check and the Chromium test count.
"""

from __future__ import annotations

import math
from html import escape

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999", "#8C564B",
           "#17BECF")
FONT = 'font-family="Helvetica, Arial, sans-serif"'


def _num(x: float) -> str:
    return f"{x:.1f}"


def fmt_tick(x: float) -> str:
    """Short axis labels: 1, 10, 100, 1k, 10k, 1M, 0.1, 0.01."""
    if x == 0:
        return "0"
    a = abs(x)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            v = x / div
            return f"{v:.0f}{suffix}" if v == int(v) else f"{v:.1f}{suffix}"
    if a >= 1:
        return f"{x:.0f}" if x == int(x) else f"{x:.1f}"
    return f"{x:.2g}"


def _log_ticks(lo: float, hi: float) -> list[float]:
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    return [10.0 ** k for k in range(a, b + 1)]


def _lin_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    span = hi - lo or 1.0
    step = 10 ** math.floor(math.log10(span / n))
    for m in (1, 2, 5, 10):
        if span / (step * m) <= n:
            step *= m
            break
    start = math.floor(lo / step) * step
    out, v = [], start
    while not out or out[-1] < hi - 1e-9 * span:
        out.append(round(v, 12))
        v += step
    return out


class _Axis:
    def __init__(self, values: list[float], log: bool, pixels: tuple[float, float], data_ticks: bool = False) -> None:
        vals = [v for v in values if v > 0] if log else list(values)
        lo, hi = (min(vals), max(vals)) if vals else (1.0, 10.0)
        distinct = sorted(set(vals))
        if log:
            if data_ticks and 1 < len(distinct) <= 8:
                self.ticks = distinct
            elif hi / lo > 10:
                self.ticks = _log_ticks(lo, hi)
            else:
                self.ticks = [t for t in _lin_ticks(lo, hi, 4) if t > 0] or [lo, hi]
            lo, hi = min(lo, self.ticks[0]), max(hi, self.ticks[-1])
            if lo == hi:
                lo, hi = lo / 2, hi * 2
            self.lo, self.hi = math.log10(lo), math.log10(hi)
        else:
            lo = min(lo, 0.0)
            hi = hi if hi > lo else lo + 1.0
            self.ticks = _lin_ticks(lo, hi)
            self.lo, self.hi = self.ticks[0], max(self.ticks[-1], hi)
        self.log = log
        self.p0, self.p1 = pixels

    def __call__(self, v: float) -> float:
        x = math.log10(max(v, 1e-300)) if self.log else v
        return self.p0 + (x - self.lo) / ((self.hi - self.lo) or 1.0) * (self.p1 - self.p0)


MARKERS = ("circle", "square", "triangle", "diamond", "down", "cross")
DASHES = ("", "7 4", "2 3", "10 3 2 3", "4 2", "1 4")


def _marker(kind: str, x: float, y: float, fill: str, color: str, r: float = 4.5) -> str:
    style = f'fill="{fill}" stroke="{color}" stroke-width="1.5"'
    if kind == "circle":
        return f'<circle cx="{_num(x)}" cy="{_num(y)}" r="{r:.1f}" {style}/>'
    if kind == "square":
        return f'<rect x="{_num(x - r)}" y="{_num(y - r)}" width="{_num(2 * r)}" height="{_num(2 * r)}" {style}/>'
    if kind == "cross":
        d = f"{_num(x - r)},{_num(y)} {_num(x + r)},{_num(y)} {_num(x)},{_num(y)} {_num(x)},{_num(y - r)} " \
            f"{_num(x)},{_num(y + r)}"
        return f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="2.5"/>'
    pts = {"triangle": ((0, -1.2), (1.1, 0.8), (-1.1, 0.8)), "down": ((0, 1.2), (1.1, -0.8), (-1.1, -0.8)),
           "diamond": ((0, -1.3), (1.1, 0), (0, 1.3), (-1.1, 0))}[kind]
    d = " ".join(f"{_num(x + a * r)},{_num(y + b * r)}" for a, b in pts)
    return f'<polygon points="{d}" {style}/>'


def line_chart(title: str, series: list[dict], *, xlabel: str, ylabel: str, xlog: bool = True, ylog: bool = True,
               width: int = 1360, height: int = 420, emphasis: str | None = None) -> str:
    """series: [{label, x: [..], y: [..], hollow: [bool ..] (optional: open markers)}]. Each series has its own
    colour, marker and dash pattern; the `emphasis` series (the seed design) is drawn last, thicker, on top."""
    extra = 18 * max(0, _legend_rows([s["label"] for s in series], 64, width) - 2)
    height += extra
    left, right, top, bottom = 72, 16, 30, 96 + extra
    xs = [v for s in series for v in s["x"]]
    ys = [v for s in series for v in s["y"] if v > 0 or not ylog]
    ax = _Axis(xs or [1, 10], xlog, (left, width - right), data_ticks=True)
    ay = _Axis(ys or [1, 10], ylog, (height - bottom, top))
    parts, marks = _frame(title, ax, ay, xlabel, ylabel, width, height, left, top, bottom), 0
    styles = [(PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)], DASHES[(i // 2) % len(DASHES)])
              for i in range(len(series))]
    order = sorted(range(len(series)), key=lambda i: series[i]["label"] == emphasis)
    for i in order:
        s, (color, marker, dash) = series[i], styles[i]
        strong = s["label"] == emphasis
        pts = [(ax(x), ay(y)) for x, y in zip(s["x"], s["y"]) if y > 0 or not ylog]
        if len(pts) > 1:
            d = " ".join(f"{_num(x)},{_num(y)}" for x, y in pts)
            da = f' stroke-dasharray="{dash}"' if dash and not strong else ""
            parts.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="{4 if strong else 2}"'
                         f'{da}/>')
        hollow = s.get("hollow", [False] * len(s["x"]))
        for (x, y), h in zip(pts, hollow):
            parts.append(_marker(marker, x, y, "white" if h else color, color, 6.0 if strong else 4.5))
            marks += 1
    labels = [s["label"] + (" (bold)" if s["label"] == emphasis else "") for s in series]
    parts += _legend(labels, left, height - bottom + 50, width, styles)
    return _svg(title, width, height, parts, marks)


def panel_bars(title: str, panels: list[dict], *, width: int = 1360, row: int = 22) -> str:
    """Side-by-side horizontal bar panels sharing categories and series (the report's headline chart).

    panels: [{title, unit, values: [[v per series] per category] (None: no bar, `missing` text instead),
    better: "higher"|"lower"}]; categories and series names in `panels[0]["categories"]`, `["series"]`."""
    cats, names = panels[0]["categories"], panels[0]["series"]
    left, gap, top = 110, 24, 44
    pw = (width - left - gap * len(panels)) / max(len(panels), 1)
    group = row * len(names) + 10
    plot_h = group * len(cats)
    height = int(top + plot_h + 56)
    parts = [_title(title, width)]
    for i, cat in enumerate(cats):
        parts.append(f'<text x="{left - 8}" y="{_num(top + i * group + group / 2)}" font-size="13" {FONT} '
                     f'text-anchor="end" font-weight="bold">{escape(cat)}</text>')
    marks = 0
    for p, panel in enumerate(panels):
        x0 = left + p * (pw + gap)
        vals = [v for r in panel["values"] for v in r if v is not None]
        vmax = max(vals) if vals and max(vals) > 0 else 1.0
        better = "higher is better" if panel.get("better") == "higher" else "lower is better"
        parts.append(f'<text x="{_num(x0 + pw / 2)}" y="{top - 10}" font-size="12" {FONT} text-anchor="middle">'
                     f'{escape(panel["title"])} ({escape(panel["unit"])}; {better})</text>')
        parts.append(f'<line x1="{_num(x0)}" y1="{top}" x2="{_num(x0)}" y2="{top + plot_h}" stroke="#333"/>')
        for i, r in enumerate(panel["values"]):
            for k, v in enumerate(r):
                y = top + i * group + 5 + k * row
                if v is None:
                    parts.append(f'<text x="{_num(x0 + 6)}" y="{_num(y + row * 0.65)}" font-size="11" {FONT} '
                                 f'fill="#666">{escape(panel.get("missing", "none fits memory"))}</text>')
                    continue
                w = max(1.0, v / vmax * (pw - 90))
                parts.append(f'<rect x="{_num(x0)}" y="{_num(y)}" width="{_num(w)}" height="{row - 4}" '
                             f'fill="{PALETTE[k % len(PALETTE)]}"/>')
                parts.append(f'<text x="{_num(x0 + w + 4)}" y="{_num(y + row * 0.62)}" font-size="11" {FONT}>'
                             f'{escape(fmt_value(v))}</text>')
                marks += 1
    parts += _legend(names, left, top + plot_h + 30, width)
    return _svg(title, width, height, parts, marks)


def fmt_value(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else (f"{v:,.1f}" if v >= 1 else f"{v:.3g}")


def stacked_bars(title: str, categories: list[str], stacks: list[tuple[str, list[float]]], *, ylabel: str,
                 width: int = 1360, height: int = 340, label_every: int = 1) -> str:
    """Vertical bars, one per category, each split into the named stacks (non-negative values)."""
    left, right, top, bottom = 64, 12, 28, 84
    totals = [sum(v[i] for _, v in stacks) for i in range(len(categories))]
    ax_y = _Axis([0.0] + totals, False, (height - bottom, top))
    n = max(len(categories), 1)
    slot = (width - left - right) / n
    parts = _frame(title, None, ax_y, "", ylabel, width, height, left, top, bottom)
    marks = 0
    for i, cat in enumerate(categories):
        x = left + i * slot + slot * 0.1
        base = 0.0
        for k, (_, vals) in enumerate(stacks):
            v = vals[i]
            if v <= 0:
                continue
            y0, y1 = ax_y(base), ax_y(base + v)
            parts.append(f'<rect x="{_num(x)}" y="{_num(y1)}" width="{_num(slot * 0.8)}" height="{_num(y0 - y1)}" '
                         f'fill="{PALETTE[k % len(PALETTE)]}"/>')
            base += v
            marks += 1
        if i % label_every == 0:
            parts.append(f'<text x="{_num(x + slot * 0.4)}" y="{height - bottom + 14}" font-size="10" {FONT} '
                         f'text-anchor="middle">{escape(cat)}</text>')
    parts += _legend([name for name, _ in stacks], left, height - bottom + 36, width)
    return _svg(title, width, height, parts, marks)


def hbars(title: str, categories: list[str], stacks: list[tuple[str, list[float]]], *, xlabel: str,
          width: int = 1100, row: int = 26) -> str:
    """Horizontal stacked bars: one row per category (e.g. bytes per token by tier per design)."""
    left, right, top = 250, 20, 28
    height = top + row * len(categories) + 90
    totals = [sum(v[i] for _, v in stacks) for i in range(len(categories))]
    ax = _Axis([0.0] + totals, False, (left, width - right))
    parts = [_title(title, width)]
    for t in ax.ticks:
        x = ax(t)
        parts.append(f'<line x1="{_num(x)}" y1="{top}" x2="{_num(x)}" y2="{top + row * len(categories)}" '
                     f'stroke="#ddd"/>')
        parts.append(f'<text x="{_num(x)}" y="{top + row * len(categories) + 14}" font-size="10" {FONT} '
                     f'text-anchor="middle">{fmt_tick(t)}</text>')
    parts.append(f'<text x="{(left + width) / 2:.1f}" y="{top + row * len(categories) + 30}" font-size="11" {FONT} '
                 f'text-anchor="middle">{escape(xlabel)}</text>')
    marks = 0
    for i, cat in enumerate(categories):
        y = top + i * row + 4
        parts.append(f'<text x="{left - 6}" y="{y + row / 2}" font-size="11" {FONT} text-anchor="end">'
                     f'{escape(cat)}</text>')
        base = 0.0
        for k, (_, vals) in enumerate(stacks):
            v = vals[i]
            if v <= 0:
                continue
            parts.append(f'<rect x="{_num(ax(base))}" y="{y}" width="{_num(ax(base + v) - ax(base))}" '
                         f'height="{row - 8}" fill="{PALETTE[k % len(PALETTE)]}"/>')
            base += v
            marks += 1
    parts += _legend([name for name, _ in stacks], 20, top + row * len(categories) + 50, width)
    return _svg(title, width, height, parts, marks)


def _color(t: float) -> str:
    """Sequential colour for t in [0, 1] (light yellow -> orange -> dark red), grey beyond 1."""
    if t > 1.0 + 1e-9:
        return "#5b0000"
    stops = ((255, 255, 204), (254, 178, 76), (240, 59, 32), (128, 0, 38))
    t = min(max(t, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(t), len(stops) - 2)
    f = t - i
    c = [round(a + (b - a) * f) for a, b in zip(stops[i], stops[i + 1])]
    return f"#{c[0]:02x}{c[1]:02x}{c[2]:02x}"


def heatmap(title: str, matrix: list[list[float]], *, xlabel: str, ylabel: str, vmax: float | None = None,
            cell: float = 6.0, max_width: int = 720) -> str:
    """Cells coloured by value / vmax (negative values: no cell). Shape [rows][cols]."""
    rows, cols = len(matrix), max((len(r) for r in matrix), default=0)
    cell = min(cell, (max_width - 80) / max(cols, 1))
    left, top = 56, 28
    width = int(left + cols * cell + 20)
    height = int(top + rows * cell + 70)
    vals = [v for r in matrix for v in r if v >= 0]
    vmax = vmax or (max(vals) if vals and max(vals) > 0 else 1.0)
    parts = [_title(title, max(width, 360))]
    marks = 0
    for i, r in enumerate(matrix):
        for j, v in enumerate(r):
            if v < 0:
                continue
            parts.append(f'<rect x="{_num(left + j * cell)}" y="{_num(top + i * cell)}" width="{_num(cell)}" '
                         f'height="{_num(cell)}" fill="{_color(v / vmax)}"/>')
            marks += 1
    parts.append(f'<text x="{left}" y="{top + rows * cell + 16}" font-size="11" {FONT}>{escape(xlabel)}</text>')
    parts.append(f'<text x="14" y="{top + rows * cell / 2:.1f}" font-size="11" {FONT} '
                 f'transform="rotate(-90 14 {top + rows * cell / 2:.1f})" text-anchor="middle">{escape(ylabel)}</text>')
    y = top + rows * cell + 30
    for k in range(11):
        parts.append(f'<rect x="{left + k * 18}" y="{_num(y)}" width="18" height="10" fill="{_color(k / 10)}"/>')
    parts.append(f'<text x="{left}" y="{_num(y + 24)}" font-size="10" {FONT}>0</text>')
    parts.append(f'<text x="{left + 198}" y="{_num(y + 24)}" font-size="10" {FONT} text-anchor="end">'
                 f'{fmt_tick(vmax)}</text>')
    return _svg(title, max(width, 360), height, parts, marks)


def _title(title: str, width: int) -> str:
    return f'<text x="{width / 2:.1f}" y="16" font-size="13" font-weight="bold" {FONT} text-anchor="middle">' \
           f'{escape(title)}</text>'


def _frame(title, ax, ay, xlabel, ylabel, width, height, left, top, bottom) -> list[str]:
    parts = [_title(title, width)]
    for t in ay.ticks:
        y = ay(t)
        parts.append(f'<line x1="{left}" y1="{_num(y)}" x2="{width - 12}" y2="{_num(y)}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{_num(y + 3)}" font-size="10" {FONT} text-anchor="end">'
                     f'{fmt_tick(t)}</text>')
    if ax is not None:
        for t in ax.ticks:
            x = ax(t)
            parts.append(f'<line x1="{_num(x)}" y1="{top}" x2="{_num(x)}" y2="{height - bottom}" stroke="#eee"/>')
            parts.append(f'<text x="{_num(x)}" y="{height - bottom + 14}" font-size="10" {FONT} '
                         f'text-anchor="middle">{fmt_tick(t)}</text>')
        parts.append(f'<text x="{(left + width) / 2:.1f}" y="{height - bottom + 30}" font-size="11" {FONT} '
                     f'text-anchor="middle">{escape(xlabel)}</text>')
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#333"/>')
    parts.append(f'<line x1="{left}" y1="{height - bottom}" x2="{width - 12}" y2="{height - bottom}" stroke="#333"/>')
    mid = (top + height - bottom) / 2
    parts.append(f'<text x="14" y="{mid:.1f}" font-size="11" {FONT} transform="rotate(-90 14 {mid:.1f})" '
                 f'text-anchor="middle">{escape(ylabel)}</text>')
    return parts


def _legend_rows(labels: list[str], x0: float, width: int) -> int:
    rows, x = 1, x0
    for label in labels:
        w = 52 + 6.6 * len(label)
        if x + w > width and x > x0:
            rows, x = rows + 1, x0
        x += w
    return rows


def _legend(labels: list[str], x0: float, y0: float, width: int,
            styles: list[tuple[str, str, str]] | None = None) -> list[str]:
    """Colour boxes, or with `styles` (colour, marker, dash) a line sample with its marker."""
    parts, x, y = [], x0, y0
    for i, label in enumerate(labels):
        w = (52 if styles else 22) + 6.6 * len(label)
        if x + w > width and x > x0:
            x, y = x0, y + 18
        if styles:
            color, marker, dash = styles[i]
            da = f' stroke-dasharray="{dash}"' if dash else ""
            parts.append(f'<line x1="{_num(x)}" y1="{_num(y - 4)}" x2="{_num(x + 36)}" y2="{_num(y - 4)}" '
                         f'stroke="{color}" stroke-width="2"{da}/>')
            parts.append(_marker(marker, x + 18, y - 4, color, color, 4.0))
            tx = x + 42
        else:
            color = PALETTE[i % len(PALETTE)]
            parts.append(f'<rect x="{_num(x)}" y="{_num(y - 9)}" width="12" height="10" fill="{color}"/>')
            tx = x + 16
        parts.append(f'<text x="{_num(tx)}" y="{_num(y)}" font-size="12" {FONT}>{escape(label)}</text>')
        x += w
    return parts


def _svg(title: str, width: int, height: int, parts: list[str], marks: int) -> str:
    body = "\n".join(parts)
    return (f'<svg class="plot" data-marks="{marks}" xmlns="http://www.w3.org/2000/svg" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" role="img"><title>{escape(title)}</title>\n'
            f'<rect width="{width}" height="{height}" fill="white"/>\n{body}\n</svg>')
