"""Landmark backends behind one interface (see :mod:`mfrkit.landmarks.base`)."""

from .base import BACKENDS, FaceResult, LandmarkBackend, Landmarks, create_backend, detect_primary, five_from_68, select_primary

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
