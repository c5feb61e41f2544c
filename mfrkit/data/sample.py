"""The demo sample: a small identity-labelled face dataset built from real photos that
ship inside installed packages.

Two public-domain portraits are available offline: astronaut Eileen Collins
(``skimage.data.astronaut()``) and Grace Hopper (matplotlib's ``grace_hopper.jpg``).
Each capture is the photo re-framed LFW-style (250x250, eyes near the upper middle)
with realistic perturbations: scale, in-plane rotation, crop shift, brightness and
contrast, blur and JPEG quality. It is a smoke-test sample for the pipeline, not a
benchmark: two identities cannot measure recognition accuracy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import MfrkitError
from ..rng import item_rng
from .imageio import encode_image

#: Eye centres (image-left, image-right) in the original photos, pixels, measured once
#: with mfrkit's mediapipe backend (iris centres). Used only to frame the captures.
_EYES = {
    "eileen_collins": ((203.5, 101.1), (246.6, 103.5)),
    "grace_hopper": ((222.6, 191.3), (306.2, 187.5)),
}

SIZE = 250  # LFW's image size

SAMPLE_DESCRIPTION = (
    "A smoke-test sample, not a benchmark: two real public-domain portraits that ship with "
    "the dependencies (astronaut Eileen Collins from scikit-image, Grace Hopper from matplotlib), "
    "each re-framed several times LFW-style (250x250) with random scale, in-plane rotation, crop "
    "shift, brightness, contrast, blur and JPEG quality. Two identities cannot measure accuracy; "
    "the sample exists to exercise the pipeline end to end without any download."
)
#: Where the eye midpoint lands in an unperturbed capture and the inter-ocular distance,
#: close to LFW's typical framing.
_EYE_MID = (125.0, 112.0)
_IOD = 46.0


def source_photos() -> dict[str, np.ndarray]:
    """The real photos the sample is made from, by identity: (H, W, 3) uint8 RGB."""
    try:
        import matplotlib.cbook
        from PIL import Image
        from skimage import data
    except ImportError as exc:  # pragma: no cover - required dependencies
        raise MfrkitError(f"the demo photos need scikit-image and matplotlib: {exc}") from exc
    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as img:
        hopper = np.asarray(img.convert("RGB"))
    return {"eileen_collins": np.ascontiguousarray(data.astronaut()), "grace_hopper": hopper}


@dataclass(frozen=True)
class CaptureParams:
    """Perturbations of one capture (sampled by :func:`sample_capture`)."""

    scale: float  # multiplies the inter-ocular distance
    angle: float  # in-plane rotation, degrees, counter-clockwise
    shift_x: float  # pixels
    shift_y: float
    brightness: float  # added, in 8-bit levels
    contrast: float  # multiplies deviations from mid-grey
    blur_sigma: float  # Gaussian sigma, pixels; 0 = none
    jpeg_quality: int


def sample_capture(rng: np.random.Generator) -> CaptureParams:
    """Draw the perturbations of one capture."""
    return CaptureParams(
        scale=float(rng.uniform(0.85, 1.2)),
        angle=float(rng.uniform(-12.0, 12.0)),
        shift_x=float(rng.uniform(-10.0, 10.0)),
        shift_y=float(rng.uniform(-8.0, 8.0)),
        brightness=float(rng.uniform(-25.0, 25.0)),
        contrast=float(rng.uniform(0.8, 1.2)),
        blur_sigma=float(rng.uniform(0.6, 1.5)) if rng.random() < 0.5 else 0.0,
        jpeg_quality=int(rng.integers(60, 96)),
    )


def apply_capture(photo: np.ndarray, eyes: tuple, params: CaptureParams) -> bytes:
    """Render one capture of ``photo`` as JPEG bytes (the JPEG quality is a perturbation).

    Parameters
    ----------
    photo : ndarray of shape (H, W, 3), uint8 RGB
    eyes : ((x, y), (x, y))
        Image-left and image-right eye centres in ``photo``, pixels.
    params : CaptureParams

    Returns
    -------
    bytes
        A JPEG of a ``SIZE`` x ``SIZE`` (250x250) RGB image.
    """
    (lx, ly), (rx, ry) = eyes
    src_mid = np.array([(lx + rx) / 2, (ly + ry) / 2])
    src_iod = float(np.hypot(rx - lx, ry - ly))
    src_angle = np.degrees(np.arctan2(ry - ly, rx - lx))
    # Rotate about the eye midpoint so the eyes are level, then apply the perturbation.
    m = cv2.getRotationMatrix2D(tuple(src_mid), src_angle + params.angle, _IOD * params.scale / src_iod)
    m[:, 2] += np.array(_EYE_MID) + (params.shift_x, params.shift_y) - src_mid
    # Replicate, not reflect, the edge: a reflection would mirror a second partial face in.
    out = cv2.warpAffine(photo, m, (SIZE, SIZE), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    out = out.astype(np.float32)
    out = (out - 128.0) * params.contrast + 128.0 + params.brightness
    if params.blur_sigma > 0:
        out = cv2.GaussianBlur(out, (0, 0), params.blur_sigma)
    return encode_image(np.clip(out + 0.5, 0, 255).astype(np.uint8), ".jpg", quality=params.jpeg_quality)


def build_sample(out: str | Path, *, captures: int = 6, seed: int = 0) -> list[dict]:
    """Write the sample as an identity-folder dataset (``<identity>/<identity>_0001.jpg``).

    Returns one record per image (path relative to ``out``, identity, the capture
    parameters). The same seed gives the same bytes.
    """
    from ..atomic import atomic_write_bytes

    if captures < 1:
        raise MfrkitError("the sample needs at least one capture per identity")
    out = Path(out)
    records = []
    for identity, photo in source_photos().items():
        for k in range(1, captures + 1):
            rel = f"{identity}/{identity}_{k:04d}.jpg"
            params = sample_capture(item_rng(seed, rel))
            atomic_write_bytes(out / rel, apply_capture(photo, _EYES[identity], params))
            records.append({"path": rel, "identity": identity, **asdict(params)})
    return records
