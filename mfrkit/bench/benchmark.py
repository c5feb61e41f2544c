"""``mfrkit bench``: models x protocols -> embeddings -> scores -> metrics -> run folder.

:func:`run_benchmark` is the one call behind the command. Per model it embeds every
image the protocols need once (through the embedding cache, so a later run on another
protocol reuses them), then scores and evaluates each protocol, applies the threshold
transfer, and writes the run folder and its leaderboard rows.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import platform
import re
import shutil
import uuid
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..alignments import get_alignment
from ..data.manifest import STATUS_OK
from ..errors import MfrkitError
from ..landmarks import BACKENDS
from ..landmarks.cache import detect_landmarks, open_store
from ..options import none_for, option, rates
from ..packs.pack import open_pack, serves
from . import evaluate as E
from . import metrics as M
from .all_pairs import ALL_PAIRS, AllPairsOutcome, evaluate_all_pairs
from .ijb_evaluate import RELEASE_POINTS, IjbOutcome, evaluate_ijb, write_ijb_files
from .ijb_evaluate import fta_table as ijb_fta_table
from .ijb_evaluate import throughput as ijb_throughput
from .ijb_scoring import IjbPooling
from .crops import default_workers
from .embed import TTA_MODES, Embeddings, ImageRef, embed_images
from .embedding_cache import default_cache_dir, preprocessing_key
from .images import ATTRIBUTES, MISSING_UID, ImageTable
from .leaderboard import leaderboard_row, write_leaderboard
from .onnx_model import ModelSet, load_models
from .plots import plot_cmc, plot_roc_det, plot_verification
from .protocol_io import (
    VERIFICATION,
    ProtocolError,
    describe_protocol,
    parse_manifest_options,
    resolve_protocol,
)
from .embeddings_file import EMBEDDINGS_NAME, save_embeddings
from .result_notes import provenance_warning, short_far, smallest_supported_far
from .results import METRICS_NAME, write_csv, write_json
from .search import (
    SEARCH_DEVICES,
    identify,
    identify_with_distractors,
    identity_templates,
    pair_scores,
)

FTA_POLICIES = ("reject", "exclude")
#: The IJB template protocol kind (:mod:`mfrkit.protocols.ijb`).
IJB = "ijb-templates"

ProgressFactory = Callable[[int, str], ContextManager[Callable[[int], None]]]


class BenchError(MfrkitError):
    """A benchmark run cannot go ahead (settings, missing landmarks, protocol/manifest mismatch)."""


@dataclass
class BenchConfig:
    """Settings of one ``mfrkit bench`` run. Each field declares its ``mfrkit bench``
    option (:func:`mfrkit.options.option`): flag, help and parsing live here only.

    Attributes
    ----------
    models : model files or folders (see :func:`~mfrkit.bench.onnx_model.load_models`).
    protocols : protocol folders or spec names (see :func:`mfrkit.protocols.resolve_protocol`).
    probe_model : the probe half of a heterogeneous model given as two files.
    manifests : ``--manifest`` values, ``PATH`` (both roles) or ``reference=PATH`` /
        ``probe=PATH``, instead of the paths recorded in ``protocol.json``.
    out : results root; the run goes in ``out/<run_id>``.
    provider : ``auto`` | ``cuda`` | ``cpu`` (onnxruntime).
    batch_size, workers (None: automatic), tta (None or ``flip``), threads (onnxruntime).
    model_options : preprocessing keys overriding the model's metadata; sidecar : a JSON of them.
    landmarks : landmark backend whose cached landmarks align the faces.
    cache_dir : embedding cache root; None disables it (default: :func:`default_cache_dir`).
    fta_policy : ``reject`` (FtA comparisons are rejections, the default) or ``exclude``
        (left out of the metrics, still counted and listed).
    far_targets, max_rank, search_device, n_boot, seed, confidence : metric settings.
    transfer_from, transfer_far : the threshold for ``transfer_far`` on the 1:1 protocol
        called ``transfer_from`` (or, when none is, the only one of that spec, so
        ``umr-ump`` finds ``protocols/lfw-umr-ump``) is applied to every other 1:1
        protocol of the run.
    plots : write PNG plots.
    rules : the rule set the leaderboard shows (``mfrkit`` or ``insightface``, see
        :data:`~mfrkit.bench.metrics.RULE_SETS`); metrics.json always holds both.
    save_embeddings : write ``embeddings.parquet`` per model into the run folder.
    report : write ``report.html`` (:mod:`mfrkit.bench.report`) into the run folder.
    """

    models: list[str] = option(flags="--model", help="ONNX model, or a folder of models (repeatable).")
    protocols: list[str] = option(
        flags="--protocol",
        help="Protocol: a registered name (or a unique suffix of one, e.g. mr-mp), a protocol folder, or a spec "
        "drawn from --manifest: SPEC (1:1) or SPEC:closed|open|megaface (1:N); repeatable.",
    )  # fmt: skip
    probe_model: str | None = option(None, help="Probe half of a heterogeneous model; --model is then the reference half.")
    manifests: list[str] = option(
        default_factory=list, flags="--manifest", short="-m",
        help="Manifest instead of the path in protocol.json: PATH (both roles) or reference=PATH / probe=PATH (repeatable).",
    )  # fmt: skip
    out: Path = option(Path("runs"), short="-o", help="Results root; the run goes in OUT/<run id>.")
    provider: str = option("auto", help="onnxruntime provider: auto, cuda or cpu.")
    batch_size: int = option(64, flags="--batch", min=1, help="Images per model call.")
    workers: int | None = option(None, short="-j", min=0, help="Pipeline worker processes (default: automatic; 0: none).")
    tta: str | None = option(None, parse=none_for("none"), show_default="none", help="Test-time augmentation: none or flip.")
    threads: int = option(0, min=0, help="onnxruntime intra-op threads (0: its default).")
    model_options: dict = option(
        default_factory=dict, help="Preprocessing keys overriding the model's metadata.",
        entries={
            "input_size": "Override mfrkit.input_size, e.g. 112 or 112,112.",
            "color": "Override mfrkit.color: RGB or BGR.",
            "mean": "Override mfrkit.mean (0-255 units), e.g. 127.5.",
            "std": "Override mfrkit.std (0-255 units), e.g. 127.5.",
            "align": "Override mfrkit.align: arcface<S> or arcface<S>p<P> (S up to 2048 px, P up to 100 %; e.g. arcface112, arcface160p30), dlib150 or none.",
        },
    )  # fmt: skip
    sidecar: str | None = option(None, flags="--model-meta", help="Sidecar JSON with the mfrkit.* keys of a third-party model.")
    landmarks: str = option("mediapipe", help="Landmark backend whose (cached) landmarks align the faces.")
    redetect: bool = option(
        False, negatable=False,
        help="Detect landmarks on the images themselves, replacing landmarks a masked copy inherited from its "
        "source photos (what a deployed system would do; the default uses the inherited ones, as MLFW does).",
    )  # fmt: skip
    packs: list[str] = option(
        default_factory=list, flags="--pack",
        help="A pack (mfrkit pack) of a manifest the protocols use: its crops are read instead of decoding and aligning the photos (repeatable).",
    )  # fmt: skip
    cache_dir: Path | None = option(
        default_factory=default_cache_dir, flags="--cache", switches={"--no-cache": None},
        help="Embedding cache folder (default $MFRKIT_HOME/cache/embeddings).",
    )  # fmt: skip
    fta_policy: str = option("reject", flags="--fta", help="Failures to acquire: reject (scored as rejections) or exclude (left out, still counted).")
    far_targets: tuple = option(M.DEFAULT_FAR_TARGETS, flags="--far", parse=rates, help="FAR/FPIR targets, comma-separated.")
    max_rank: int = option(20, min=1, help="1:N candidate-list length and CMC range.")
    search_device: str = option("auto", help="1:N search and all-pairs scoring: auto, cuda (torch) or cpu (numpy).")
    n_boot: int = option(1000, flags="--bootstrap", min=0, help="Identity-bootstrap replicates (0: none).")
    seed: int = option(0, help="Seed of the bootstrap.")
    confidence: float = option(0.95, help="Confidence level of every interval (Clopper-Pearson and bootstrap).")
    transfer_from: str | None = option(
        "umr-ump", parse=none_for(""),
        help="Protocol (its name, or its spec when one protocol of the run has it) whose threshold is applied to the "
        "other 1:1 protocols ('' to skip).",
    )  # fmt: skip
    transfer_far: float = option(1e-4, help="FAR at which that threshold is chosen.")
    ijb_pooling: str = option("flip,norm,detector", help="IJB template protocols: insightface's pooling switches, "
                              "comma-separated: flip (flip test), norm (embedding norm weights the face), detector "
                              "(detector score weights it); none for plain averages.")
    plots: bool = option(True, help="Write ROC/DET/CMC plots.")
    rules: str = option("mfrkit", help="Rule set the leaderboard shows: mfrkit (conservative TAR@FAR, midpoint "
                        "thresholds) or insightface (nearest ROC point, threshold grid on squared L2 distance, std "
                        "ddof=0); metrics.json always holds both.")
    save_embeddings: bool = option(False, negatable=False, help="Write embeddings.parquet per model into the run "
                                   "folder (FtA rows with a null embedding and their reason).")
    report: bool = option(True, help="Write report.html, the HTML report of the run, into the run folder.")
    executor: str = option("local", help="Where images are cropped and embedded: local (this machine's pipeline) or ray (Ray actors holding one ONNX session each; one GPU each with --provider cuda when the cluster has GPUs).")
    ray_address: str | None = option(None, help="Ray cluster to join ('auto', host:port, ray://host:10001); none starts a local Ray instance.")

    def executor_spec(self):
        """The embedding step's executor (None: the local pipeline)."""
        if self.executor == "local":
            return None
        from ..jobs import ExecutorSpec

        return ExecutorSpec(self.executor, workers=self.workers or 0, address=self.ray_address)


@dataclass
class BenchRun:
    """What a run produced: its folder, one result dict per (model, protocol), the leaderboard rows."""

    folder: Path
    results: list[dict]
    leaderboard: pd.DataFrame


def _no_progress(total: int, description: str):
    return contextlib.nullcontext(lambda n=1: None)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("._") or "unnamed"


# --- images -----------------------------------------------------------------------------------------


@dataclass
class _Sides:
    """uids a protocol uses, by side: ``reference`` (left, gallery, mates), ``probe`` (right, probes)."""

    left: list = field(default_factory=list)
    right: list = field(default_factory=list)
    gallery: list = field(default_factory=list)
    probes: list = field(default_factory=list)
    mates: list = field(default_factory=list)

    def reference(self) -> list:
        return self.left + self.gallery + [u for u in self.mates if u != MISSING_UID]

    def probe(self) -> list:
        return self.right + self.probes


def _sides(proto, images: ImageTable) -> _Sides:
    ref, prb = proto.manifests["reference"], proto.manifests["probe"]
    what = f"protocol {proto.name}"
    if proto.kind == ALL_PAIRS:
        return _Sides(
            left=images.uids(ref, proto.reference_images["image_id"].tolist(), what=what),
            right=images.uids(prb, proto.probe_images["image_id"].tolist(), what=what),
        )
    if proto.kind == IJB:  # its faces are embedded by its own evaluation (the release's 5 points, raw)
        return _Sides()
    if proto.kind == VERIFICATION:
        return _Sides(
            left=images.uids(ref, proto.pairs["left_id"].tolist(), what=what),
            right=images.uids(prb, proto.pairs["right_id"].tolist(), what=what),
        )
    mates = proto.probes["mate_id"].tolist() if "mate_id" in proto.probes else [""] * len(proto.probes)
    return _Sides(
        gallery=images.uids(ref, proto.gallery["image_id"].tolist(), what=what),
        probes=images.uids(prb, proto.probes["image_id"].tolist(), what=what),
        mates=images.uids(ref, mates, what=what),
    )


def _landmark_lookup(table: pd.DataFrame, stores: dict) -> Callable[[Sequence[ImageRef]], list]:
    """Landmarks (points only) of a few images, each from its manifest's landmark store:
    the bench reads the landmarks of a chunk when it embeds that chunk."""

    def lookup(refs: Sequence[ImageRef]) -> list:
        rows = table.loc[[r.image_id for r in refs], ["manifest", "image_id"]]
        out: list = [None] * len(refs)
        for key, group in rows.reset_index(drop=True).groupby("manifest", sort=False):
            if key in stores:
                found = stores[key].get(group["image_id"].tolist(), mesh=False)
                for pos, image_id in zip(group.index, group["image_id"]):
                    out[pos] = found.get(image_id)
        return out

    return lookup


def _packed_crops(rows: pd.DataFrame, images: ImageTable, packs: list, align: str, landmarks: str | None) -> dict:
    """Position in ``rows`` -> (pack, pack row) for the images a pack can crop for this
    model: a pack made from the same manifest (same fingerprint), whose alignment serves
    the model's, with the same landmark backend, and whose crop of the image is ok."""
    if not packs:
        return {}
    usable = []
    for pack in packs:
        if not any(serves(a, align) for a in pack.alignments) or (landmarks is not None and pack.info.get("landmarks") != landmarks):
            continue
        usable.append(pack)
    out: dict = {}
    if not usable:
        return out
    fingerprints = {key: m.fingerprint() for key, m in images.manifests.items() if key}
    for pos, (key, image_id) in enumerate(zip(rows["manifest"], rows["image_id"])):
        for pack in usable:
            if pack.info["source"]["fingerprint"] == fingerprints.get(key) and pack.has(image_id):
                row = pack.row(image_id)
                if pack.index["crop_status"].iat[row] == STATUS_OK:
                    out[pos] = (pack, row)
                    break
    return out


def _embed_for(ms: ModelSet, sides: list[_Sides], images: ImageTable, cfg: BenchConfig, log, progress: ProgressFactory):
    """Embeddings of every image the protocols need, per side of the model set (keyed by uid)."""
    ref_uids = dict.fromkeys(u for s in sides for u in s.reference())
    probe_uids = dict.fromkeys(u for s in sides for u in s.probe())
    if not ms.heterogeneous:
        ref_uids.update(probe_uids)
    jobs = [(ms.reference, list(ref_uids))] + ([(ms.probe, list(probe_uids))] if ms.heterogeneous else [])
    out = []
    stores: dict = {}
    table = images.table
    packs = [open_pack(p) for p in cfg.packs]
    if packs and cfg.redetect:
        # A pack's crops follow the landmarks it was made with, not redetected ones.
        log("--redetect: packs are not used (their crops follow the landmarks they were made with)")
        packs = []
    for model, uids in jobs:
        if not uids:  # only protocols that embed their own images (IJB templates)
            out.append(Embeddings(ids=[], vectors=np.zeros((0, 1), np.float32), status=np.array([], dtype=object)))
            continue
        needs = get_alignment(model.spec.align).needs_landmarks
        rows = table.loc[uids]
        lookup = None
        if needs:
            for key in rows["manifest"].unique():
                if not key:
                    continue  # MISSING_UID
                if key not in stores:
                    m = images.manifests[key]
                    log(f"{cfg.landmarks} landmarks of {m.path} (detecting any not cached yet)")
                    # -j 0 means no worker processes here too
                    lm_workers = (os.cpu_count() or 1) if cfg.workers is None else max(1, cfg.workers)
                    # backend_options None reuses whatever is cached (a masked copy's inherited
                    # landmarks); {} asks for landmarks detected on these very pixels.
                    detect_landmarks(m, cfg.landmarks, workers=lm_workers, executor=cfg.executor_spec(),
                                     backend_options={} if cfg.redetect else None)
                    stores[key] = open_store(m, cfg.landmarks)
            lookup = _landmark_lookup(table, stores)
        refs = [ImageRef(u, path, sha, status) for u, path, sha, status in zip(uids, rows["path"], rows["sha256"], rows["status"])]
        packed = _packed_crops(rows, images, packs, model.spec.align, cfg.landmarks if needs else None)
        if packed:
            log(f"{model.name}: {len(packed)} of {len(refs)} crops read from packs")
        workers = cfg.workers if cfg.workers is not None else default_workers(model.provider, len(refs) - len(packed))
        with progress(len(refs), f"embedding with {model.name}") as advance:
            emb = embed_images(
                model, refs, batch_size=cfg.batch_size, workers=workers, tta=cfg.tta, cache_dir=cfg.cache_dir,
                landmark_backend=cfg.landmarks if needs else None, landmark_lookup=lookup, progress=advance,
                executor=cfg.executor_spec(), packed=packed,
            )  # fmt: skip
        # No rate when nothing was embedded (all from the cache): "0.0 img/s" read as a failure.
        rate = f" ({emb.images_per_second:.1f} img/s on {model.provider})" if emb.computed else ""
        log(
            f"{model.name}: {len(refs)} images, {emb.computed} embedded{rate}, {emb.cached} from cache, "
            f"{int((~emb.ok).sum())} images failed to acquire"
        )
        out.append(emb)
    return out[0], (out[1] if ms.heterogeneous else out[0])


# --- per-protocol evaluation -----------------------------------------------------------------------


def _attributes(images: ImageTable, uids: list, prefix: str = "") -> pd.DataFrame:
    attrs = images.table.loc[uids, list(ATTRIBUTES)].reset_index(drop=True)
    return attrs.add_prefix(prefix)


def _verification(proto, s: _Sides, ref: Embeddings, probe: Embeddings, images: ImageTable, cfg: BenchConfig):
    pairs = proto.pairs[["fold", "left_id", "right_id", "label"]].reset_index(drop=True).copy()
    pairs["label"] = pd.to_numeric(pairs["label"]).astype(int)
    li, ri = ref.rows(s.left), probe.rows(s.right)
    scores = pair_scores(ref.vectors, probe.vectors, left_index=li, right_index=ri, left_ok=ref.ok, right_ok=probe.ok)
    pairs["score"] = scores
    pairs["fta"] = np.isneginf(scores)
    pairs = pd.concat([pairs, _attributes(images, s.left, "left_"), _attributes(images, s.right, "right_")], axis=1)
    use = pairs if cfg.fta_policy == "reject" else pairs[~pairs["fta"]]
    clusters = use["left_identity"].where(use["left_identity"].notna(), use["left_id"]).astype(str).to_numpy()
    metrics = E.verification_metrics(
        use["label"].to_numpy(), use["score"].to_numpy(), use["fold"].to_numpy(), clusters,
        far_targets=cfg.far_targets, n_boot=cfg.n_boot, seed=cfg.seed, confidence=cfg.confidence,
    )  # fmt: skip
    metrics["n_fta_excluded"] = int(len(pairs) - len(use))
    breakdowns = E.verification_breakdowns(use, thresholds=E.overall_thresholds(metrics), far_targets=cfg.far_targets)
    return pairs, use, metrics, breakdowns


def _identities(df: pd.DataFrame, uids: list, images: ImageTable) -> pd.Series:
    """The protocol's identity column where given, else the manifest's."""
    known = pd.Series(images.table.loc[uids, "identity"].to_numpy(), index=df.index, dtype=object)
    if "identity" not in df.columns:
        return known
    given = df["identity"].astype(object)
    return given.where(given.notna() & (given.astype(str).str.strip() != ""), known)


def _identification(proto, s: _Sides, ref: Embeddings, probe: Embeddings, images: ImageTable, cfg: BenchConfig):
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
    prb = pd.concat([prb, _attributes(images, s.probes).drop(columns=["identity"])], axis=1)
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
    return prb, use, metrics, breakdowns, cand[cand["candidate"].notna()], res.device


def _search_templates(proto, s, gal, prb, ref, probe, pi, cfg):
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


def _search_distractors(proto, s, gal, prb, ref, probe, pi, cfg):
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


# --- the run -----------------------------------------------------------------------------------------


def _validate(cfg: BenchConfig) -> None:
    if cfg.fta_policy not in FTA_POLICIES:
        raise BenchError(f"unknown FtA policy {cfg.fta_policy!r}; choose one of: {', '.join(FTA_POLICIES)}")
    if cfg.tta not in TTA_MODES:
        raise BenchError(f"unknown test-time augmentation {cfg.tta!r}; choose none or flip")
    if cfg.batch_size < 1:
        raise BenchError(f"batch size must be >= 1, got {cfg.batch_size}")
    IjbPooling.parse(cfg.ijb_pooling)  # a bad switch is named before anything runs
    if cfg.max_rank < 1:
        raise BenchError(f"max rank must be >= 1, got {cfg.max_rank}")
    if not cfg.protocols:
        raise BenchError("no protocol given: pass --protocol (a protocol folder or a spec name)")
    if cfg.n_boot == 1 or cfg.n_boot < 0:
        raise BenchError(f"bootstrap replicates must be 0 (none) or >= 2, got {cfg.n_boot}")
    if cfg.search_device not in SEARCH_DEVICES:
        raise BenchError(f"unknown search device {cfg.search_device!r}; choose one of: {', '.join(SEARCH_DEVICES)}")
    BACKENDS.get(cfg.landmarks)  # an unknown backend fails now, not after the models are loaded
    M.RULE_SETS.get(cfg.rules)
    from ..jobs import EXECUTORS

    EXECUTORS.get(cfg.executor)
    for what, path in (("results folder (--out)", cfg.out), ("embedding cache (--cache)", cfg.cache_dir)):
        if path is not None and Path(path).exists() and not Path(path).is_dir():
            raise BenchError(f"the {what} {path} is a file, not a folder")
    if not 0 < cfg.confidence < 1:
        raise BenchError(f"the confidence level must be between 0 and 1, got {cfg.confidence}")
    M._check_targets(cfg.far_targets)
    M._check_targets([cfg.transfer_far], "transfer_far")


def run_benchmark(
    cfg: BenchConfig,
    *,
    log: Callable[[str], None] | None = None,
    progress: ProgressFactory | None = None,
) -> BenchRun:
    """Benchmark every model of ``cfg`` on every protocol; write the run folder.

    Returns
    -------
    BenchRun
    """
    log = log or (lambda msg: None)
    progress = progress or _no_progress
    _validate(cfg)
    manifest_options = parse_manifest_options([str(m) for m in cfg.manifests])
    protocols = [resolve_protocol(p, manifest_options) for p in cfg.protocols]
    names = [p.name for p in protocols]
    if len(set(names)) != len(names):
        raise BenchError(f"protocol names repeat in this run: {names}")
    transfer_source = _transfer_source(protocols, cfg.transfer_from)
    transfer_far, transfer_note = _transfer_far(protocols, transfer_source, cfg)
    if transfer_note:
        log(f"warning: {transfer_note}")
    if transfer_far is None:
        transfer_source = None
    images = ImageTable()
    sides = [_sides(p, images) for p in protocols]
    model_sets = load_models(
        cfg.models, probe_model=cfg.probe_model, provider=cfg.provider, sidecar=cfg.sidecar,
        options=cfg.model_options, threads=cfg.threads,
    )  # fmt: skip
    seen: dict[str, int] = {}
    for ms in model_sets:
        seen[ms.name] = seen.get(ms.name, 0) + 1
        if (untrained := provenance_warning(ms.describe())) is not None:
            log(f"warning: {untrained}")
    now = _dt.datetime.now(_dt.timezone.utc)
    run_id = now.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    folder = Path(cfg.out) / run_id
    try:
        folder.mkdir(parents=True, exist_ok=False)
    except OSError as exc:
        raise BenchError(f"cannot create the run folder {folder}: {exc.strerror or exc}") from None
    settings = {
        k: v for k, v in asdict(cfg).items() if k not in ("models", "protocols", "probe_model", "manifests", "out")
    }
    settings["far_targets"] = list(cfg.far_targets)
    write_json(
        folder / "run.json",
        {
            "run_id": run_id,
            "created": now.isoformat(timespec="seconds"),
            "mfrkit_version": __version__,
            "settings": settings,
            "models": [ms.describe() for ms in model_sets],
            "protocols": [describe_protocol(p) for p in protocols],
            "environment": _environment(),
        },
    )
    with _failed_run_cleanup(folder):
        meta = {"run_id": run_id, "created": now.isoformat(timespec="seconds"), "mfrkit_version": __version__}
        results: list[dict] = []
        for ms in model_sets:
            log(f"model {ms.name}: onnxruntime provider {ms.provider}" + (" (heterogeneous pair)" if ms.heterogeneous else ""))
            ref, probe = _embed_for(ms, sides, images, cfg, log, progress)
            mdir = folder / (_safe_name(ms.name) + (f"-{ms.sha256[:8]}" if seen[ms.name] > 1 else ""))
            common = {
                **meta,
                "model": ms.describe(),
                "settings": {**settings, "batch_size": cfg.batch_size},
                "preprocessing": _preprocessing(ms, cfg),
                "throughput": _throughput(ms, ref, probe),
            }
            if cfg.save_embeddings:
                save_embeddings(mdir / EMBEDDINGS_NAME, ms, protocols, sides, ref, probe, images)
            # the transfer source goes first: all-pairs protocols then get its threshold up
            # front and count at it in the same pass over their comparisons
            per_model: list = [None] * len(protocols)
            hint = None
            for i in sorted(range(len(protocols)), key=lambda i: protocols[i].name != transfer_source):
                proto, s = protocols[i], sides[i]
                per_model[i] = _run_protocol(
                    proto, s, ref, probe, images, cfg, common, mdir / _safe_name(proto.name),
                    f"{ms.name} on {proto.name}", models=(ms.reference, ms.probe),
                    transfer=(transfer_far if proto.name == transfer_source else None,
                              None if hint is None else hint["threshold"]),
                    progress=progress, log=log,
                )  # fmt: skip
                if proto.name == transfer_source:
                    hint = _source_threshold(per_model[i][1], transfer_far)
            _apply_transfer(per_model, transfer_source, transfer_far, note=transfer_note, asked=cfg.transfer_far)
            for res, _ in per_model:
                for metric, why in (res["metrics"].get("skipped") or {}).items():
                    log(f"{ms.name} on {res['protocol']['name']}: {metric} skipped: {why}")
                write_json(Path(res["path"]) / METRICS_NAME, res)
                results.append(res)
        board = pd.DataFrame([leaderboard_row(r) for r in results])
        write_leaderboard(board, csv=folder / "leaderboard.csv", md=folder / "leaderboard.md")
        if cfg.report:
            from .report import REPORT_NAME, write_report

            try:
                write_report([folder], folder / REPORT_NAME)
            except (MfrkitError, OSError) as exc:  # the run's results are written: keep them, say why
                log(f"report not written: {exc}")
        return BenchRun(folder=folder, results=results, leaderboard=board)


@contextlib.contextmanager
def _failed_run_cleanup(folder: Path):
    """A run that fails (an error, Ctrl-C) leaves no half-written run folder behind: when
    no (model, protocol) finished, the folder (made by this run, under a fresh id) is
    removed; otherwise its ``run.json`` gets ``"status": "failed"`` and the error, and the
    finished ``metrics.json`` files (each complete, written atomically) are kept."""
    try:
        yield
    except BaseException as exc:
        if not any(folder.rglob(METRICS_NAME)):
            shutil.rmtree(folder, ignore_errors=True)
        else:
            with contextlib.suppress(Exception):
                run = json.loads((folder / "run.json").read_text())
                run.update(status="failed", error=f"{type(exc).__name__}: {exc}")
                write_json(folder / "run.json", run)
        raise


def _throughput(ms: ModelSet, ref: Embeddings, probe: Embeddings) -> dict:
    parts = [ref] + ([probe] if ms.heterogeneous else [])
    seconds = sum(e.seconds for e in parts)
    computed = sum(e.computed for e in parts)
    return {
        "images_per_second": computed / seconds if seconds > 0 and computed else None,
        "computed": computed,
        "cached": sum(e.cached for e in parts),
        "seconds": seconds,
        "note": "pipeline + model, over the images of the run not found in the cache",
    }


def _run_protocol(proto, s: _Sides, ref, probe, images: ImageTable, cfg: BenchConfig, common: dict, pdir: Path, title: str,
                  *, transfer=(None, None), models=(None, None), progress: ProgressFactory = _no_progress,
                  log=lambda msg: None):
    """Score and evaluate one protocol, write its files; returns (result dict, what the
    threshold transfer reads: scored rows, an AllPairsOutcome, or None for 1:N).

    ``transfer``: (FAR whose threshold this protocol must find, being the transfer
    source; the source's threshold, known up front) -- both None when not needed."""
    pdir.mkdir(parents=True, exist_ok=True)
    fta_rows = _fta_rows(proto, s, ref, probe, images)
    res = {**common, "settings": dict(common["settings"]), "protocol": describe_protocol(proto)}
    # images: distinct images (one that serves both roles counts once); rows: fta.csv's
    # image x role entries; the comparisons they touch are metrics.n_fta
    res["fta"] = {
        "images": int(fta_rows.attrs.get("distinct", len(fta_rows))),
        "rows": int(len(fta_rows)),
        "by_reason": fta_rows.attrs.get("by_reason", {}),
        "policy": cfg.fta_policy,
    }
    use = None
    if proto.kind == ALL_PAIRS:
        source_far, threshold = transfer
        with progress(max(1, int(np.ceil(len(s.left) / 2048)) * int(np.ceil(len(s.right) / 2048))),
                      f"all-pairs scores of {proto.name}") as advance:
            use = evaluate_all_pairs(
                proto, s.left, s.right, ref, probe, (_attributes(images, s.left), _attributes(images, s.right)),
                far_targets=cfg.far_targets, fta_policy=cfg.fta_policy, device=cfg.search_device, seed=cfg.seed,
                confidence=cfg.confidence, transfer_far=source_far, thresholds=[] if threshold is None else [threshold],
                log=log, progress=advance,
            )  # fmt: skip
        metrics, breakdowns = use.metrics, use.breakdowns
        res["settings"]["search_device"] = use.device
        write_csv(pdir / "genuine.csv", use.genuine)
        write_csv(pdir / "histogram.csv", use.histogram)
        write_csv(pdir / "images.csv", use.images)
        if cfg.plots:
            plot_roc_det(pdir, *use.roc, title)
    elif proto.kind == IJB:
        use, metrics, breakdowns, fta_rows = _ijb(proto, models, cfg, pdir, title, transfer, progress, log)
        res["throughput"] = ijb_throughput(use)
        res["preprocessing"] = _ijb_preprocessing(models, cfg)
        res["fta"].update(images=int(len(fta_rows)), rows=int(len(fta_rows)),
                          by_reason=fta_rows["reason"].value_counts().to_dict() if len(fta_rows) else {})
    elif proto.kind == VERIFICATION:
        pairs, use, metrics, breakdowns = _verification(proto, s, ref, probe, images, cfg)
        res["settings"]["search_device"] = None
        write_csv(pdir / "scores.csv", pairs[["fold", "left_id", "right_id", "label", "score", "fta"]])
        if cfg.plots:
            plot_verification(pdir, use["label"].to_numpy(), use["score"].to_numpy(), title)
    else:
        prb, _, metrics, breakdowns, cand, device = _identification(proto, s, ref, probe, images, cfg)
        res["settings"]["search_device"] = device
        cols = ["image_id", "identity", "mated"] + (["mate_id"] if "mate_id" in prb.columns else [])
        cols += ["rank", "mated_score", "best_score", "top1", "fta"]
        write_csv(pdir / "probes.csv", prb[cols].rename(columns={"image_id": "probe_id"}))
        write_csv(pdir / "candidates.csv", cand)
        if cfg.plots and "cmc" in metrics:
            plot_cmc(pdir, metrics["cmc"], title)
    write_csv(pdir / "fta.csv", fta_rows)
    res.update(metrics=metrics, breakdowns=breakdowns, path=str(pdir))
    return res, use


def _ijb(proto, models, cfg: BenchConfig, pdir: Path, title: str, transfer, progress, log):
    """An IJB template protocol (:mod:`.ijb_evaluate`): (outcome, metrics, breakdowns, fta rows)."""
    source_far, threshold = transfer
    embed_options = {"batch_size": cfg.batch_size, "workers": cfg.workers if cfg.workers is not None else
                     default_workers(models[0].provider, len(proto.ijb.faces)), "cache_dir": cfg.cache_dir,
                     "executor": cfg.executor_spec()}
    use = evaluate_ijb(proto, models, pooling=IjbPooling.parse(cfg.ijb_pooling), embed_options=embed_options,
                       far_targets=cfg.far_targets, fta_policy=cfg.fta_policy, confidence=cfg.confidence,
                       max_rank=cfg.max_rank, transfer_far=source_far, thresholds=[] if threshold is None else [threshold],
                       progress=progress, log=log)
    write_ijb_files(use, pdir, title=title, plots=cfg.plots)
    return use, use.metrics, {}, ijb_fta_table(use)


def _fta_rows(proto, s: _Sides, ref: Embeddings, probe: Embeddings, images: ImageTable) -> pd.DataFrame:
    """image_id, role, reason of every image of the protocol that failed to acquire."""
    if proto.kind in (VERIFICATION, ALL_PAIRS):
        sides = (("reference", ref, s.left), ("probe", probe, s.right))
    else:
        sides = (("gallery", ref, s.gallery + [u for u in s.mates if u != MISSING_UID]), ("probe", probe, s.probes))
    rows, distinct = [], {}
    for role, emb, uids in sides:
        for uid in dict.fromkeys(uids):
            st = emb.status[emb.index[uid]]
            if st != STATUS_OK:
                rows.append({"image_id": images.table.at[uid, "image_id"], "role": role, "reason": str(st)})
                distinct.setdefault(uid, str(st))
    out = pd.DataFrame(rows, columns=["image_id", "role", "reason"])
    # an image of both roles is one image (a row per role in fta.csv)
    out.attrs["distinct"] = len(distinct)
    out.attrs["by_reason"] = pd.Series(list(distinct.values()), dtype=object).value_counts().to_dict()
    return out


def _transfer_source(protocols: list, wanted: str | None) -> str | None:
    """Name of the 1:1 protocol whose threshold is transferred: the one called ``wanted``,
    else the only one whose spec is ``wanted``; None when there is none."""
    if not wanted:
        return None
    verification = [p for p in protocols if p.kind in (VERIFICATION, ALL_PAIRS, IJB)]
    if any(p.name == wanted for p in verification):
        return wanted
    of_spec = [p.name for p in verification if p.spec == wanted]
    if len(of_spec) > 1:
        raise BenchError(f"{len(of_spec)} protocols of spec {wanted!r} in this run ({', '.join(of_spec)}): name the one "
                         "whose threshold is transferred with --transfer-from NAME ('' for none)")
    return of_spec[0] if of_spec else None


def _impostors(proto) -> int | None:
    """Impostor comparisons of a 1:1 protocol (None for 1:N)."""
    if proto.kind == VERIFICATION:
        return int((pd.to_numeric(proto.pairs["label"]) == 0).sum())
    if proto.kind == ALL_PAIRS:
        from ..protocols.all_pairs import protocol_counts

        return int(protocol_counts(proto)["impostor"])
    if proto.kind == IJB:
        return int((proto.info.get("counts") or {}).get("impostor") or 0)
    return None


def _transfer_far(protocols: list, source: str | None, cfg: BenchConfig) -> tuple[float | None, str | None]:
    """The FAR whose threshold is transferred, and a note when it is not the one asked:
    the threshold is chosen only where the source protocol has at least 1 / FAR impostor
    comparisons, else at the smallest of ``--far`` it resolves (None: none, no transfer)."""
    if source is None:
        return cfg.transfer_far, None
    proto = next(p for p in protocols if p.name == source)
    n = _impostors(proto) or 0
    if cfg.transfer_far * n >= 1 - 1e-9:
        return cfg.transfer_far, None
    best = smallest_supported_far(n, cfg.far_targets)
    need = f"{n:,} impostor comparisons, too few for a threshold at FAR={short_far(cfg.transfer_far)} (that needs " \
           f"{math.ceil(1 / cfg.transfer_far):,})"
    if best is None:
        return None, f"threshold transfer skipped: {source} has {need}, and no FAR of --far is resolved by it"
    return best, (f"threshold transfer: {source} has {need}; the threshold is taken at FAR={short_far(best)}, the "
                  "smallest FAR it resolves (--transfer-far asks for another)")


def _source_threshold(use, far_target: float) -> dict | None:
    """The transfer source's threshold for ``far_target``: ``far_target, threshold, far``."""
    if isinstance(use, (AllPairsOutcome, IjbOutcome)):
        return use.transfer_threshold
    if use is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.UndefinedMetricWarning)
        taf = M.tar_at_far(use["label"].to_numpy(), use["score"].to_numpy(), [far_target])
    return {"far_target": far_target, "threshold": float(taf.threshold[0]), "far": float(taf.far[0])}


def _apply_transfer(per_model: list[tuple[dict, object]], source_name: str | None, far_target: float, *,
                    note: str | None = None, asked: float | None = None) -> None:
    """Threshold for ``far_target`` on protocol ``source_name``, applied to the model's
    other 1:1 protocols, pair lists and all-pairs alike (recorded in their results as
    ``transfer``)."""
    verification = [(r, u) for r, u in per_model if u is not None]
    source = [(r, u) for r, u in verification if r["protocol"]["name"] == source_name]
    if not source:
        return
    sres, suse = source[0]
    src = _source_threshold(suse, far_target)
    threshold = src["threshold"]
    if note:  # the FAR asked could not be resolved by the source: say which was used and why
        src = {**src, "asked_far_target": asked, "note": note}
    sres["transfer_source"] = src
    for res, use in verification:
        if res is sres:
            continue
        if isinstance(use, (AllPairsOutcome, IjbOutcome)):
            rate = use.rates[float(threshold)]  # counted in its scan (the source went first)
            res["transfer"] = {"from": source_name, "far_target": far_target, **rate.as_dict()}
        else:
            res["transfer"] = E.transfer(source_name, threshold, far_target, use["label"].to_numpy(), use["score"].to_numpy())
        if note:
            res["transfer"]["asked_far_target"] = asked


def _preprocessing(ms: ModelSet, cfg: BenchConfig) -> dict:
    """What turned the images into model inputs, and a short key of it: two results with
    the same model, protocol and key were computed from the same inputs."""
    out = {}
    for side, model in (("reference", ms.reference), ("probe", ms.probe)):
        needs = get_alignment(model.spec.align).needs_landmarks
        # Redetected landmarks of masked copies give other crops than inherited ones: another entry.
        landmarks = (cfg.landmarks + ("+redetect" if cfg.redetect else "")) if needs else None
        out[side] = {**model.spec.preprocessing(), "tta": cfg.tta, "landmarks": landmarks}
    out["key"] = preprocessing_key({"reference": out["reference"], "probe": out["probe"]}, tta=cfg.tta, landmark_backend=None)[:12]
    return out


def _ijb_preprocessing(models, cfg: BenchConfig) -> dict:
    """:func:`_preprocessing` of an IJB protocol: the release's 5 points, the pooling's flip test."""
    pooling = IjbPooling.parse(cfg.ijb_pooling)
    out = {side: {**m.spec.preprocessing(), "tta": "flip" if pooling.flip else None, "landmarks": RELEASE_POINTS,
                  "ijb_pooling": pooling.text()} for side, m in zip(("reference", "probe"), models)}
    out["key"] = preprocessing_key({"reference": out["reference"], "probe": out["probe"]}, tta=None,
                                   landmark_backend=None)[:12]
    return out


def _environment() -> dict:
    import onnxruntime

    env = {"python": platform.python_version(), "platform": platform.platform(), "numpy": np.__version__}
    env["onnxruntime"] = onnxruntime.__version__
    env["onnxruntime_providers"] = onnxruntime.get_available_providers()
    from importlib.metadata import PackageNotFoundError, version

    try:
        env["torch"] = version("torch")
    except PackageNotFoundError:
        pass
    env["cuda_device"] = None
    if "CUDAExecutionProvider" in env["onnxruntime_providers"]:
        # Only then is there a device to name; importing torch costs ~180 MB of RSS.
        try:
            import torch

            env["cuda_device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        except ImportError:
            pass
    return env
