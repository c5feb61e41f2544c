"""Contact sheets: a grid of a dataset's outputs beside their sources, for looking at.

Each tile is the source photo and the output side by side, labelled with what was made
(a synth job: mask type, colour and texture, coverage; the NIST axes when set) and the
output's image id, so any tile can be traced to its manifest row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..atomic import atomic_write_bytes
from ..data.imageio import read_image
from ..data.manifest import Manifest
from ..errors import ImageError
from ..rng import keyed_rng

#: Label text: dark grey on white; id line a lighter grey.
_INK, _ID_INK = (30, 30, 30), (90, 90, 90)
_FONT_SCALE = 0.38


def label_scale(text: str, width: int, scale: float = _FONT_SCALE) -> float:
    """The font scale at which ``text`` fits in ``width`` pixels (``scale`` at most), so a
    long label never runs into the next tile."""
    import cv2

    w = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]
    return scale if w <= width else scale * width / w


def fit_text(text: str, width: int, scale: float = _FONT_SCALE, min_scale: float = 0.3) -> tuple[str, float]:
    """``text`` and a font scale that fit ``width`` pixels: smaller type down to
    ``min_scale``, then the start cut off (``...`` + the end: an image id's file name is
    what tells tiles apart)."""
    import cv2

    s = label_scale(text, width, scale)
    if s >= min_scale:
        return text, s
    cut = text
    while len(cut) > 4 and cv2.getTextSize("..." + cut, cv2.FONT_HERSHEY_SIMPLEX, min_scale, 1)[0][0] > width:
        cut = cut[1:]
    return "..." + cut, min_scale


def _thumb(image: np.ndarray, tile: int) -> np.ndarray:
    """``image`` shrunk (never enlarged by more than 2x) to fit a ``tile`` square, centred
    on white."""
    import cv2

    h, w = image.shape[:2]
    s = min(tile / max(h, w), 2.0)
    small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    out = np.full((tile, tile, 3), 255, np.uint8)
    oy, ox = (tile - small.shape[0]) // 2, (tile - small.shape[1]) // 2
    out[oy : oy + small.shape[0], ox : ox + small.shape[1]] = small
    return out


def _source_paths(source, ids: list) -> dict:
    """Absolute paths of the source images ``ids`` (those the source holds); a streamed
    manifest is read a row group at a time for the two columns."""
    wanted = {i for i in ids if isinstance(i, str)}
    if source is None or not wanted:
        return {}
    batches = source.batches(columns=["image_id", "path"]) if hasattr(source, "batches") else [source.table]
    out = {}
    for table in batches:
        if "image_id" not in table.columns:
            return {}
        rows = table[table["image_id"].isin(wanted)]
        out.update({str(i): source.abspath(p) for i, p in zip(rows["image_id"], rows["path"])})
    return out


def sheet_picks(candidates: int, *, seed: int = 0, n: int = 36) -> np.ndarray:
    """Which of ``candidates`` outputs (their order in the manifest) a contact sheet shows:
    up to ``n`` drawn at random (seeded), sorted."""
    rng = keyed_rng(seed, 7)
    return np.sort(rng.choice(candidates, size=min(n, candidates), replace=False))


def sheet_candidates(table) -> tuple[np.ndarray, np.ndarray]:
    """The rows of a manifest frame a contact sheet may draw from, as two bools per row:
    usable, and usable masked or partial outputs (a sheet draws from those, or from every
    usable row when a manifest has none)."""
    ok = (table["status"] == "ok").to_numpy(bool)
    made = ok & table["variant"].isin(["masked", "partial"]).to_numpy(bool) if "variant" in table.columns else ok
    return ok, made


def write_contact_sheet(manifest: Manifest, path: Path, *, seed: int = 0, n: int = 36, tile: int = 128, columns: int = 4,
                        label: Callable[[dict], str] | None = None, source=None) -> Path | None:
    """A PNG of up to ``n`` outputs drawn at random (seeded), each beside its source
    (:func:`draw_contact_sheet`); None when the manifest has no output to show."""
    table = manifest.ok()
    if "variant" in table.columns:
        pick = table[table["variant"].isin(["masked", "partial"])]
        table = pick if len(pick) else table
    if not len(table):
        return None
    rows = table.iloc[sheet_picks(len(table), seed=seed, n=n)].to_dict("records")
    return draw_contact_sheet(rows, manifest.abspath, path, tile=tile, columns=columns, label=label, source=source)


def draw_contact_sheet(rows: list[dict], abspath: Callable[[str], Path], path: Path, *, tile: int = 128, columns: int = 4,
                       label: Callable[[dict], str] | None = None, source=None) -> Path:
    """The contact sheet of manifest ``rows`` (their images found with ``abspath``), as a
    PNG at ``path``: each output beside its source.

    Parameters
    ----------
    rows : list of dict, manifest rows of the made dataset.
    abspath : callable, a row's ``path`` -> its file.
    path : Path
    tile, columns : int
        The side of each picture (pixels) and pairs per row.
    label : callable, optional
        ``row -> text`` of the first label line (default: the variant); the second line
        is always the image id.
    source : Manifest or ManifestReader, optional
        The source dataset: each output's ``source_id`` is shown beside it (a blank
        square when there is none or it cannot be read).
    """
    import cv2

    sources = _source_paths(source, [r.get("source_id") for r in rows])
    cols = min(columns, len(rows))
    nrows = -(-len(rows) // cols)
    band, gap = 30, 6
    cell_w = 2 * tile + gap
    sheet = np.full((nrows * (tile + band), cols * cell_w, 3), 255, np.uint8)
    blank = np.full((tile, tile, 3), 236, np.uint8)
    for k, row in enumerate(rows):
        r, c = divmod(k, cols)
        y, x = r * (tile + band), c * cell_w
        src_path = sources.get(str(row.get("source_id")))
        try:
            left = _thumb(read_image(src_path), tile) if src_path is not None else blank
        except ImageError:
            left = blank
        sheet[y : y + tile, x : x + tile] = left
        sheet[y : y + tile, x + tile : x + 2 * tile] = _thumb(read_image(abspath(row["path"])), tile)
        width = 2 * tile - 6
        text, scale = fit_text(label(row) if label else str(row.get("variant") or ""), width)
        cv2.putText(sheet, text, (x + 3, y + tile + 12), cv2.FONT_HERSHEY_SIMPLEX, scale, _INK, 1, cv2.LINE_AA)
        text, scale = fit_text(str(row.get("image_id")), width, 0.33)
        cv2.putText(sheet, text, (x + 3, y + tile + 25), cv2.FONT_HERSHEY_SIMPLEX, scale, _ID_INK, 1, cv2.LINE_AA)
    # Light PNG compression: the sheet is for looking at, and zlib's default level costs
    # a few tenths of a second per job for a few percent of size.
    ok, data = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 image
        raise ValueError("could not encode the contact sheet")
    atomic_write_bytes(path, data.tobytes())
    return path
