"""Heatmaps of routing statistics as PNG (matplotlib, an optional dependency: `pip install 'moeplace[plot]'`).

    load.png    [layers x experts]: each expert's load over the layer's mean (1 = average)
    coact.png   up to 8 layers, evenly spaced: P(f also chosen | e chosen) = coact[e, f] / load[e]
    trans.png   up to 8 layer pairs: P(f chosen at l+1 | e chosen at l) = trans[e, f] / tokens through e

Each function returns PNG bytes; the caller writes them (atomically, through moeplace.fileio).
"""

from __future__ import annotations

import io

import numpy as np

from moeplace.errors import InputError
from moeplace.traces.stats import RoutingStats

MAX_PANELS = 8


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("plotting needs matplotlib, which is not installed: pip install 'moeplace[plot]'",
                         field="--plots") from None
    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    _plt().close(fig)
    return buf.getvalue()


def panels(n: int) -> list[int]:
    """Up to MAX_PANELS indices out of n, evenly spaced, first and last included."""
    if n <= MAX_PANELS:
        return list(range(n))
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, MAX_PANELS)})


def load_png(stats: RoutingStats, title: str) -> bytes:
    plt = _plt()
    load = stats.load_LE.astype(float)
    rel = load / np.maximum(load.mean(axis=1, keepdims=True), 1e-12)
    L, E = rel.shape
    fig, ax = plt.subplots(figsize=(min(4 + E * 0.12, 18), min(2.5 + L * 0.18, 12)))
    im = ax.imshow(rel, aspect="auto", cmap="magma", interpolation="nearest", vmin=0,
                   vmax=max(2.0, float(np.quantile(rel, 0.99))))
    ax.set_xlabel("expert")
    ax.set_ylabel("MoE layer")
    ticks = panels(L) if L > 12 else list(range(L))
    ax.set_yticks(ticks, [str(stats.layer_numbers[i]) for i in ticks])
    ax.set_title(f"{title}: load / layer mean ({stats.num_tokens:,} tokens, top-{stats.top_k})")
    fig.colorbar(im, ax=ax, label="load / mean")
    fig.tight_layout()
    return _png(fig)


def _grid(mats: list[np.ndarray], labels: list[str], title: str, cbar: str) -> bytes:
    plt = _plt()
    n = len(mats)
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols + 1.0, 3.0 * rows + 0.5), squeeze=False,
                             layout="constrained")
    vmax = max(float(np.quantile(np.concatenate([m.ravel() for m in mats]), 0.995)), 1e-6)
    im = None
    for ax, m, label in zip(axes.ravel(), mats, labels):
        im = ax.imshow(m, cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("f", fontsize=8)
        ax.set_ylabel("e", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle(title)
    fig.colorbar(im, ax=axes, label=cbar, shrink=0.9)
    return _png(fig)


def coact_png(stats: RoutingStats, title: str) -> bytes | None:
    if not stats.has("coact") or stats.top_k < 2:
        return None
    idx = panels(stats.num_moe_layers)
    mats = [stats.coact_LEE[li] / np.maximum(stats.load_LE[li][:, None], 1) for li in idx]
    return _grid(mats, [f"layer {stats.layer_numbers[li]}" for li in idx],
                 f"{title}: co-activation P(f | e), {drawn('coact.png', stats)}", "P(f also chosen | e chosen)")


def trans_png(stats: RoutingStats, title: str) -> bytes | None:
    if not stats.has("trans") or stats.num_moe_layers < 2:
        return None
    per = stats.top_k if stats.trans_pairing == "all" else 1
    idx = panels(stats.num_moe_layers - 1)
    mats = [stats.trans_LEE[li] / np.maximum(stats.trans_LEE[li].sum(axis=1, keepdims=True) / per, 1) for li in idx]
    labels = [f"layer {stats.layer_numbers[li]} -> {stats.layer_numbers[li + 1]}" for li in idx]
    return _grid(mats, labels, f"{title}: transitions P(f at next layer | e), {drawn('trans.png', stats)}",
                 "P(f next | e)")


def drawn(name: str, stats: RoutingStats) -> str:
    """How much of the statistics a plot draws: "8 of 58 layers (evenly spaced)", "all 4 layers"."""
    if name == "load.png":
        n, what = stats.num_moe_layers, "layers"
        return f"all {n} {what}"
    n, what = (stats.num_moe_layers, "layers") if name == "coact.png" else (stats.num_moe_layers - 1, "layer pairs")
    k = len(panels(n))
    return f"all {n} {what}" if k == n else f"{k} of {n} {what} (evenly spaced)"
