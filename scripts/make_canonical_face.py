"""Derive mfrkit's canonical frontal face: ``mfrkit/landmarks/data/canonical_face.npz``.

mediapipe 0.10.21 ships neither its canonical face model nor a UV map, so mfrkit makes
its own from mediapipe's output on real frontal photos that ship with scikit-image and
matplotlib (the astronaut and Grace Hopper portraits) and their mirror images:

1. Run the legacy face mesh (478 points with refined irises) on each photo and on its
   mirror image; bring the mirror's points back (``x -> w - x``).
2. The mirror's vertex *i* lands on the anatomical partner of vertex *i*; matching the
   two point sets (Hungarian assignment on 3D distance) gives mediapipe's left/right
   vertex permutation, checked to agree between photos and to be an involution.
3. Generalised Procrustes (similarity) over every shape and its reflection gives a
   left/right-symmetric mean face.
4. Frontalise: the symmetry plane becomes ``x = const``; the pitch is the one whose
   frontal projection of the 5 ArcFace points best fits the ArcFace template (aligned
   crops are frontal on average); then scale and shift so the projection fits the
   ArcFace 112x112 template. The result's units are ArcFace-112 pixels, ``y`` down,
   ``z`` away from the camera.
5. Triangulate the frontal projection (Delaunay, irises left out).
6. Depth maps on a 1-unit grid of the lower face and neck: ``face_depth`` is the face
   surface (mesh depth inside its outline; outside it, the envelope below), and
   ``envelope_depth`` is the lower convex envelope of the lower face's vertices plus
   virtual points that recede behind the jaw line (neck, ears): the taut surface a
   mask stretched over the face would take, bridging the nose-cheek grooves and
   hanging from the chin.
7. The mean iBUG-68 face in ArcFace-112 pixels (for ``--aligned`` inputs): dlib's 68
   points on the same photos and mirrors, each aligned by its 5 points to the
   template, averaged with their reflections; depth read off the canonical mesh;
   triangulated (Delaunay) for the template renderer.

Run from the repository root: ``PYTHONPATH=. python scripts/make_canonical_face.py``. The output is
deterministic for a given mediapipe/dlib build.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mfrkit.align import ARCFACE_112, similarity_transform, transform_points
from mfrkit.landmarks.mediapipe_mesh import five_vertices
from mfrkit.maskgen.geometry import similarity_3d

OUT = Path(__file__).resolve().parents[1] / "mfrkit" / "landmarks" / "data" / "canonical_face.npz"

# mediapipe vertices for the ArcFace 5 points: iris centres (image-left first),
# pronasale, mouth corners (image-left first).
FIVE = five_vertices()  # the ArcFace points as the mediapipe backend defines them
# iBUG-68 left/right partners (0-based).
IBUG_MIRROR = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # brows
    + [27, 28, 29, 30]  # nose bridge
    + [35, 34, 33, 32, 31]  # nostrils
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]  # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner lips
)


def photos() -> dict[str, np.ndarray]:
    import matplotlib.cbook
    from skimage import data

    from mfrkit.data.imageio import read_image

    hopper = read_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    return {"astronaut": data.astronaut(), "grace_hopper": hopper}


def mediapipe_mesh(image: np.ndarray) -> np.ndarray:
    import mediapipe as mp

    h, w = image.shape[:2]
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1) as fm:
        result = fm.process(np.ascontiguousarray(image))
    if not result.multi_face_landmarks:
        raise SystemExit("mediapipe found no face in a reference photo")
    return np.array([[p.x * w, p.y * h, p.z * w] for p in result.multi_face_landmarks[0].landmark])


def dlib_68(image: np.ndarray) -> np.ndarray:
    import dlib
    import face_recognition_models

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
    boxes = list(detector(image, 1))
    if not boxes:
        raise SystemExit("dlib found no face in a reference photo")
    # The portrait's face is the largest detection (the flags hold small false positives).
    shape = predictor(image, max(boxes, key=lambda b: b.area()))
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def mirror_permutation(mesh: np.ndarray, mirrored_back: np.ndarray) -> np.ndarray:
    """``perm`` with ``mirrored_back[i] ~ mesh[perm[i]]`` (optimal assignment)."""
    from scipy.optimize import linear_sum_assignment

    cost = np.linalg.norm(mirrored_back[:, None, :] - mesh[None, :, :], axis=-1)
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(len(mesh), dtype=np.int64)
    perm[rows] = cols
    return perm


def reflect(shape: np.ndarray, perm: np.ndarray) -> np.ndarray:
    out = shape[perm].copy()
    out[:, 0] = -out[:, 0]
    return out


def generalised_procrustes(shapes: list[np.ndarray], iterations: int = 20) -> np.ndarray:
    mean = shapes[0] - shapes[0].mean(0)
    for _ in range(iterations):
        aligned = [similarity_3d(s, mean).apply(s) for s in shapes]
        new = np.mean(aligned, axis=0)
        new -= new.mean(0)
        new *= np.sqrt((mean**2).sum() / (new**2).sum())
        if np.abs(new - mean).max() < 1e-9:
            break
        mean = new
    return mean


def rotation_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def fit_scale_shift(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, float]:
    """Least-squares ``dst ~ s * src + t`` (no rotation); returns s, t, rms residual."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    s = float((a * b).sum() / (a * a).sum())
    t = mu_d - s * mu_s
    rms = float(np.sqrt(((s * src + t - dst) ** 2).sum(1).mean()))
    return s, t, rms


def frontalise(mean: np.ndarray, perm: np.ndarray) -> tuple[np.ndarray, float, float]:
    # Symmetry-plane normal: the principal direction of partner-to-partner vectors.
    diffs = mean - mean[perm]
    _, _, vt = np.linalg.svd(diffs, full_matrices=False)
    x_axis = vt[0] * np.sign(vt[0] @ (mean[FIVE[1]] - mean[FIVE[0]]))
    down = mean[152] - mean[10]  # forehead -> chin
    y_axis = down - (down @ x_axis) * x_axis
    y_axis /= np.linalg.norm(y_axis)
    z_axis = np.cross(x_axis, y_axis)  # away from the camera for x right, y down
    base = np.stack([x_axis, y_axis, z_axis]) @ (mean - mean.mean(0)).T
    base = base.T
    best = None
    for deg in np.arange(-30.0, 30.0001, 0.05):
        rotated = base @ rotation_x(np.radians(deg)).T
        s, t, rms = fit_scale_shift(rotated[FIVE, :2], ARCFACE_112)
        if best is None or rms < best[0]:
            best = (rms, deg, rotated, s, t)
    rms, deg, rotated, s, t = best
    out = rotated * s
    out[:, :2] += t
    out[:, 2] -= out[:468, 2].mean()
    return out, deg, rms


def delaunay(points: np.ndarray) -> np.ndarray:
    from scipy.spatial import Delaunay

    tri = Delaunay(points).simplices.astype(np.int32)
    # Counter-clockwise in image coordinates (y down): positive signed area there.
    a, b, c = points[tri[:, 0]], points[tri[:, 1]], points[tri[:, 2]]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    tri[area < 0] = tri[area < 0][:, [0, 2, 1]]
    return tri


#: Depth-map grid: canonical units, x from GRID_X0, y from GRID_Y0, one sample per unit.
GRID_X0, GRID_Y0, GRID_W, GRID_H = -16, 20, 145, 141
# Virtual points behind the jaw line: distance outwards (units) and how steeply they
# recede (depth gained per unit outwards).
NECK_STEPS = (8.0, 20.0, 40.0)
NECK_SLOPE = 1.4
#: Smoothing of the envelope and softness of its minimum with the face, units.
ENVELOPE_BLUR = 3.0
SOFT_MIN = 0.7


def depth_maps(vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import cv2
    from matplotlib.path import Path as MplPath
    from scipy.spatial import ConvexHull

    from mfrkit.maskgen.geometry import barycentric_weights

    xy = vertices[:468, :2]
    hull = ConvexHull(xy)
    outline = xy[hull.vertices]
    centre = np.array([xy[:, 0].mean(), 80.0])
    virtual = []
    for p, z in zip(outline, vertices[hull.vertices, 2]):
        if p[1] < 45:  # the forehead never carries a mask
            continue
        out = (p - centre) / np.linalg.norm(p - centre)
        virtual += [[*(p + d * out), z + NECK_SLOPE * d] for d in NECK_STEPS]
    lower = vertices[:468][vertices[:468, 1] >= 48]
    cloud = np.vstack([lower, np.array(virtual)])
    hull3 = ConvexHull(cloud)
    eq = hull3.equations  # n . p + d = 0 with outward n
    front = eq[eq[:, 2] < -1e-6]  # facets facing the camera (-z)
    gx, gy = np.meshgrid(GRID_X0 + np.arange(GRID_W), GRID_Y0 + np.arange(GRID_H))
    pts = np.column_stack([gx.ravel(), gy.ravel()]).astype(np.float64)
    # Lower envelope: the largest plane value among the camera-facing facets.
    planes = -(front[:, 0] * pts[:, None, 0] + front[:, 1] * pts[:, None, 1] + front[:, 3]) / front[:, 2]
    envelope = planes.max(1)
    inside = MplPath(outline).contains_points(pts)
    face = envelope.copy()
    idx, wts = barycentric_weights(pts[inside], vertices[:468], triangles)
    face[inside] = (vertices[idx, 2] * wts).sum(1)
    face = face.reshape(GRID_H, GRID_W)
    # The hull is piecewise planar; taut fabric is smooth. Blur it (a blurred convex
    # surface stays convex) and take a soft minimum with the face, so the fabric never
    # sinks into the skin and meets it without a crease.
    smooth = cv2.GaussianBlur(envelope.reshape(GRID_H, GRID_W), (0, 0), ENVELOPE_BLUR, borderType=cv2.BORDER_REPLICATE)
    lo = np.minimum(smooth, face)
    envelope = lo - SOFT_MIN * np.log(np.exp(-(smooth - lo) / SOFT_MIN) + np.exp(-(face - lo) / SOFT_MIN))
    return face.astype(np.float32), envelope.astype(np.float32)


def mean_68(images: dict[str, np.ndarray]) -> np.ndarray:
    from mfrkit.landmarks.base import five_from_68

    shapes = []
    for image in images.values():
        w = image.shape[1]
        direct = dlib_68(image)
        mirrored = dlib_68(np.ascontiguousarray(image[:, ::-1]))
        mirrored[:, 0] = (w - 1) - mirrored[:, 0]
        for pts in (direct, mirrored[IBUG_MIRROR]):
            for shape in (pts, np.column_stack([-pts[IBUG_MIRROR, 0], pts[IBUG_MIRROR, 1]])):
                m = similarity_transform(five_from_68(shape), ARCFACE_112)
                shapes.append(transform_points(m, shape))
    return np.mean(shapes, axis=0)


def depth_at(points: np.ndarray, vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    from mfrkit.maskgen.geometry import barycentric_weights

    idx, wts = barycentric_weights(points, vertices[:, :2], triangles)
    return (vertices[idx, 2] * wts).sum(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    images = photos()
    shapes, perms = [], []
    for name, image in images.items():
        w = image.shape[1]
        mesh = mediapipe_mesh(image)
        back = mediapipe_mesh(np.ascontiguousarray(image[:, ::-1]))
        back[:, 0] = w - back[:, 0]
        perm = mirror_permutation(mesh, back)
        perms.append(perm)
        # back[i] sits on partner(i); back[perm] re-indexes it onto the original vertices.
        shapes += [mesh, back[perm]]
        print(f"{name}: mediapipe vs mirrored-back rms {np.sqrt(((back[perm] - mesh) ** 2).sum(1).mean()):.2f} px")
    perm = perms[0]
    agree = np.mean(perms[0] == perms[1])
    involution = np.mean(perm[perm] == np.arange(len(perm)))
    print(f"mirror permutation: photos agree on {agree:.1%} of vertices, involution on {involution:.1%}")
    if agree < 0.99 or involution < 1.0:
        raise SystemExit("mirror permutation is not consistent; refusing to write")

    everything = shapes + [reflect(s, perm) for s in shapes]
    mean = generalised_procrustes(everything)
    canon, pitch, rms = frontalise(mean, perm)
    asym = np.abs(canon[:, 0] + canon[perm, 0] - 2 * canon[:, 0].mean()).max()
    print(f"frontal pitch {pitch:+.2f} deg; 5-point rms to the ArcFace template {rms:.2f} px; max asymmetry {asym:.3f} px")
    triangles = delaunay(canon[:468, :2])

    face_depth, envelope_depth = depth_maps(canon, triangles)
    m68 = mean_68(images)
    z68 = depth_at(m68, canon[:468], triangles)
    triangles68 = delaunay(m68)
    np.savez_compressed(
        args.out,
        vertices=canon.astype(np.float32),
        triangles=triangles,
        mirror=perm.astype(np.int32),
        five=FIVE.astype(np.int32),
        mean68=np.column_stack([m68, z68]).astype(np.float32),
        triangles68=triangles68,
        depth_origin=np.array([GRID_X0, GRID_Y0], dtype=np.float32),
        face_depth=face_depth,
        envelope_depth=envelope_depth,
    )
    print(f"wrote {args.out}: {len(canon)} vertices, {len(triangles)} triangles, mean 68-point face")


if __name__ == "__main__":
    main()
