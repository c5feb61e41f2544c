"""Contact sheets: a grid of a dataset's outputs, for looking at."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..atomic import atomic_write_bytes
from ..data.imageio import read_image
from ..data.manifest import Manifest


def label_scale(text: str, width: int, scale: float = 0.38) -> float:
    """The font scale at which ``text`` fits in ``width`` pixels (``scale`` at most), so a
    long label never runs into the next tile."""
    import cv2

    w = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]
    return scale if w <= width else scale * width / w


def sheet_picks(candidates: int, *, seed: int = 0, n: int = 36) -> np.ndarray:
    """Which of ``candidates`` outputs (their order in the manifest) a contact sheet shows:
    up to ``n`` drawn at random (seeded), sorted."""
    rng = np.random.default_rng([int(seed), 7])
    return np.sort(rng.choice(candidates, size=min(n, candidates), replace=False))


def sheet_candidates(table) -> tuple[np.ndarray, np.ndarray]:
    """The rows of a manifest frame a contact sheet may draw from, as two bools per row:
    usable, and usable masked or partial outputs (a sheet draws from those, or from every
    usable row when a manifest has none)."""
    ok = (table["status"] == "ok").to_numpy(bool)
    made = ok & table["variant"].isin(["masked", "partial"]).to_numpy(bool) if "variant" in table.columns else ok
    return ok, made


def write_contact_sheet(manifest: Manifest, path: Path, *, seed: int = 0, n: int = 36, tile: int = 160, columns: int = 6, label: Callable[[dict], str] | None = None) -> Path | None:
    """A PNG of up to ``n`` outputs drawn at random (seeded), labelled; None when empty."""
    table = manifest.ok()
    if "variant" in table.columns:
        pick = table[table["variant"].isin(["masked", "partial"])]
        table = pick if len(pick) else table
    if not len(table):
        return None
    rows = table.iloc[sheet_picks(len(table), seed=seed, n=n)].to_dict("records")
    return draw_contact_sheet(rows, manifest.abspath, path, tile=tile, columns=columns, label=label)


def draw_contact_sheet(rows: list[dict], abspath: Callable[[str], Path], path: Path, *, tile: int = 160, columns: int = 6,
                       label: Callable[[dict], str] | None = None) -> Path:
    """The contact sheet of manifest ``rows`` (their images found with ``abspath``), as a PNG at ``path``."""
    import cv2

    cols = min(columns, len(rows))
    nrows = -(-len(rows) // cols)
    band = 18
    sheet = np.full((nrows * (tile + band), cols * tile, 3), 255, np.uint8)
    for k, row in enumerate(rows):
        img = read_image(abspath(row["path"]))
        h, w = img.shape[:2]
        s = tile / max(h, w)
        small = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        r, c = divmod(k, cols)
        y, x = r * (tile + band), c * tile
        oy, ox = (tile - small.shape[0]) // 2, (tile - small.shape[1]) // 2
        sheet[y + oy : y + oy + small.shape[0], x + ox : x + ox + small.shape[1]] = small
        text = (label(row) if label else str(row.get("image_id")))[:40]
        cv2.putText(sheet, text, (x + 3, y + tile + 13), cv2.FONT_HERSHEY_SIMPLEX, label_scale(text, tile - 6), (30, 30, 30), 1, cv2.LINE_AA)
    # Light PNG compression: the sheet is for looking at, and zlib's default level costs
    # a few tenths of a second per job for a few percent of size.
    ok, data = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 image
        raise ValueError("could not encode the contact sheet")
    atomic_write_bytes(path, data.tobytes())
    return path
