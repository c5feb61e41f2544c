"""Landmark backends behind one interface (see :mod:`mfrkit.landmarks.base`)."""

# Importing the backend modules registers them; they load their models lazily.
from . import dlib68, file, mediapipe_mesh, template  # noqa: F401
from .base import (
    BACKENDS,
    FaceResult,
    LandmarkBackend,
    Landmarks,
    create_backend,
    detect_primary,
    five_from_68,
    select_primary,
)

__all__ = [
    "BACKENDS",
    "FaceResult",
    "LandmarkBackend",
    "Landmarks",
    "create_backend",
    "detect_primary",
    "five_from_68",
    "select_primary",
]
