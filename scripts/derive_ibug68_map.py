"""Derive which mediapipe face-mesh vertex stands for each of the 68 iBUG points.

Run once; it writes mfrkit/landmarks/data/mediapipe_ibug68.json. The mapping is ours:
both backends run on the real photos that ship in installed packages (and their mirror
images), dlib's 68 points are brought into each mesh's frame, and within each facial
part (jaw, brows, nose, eyes, lips) the vertices are assigned to iBUG points by a
minimum-cost matching of the mean distance (normalised by the inter-ocular distance).
"""

import json
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from mediapipe.python.solutions import face_mesh_connections as fmc

from mfrkit.data.sample import source_photos
from mfrkit.landmarks import create_backend, detect_primary, mediapipe_mesh

# The mapping does not exist yet: read raw mesh vertices meanwhile.
mediapipe_mesh.ibug68_indices = lambda: np.arange(68)

OUT = Path(__file__).resolve().parents[1] / "mfrkit/landmarks/data/mediapipe_ibug68.json"


def vertices(*edge_sets):
    return sorted({v for s in edge_sets for e in s for v in e})


def main():
    mp, dl = create_backend("mediapipe"), create_backend("dlib")
    pairs = []
    for name, img in source_photos().items():
        for im in (img, np.ascontiguousarray(img[:, ::-1])):
            a, b = detect_primary(mp, im), detect_primary(dl, im)
            assert a.status == "ok" and b.status == "ok", name
            io = a.landmarks.interocular
            pairs.append((a.landmarks.mesh[:468, :2] / io, b.landmarks.points68 / io))
    groups = {
        range(0, 17): vertices(fmc.FACEMESH_FACE_OVAL),
        range(17, 27): vertices(fmc.FACEMESH_LEFT_EYEBROW, fmc.FACEMESH_RIGHT_EYEBROW),
        range(27, 36): list(range(468)),
        range(36, 48): vertices(fmc.FACEMESH_LEFT_EYE, fmc.FACEMESH_RIGHT_EYE),
        range(48, 68): vertices(fmc.FACEMESH_LIPS),
    }
    mapping = np.zeros(68, dtype=int)
    for ibug, cand in groups.items():
        ibug, cand = list(ibug), np.array(cand)
        cost = np.mean([np.linalg.norm(mesh[cand][None] - p68[ibug][:, None], axis=2) for mesh, p68 in pairs], axis=0)
        rows, cols = linear_sum_assignment(cost)
        mapping[np.array(ibug)[rows]] = cand[cols]
        print(f"iBUG {ibug[0]}-{ibug[-1]}: mean error {cost[rows, cols].mean():.3f} inter-ocular")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"indices": mapping.tolist(), "made_by": "scripts/derive_ibug68_map.py"}) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
