"""What one scan of an all-pairs protocol takes and keeps: the two sides (usable images,
their identity / source-photo / breakdown codes), the views the metrics are computed
on, and the scan's result per cell; plus where the tiles run (``resolve_device``) and
the same-identity positions of two code arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ...errors import MfrkitError
from .binned_scores import BinnedScores, ScoreBins

DEVICES = ("auto", "cuda", "cpu")


class StreamingError(MfrkitError):
    """All-pairs scoring cannot go ahead (inputs, device, scores out of range)."""


def resolve_device(device: str = "auto", *, cuda_available: Callable[[], bool] | None = None) -> str:
    """``cuda`` when asked for or (``auto``) when torch sees a CUDA device, else ``cpu``.

    ``cuda_available`` replaces torch's check (tests).
    """
    if device not in DEVICES:
        raise StreamingError(f"unknown scoring device {device!r}; choose one of: {', '.join(DEVICES)}")
    if device == "cpu":
        return "cpu"
    if cuda_available is None:
        def cuda_available() -> bool:
            try:
                import torch
            except ImportError:
                return False
            return bool(torch.cuda.is_available())
    has = cuda_available()
    if device == "cuda" and not has:
        raise StreamingError("scoring on cuda was requested but torch sees no CUDA device")
    return "cuda" if has else "cpu"



# --- inputs ----------------------------------------------------------------------------------------


@dataclass
class Side:
    """One side of an all-pairs protocol, as the scanner sees it (usable images only).

    Attributes
    ----------
    vectors : ndarray of float32, shape (n, D), L2-normalised.
    identity, unit : ndarray of int64, shape (n,)
        Codes shared by both sides: equal identity codes make a genuine comparison,
        equal unit codes (same source photo) an excluded one.
    image : ndarray of int64, shape (n,) or None
        Codes of the images when both sides may hold the same image (equal codes: the
        same image, excluded); None when they cannot.
    cell : ndarray of int64, shape (n,)
        Breakdown class of each image (0 ... n_classes - 1).
    """

    vectors: np.ndarray
    identity: np.ndarray
    unit: np.ndarray
    image: np.ndarray | None = None
    cell: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
        n = len(self.vectors)
        self.identity = np.asarray(self.identity, np.int64)
        self.unit = np.asarray(self.unit, np.int64)
        self.cell = np.zeros(n, np.int64) if self.cell is None else np.asarray(self.cell, np.int64)
        if self.image is not None:
            self.image = np.asarray(self.image, np.int64)
        if self.vectors.ndim != 2 or any(len(a) != n for a in (self.identity, self.unit, self.cell)):
            raise StreamingError("a side needs (n, D) vectors and n identity, unit and cell codes")
        if self.image is not None and len(self.image) != n:
            raise StreamingError("image codes differ in length from the vectors")

    @property
    def n_cells(self) -> int:
        return int(self.cell.max()) + 1 if len(self.cell) else 1


@dataclass
class ScanResult:
    """What the scan keeps, per cell ``(reference class, probe class)`` flattened to
    ``reference_class * n_probe_classes + probe_class``.

    Attributes
    ----------
    hist : ndarray of int64, shape (n_cells, n_bins): impostor scores per bin.
    collected : ndarray of bool, shape (n_bins,): bins whose impostor scores are kept (every cell).
    values, value_cells : the kept impostor scores (float32) and their cells.
    genuine, genuine_cells : every genuine score (float32) and its cell.
    genuine_rows, genuine_cols : int64 positions of each genuine score in the inputs.
    excluded : int, comparisons left out (same image, same source).
    passes : int, full passes over the tiles (pilot not counted).
    pilot_rows : int, reference images the pilot scored against every probe (0: no pilot).
    seconds : dict of wall-clock time per stage.
    device : ``cpu`` or ``cuda``.
    """

    bins: ScoreBins
    n_cells: int
    hist: np.ndarray
    collected: np.ndarray
    values: list = field(default_factory=list)
    value_cells: list = field(default_factory=list)
    genuine: list = field(default_factory=list)
    genuine_cells: list = field(default_factory=list)
    genuine_rows: list = field(default_factory=list)
    genuine_cols: list = field(default_factory=list)
    excluded: int = 0
    sentinels: int = 0
    passes: int = 0
    pilot_rows: int = 0
    seconds: dict = field(default_factory=dict)
    device: str = "cpu"

    def concat(self) -> None:
        """Join the per-tile pieces into single arrays (once)."""
        for name, dtype in (("values", np.float32), ("value_cells", np.int64), ("genuine", np.float32),
                            ("genuine_cells", np.int64), ("genuine_rows", np.int64), ("genuine_cols", np.int64)):
            parts = getattr(self, name)
            if isinstance(parts, list):
                setattr(self, name, np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype))

    def view(self, cells: Sequence[int], *, fta_impostor: int = 0, fta_genuine: int = 0) -> BinnedScores:
        """The :class:`BinnedScores` of a set of cells, with FtA comparisons added (-inf)."""
        self.concat()
        cells = np.asarray(sorted(set(int(c) for c in cells)), np.int64)
        hist = self.hist[cells].sum(0)
        hist[0] += int(fta_impostor)
        vals = self.values[np.isin(self.value_cells, cells)]
        gen = self.genuine[np.isin(self.genuine_cells, cells)]
        gen = np.r_[gen, np.full(int(fta_genuine), -np.inf, np.float32)]
        return BinnedScores(self.bins, hist, self.collected, vals, gen)


# --- same-identity positions -----------------------------------------------------------------------


def same_identity_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j) with ``a[i] == b[j]``, as two int64 arrays (rows in order of ``a``)."""
    order = np.argsort(b, kind="stable")
    sb = b[order]
    left = np.searchsorted(sb, a, side="left")
    count = np.searchsorted(sb, a, side="right") - left
    total = int(count.sum())
    rows = np.repeat(np.arange(len(a), dtype=np.int64), count)
    starts = np.repeat(left - (np.cumsum(count) - count), count)
    cols = order[np.arange(total, dtype=np.int64) + starts]
    return rows, cols



@dataclass
class View:
    """A set of comparisons the metrics are computed on: some cells, plus FtA counts.

    Attributes
    ----------
    cells : list of int
    fta_impostor, fta_genuine : comparisons with an image that failed to acquire (-inf).
    thresholds : thresholds whose error rates are needed (threshold transfer, or the
        overall thresholds for a breakdown group).
    """

    cells: list
    fta_impostor: int = 0
    fta_genuine: int = 0
    thresholds: list = field(default_factory=list)
