"""The fake datasets the tests build, seeded: the same call writes the same files and
manifest every time. Each builder writes under the folder it is given.

- :func:`make_dataset`: identity folders of small noise PNGs (the bench, jobs and fuzz tests).
- :func:`face_like`, :func:`add_mask`, :func:`tiny_aligned_dataset`: aligned 112x112
  face-like textures, their masked copies and a manifest of both (the model tests).
- :func:`lfw_rows`, :func:`masked_rows`, :func:`partial_rows`, :func:`save`: manifests in
  LFW's layout and of its masked / partial copies, image files optional (the protocol tests).
- :func:`make_release`, :func:`make_masked_copy`: a small IJB-C release in insightface's
  layout and a masked copy of its crops (the IJB tests).
- :func:`sample_and_masked_copy`: the demo's real photos and their masked copy (the report tests).

:func:`write_rows` writes every one of their manifests.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from mfrkit.data.imageio import write_image
from mfrkit.data.manifest import Manifest, make_table, write_manifest


def write_rows(folder: Path, rows: list[dict], meta: dict) -> Manifest:
    """The manifest of ``rows`` (one dict per image) with ``meta``, written as
    ``folder/manifest.parquet``; returns it (its ``path`` set)."""
    manifest = Manifest(make_table(rows), meta)
    write_manifest(manifest, folder / "manifest.parquet")
    return manifest


def file_columns(data: bytes, width: int, height: int) -> dict:
    """The manifest columns of an image file's bytes: sha256, width, height (pixels), bytes."""
    return {"sha256": hashlib.sha256(data).hexdigest(), "width": width, "height": height, "bytes": len(data)}


# --- identity folders of noise images ---------------------------------------------------------------


def make_dataset(root: Path, *, n_ids: int = 4, per_id: int = 3, size: int = 24, seed: int = 0, masked_every: int = 0) -> Manifest:
    """Identity-folder PNGs: each identity a random base image, each capture the base plus noise.

    With ``masked_every`` > 0, every that-many-th capture is labelled a masked variant
    (``mask_type`` alternating surgical / cloth) so breakdowns have groups.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_ids):
        base = rng.integers(0, 256, (size, size, 3)).astype(np.int16)
        for j in range(per_id):
            img = np.clip(base + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)
            rel = f"id{i}/img{j}.png"
            data = write_image(root / rel, img)
            masked = masked_every > 0 and j % masked_every == masked_every - 1
            rows.append(
                {
                    "image_id": rel,
                    "path": rel,
                    "identity": f"id{i}",
                    "variant": "masked" if masked else "unmasked",
                    "mask_type": (("surgical", "cloth")[i % 2]) if masked else None,
                    "status": "ok",
                    **file_columns(data, size, size),
                }
            )
    return write_rows(root, rows, {"name": root.name, "root": "."})


# --- aligned face-like crops --------------------------------------------------------------------------

IDENTITIES = ("ada", "bob", "cyd")


def face_like(identity: int, capture: int, size: int = 112) -> np.ndarray:
    """A smooth random texture per identity plus a little per-capture noise and brightness."""
    base = np.random.default_rng([identity]).uniform(0, 255, size=(8, 8, 3)).astype(np.float32)
    img = cv2.resize(base, (size, size), interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng([identity, capture])
    img = img * rng.uniform(0.85, 1.15) + rng.normal(0, 8, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def add_mask(img: np.ndarray, color=(40, 90, 200)) -> np.ndarray:
    """``img`` with its lower 45% painted ``color`` (RGB): a stand-in for a mask."""
    out = img.copy()
    out[int(0.55 * img.shape[0]) :] = color
    return out


def tiny_aligned_dataset(root: Path) -> Manifest:
    """3 identities (:data:`IDENTITIES`) x 3 aligned 112x112 captures, a masked copy of
    each (``source_id``), two masked images without an identity, an attribute column with
    unknowns and one corrupt row, written under ``root``."""
    rows = []
    for i, name in enumerate(IDENTITIES):
        for c in range(3):
            img = face_like(i, c)
            rel = f"{name}/{name}_{c}.png"
            write_image(root / rel, img)
            rows.append({"image_id": rel, "path": rel, "identity": name, "variant": "unmasked", "status": "ok",
                         "width": 112, "height": 112, "glasses": float(c == 0)})
            mrel = f"masked/{name}_{c}.png"
            write_image(root / mrel, add_mask(img))
            rows.append({"image_id": mrel, "path": mrel, "identity": name, "variant": "masked", "source_id": rel,
                         "status": "ok", "width": 112, "height": 112, "glasses": float("nan")})
    for k in range(2):
        rel = f"unlabelled/u{k}.png"
        write_image(root / rel, add_mask(face_like(10 + k, 0)))
        rows.append({"image_id": rel, "path": rel, "identity": None, "variant": "masked", "status": "ok",
                     "width": 112, "height": 112, "glasses": 1.0})
    rows.append({"image_id": "broken.png", "path": "broken.png", "identity": "ada", "status": "corrupt"})
    return write_rows(root, rows, {"name": "tiny", "root": "."})


# --- manifests in LFW's layout ------------------------------------------------------------------------


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def lfw_rows(counts, prefix: str = "Person") -> list[dict]:
    """LFW layout: ``Name/Name_0001.jpg``; ``counts[i]`` images for identity i."""
    rows = []
    for i, n in enumerate(counts):
        name = f"{prefix}_{i:03d}"
        for k in range(1, n + 1):
            path = f"{name}/{name}_{k:04d}.jpg"
            rows.append({"image_id": path, "path": path, "identity": name, "variant": "unmasked",
                         "status": "ok", "sha256": _sha(path)})
    return rows


def masked_rows(base: list[dict], mask_types=("surgical", "cloth")) -> list[dict]:
    """One masked copy per mask type of every base image, linked by ``source_id``."""
    rows = []
    for r in base:
        for mt in mask_types:
            path = f"{mt}/{r['path'][:-4]}.png"
            rows.append({"image_id": path, "path": path, "identity": r["identity"], "variant": "masked",
                         "source_id": r["image_id"], "mask_type": mt, "status": "ok", "sha256": _sha(path)})
    return rows


def partial_rows(base: list[dict], regions=("Nose", "Mouth"), factors=(0.3,), centered=(False,)) -> list[dict]:
    rows = []
    for r in base:
        for region in regions:
            for f in factors:
                for c in centered:
                    path = f"{region}{'_centered' if c else ''}/factor_{f}/{r['path'][:-4]}.png"
                    rows.append({"image_id": path, "path": path, "identity": r["identity"], "variant": "partial",
                                 "source_id": r["image_id"], "region": region, "factor": f, "centered": c,
                                 "status": "ok", "sha256": _sha(path)})
    return rows


def save(folder: Path, rows: list[dict], name: str = "ds", images: bool = False) -> Manifest:
    """Write a manifest (and, with ``images``, a tiny PNG per row) under ``folder``."""
    folder = Path(folder)
    if images:
        for r in rows:
            img = np.full((8, 8, 3), hash(r["image_id"]) % 255, dtype=np.uint8)
            write_image(folder / r["path"], img)
    return write_rows(folder, rows, {"name": name})


# --- a small IJB-C release ---------------------------------------------------------------------------


def make_release(root: Path, *, n_subjects: int = 16, probes_per_subject: int = 4, seed: int = 0, size: int = 128,
                 noise: float = 25.0) -> Path:
    """A small IJB-C release in insightface's exact layout under ``root/IJBC``; returns that
    folder (about 240 faces).

    Writes ``IJBC/loose_crop/*.jpg`` and ``IJBC/meta/`` with the six files insightface's
    IJB scripts read, in their text formats. Each subject has a smooth random "face"
    texture; every face image is that texture under a random similarity warp plus noise,
    and its 5 points are the ArcFace template's points under the same warp (so alignment
    with them undoes the warp). Gallery templates go to G1 (first half of the subjects) or
    G2; every subject also has probe templates; medias group some faces.
    """
    from .insightface_ijb import SRC

    rng = np.random.default_rng(seed)
    base = root / "IJBC"
    (base / "loose_crop").mkdir(parents=True)
    (base / "meta").mkdir()
    faces, lmk, gal, prb = [], [], {"G1": [], "G2": []}, []
    tid, mid, img = 0, 10_000, 0
    textures = []
    for s in range(n_subjects):
        small = rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)
        textures.append(cv2.resize(small, (112, 112), interpolation=cv2.INTER_CUBIC))
    templates = []  # (template id, subject, kind)
    for s in range(n_subjects):
        templates.append((s, "G1" if s < n_subjects // 2 else "G2"))
        templates += [(s, "probe")] * probes_per_subject
    for s, kind in templates:
        tid += 1
        n_faces = int(rng.integers(1, 6))
        media = None
        for f in range(n_faces):
            if media is None or rng.random() < 0.5:
                mid += 1
                media = mid
            img += 1
            name = f"{img}.jpg"
            angle, scale = rng.normal(0, 8), rng.uniform(0.9, 1.1)
            shift = rng.normal(0, 4, 2) + (size - 112) / 2
            M = cv2.getRotationMatrix2D((56, 56), angle, scale)
            M[:, 2] += shift
            face = textures[s].astype(np.float32) + rng.normal(0, noise, (112, 112, 3))
            face = np.clip(face, 0, 255).astype(np.uint8)
            picture = cv2.warpAffine(face, M, (size, size), borderValue=(90, 90, 90))
            cv2.imwrite(str(base / "loose_crop" / name), picture[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
            pts = SRC @ M[:, :2].T + M[:, 2] + rng.normal(0, 0.3, (5, 2))
            score = rng.uniform(0.5, 1.0)
            faces.append(f"{name} {tid} {media}")
            lmk.append(" ".join([name] + [f"{v:.3f}" for v in pts.reshape(-1)] + [f"{score:.6f}"]))
            row = f"{tid},{s + 1},{name}"
            (gal[kind] if kind != "probe" else prb).append(row)
    meta = base / "meta"
    (meta / "ijbc_face_tid_mid.txt").write_text("\n".join(faces) + "\n")
    (meta / "ijbc_name_5pts_score.txt").write_text("\n".join(lmk) + "\n")
    for g, rows in gal.items():
        (meta / f"ijbc_1N_gallery_{g}.csv").write_text("TEMPLATE_ID,SUBJECT_ID,FILENAME\n" + "\n".join(rows) + "\n")
    (meta / "ijbc_1N_probe_mixed.csv").write_text("TEMPLATE_ID,SUBJECT_ID,FILENAME\n" + "\n".join(prb) + "\n")
    gallery_t = [(int(r.split(",")[0]), int(r.split(",")[1])) for rows in gal.values() for r in rows]
    probe_t = [(int(r.split(",")[0]), int(r.split(",")[1])) for r in prb]
    pairs = sorted({(g, p, int(gs == ps)) for g, gs in gallery_t for p, ps in probe_t})
    (meta / "ijbc_template_pair_label.txt").write_text("\n".join(f"{a} {b} {c}" for a, b, c in pairs) + "\n")
    return base


def make_masked_copy(release: Path, out: Path, *, skip_every: int = 0, keep_every: int = 1) -> Path:
    """A stand-in for ``mfrkit synth`` over the loose-crop manifest: each crop with its lower
    half painted (same size and geometry), ``source_id`` = the face's name, in a dataset
    folder with its own manifest; with ``skip_every`` every that-many-th face gets none
    (as synth finding no face), with ``keep_every`` only every that-many-th has one.
    Returns the manifest path."""
    rows = []
    names = [line.split(" ")[0] for line in (release / "meta" / "ijbc_face_tid_mid.txt").read_text().splitlines()]
    (out / "loose_crop").mkdir(parents=True)
    for k, name in enumerate(names):
        if (skip_every and k % skip_every == skip_every - 1) or k % keep_every:
            continue
        img = cv2.imread(str(release / "loose_crop" / name))
        img[img.shape[0] // 2:] = (200, 60, 40)
        rel = f"loose_crop/{Path(name).stem}_surgical.jpg"
        cv2.imwrite(str(out / rel), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        data = (out / rel).read_bytes()
        rows.append({"image_id": rel, "path": rel, "identity": None, "variant": "masked", "source_id": name,
                     "mask_type": "surgical", "status": "ok", **file_columns(data, img.shape[1], img.shape[0])})
    return write_rows(out, rows, {"name": "ijbc-masked", "root": "."}).path


# --- the demo's real photos -------------------------------------------------------------------------


def sample_and_masked_copy(root: Path) -> tuple[Path, Path]:
    """The demo-like data the report tests score: the sample of real photos plus an image
    without a face (a failure to acquire), scanned, and its masked copy (seed 0).
    Returns (sample manifest, masked manifest). Call with ``$MFRKIT_HOME`` set."""
    from mfrkit.data.manifest import MANIFEST_NAME
    from mfrkit.data.sample import build_sample
    from mfrkit.data.scan import scan_dataset
    from mfrkit.maskgen.synth_job import SynthConfig, synthesize

    sample = root / "sample"
    build_sample(sample, captures=4, seed=0)
    write_image(sample / "grace_hopper" / "blank.jpg", np.full((250, 250, 3), 128, np.uint8))  # no face in it
    manifest, _ = scan_dataset(sample, layout="imagefolder", name="demo")
    manifest.meta["root"] = "."
    write_manifest(manifest, sample / MANIFEST_NAME)
    synthesize(manifest, root / "masked", SynthConfig(seed=0))
    return sample / MANIFEST_NAME, root / "masked" / MANIFEST_NAME
