"""Plots of one model on one protocol: ROC and DET (1:1), CMC (1:N), as PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...atomic import atomic_path
from ...names import terminal_text


def pyplot():
    """matplotlib's pyplot, headless, with every text drawn as given: model and protocol
    names are never read as mathtext (``a$\\input{x}$`` would not parse and fail the plot)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams["text.parse_math"] = False
    return plt


def log_far_axis(ax) -> None:
    """A log FAR axis labelled in plain numbers (``1e-06`` ... ``0.1``, as the DET axes):
    with ``text.parse_math`` off (names are drawn as given), matplotlib's default log
    labels would show their mathtext source (``$\\mathdefault{10^{-6}}$``)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10, numticks=12))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def plain_texts(fig) -> None:
    """Show control characters of ``fig``'s texts (names a user gave) as escapes: an SVG
    holding one is not valid XML, and no font has a glyph for it."""
    from matplotlib.text import Text

    for t in fig.findobj(Text):
        text = t.get_text()
        shown = terminal_text(text)
        if shown != text:
            t.set_text(shown)


#: Range of the DET axes: normal deviates of 1e-6 to 0.6 (rates outside sit on the border).
DET_RANGE = (5e-7, 0.6)


def det_coordinates(fmr, fnmr) -> tuple[np.ndarray, np.ndarray]:
    """FMR and FNMR as normal deviates, clipped to :data:`DET_RANGE` (arrays of shape (n,))."""
    from scipy.stats import norm

    lo, hi = DET_RANGE
    return norm.ppf(np.clip(fmr, lo, hi)), norm.ppf(np.clip(fnmr, lo, hi))


def det_axes(ax, title: str) -> None:
    """Ticks, limits, labels and grid of a DET plot (the bench's PNG and the report's SVG)."""
    from scipy.stats import norm

    lo, hi = DET_RANGE
    ticks = np.array([1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5])
    ax.set_xticks(norm.ppf(ticks), [f"{t:g}" for t in ticks], rotation=45)
    ax.set_yticks(norm.ppf(ticks), [f"{t:g}" for t in ticks])
    ax.set_xlim(norm.ppf(lo), norm.ppf(hi))
    ax.set_ylim(norm.ppf(lo), norm.ppf(hi))
    ax.set(xlabel="FMR", ylabel="FNMR", title=f"DET: {title}")
    ax.grid(True, alpha=0.3)


def plot_verification(folder: Path, labels, scores, title: str) -> list[Path]:
    """``roc.png`` (TAR against log FAR) and ``det.png`` (FNMR against FMR, normal-deviate axes)."""
    import warnings

    from ..metrics import UndefinedMetricWarning, roc_curve

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return plot_roc_det(folder, fpr, tpr, title)


def _save_png(plt, fig, path: Path) -> Path:
    """Lay out, escape the texts of, write (atomically) and close ``fig``."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        plain_texts(fig)
        fig.savefig(tmp)
    plt.close(fig)
    return path


def plot_roc_det(folder: Path, fpr, tpr, title: str) -> list[Path]:
    """``roc.png`` and ``det.png`` from ROC points (FAR and TAR arrays, increasing)."""

    fpr, tpr = np.asarray(fpr, np.float64), np.asarray(tpr, np.float64)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return []
    plt = pyplot()
    written = []
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    pos = fpr > 0
    ax.semilogx(fpr[pos], tpr[pos])
    log_far_axis(ax)
    ax.set(xlabel="FAR (false accept rate)", ylabel="TAR (true accept rate)", title=title, ylim=(0, 1.01))
    ax.grid(True, which="both", alpha=0.3)
    written.append(_save_png(plt, fig, folder / "roc.png"))
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ax.plot(*det_coordinates(fpr, 1 - tpr))
    det_axes(ax, title)
    written.append(_save_png(plt, fig, folder / "det.png"))
    return written


def plot_cmc(folder: Path, cmc: list[float], title: str) -> Path:
    """``cmc.png``: identification rate against rank."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ranks = np.arange(1, len(cmc) + 1)
    ax.plot(ranks, cmc, marker="o", ms=3)
    ax.set(xlabel="rank", ylabel="identification rate", title=title, ylim=(0, 1.01))
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    with atomic_path(folder / "cmc.png") as tmp:
        plain_texts(fig)
        fig.savefig(tmp)
    plt.close(fig)
    return folder / "cmc.png"
