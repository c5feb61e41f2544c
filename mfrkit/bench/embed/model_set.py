"""The embed stage of a run: every image the run's protocols need, embedded once per
side of each model set (through the embedding cache, so a later run on another protocol
reuses them), with the landmarks and packs each model's alignment uses.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Sequence

import numpy as np
import pandas as pd

from ...alignments import get_alignment
from ...data.manifest import STATUS_OK
from ...jobs import ExecutorSpec
from ...landmarks.lookup import detect_landmarks, open_store
from ...onnx_model import ModelSet, OnnxModel
from ...packs.pack import open_pack, serves
from .images import ImageTable, Sides
from .pipeline import Embeddings, ImageRef, embed_images

#: ``(total, description) -> context manager giving advance(n)``: a progress bar.
ProgressFactory = Callable[[int, str], ContextManager[Callable[[int], None]]]


def no_progress(total: int, description: str):
    """A :data:`ProgressFactory` showing nothing."""
    return contextlib.nullcontext(lambda n=1: None)


@dataclass(frozen=True)
class EmbedOptions:
    """The embed stage's settings (``mfrkit bench`` options, see :class:`~mfrkit.bench.benchmark.BenchConfig`).

    Attributes
    ----------
    batch_size : images per model call.
    tta : None or ``flip``.
    cache_dir : embedding cache root; None disables it.
    landmarks : landmark backend whose cached landmarks align the faces; redetect : detect
        them on the images themselves.
    packs : pack folders whose crops are read instead of decoding and aligning.
    executor : where images are cropped and embedded: ``local``, this machine's pipeline
        of ``workers`` processes (None: automatic, :func:`mfrkit.crops.default_workers`;
        0: none), which also detect missing landmarks (None: one per CPU); ``ray``, Ray
        actors (0: one per CPU of the cluster).
    """

    batch_size: int = 64
    tta: str | None = None
    cache_dir: Path | None = None
    landmarks: str = "mediapipe"
    redetect: bool = False
    packs: Sequence[str] = field(default_factory=tuple)
    executor: ExecutorSpec = ExecutorSpec(workers=None)


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




def embed_model_set(ms: ModelSet, sides: list[Sides], images: ImageTable, opt: EmbedOptions, log: Callable[[str], None],
                    progress: ProgressFactory) -> tuple[Embeddings, Embeddings]:
    """Embeddings of every image the protocols need, per side of the model set (keyed by
    uid): ``(reference, probe)``, the same object for a model that is not a pair."""
    ref_uids = dict.fromkeys(u for s in sides for u in s.reference())
    probe_uids = dict.fromkeys(u for s in sides for u in s.probe())
    if not ms.heterogeneous:
        ref_uids.update(probe_uids)
    jobs = [(ms.reference, list(ref_uids))] + ([(ms.probe, list(probe_uids))] if ms.heterogeneous else [])
    stores: dict = {}
    packs = [open_pack(p) for p in opt.packs]
    if packs and opt.redetect:
        # A pack's crops follow the landmarks it was made with, not redetected ones.
        log("--redetect: packs are not used (their crops follow the landmarks they were made with)")
        packs = []
    out = [_embed_model(model, uids, images, stores, packs, opt, log, progress) for model, uids in jobs]
    return out[0], (out[1] if ms.heterogeneous else out[0])


def _embed_model(model: OnnxModel, uids: list, images: ImageTable, stores: dict, packs: list, opt: EmbedOptions,
                 log: Callable[[str], None], progress: ProgressFactory) -> Embeddings:
    """One model's embeddings of ``uids``, reading the landmark stores it needs (detecting
    what is not cached yet) and the packs that hold its crops."""
    if not uids:  # only protocols that embed their own images (IJB templates)
        return Embeddings(ids=[], vectors=np.zeros((0, 1), np.float32), status=np.array([], dtype=object))
    table = images.table
    needs = get_alignment(model.spec.align).needs_landmarks
    rows = table.loc[uids]
    lookup = None
    if needs:
        pending = [key for key in rows["manifest"].unique() if key and key not in stores]  # "": MISSING_UID
        if pending:
            # one line for all of them (a run over many protocols reads many manifests)
            shown = ", ".join(str(images.manifests[k].path) for k in pending[:2]) + (f" and {len(pending) - 2} more" if len(pending) > 2 else "")
            log(f"{opt.landmarks} landmarks of {len(pending)} manifest(s) (detecting any not cached yet): {shown}")
        for key in pending:
            if key not in stores:
                m = images.manifests[key]
                # Locally -j 0 means no worker processes here too (ExecutorSpec.local_workers).
                # backend_options None reuses whatever is cached (a masked copy's inherited
                # landmarks); {} asks for landmarks detected on these very pixels.
                detect_landmarks(m, opt.landmarks, executor=opt.executor,
                                 backend_options={} if opt.redetect else None)
                stores[key] = open_store(m, opt.landmarks)
        lookup = _landmark_lookup(table, stores)
    refs = [ImageRef(u, path, sha, status) for u, path, sha, status in zip(uids, rows["path"], rows["sha256"], rows["status"])]
    packed = _packed_crops(rows, images, packs, model.spec.align, opt.landmarks if needs else None)
    if packed:
        log(f"{model.name}: {len(packed)} of {len(refs)} crops read from packs")
    with progress(len(refs), f"embedding with {model.name}") as advance:
        emb = embed_images(
            model, refs, batch_size=opt.batch_size, tta=opt.tta, cache_dir=opt.cache_dir,
            landmark_backend=opt.landmarks if needs else None, landmark_lookup=lookup, progress=advance,
            executor=opt.executor, packed=packed,
        )  # fmt: skip
    # No rate when nothing was embedded (all from the cache): "0.0 img/s" read as a failure.
    rate = f" ({emb.images_per_second:.1f} img/s on {model.provider})" if emb.computed else ""
    log(
        f"{model.name}: {len(refs)} images, {emb.computed} embedded{rate}, {emb.cached} from cache, "
        f"{int((~emb.ok).sum())} images failed to acquire"
    )
    return emb
