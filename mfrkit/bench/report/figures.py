"""The figures of the HTML report, as SVG bytes: curves of several models overlaid,
score histograms, and grouped bar charts with intervals.

Every function takes plain arrays and returns the figure's SVG (text kept as text, ids
fixed, so the same input gives the same bytes). One colour per model across the
report: the caller passes each series' colour from :func:`model_colours`.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np

from ..results.plots import log_far_axis, plain_texts, pyplot

#: FAR / FMR axis of the ROC and DET plots.
FAR_RANGE = (1e-6, 1.0)


def _pyplot():
    return pyplot()  # names drawn as text, never as mathtext


def model_colours(n: int) -> list[str]:
    """``n`` distinguishable colours (matplotlib's tab10, then tab20)."""
    plt = _pyplot()
    base = [plt.cm.tab10(i) for i in range(10)] + [plt.cm.tab20(i) for i in range(1, 20, 2)]
    from matplotlib.colors import to_hex

    return [to_hex(base[i % len(base)]) for i in range(n)]


def _svg(fig) -> bytes:
    plt = _pyplot()
    buf = io.BytesIO()
    plain_texts(fig)
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "mfrkit"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "mfrkit"})
    plt.close(fig)
    return buf.getvalue()


def thin_curve(x: np.ndarray, y: np.ndarray, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """At most about ``2 n`` points of a monotone curve: those nearest ``n`` log-spaced
    values of ``x`` and ``n`` evenly spaced values of ``y``, plus both ends. A ROC of
    millions of comparisons stays a small SVG and looks the same."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) <= 2 * n:
        return x, y
    pos = x[x > 0]
    lo = pos.min() if len(pos) else 1e-12
    xi = np.searchsorted(x, np.geomspace(lo, max(x.max(), lo), n))
    yi = np.searchsorted(y, np.linspace(y.min(), y.max(), n))
    keep = np.unique(np.clip(np.r_[0, xi, yi, len(x) - 1], 0, len(x) - 1))
    return x[keep], y[keep]


def roc_figure(curves: Sequence[tuple[str, str, np.ndarray, np.ndarray]], title: str) -> bytes:
    """TAR against FAR (log axis) of each ``(label, colour, far, tar)``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4), dpi=100)
    for label, colour, far, tar in curves:
        far, tar = thin_curve(far, tar)
        pos = far > 0
        ax.semilogx(np.clip(far[pos], *FAR_RANGE), tar[pos], color=colour, label=label, lw=1.6)
    ax.set(xlabel="FAR (false accept rate)", ylabel="TAR (true accept rate)", title=f"ROC: {title}", ylim=(0, 1.01), xlim=FAR_RANGE)
    log_far_axis(ax)
    ax.grid(True, which="both", alpha=0.3)
    if curves:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _svg(fig)


def det_figure(curves: Sequence[tuple[str, str, np.ndarray, np.ndarray]], title: str) -> bytes:
    """FNMR (= 1 - TAR) against FMR (= FAR) on normal-deviate axes (1e-6 to 0.6; rates
    outside are drawn on the border) of each ``(label, colour, far, tar)``."""
    from ..results.plots import det_axes, det_coordinates

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4), dpi=100)
    for label, colour, far, tar in curves:
        fmr, tar = thin_curve(far, tar)
        ax.plot(*det_coordinates(fmr, 1 - tar), color=colour, label=label, lw=1.6)
    det_axes(ax, title)
    if curves:
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return _svg(fig)


def cmc_figure(curves: Sequence[tuple[str, str, Sequence[float]]], title: str) -> bytes:
    """Identification rate against rank of each ``(label, colour, cmc)``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4), dpi=100)
    for label, colour, cmc in curves:
        ranks = np.arange(1, len(cmc) + 1)
        ax.plot(ranks, cmc, marker="o", ms=3, color=colour, label=label, lw=1.6)
    ax.set(xlabel="rank", ylabel="identification rate", title=f"CMC: {title}", ylim=(0, 1.01))
    ax.grid(True, alpha=0.3)
    if curves:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _svg(fig)


def score_histograms(panels: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray, float | None]], title: str) -> bytes:
    """One panel per ``(label, edges, genuine counts, impostor counts, threshold)``: the
    two score distributions as densities over the bars ``edges`` ((K + 1,) increasing;
    counts (K,)), and the threshold as a dashed line. The caller counts the scores
    (failures to acquire, -inf, are left out and counted by the caller); the legend
    gives each distribution's total."""
    plt = _pyplot()
    n = max(1, len(panels))
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), dpi=100, squeeze=False)
    for ax, (label, edges, gen, imp, thr) in zip(axes.flat, panels):
        edges = np.asarray(edges, float)
        width = np.diff(edges)
        for counts, colour, name in ((imp, "#d62728", "impostor"), (gen, "#1f77b4", "genuine")):
            counts = np.asarray(counts, np.float64)
            total = counts.sum()
            if total:
                ax.stairs(counts / (total * width), edges, fill=True, alpha=0.55, color=colour, label=f"{name} ({int(total):,})")
        if thr is not None and np.isfinite(thr):
            ax.axvline(thr, color="k", ls="--", lw=1, label="FAR=1e-3 threshold")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("score", fontsize=8)
        ax.set_ylabel("density", fontsize=8)  # each class's histogram integrates to 1: not counts
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _svg(fig)


def bar_figure(
    groups: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float | None], Sequence[float | None], Sequence[float | None]]],
    *,
    ylabel: str,
    title: str,
    ylim: tuple[float, float] | None = (0, 1.0),
) -> bytes:
    """Grouped bars: one group per entry of ``groups``, one bar per ``(label, colour,
    values, lows, highs)`` series, with its interval as an error bar. A value of None
    is no bar (the group has nothing to measure, e.g. no genuine comparisons)."""
    plt = _pyplot()
    n_groups, n_series = len(groups), max(1, len(series))
    width = 0.8 / n_series
    fig, ax = plt.subplots(figsize=(max(5.6, 0.55 * n_groups * max(1, n_series) ** 0.5 + 2), 3.6), dpi=100)
    x = np.arange(n_groups)
    for k, (label, colour, values, lows, highs) in enumerate(series):
        v = np.array([np.nan if a is None else a for a in values], float)
        lo = np.array([np.nan if a is None else a for a in lows], float)
        hi = np.array([np.nan if a is None else a for a in highs], float)
        pos = x - 0.4 + width * (k + 0.5)
        ax.bar(pos, np.nan_to_num(v, nan=0.0), width * 0.92, color=colour, label=label)
        # a tick at the value, so that a zero is seen as a zero, not as a missing bar
        ax.plot(pos[np.isfinite(v)], v[np.isfinite(v)], ls="none", marker="_", ms=max(4, 40 * width), mew=2, color=colour)
        has = np.isfinite(v) & np.isfinite(lo) & np.isfinite(hi)
        if has.any():
            err = np.vstack([np.clip(v[has] - lo[has], 0, None), np.clip(hi[has] - v[has], 0, None)])
            ax.errorbar(pos[has], v[has], yerr=err, fmt="none", ecolor="#333333", elinewidth=1, capsize=2)
        for p, val in zip(pos, v):
            if not np.isfinite(val):
                ax.text(p, 0.01, "n/a", rotation=90, ha="center", va="bottom", fontsize=6, color="#777777")
    ax.set_xticks(x, list(groups), rotation=30 if n_groups > 4 else 0, ha="right" if n_groups > 4 else "center", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(True, axis="y", alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _svg(fig)
