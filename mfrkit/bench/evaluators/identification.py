"""The evaluator of 1:N identification protocols (kind ``identification``): ``gallery.csv``
(``image_id, identity, distractor``) and ``probes.csv`` (``image_id, identity, mated``,
and ``mate_id`` in MegaFace mode). Standard 1:N enrols one template per gallery
identity; MegaFace mode searches each probe against the distractors plus its own mate.
Metrics: CMC, rank-k, TPIR@FPIR (:func:`~mfrkit.bench.metrics.bundle.identification_metrics`).

Writes ``probes.csv`` (one row per probe: rank, scores, top-1, FtA), ``candidates.csv``
(each probe's top-k list) and the CMC plot.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...protocols import ProtocolError
from ..embed.images import MISSING_UID, ImageTable, Sides
from ..embed.pipeline import Embeddings
from ..metrics import bundle as E
from ..results.files import write_csv
from ..results.plots import plot_cmc
from ..score.search import identify, identify_with_distractors, identity_templates
from ..results import ProtocolInfo
from .base import EvalSettings, Evaluator, Outcome, ProtocolRun, count_text, protocol_uids
from .subset import Chosen, Selection, SubsetError


class IdentificationEvaluator(Evaluator):
    """Gallery / probe protocols: see the module docstring."""

    kind = "identification"

    def sides(self, protocol, images: ImageTable) -> Sides:
        ref, prb, uids = protocol.manifests["reference"], protocol.manifests["probe"], protocol_uids(images, protocol)
        mates = protocol.probes["mate_id"].tolist() if "mate_id" in protocol.probes else [""] * len(protocol.probes)
        return Sides(gallery=uids(ref, protocol.gallery["image_id"].tolist()),
                     probes=uids(prb, protocol.probes["image_id"].tolist()),
                     mates=uids(ref, mates))

    def fta_roles(self, sides: Sides) -> list[tuple[str, str, list]]:
        return [("gallery", "reference", sides.gallery + [u for u in sides.mates if u != MISSING_UID]),
                ("probe", "probe", sides.probes)]

    def describe(self, protocol) -> dict:
        mated = pd.to_numeric(protocol.probes["mated"]).astype(bool)
        return {"n_gallery": int(len(protocol.gallery)), "n_probes": int(len(protocol.probes)), "n_mated": int(mated.sum())}

    def summary(self, protocol: ProtocolInfo) -> str:
        return f"1:N, {count_text(protocol.n_gallery)} gallery images, {count_text(protocol.n_probes)} probes"

    def select(self, protocol, selection: Selection) -> Chosen:
        """The gallery images and probes that pass ``--where`` (a mated probe whose
        identity has no gallery image left is dropped; a MegaFace row needs its mate to
        pass too); ``--limit N``: N probe rows, the gallery kept whole."""
        gallery, probes = protocol.gallery, protocol.probes
        gal = gallery[selection.passes("reference", gallery["image_id"])].reset_index(drop=True)
        if not len(gal):
            raise SubsetError(f"{protocol.name}: {selection.request.text()} keeps no gallery image (of {len(gallery):,}); "
                              "loosen --where (the conditions apply to each image's manifest row)")
        keep = selection.passes("probe", probes["image_id"])
        mated = pd.to_numeric(probes["mated"]).astype(bool).to_numpy()
        mates = probes["mate_id"].fillna("").astype(str) if "mate_id" in probes else pd.Series("", index=probes.index)
        megaface = bool((mates != "").any())
        if megaface:
            keep &= ~mated | selection.passes("reference", mates)
        else:
            enrolled = set(_listed_identities(gal, protocol, "reference"))
            known = _listed_identities(probes, protocol, "probe")
            keep &= ~mated | known.isin(enrolled).to_numpy(bool)
        without_mate = int((selection.passes("probe", probes["image_id"]) & ~keep).sum())
        keys = (probes["image_id"].astype(str) + "\t" + mates).tolist()
        kept = probes[selection.sample(keys, keep)].reset_index(drop=True)
        detail = {"gallery": len(gal), "gallery_total": len(gallery), "mated": int(pd.to_numeric(kept["mated"]).sum()),
                  "mated_probes_without_gallery_mate": without_mate}
        return Chosen({"gallery": gal, "probes": kept}, "probes", len(kept), len(probes), detail)

    def evaluate(self, run: ProtocolRun) -> Outcome:
        prb, metrics, breakdowns, cand, device = _identification(run)
        cols = ["image_id", "identity", "mated"] + (["mate_id"] if "mate_id" in prb.columns else [])
        cols += ["rank", "mated_score", "best_score", "top1", "fta"]
        write_csv(run.folder / "probes.csv", prb[cols].rename(columns={"image_id": "probe_id"}))
        write_csv(run.folder / "candidates.csv", cand)
        if run.settings.plots and "cmc" in metrics:
            plot_cmc(run.folder, metrics["cmc"], run.title)
        return Outcome(metrics, breakdowns, device, None)


def _listed_identities(df: pd.DataFrame, protocol, role: str) -> pd.Series:
    """The identity text of each row of a gallery / probes table: the table's where given,
    else the ``role`` manifest's (as :func:`_identities`, before anything is embedded);
    None where neither has one."""
    images = protocol.images(role)
    known = df["image_id"].astype(str).map(images["identity"].to_dict() if "identity" in images else {})
    given = df["identity"].astype(object) if "identity" in df.columns else pd.Series(None, index=df.index, dtype=object)
    out = given.where(given.notna() & (given.astype(str).str.strip() != ""), known).astype(object)
    return out.map(lambda v: None if v is None or pd.isna(v) else str(v))


def _identities(df: pd.DataFrame, uids: list, images: ImageTable) -> pd.Series:
    """The protocol's identity column where given, else the manifest's."""
    known = pd.Series(images.table.loc[uids, "identity"].to_numpy(), index=df.index, dtype=object)
    if "identity" not in df.columns:
        return known
    given = df["identity"].astype(object)
    return given.where(given.notna() & (given.astype(str).str.strip() != ""), known)


def _identification(run: ProtocolRun):
    """Search every probe; returns (probes table, metrics, breakdowns, candidates, device)."""
    proto, s, ref, probe, images, cfg = run.protocol, run.sides, run.ref, run.probe, run.images, run.settings
    gal = proto.gallery.reset_index(drop=True).copy()
    prb = proto.probes.reset_index(drop=True).copy()
    prb["mated"] = pd.to_numeric(prb["mated"]).astype(bool)
    gal["identity"] = _identities(gal, s.gallery, images)
    prb["identity"] = _identities(prb, s.probes, images)
    pi = probe.rows(s.probes)
    megaface = any(u != MISSING_UID for u in s.mates)
    if megaface:
        res, names, extra = _search_distractors(proto, s, gal, prb, ref, probe, pi, cfg)
    else:
        res, names, extra = _search_templates(proto, s, gal, prb, ref, probe, pi, cfg)
    prb["rank"] = res.ranks
    prb["mated_score"] = res.mated_scores
    prb["best_score"] = res.best_scores
    prb["fta"] = ~probe.ok[pi]
    prb["top1"] = [names[t] if t >= 0 else None for t in res.top_index[:, 0]]
    prb = pd.concat([prb, run.attributes(s.probes).drop(columns=["identity"])], axis=1)
    use = prb if cfg.fta_policy == "reject" else prb[~prb["fta"]]
    metrics = E.identification_metrics(
        use["rank"].to_numpy(float), use["mated_score"].to_numpy(float), use["best_score"].to_numpy(float),
        use["mated"].to_numpy(bool), max_rank=cfg.max_rank, fpir_targets=cfg.far_targets, confidence=cfg.confidence,
    )  # fmt: skip
    metrics["n_fta_excluded"] = int(len(prb) - len(use))
    metrics.update(extra)
    breakdowns = E.identification_breakdowns(use, max_rank=cfg.max_rank, fpir_targets=cfg.far_targets)
    k = res.top_index.shape[1]
    cand = pd.DataFrame(
        {
            "probe_id": np.repeat(prb["image_id"].to_numpy(), k),
            "rank": np.tile(np.arange(1, k + 1), len(prb)),
            "candidate": [names[t] if t >= 0 else None for t in res.top_index.ravel()],
            "score": res.top_scores.ravel().astype(np.float64),
        }
    )
    return prb, metrics, breakdowns, cand[cand["candidate"].notna()], res.device


def _search_templates(proto, s: Sides, gal, prb, ref: Embeddings, probe: Embeddings, pi, cfg: EvalSettings):
    """Standard 1:N: one template per gallery identity."""
    if gal["identity"].isna().any():
        raise ProtocolError(f"protocol {proto.name}: gallery image {gal['image_id'][gal['identity'].isna()].iloc[0]!r} has no identity")
    gi = ref.rows(s.gallery)
    templates, names, lost = identity_templates(ref.vectors[gi], ref.ok[gi], gal["identity"].astype(str).to_numpy())
    enrolled = set(gal["identity"].astype(str))
    pos = {n: i for i, n in enumerate(names)}
    lost_set = set(lost.tolist())
    mate = np.full(len(prb), -1, np.int64)
    for j, (pid, ident, mated) in enumerate(zip(prb["image_id"], prb["identity"], prb["mated"])):
        ident = None if ident is None or pd.isna(ident) else str(ident)
        if mated:
            if ident is None or ident not in enrolled:
                raise ProtocolError(f"protocol {proto.name}: probe {pid!r} is marked mated but its identity {ident!r} is not in the gallery")
            mate[j] = pos[ident] if ident not in lost_set else -2
        elif ident is not None and ident in enrolled:
            raise ProtocolError(f"protocol {proto.name}: probe {pid!r} is marked non-mated but its identity {ident!r} is enrolled")
    res = identify(probe.vectors[pi], probe.ok[pi], templates, mate, k=cfg.max_rank, device=cfg.search_device)
    extra = {"gallery_identities": len(enrolled), "gallery_identities_without_template": sorted(lost_set)}
    return res, names, extra


def _search_distractors(proto, s: Sides, gal, prb, ref: Embeddings, probe: Embeddings, pi, cfg: EvalSettings):
    """MegaFace mode: each probe row against the gallery's distractors plus its own mate (``mate_id``)."""
    if "distractor" in gal.columns:
        is_d = pd.to_numeric(gal["distractor"]).astype(bool).to_numpy()
    else:
        is_d = ~gal["identity"].isin(set(prb["identity"].dropna())).to_numpy()
    d_uids = [u for u, d in zip(s.gallery, is_d) if d]
    di = ref.rows(d_uids)
    usable = ref.ok[di]
    distractors = ref.vectors[di][usable]
    names = [i for i, u in zip(gal["image_id"][is_d], usable) if u]
    mated = prb["mated"].to_numpy(bool)
    if (mated & (np.asarray(s.mates) == MISSING_UID)).any():
        raise ProtocolError(f"protocol {proto.name}: in a protocol with mate_id, every mated probe needs one")
    mi = np.array([ref.index[u] if u != MISSING_UID else 0 for u in s.mates], np.int64)
    mate_ok = mated & ref.ok[mi] & (np.asarray(s.mates) != MISSING_UID)
    res = identify_with_distractors(
        probe.vectors[pi], probe.ok[pi], distractors, ref.vectors[mi], mate_ok, k=cfg.max_rank, device=cfg.search_device,
    )  # fmt: skip
    res.ranks[~mated] = np.nan
    res.mated_scores[~mated] = np.nan
    extra = {"mode": "megaface", "distractors": int(len(d_uids)), "distractors_failed": int((~usable).sum())}
    return res, names, extra
