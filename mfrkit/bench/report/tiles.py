"""The report's galleries: the hardest comparisons and probes of each model, as the crops
the model saw, and the images that failed to acquire.

A 1:1 result's comparisons come from its scores (:mod:`.scores`): the lowest-scoring
genuine and highest-scoring impostor pairs at the FAR = 1e-3 threshold; a 1:N result's
from its ``probes.csv``: the mated probes ranked worst and the non-mated ones scoring
highest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..evaluators import streamed
from ..results import RunResult
from .gallery import MANIFEST_ROLE, Comparison, finite, read_table
from .html import esc, fmt, picture
from .scores import Missing

if TYPE_CHECKING:
    from .page import ProtocolResults, ReportBuilder

#: Comparisons per gallery, failure-to-acquire images per result.
GALLERY_SIZE, FTA_SHOWN = 8, 24


def galleries(b: "ReportBuilder", p: "ProtocolResults") -> str:
    """The hardest comparisons (1:1) or probes (1:N) of each model on ``p``, as the crops the model saw."""
    blocks = []
    for r in p.results:
        blocks.append(gallery_verif(b, r) if p.verification else gallery_ident(b, r))
    title = "Hardest comparisons" if p.verification else "Hardest probes"
    return f'<div class="galleries"><h3>{title}</h3>{"".join(blocks)}</div>'


def gallery_verif(b: "ReportBuilder", r: RunResult) -> str:
    src = b.source(r)
    name = esc(b.label(r))
    if src is None:
        return f'<h4>{name}</h4><p class="note">No per-comparison scores in {esc(r.folder)}.</p>'
    e = src.errors()
    if isinstance(e, Missing):
        return f'<h4>{name}</h4><p class="note">No FAR = 1e-3 threshold: {esc(e.reason)}.</p>'
    genuine, impostor = src.hardest(GALLERY_SIZE)
    head = (f'<h4><span class="swatch" style="background:{b.colour_of(r)}"></span>{name}</h4>'
            f'<p class="note">Threshold {e.threshold:.4f} (FAR = 1e-3 by the mfrkit rule, accept iff score ≥ threshold): '
            f"{e.false_rejects:,} false reject(s) of {e.n_genuine:,} genuine, {e.false_accepts:,} false accept(s) of "
            f"{e.n_impostor:,} impostor comparisons.</p>")
    out = head + pair_grid(b, r, "Lowest-scoring genuine pairs", genuine, "false reject", "accepted")
    if isinstance(impostor, Missing):
        return out + (f'<h5>Highest-scoring impostor pairs</h5><p class="note missing">Not available: {esc(impostor.reason)}.</p>')
    note = ("Found by scoring the protocol again from the run's embeddings.parquet (an all-pairs run keeps impostor "
            "scores only as counts per bin); these scores may differ from the run's in the last float32 bits."
            if streamed(r.kind) else "")
    return out + pair_grid(b, r, "Highest-scoring impostor pairs", impostor, "false accept", "rejected", note)


def pair_grid(b: "ReportBuilder", r: RunResult, title: str, pairs: list[Comparison], bad: str, good: str, note: str = "") -> str:
    if not pairs:
        return f'<p class="note">{esc(title)}: none.</p>'
    tiles = []
    for c in pairs:
        left = b.images.crop(r, "reference", MANIFEST_ROLE["left_id"], c.left_id)
        right = b.images.crop(r, "probe", MANIFEST_ROLE["right_id"], c.right_id)
        badge = f'<span class="badge {"bad" if c.error else "ok"}">{bad if c.error else good}</span>'
        tiles.append(
            f'<figure class="pair">{picture(left, c.left_id)}{picture(right, c.right_id)}'
            f"<figcaption>{badge} score {c.score:.4f}<br><code>{esc(c.left_id)}</code> ({esc(c.left_identity)})<br>"
            f"<code>{esc(c.right_id)}</code> ({esc(c.right_identity)})</figcaption></figure>"
        )
    note = f'<p class="note">{esc(note)}</p>' if note else ""
    return f'<h5>{esc(title)}</h5>{note}<div class="grid">{"".join(tiles)}</div>'


def gallery_ident(b: "ReportBuilder", r: RunResult) -> str:
    name = esc(b.label(r))
    df = read_table(r.folder, "probes.csv")
    if df is None:
        return f'<h4>{name}</h4><p class="note">No probes.csv in {esc(r.folder)}.</p>'
    df = df[~df["fta"].astype(str).str.lower().isin(["true", "1"])] if "fta" in df else df
    mated = df[df["mated"].astype(str).str.lower().isin(["true", "1"])].copy()
    mated["rank_sort"] = pd.to_numeric(mated["rank"], errors="coerce").fillna(np.inf)
    misses = mated.sort_values(["rank_sort", "mated_score", "probe_id"], ascending=[False, True, True], kind="stable").head(GALLERY_SIZE)
    non = df[~df["mated"].astype(str).str.lower().isin(["true", "1"])].sort_values(["best_score", "probe_id"], ascending=[False, True], kind="stable").head(GALLERY_SIZE)
    tiles = []
    for row in misses.itertuples(index=False):
        pic = b.images.crop(r, "probe", "probe", str(row.probe_id))
        rank = "not in the candidate list" if not finite(row.rank_sort) else f"rank {int(row.rank_sort)}"
        badge = f'<span class="badge {"bad" if row.rank_sort > 1 else "ok"}">{rank}</span>'
        tiles.append(f'<figure class="single">{picture(pic, row.probe_id)}<figcaption>{badge}<br>mated score {fmt(row.mated_score)}'
                     f"<br><code>{esc(row.probe_id)}</code> ({esc(row.identity)})<br>top-1: {esc(row.top1)}</figcaption></figure>")
    tiles_non = []
    for row in non.itertuples(index=False):
        pic = b.images.crop(r, "probe", "probe", str(row.probe_id))
        tiles_non.append(f'<figure class="single">{picture(pic, row.probe_id)}<figcaption>best score {fmt(row.best_score)}'
                         f"<br><code>{esc(row.probe_id)}</code> ({esc(row.identity)})<br>top-1: {esc(row.top1)}</figcaption></figure>")
    out = f'<h4><span class="swatch" style="background:{b.colour_of(r)}"></span>{name}</h4>'
    out += f'<h5>Mated probes ranked worst</h5><div class="grid">{"".join(tiles)}</div>' if tiles else ""
    out += f'<h5>Non-mated probes scoring highest</h5><div class="grid">{"".join(tiles_non)}</div>' if tiles_non else ""
    return out


def fta_section(b: "ReportBuilder", p: "ProtocolResults") -> str:
    """The images of ``p`` that failed to acquire, one tile per image file, with their reasons."""
    blocks = []
    for r in p.results:
        df = read_table(r.folder, "fta.csv")
        n = 0 if df is None else len(df)
        reasons = r.fta.by_reason
        if not n:
            blocks.append(f'<p class="note">{esc(b.label(r))}: every image acquired.</p>')
            continue
        # One tile per image file: a protocol drawing both sides from one manifest lists
        # a failed image once per role.
        protocol = r.protocol_info
        images: dict[tuple, dict] = {}
        for row in df.itertuples(index=False):
            role = MANIFEST_ROLE.get(str(row.role), "probe")
            key = (protocol.manifest(role).get("path"), str(row.image_id))
            entry = images.setdefault(key, {"role": role, "id": str(row.image_id), "roles": [], "reasons": []})
            entry["roles"].append(str(row.role))
            entry["reasons"].append(str(row.reason))
        tiles = []
        for entry in list(images.values())[:FTA_SHOWN]:
            pic = b.images.thumbnail(r, entry["role"], entry["id"])
            reasons_text = ", ".join(dict.fromkeys(entry["reasons"]))
            tiles.append(f'<figure class="single fta">{picture(pic, entry["id"])}<figcaption><span class="badge bad">{esc(reasons_text)}</span>'
                         f"<br><code>{esc(entry['id'])}</code> ({esc(', '.join(entry['roles']))})</figcaption></figure>")
        more = f'<p class="note">… and {len(images) - FTA_SHOWN} more image(s) (see fta.csv).</p>' if len(images) > FTA_SHOWN else ""
        summary = ", ".join(f"{v} {k}" for k, v in sorted(reasons.items()))
        policy = r.fta.policy or "reject"
        blocks.append(f"<h4>{esc(b.label(r))}: {len(images)} image(s), {n} failure(s) to acquire by role "
                      f"({esc(summary)}; policy {esc(policy)})</h4><div class=\"grid\">{''.join(tiles)}</div>{more}")
    return f'<div class="fta-section"><h3>Failures to acquire</h3>{"".join(blocks)}</div>'
