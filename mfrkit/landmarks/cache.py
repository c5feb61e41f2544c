"""The old name of :mod:`mfrkit.landmarks.lookup`, kept because the README showed
``from mfrkit.landmarks.cache import open_store``; new code imports from ``lookup``."""

from .lookup import (  # noqa: F401
    LandmarkMap,
    LandmarkSummary,
    cache_path,
    cached_counts,
    detect_landmarks,
    detect_rows,
    get_landmarks,
    load_landmarks,
    open_store,
)
from .lookup import __all__  # noqa: F401
