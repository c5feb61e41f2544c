"""``mfrkit demo``: the whole pipeline on the built-in sample, as a smoke test."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .data.manifest import Manifest, write_manifest
from .data_cards import CARD_NAME, write_card
from .data.registry import add_dataset, mfrkit_home
from .data.sample import SAMPLE_DESCRIPTION, build_sample
from .data.scan import scan_dataset
from .landmarks.cache import LandmarkSummary, detect_landmarks


@dataclass
class DemoResult:
    """What the demo made: the sample's manifest and the steps run on it."""

    out: Path
    manifest: Manifest
    landmarks: list[LandmarkSummary] = field(default_factory=list)


def run_demo(out: str | Path | None = None, *, seed: int = 0, captures: int = 6, workers: int = 1, progress: bool = False) -> DemoResult:
    """Build the demo sample in ``out`` (default ``$MFRKIT_HOME/demo``), register it as the
    dataset ``demo``, and detect landmarks on it with both detectors."""
    out = Path(out) if out else mfrkit_home() / "demo"
    build_sample(out, captures=captures, seed=seed)
    manifest, _ = scan_dataset(out, layout="imagefolder", name="demo")
    manifest.meta.update({"root": ".", "kind": "demo-sample", "seed": seed, "captures_per_identity": captures, "description": SAMPLE_DESCRIPTION})
    write_manifest(manifest, out / "manifest.parquet")
    add_dataset("demo", out, layout="imagefolder", replace=True)
    result = DemoResult(out=out, manifest=manifest)
    for backend in ("mediapipe", "dlib"):
        result.landmarks.append(detect_landmarks(manifest, backend, workers=workers, progress=progress))
    write_card(manifest, out / CARD_NAME, landmark_summary={s.backend: s.counts for s in result.landmarks})
    return result
