"""Synthetic identities: a check of the learning machinery, never a face-recognition benchmark.

No identity-labelled face dataset can be downloaded here, yet the model families must be
seen to learn to tell people apart. This module makes *K* identities out of the real
portraits that ship with the dependencies (astronaut Eileen Collins from scikit-image,
Grace Hopper from matplotlib; see :func:`mfrkit.data.sample.source_photos`):

* **identity** = one base photo + a fixed, smooth face-shape morph driven by its
  landmarks (eye spacing, nose length and width, mouth and jaw width, lower-face height;
  :class:`~mfrkit.face_warp.Morph`) + fixed appearance shifts (skin tone and hair
  colour, in CIELAB);
* **capture** = the identity seen in one session: head pose (yaw and pitch by turning
  the face mesh, roll), framing (scale and shift), lighting (brightness, contrast, a
  directional gradient, white balance), sensor noise, blur and JPEG quality.

Identities are split identity-disjointly into ``train`` and ``test``. Landmarks of the
base photos come from :mod:`mfrkit.landmarks` (the mediapipe mesh); captures are plain
JPEG photos that every later stage (landmarks, ``synth``, protocols, training, bench)
treats like any other dataset.

What this can and cannot say: every identity of a base photo shares that person's
skin texture, expression and hair style, and identities differ only in the few
parameters above, so accuracy here measures whether a training loop, its losses and
its export work (a broken loss stays at chance; a working one learns the morphs), not
how well a model recognises real people. Figures from it are labelled *synthetic*.

Output folder::

    <out>/train/<identity>/<identity>_0001.jpg ...   + manifest.parquet
    <out>/test/<identity>/...                        + manifest.parquet
    <out>/identities.csv        the parameters of every identity and its split
    <out>/README.md             what this folder is (and is not)

The build is a job on :mod:`mfrkit.jobs` (one item per identity): the same options and
seed give the same bytes whatever the executor or worker count, an interrupted build
resumes, a finished one is reused, and a folder mfrkit did not make (or made with other
options) is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from .. import __version__
from ..atomic import atomic_write_text
from ..errors import MfrkitError
from ..jobs import ExecutorSpec, Item, Job, OutputFolder, RunStats, read_marker, run_job
from ..rng import item_rng, keyed_rng
from ..userfiles import check_user_file
from ..face_warp import (
    FACE_OVAL,
    FaceFrame,
    Morph,
    anchor_points,
    backward_map,
    forward_points,
    hair_mask,
    morph_displacements,
    rotate_mesh,
    shift_lab,
    skin_mask,
    warp_image,
)
from ..data.imageio import encode_image
from ..data.manifest import MANIFEST_NAME, Manifest, make_table, read_manifest, write_manifest

#: Bump when the rendering changes: it is part of the folder's fingerprint.
GENERATOR_VERSION = 1
SPLITS = ("train", "test")
DESCRIPTION = (
    "SYNTHETIC identities, a check of the learning machinery, not a face-recognition benchmark: "
    "each identity is one of two real public-domain portraits shipped with the dependencies "
    "(Eileen Collins, Grace Hopper) with a fixed landmark-driven morph of its face shape (eye spacing, "
    "nose length and width, mouth and jaw width, face height) and fixed skin-tone and hair-colour shifts; "
    "each capture adds session variation (head pose, framing, lighting, noise, blur, JPEG)."
)

# Base photos are put on a canvas with the eyes level, IOD 48 px, eye midpoint at (160, 135):
# enough room around the head for the hair band and the fixed anchor ring.
CANVAS = (320, 320)
CANVAS_IOD = 48.0
CANVAS_EYES = (160.0, 135.0)
#: Captures: square, IOD about 40 px (ArcFace 112 crops need ~35 px), eyes at 42 % height.
CAPTURE_SIZE = 176
CAPTURE_IOD = 40.0


# --- base faces -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseFace:
    """A real portrait on the canvas with its face mesh.

    Attributes
    ----------
    name : str
    image : ndarray (320, 320, 3) uint8 RGB
    mesh : ndarray (478, 3) float32
        mediapipe mesh in canvas pixels (z on the x scale, smaller is nearer).
    """

    name: str
    image: np.ndarray = field(repr=False)
    mesh: np.ndarray = field(repr=False)


def base_faces(backend: str = "mediapipe") -> dict[str, BaseFace]:
    """The real portraits (:func:`mfrkit.data.sample.source_photos`) on the canvas, with the
    landmarks ``backend`` finds on them (a backend with a face mesh is required)."""
    from ..align import similarity_transform
    from ..landmarks import create_backend, detect_primary
    from ..data.sample import source_photos

    detector = create_backend(backend)
    if not getattr(detector, "has_mesh", False):
        raise MfrkitError(f"synthetic identities need a landmark backend with a face mesh (mediapipe), not {backend!r}")
    faces = {}
    for name, photo in source_photos().items():
        found = detect_primary(detector, photo)
        if found.landmarks is None or found.landmarks.mesh is None:
            raise MfrkitError(f"{backend} found no face mesh in the base photo {name!r}")
        eyes = found.landmarks.points5[:2].astype(np.float64)
        cx, cy = CANVAS_EYES
        target = np.array([[cx - CANVAS_IOD / 2, cy], [cx + CANVAS_IOD / 2, cy]])
        m = similarity_transform(eyes, target)
        image = cv2.warpAffine(photo, m, CANVAS[::-1], flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
        faces[name] = BaseFace(name=name, image=image, mesh=found.landmarks.transformed(m).mesh)
    return faces


# --- identities -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdentityParams:
    """One synthetic identity: base photo, face-shape morph and appearance shifts.

    Attributes
    ----------
    name : str
    base : str
        Name of the base photo.
    morph : Morph
    skin : (dL, da, db)
        CIELAB shift of the facial skin.
    hair : (dL, da, db)
        CIELAB shift of the hair band.
    """

    name: str
    base: str
    morph: Morph
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]

    def record(self) -> dict:
        """Flat columns for ``identities.csv``."""
        out = {"identity": self.name, "base": self.base}
        out.update({f"morph_{k}": v for k, v in asdict(self.morph).items()})
        out.update({f"skin_{c}": v for c, v in zip("Lab", self.skin)})
        out.update({f"hair_{c}": v for c, v in zip("Lab", self.hair)})
        return out


def sample_identity(rng: np.random.Generator, name: str, base: str) -> IdentityParams:
    """Draw the morph and appearance of one identity (ranges about twice what
    separates the two real faces' proportions, so morphs are visible at 112 px)."""
    morph = Morph(
        eye_spacing=float(rng.uniform(-0.12, 0.12)),
        nose_length=float(rng.uniform(-0.15, 0.15)),
        nose_width=float(rng.uniform(-0.25, 0.25)),
        mouth_width=float(rng.uniform(-0.2, 0.2)),
        jaw_width=float(rng.uniform(-0.15, 0.15)),
        face_height=float(rng.uniform(-0.12, 0.12)),
    )
    # Natural-looking directions only: no green skin or hair (a* stays above -3).
    skin = (float(rng.uniform(-22, 12)), float(rng.uniform(-3, 9)), float(rng.uniform(-7, 12)))
    hair = (float(rng.uniform(-35, 25)), float(rng.uniform(-3, 15)), float(rng.uniform(-10, 22)))
    return IdentityParams(name=name, base=base, morph=morph, skin=skin, hair=hair)


@dataclass(frozen=True)
class IdentityFace:
    """An identity rendered on the canvas: image (320, 320, 3) uint8 and its mesh (478, 3)."""

    params: IdentityParams
    image: np.ndarray = field(repr=False)
    mesh: np.ndarray = field(repr=False)

    @property
    def frame(self) -> FaceFrame:
        from ..landmarks.mediapipe_mesh import IRIS_IMAGE_LEFT, IRIS_IMAGE_RIGHT

        return FaceFrame.from_eyes(self.mesh[IRIS_IMAGE_LEFT, :2], self.mesh[IRIS_IMAGE_RIGHT, :2])


def _mesh_indices() -> tuple[np.ndarray, np.ndarray]:
    """Mesh vertices of the two iris centres (image-left first) and of the iBUG-68 points."""
    from ..landmarks.mediapipe_mesh import IRIS_IMAGE_LEFT, IRIS_IMAGE_RIGHT, ibug68_indices

    return np.array([IRIS_IMAGE_LEFT, IRIS_IMAGE_RIGHT]), ibug68_indices()


def render_identity(base: BaseFace, params: IdentityParams) -> IdentityFace:
    """Apply an identity's morph and appearance shifts to its base face."""
    iris, idx68 = _mesh_indices()
    xy = base.mesh[:, :2].astype(np.float64)
    frame = FaceFrame.from_eyes(xy[iris[0]], xy[iris[1]])
    d68 = morph_displacements(xy[idx68], frame, params.morph)
    # The iris centres ride with their eyes (eye points 36-41 and 42-47 move rigidly).
    src = np.vstack([xy[idx68], xy[iris]])
    dst = src + np.vstack([d68, d68[[36, 42]]])
    anchors = anchor_points(xy[list(FACE_OVAL)], CANVAS)
    map_x, map_y = backward_map(src, dst, anchors, CANVAS)
    image = warp_image(base.image, map_x, map_y)
    mesh = base.mesh.astype(np.float64).copy()
    mesh[:, :2] = forward_points(src, dst, anchors, xy)
    new_frame = FaceFrame.from_eyes(mesh[iris[0], :2], mesh[iris[1], :2])
    oval, p68 = mesh[list(FACE_OVAL), :2], mesh[idx68, :2]
    skin = skin_mask(CANVAS, oval, p68, new_frame.iod)
    image = shift_lab(image, skin, params.skin)
    image = shift_lab(image, hair_mask(CANVAS, oval, new_frame, skin), params.hair)
    return IdentityFace(params=params, image=image, mesh=mesh.astype(np.float32))


# --- captures -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionParams:
    """One capture's session variation (sampled by :func:`sample_session`).

    Angles in degrees, shifts in pixels, brightness in 8-bit levels; ``light_*`` is a
    directional gradient ``1 + strength * t`` with ``t`` in [-1, 1] across the image
    along ``light_angle``; gains multiply the red and blue channels; ``noise_seed``
    seeds the Gaussian sensor noise, so the parameters fix the image.
    """

    yaw: float
    pitch: float
    roll: float
    scale: float
    shift_x: float
    shift_y: float
    brightness: float
    contrast: float
    light_angle: float
    light_strength: float
    red_gain: float
    blue_gain: float
    noise_sigma: float
    noise_seed: int
    blur_sigma: float
    jpeg_quality: int


def sample_session(rng: np.random.Generator) -> SessionParams:
    """Draw one capture's session variation."""
    return SessionParams(
        yaw=float(rng.uniform(-25, 25)),
        pitch=float(rng.uniform(-12, 12)),
        roll=float(rng.uniform(-10, 10)),
        scale=float(rng.uniform(0.9, 1.12)),
        shift_x=float(rng.uniform(-8, 8)),
        shift_y=float(rng.uniform(-6, 6)),
        brightness=float(rng.uniform(-30, 30)),
        contrast=float(rng.uniform(0.75, 1.25)),
        light_angle=float(rng.uniform(0, 360)),
        light_strength=float(rng.uniform(0, 0.35)),
        red_gain=float(rng.uniform(0.92, 1.08)),
        blue_gain=float(rng.uniform(0.92, 1.08)),
        noise_sigma=float(rng.uniform(0, 4)),
        noise_seed=int(rng.integers(0, 2**31)),
        blur_sigma=float(rng.uniform(0.4, 1.4)) if rng.random() < 0.5 else 0.0,
        jpeg_quality=int(rng.integers(40, 96)),
    )


def capture_transform(face: IdentityFace, posed: np.ndarray, params: SessionParams, size: int = CAPTURE_SIZE) -> np.ndarray:
    """The (2, 3) affine map from canvas pixels to capture pixels: the posed eyes
    levelled, then rolled, zoomed and shifted as ``params`` says."""
    iris, _ = _mesh_indices()
    left, right = posed[iris[0]], posed[iris[1]]
    mid = (left + right) / 2
    angle = np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0]))
    scale = CAPTURE_IOD * params.scale / float(np.hypot(*(right - left)))
    m = cv2.getRotationMatrix2D((float(mid[0]), float(mid[1])), angle + params.roll, scale)
    m[:, 2] += np.array([size / 2 + params.shift_x, 0.42 * size + params.shift_y]) - mid
    return m


def render_capture(face: IdentityFace, params: SessionParams, size: int = CAPTURE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """One capture of ``face``: the image (size, size, 3) uint8 before JPEG coding, and
    where the mesh vertices landed in it, (478, 2) pixels."""
    from ..align import invert_affine, transform_points

    frame = face.frame
    posed = rotate_mesh(face.mesh, frame, params.yaw, params.pitch)
    m = capture_transform(face, posed, params, size)
    anchors = anchor_points(face.mesh[list(FACE_OVAL), :2], CANVAS)
    # Every second vertex is plenty for a smooth field and halves the spline's cost.
    map_x, map_y = backward_map(face.mesh[::2, :2], posed[::2], anchors, (size, size), out_to_dst=invert_affine(m))
    img = warp_image(face.image, map_x, map_y).astype(np.float32)
    img = (img - 128.0) * params.contrast + 128.0 + params.brightness
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    a = np.radians(params.light_angle)
    t = ((xs - size / 2) * np.cos(a) + (ys - size / 2) * np.sin(a)) / (size / 2)
    img *= (1.0 + params.light_strength * np.clip(t, -1, 1))[..., None]
    img *= np.array([params.red_gain, 1.0, params.blue_gain], np.float32)
    if params.noise_sigma > 0:
        img += keyed_rng(params.noise_seed).normal(0.0, params.noise_sigma, img.shape).astype(np.float32)
    if params.blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), params.blur_sigma)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8), transform_points(m, posed)


# --- the dataset (a job on mfrkit.jobs) ----------------------------------------------------------


@dataclass(frozen=True)
class SyntheticIdentities:
    """A built folder of synthetic identities.

    Attributes
    ----------
    out : Path
    train, test : Manifest
        Written manifests of the identity-disjoint splits (``meta.kind`` =
        ``synthetic-identities``).
    identities : DataFrame
        One row per identity: its parameters and ``split``.
    reused : bool
        The folder was already complete and nothing was rendered.
    """

    out: Path
    train: Manifest
    test: Manifest
    identities: pd.DataFrame
    reused: bool = False


@dataclass(frozen=True)
class IdentityItem(Item):
    """One identity to render with all its captures."""

    params: IdentityParams | None = None
    split: str = "train"


def split_identities(n_identities: int, n_test: int, seed: int) -> list[str]:
    """The split of each identity index: a seeded choice of ``n_test`` test identities."""
    test = set(keyed_rng(seed, 0x5EED).permutation(n_identities)[:n_test].tolist())
    return ["test" if i in test else "train" for i in range(n_identities)]


def capture_rel(split: str, name: str, k: int) -> str:
    """Path of capture ``k`` (1-based) of identity ``name``, relative to the job folder."""
    return f"{split}/{name}/{name}_{k:04d}.jpg"


class SyntheticIdentitiesJob(Job):
    """Render every identity and its captures (one item per identity)."""

    kind = "synthetic-identities"
    chunk_size = 4

    def __init__(self, out: str | os.PathLike, *, n_identities: int, captures: int, test_fraction: float, seed: int, size: int,
                 landmarks: str) -> None:  # fmt: skip
        if n_identities < 4 or captures < 2:
            raise MfrkitError(f"need at least 4 identities and 2 captures each, got {n_identities} and {captures}")
        if not 0.0 < test_fraction < 1.0:
            raise MfrkitError(f"test_fraction must be in (0, 1), got {test_fraction}")
        if not 64 <= size <= 1024:
            raise MfrkitError(f"capture size must be 64-1024 px, got {size}")
        n_test = min(n_identities - 2, max(2, int(round(test_fraction * n_identities))))
        self.out = Path(out)
        self.captures, self.seed, self.size = captures, seed, size
        self.bases = base_faces(landmarks)
        self.options = {"generator": GENERATOR_VERSION, "n_identities": n_identities, "captures": captures, "n_test": n_test,
                        "seed": seed, "size": size, "landmarks": landmarks}  # fmt: skip
        self.fingerprint = _fingerprint(self.options, self.bases)
        self._output = OutputFolder(self.out, kind=self.kind, fingerprint=self.fingerprint)
        names = sorted(self.bases)
        splits = split_identities(n_identities, n_test, seed)
        self.items = []
        for i in range(n_identities):
            name = f"sid{i:04d}"
            params = sample_identity(item_rng(seed, name, "identity"), name, names[i % len(names)])
            outputs = tuple(capture_rel(splits[i], name, k) for k in range(1, captures + 1))
            self.items.append(IdentityItem(key=name, outputs=outputs, params=params, split=splits[i]))

    def plan(self) -> list[IdentityItem]:
        return self.items

    def output(self) -> OutputFolder:
        return self._output

    def is_complete(self, rows: list[dict]) -> bool:
        return all((self.out / r["split"] / r["path"]).is_file() for r in rows if r.get("status") == "ok")

    def run_item(self, item: IdentityItem, state) -> list[dict]:
        params = item.params
        face = render_identity(self.bases[params.base], params)
        rows = []
        for k, rel in enumerate(item.outputs, start=1):
            session = sample_session(item_rng(self.seed, params.name, "capture", k))
            image, _ = render_capture(face, session, self.size)
            data = encode_image(image, ".jpg", quality=session.jpeg_quality)
            self._output.write_bytes(rel, data)
            in_split = rel[len(item.split) + 1 :]  # manifests live in <out>/<split>/
            rows.append({
                "image_id": in_split, "path": in_split, "identity": params.name, "variant": "unmasked", "status": "ok",
                "sha256": hashlib.sha256(data).hexdigest(), "width": self.size, "height": self.size, "bytes": len(data),
                "split": item.split, "base": params.base, **{f"session_{key}": v for key, v in asdict(session).items()},
            })  # fmt: skip
        return rows

    def failure_rows(self, item: IdentityItem, status: str, message: str) -> list[dict]:
        # Rendering a synthetic face has no per-image failure a user could act on: stop.
        raise MfrkitError(f"rendering identity {item.key} failed ({status}): {message}")

    def finish(self, results: dict[str, list[dict]], items, stats: RunStats) -> SyntheticIdentities:
        manifests = {}
        for split in SPLITS:
            rows = [r for it in items if it.split == split for r in results[it.key]]
            meta = {"name": f"synthetic-identities-{split}", "root": ".", "kind": "synthetic-identities", "split": split,
                    "description": DESCRIPTION, "seed": self.seed, "options": self.options, "fingerprint": self.fingerprint}  # fmt: skip
            manifest = Manifest(make_table(rows), meta=meta)
            write_manifest(manifest, self._output.path_for(f"{split}/{MANIFEST_NAME}"))
            manifests[split] = manifest
        table = pd.DataFrame([{**it.params.record(), "split": it.split} for it in items])
        atomic_write_text(self._output.path_for("identities.csv"), table.to_csv(index=False))
        atomic_write_text(self._output.path_for("README.md"), _readme(self.options, table))
        return SyntheticIdentities(out=self.out, train=manifests["train"], test=manifests["test"], identities=table)


def _fingerprint(options: dict, bases: dict[str, BaseFace]) -> str:
    h = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
    for name in sorted(bases):
        h.update(name.encode())
        h.update(np.round(bases[name].mesh, 2).astype(np.float32).tobytes())
    return h.hexdigest()[:16]


def build_synthetic_identities(
    out: str | os.PathLike,
    *,
    n_identities: int = 300,
    captures: int = 8,
    test_fraction: float = 0.2,
    seed: int = 0,
    size: int = CAPTURE_SIZE,
    landmarks: str = "mediapipe",
    executor: ExecutorSpec | None = None,
    progress: bool = False,
) -> SyntheticIdentities:
    """Make ``n_identities`` synthetic identities with ``captures`` photos each (see the
    module docstring) in ``out``, split into ``train`` and ``test``.

    Parameters
    ----------
    out : path
        A new or empty folder, or this job's own (a rerun with the same options resumes
        an unfinished folder and reuses a finished one); anything else is refused.
    n_identities : int
        K, at least 4.
    captures : int
        M photos per identity, at least 2.
    test_fraction : float
        Share of identities held out for ``test`` (at least 2 of them).
    seed : int
        Everything (identity parameters, sessions, split) follows from it.
    size : int
        Side of the square captures, pixels (the face scale is fixed: IOD ~40 px).
    landmarks : str
        Landmark backend for the base photos (needs a mesh: ``mediapipe``).
    executor : ExecutorSpec, optional
        Where identities are rendered: a local pool of ``workers`` processes, or Ray;
        default in this process.
    progress : bool

    Returns
    -------
    SyntheticIdentities
    """
    job = SyntheticIdentitiesJob(out, n_identities=n_identities, captures=captures, test_fraction=test_fraction, seed=seed,
                                 size=size, landmarks=landmarks)  # fmt: skip
    out = Path(out)
    marker = read_marker(out)
    if marker is not None and marker.kind == job.kind and marker.fingerprint == job.fingerprint and marker.state == "finished":
        try:
            train, test = (read_manifest(out / s / MANIFEST_NAME) for s in SPLITS)
            return SyntheticIdentities(out=out, train=train, test=test, identities=pd.read_csv(check_user_file(out / "identities.csv", "results-table")), reused=True)
        except (MfrkitError, OSError):
            pass  # damaged: run again (the job's own files are rewritten byte for byte)
    return run_job(job, executor or ExecutorSpec(), progress=progress)


def _readme(options: dict, table: pd.DataFrame) -> str:
    counts = table["split"].value_counts().to_dict()
    return (
        "# Synthetic identities (a check of the learning machinery)\n\n"
        f"{DESCRIPTION}\n\n"
        "Accuracy measured on these images says whether training, losses and export work; it is "
        "**not** a measure of face recognition on real people. Label every figure from it *synthetic*.\n\n"
        f"- identities: {len(table)} ({counts.get('train', 0)} train, {counts.get('test', 0)} test, identity-disjoint)\n"
        f"- captures per identity: {options['captures']}, {options['size']}x{options['size']} JPEG\n"
        f"- seed: {options['seed']}; made by mfrkit {__version__} (`mfrkit.synthetic.identities`)\n"
        "- `identities.csv`: base photo, morph and colour shifts of every identity\n"
    )
