"""Backend ``template``: the landmarks of an already-aligned crop, from its crop template.

An aligned crop (insightface's 112x112 ArcFace crops, 112x96 SphereFace crops, MFR2's
160x160, PartialLFW's padded 160) puts every face's 5 points where its template says
(:mod:`mfrkit.alignments`). Nothing is detected: the 5 points are the template's, and
mfrkit's canonical face (:mod:`mfrkit.landmarks.canonical`, whose frame *is* the ArcFace
112 crop) is placed by the similarity that takes the ArcFace 112 template onto this one,
giving the 68 iBUG points and a dense 478-point mesh (depth scaled alike), so both
mask renderers work on aligned inputs. A crop of another size than its template's gets
the template scaled by the height ratio and centred across
(:meth:`mfrkit.alignments.Alignment.template_at`).

The landmarks are the mean face's, not the person's: right for what the crop's
alignment guarantees (eyes, nose tip, mouth corners), approximate elsewhere (jaw
line, mouth opening). ``synth --redetect`` runs mediapipe's mesh on the crop instead.
"""

from __future__ import annotations

import functools
from typing import ClassVar

import numpy as np

from ..errors import LandmarkError
from .base import BACKENDS, Landmarks

#: The template the backend uses when none is named: insightface's 112x112 crops.
DEFAULT_TEMPLATE = "arcface112"


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@functools.lru_cache(maxsize=64)
def template_landmarks(template: str, width: int, height: int) -> Landmarks:
    """The landmarks of a ``width`` x ``height`` crop aligned to ``template``.

    Parameters
    ----------
    template : str
        A crop template name (:func:`mfrkit.alignments.crop_template`: ``arcface112``,
        ``arcface112x96``, ``mfr2``, ``arcface160p30``, ...).
    width, height : int
        The crop's size, pixels.

    Returns
    -------
    Landmarks
        ``points5`` the template's, ``points68`` and ``mesh`` (478, 3) the canonical
        face placed by the template's similarity, ``bbox`` the mesh's extent, ``score``
        NaN, backend ``template``. Cached per arguments: its arrays are read-only.
    """
    from ..align import ARCFACE_112, umeyama
    from ..alignments import crop_template
    from .canonical import canonical_face

    if int(width) < 8 or int(height) < 8:
        raise LandmarkError(f"an aligned crop of {width}x{height} pixels is too small for template landmarks")
    points5 = crop_template(template).template_at(int(height), int(width))
    scale, rotation, shift = umeyama(ARCFACE_112, points5)
    linear = scale * rotation
    face = canonical_face()
    p68 = face.mean68[:, :2] @ linear.T + shift
    mesh = np.empty((len(face.vertices), 3))
    mesh[:, :2] = face.vertices[:, :2] @ linear.T + shift
    mesh[:, 2] = face.vertices[:, 2] * scale
    xy = mesh[:, :2]
    bbox = np.concatenate([xy.min(0), xy.max(0)])
    return Landmarks(
        points5=_read_only(points5.astype(np.float32)),
        points68=_read_only(p68.astype(np.float32)),
        bbox=_read_only(bbox.astype(np.float32)),
        score=float("nan"),
        backend="template",
        mesh=_read_only(mesh.astype(np.float32)),
    )


@BACKENDS.register("template")
class TemplateBackend:
    """Landmarks of aligned crops from their template (nothing is detected).

    Parameters
    ----------
    template : str
        The crop template the images follow (default ``arcface112``); checked here.
    """

    name: ClassVar[str] = "template"
    has_68: ClassVar[bool] = True
    has_mesh: ClassVar[bool] = True

    def __init__(self, template: str = DEFAULT_TEMPLATE) -> None:
        from ..alignments import crop_template

        crop_template(template)  # an unknown name lists the templates
        self.template = str(template)

    def detect(self, image: np.ndarray, *, image_id: str | None = None) -> list[Landmarks]:
        """One face: the template's, placed in ``image`` (H, W, 3)."""
        h, w = np.shape(image)[:2]
        return [template_landmarks(self.template, int(w), int(h))]

    def close(self) -> None:
        """Nothing to release (for symmetry with the detecting backends)."""
