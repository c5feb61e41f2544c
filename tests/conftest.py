"""Shared fixtures: the real photos, the demo sample, and an isolated $MFRKIT_HOME.

Helpers that are not fixtures live in the ``tests.support`` package (see tests/README.md);
import them from there, never from a ``conftest``.
"""

from __future__ import annotations

import numpy as np
import pytest

from mfrkit.data.manifest import write_manifest
from mfrkit.data.sample import build_sample, source_photos
from mfrkit.data.scan import scan_dataset

# Before any test imports them: the support modules' asserts (tests.support.checks) then
# report the values compared, like a test's own.
pytest.register_assert_rewrite("tests.support")


@pytest.fixture(autouse=True)
def mfrkit_home(tmp_path, monkeypatch):
    """Every test gets its own empty registry: ``$MFRKIT_HOME`` = ``tmp_path/mfrkit-home``,
    and no ``$MFRKIT_CACHE`` (so embeddings are cached under that home). The one such
    fixture of the suite; returns the home folder (not yet made)."""
    home = tmp_path / "mfrkit-home"
    monkeypatch.setenv("MFRKIT_HOME", str(home))
    monkeypatch.delenv("MFRKIT_CACHE", raising=False)
    return home


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """The real face photos that ship with the dependencies, by identity."""
    return source_photos()


@pytest.fixture(scope="session")
def sample_manifest(tmp_path_factory):
    """The demo sample (2 identities x 3 captures) scanned into a written manifest."""
    root = tmp_path_factory.mktemp("sample")
    build_sample(root, captures=3, seed=0)
    manifest, _ = scan_dataset(root, layout="imagefolder", name="sample")
    manifest.meta["root"] = "."
    write_manifest(manifest, root / "manifest.parquet")
    return manifest


@pytest.fixture(scope="session")
def backends():
    """One instance of each detector for the whole session (they hold models)."""
    from mfrkit.landmarks import create_backend

    return {"mediapipe": create_backend("mediapipe"), "dlib": create_backend("dlib")}
