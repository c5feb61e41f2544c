"""Fixtures for mask synthesis: LFW-style crops of the real photos and their landmarks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mfrkit.landmarks import detect_primary

#: Crop boxes (centre x, centre y, half side) framing each photo's face LFW-style.
FRAMES = {"eileen_collins": (225, 125, 110), "grace_hopper": (265, 230, 190)}


def lfw_crop(photo: np.ndarray, frame: tuple[int, int, int], size: int = 250) -> np.ndarray:
    cx, cy, half = frame
    crop = photo[max(0, cy - half) : cy + half, max(0, cx - half) : cx + half]
    return np.ascontiguousarray(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))


@pytest.fixture(scope="session")
def crops(photos):
    """``{name: image 250x250}``: both photos framed LFW-style."""
    return {name: lfw_crop(photos[name], frame) for name, frame in FRAMES.items()}


@pytest.fixture(scope="session")
def faces(crops, backends):
    """``{name: (image 250x250, mediapipe landmarks, dlib landmarks)}`` of both photos."""
    out = {}
    for name, img in crops.items():
        mp = detect_primary(backends["mediapipe"], img)
        dl = detect_primary(backends["dlib"], img)
        assert mp.status == "ok" and dl.status == "ok", name
        out[name] = (img, mp.landmarks, dl.landmarks)
    return out


@pytest.fixture(scope="session")
def faces_of(photos):
    """mediapipe's primary-face landmarks of each real photo, by name (for crops of a template)."""
    from mfrkit.landmarks import create_backend, detect_primary

    backend = create_backend("mediapipe")
    try:
        return {name: detect_primary(backend, photo).landmarks for name, photo in photos.items()}
    finally:
        backend.close()
