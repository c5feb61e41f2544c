"""``mfrkit demo``: the whole pipeline on the built-in sample, as a smoke test.

sample -> landmarks -> masked copy (``synth``) -> protocols (``umr-ump``, ``umr-mp``,
``mr-mp``) -> dlib's pretrained ResNet as ONNX -> benchmark -> leaderboard. With two
identities the figures mean nothing; every stage runs for real.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .data.manifest import MANIFEST_NAME, Manifest, read_manifest, write_manifest
from .data.registry import add_dataset, mfrkit_home
from .data.sample import SAMPLE_DESCRIPTION, build_sample
from .data.scan import scan_dataset
from .data_cards import CARD_NAME, write_card
from .errors import ManifestError
from .landmarks.cache import LandmarkSummary, detect_landmarks
from .maskgen.pipeline import JOURNAL

#: The protocols the demo makes, with the manifests they draw from.
DEMO_PROTOCOLS = {"umr-ump": ("sample", None), "umr-mp": ("sample", "sample-masked"), "mr-mp": ("sample-masked", None)}


@dataclass
class DemoResult:
    """What the demo made, stage by stage (later stages are None with ``full=False``)."""

    out: Path
    manifest: Manifest
    landmarks: list[LandmarkSummary] = field(default_factory=list)
    synth: object | None = None
    protocols: dict[str, Path] = field(default_factory=dict)
    model: Path | None = None
    bench: object | None = None


def build_demo_sample(out: Path, *, seed: int = 0, captures: int = 6) -> Manifest:
    """Write the sample into ``out`` with its manifest, and register it as ``demo``."""
    build_sample(out, captures=captures, seed=seed)
    manifest, _ = scan_dataset(out, layout="imagefolder", name="demo")
    manifest.meta.update({"root": ".", "kind": "demo-sample", "seed": seed, "captures_per_identity": captures, "description": SAMPLE_DESCRIPTION})
    write_manifest(manifest, out / MANIFEST_NAME)
    add_dataset("demo", out, layout="imagefolder", replace=True)
    return manifest


def _stale_masked_copy(folder: Path, sample: Manifest, seed: int) -> bool:
    """True when ``folder`` holds a masked copy the demo cannot reuse: one of another
    sample or seed, or an unfinished one (twelve images are quicker made again than
    checked against the journal's options)."""
    if (folder / JOURNAL).exists():
        return True
    if not (folder / MANIFEST_NAME).exists():
        return False
    try:
        meta = read_manifest(folder / MANIFEST_NAME).meta
    except ManifestError:
        return True
    return meta.get("seed") != seed or (meta.get("source") or {}).get("fingerprint") != sample.fingerprint()


def run_demo(
    out: str | Path | None = None,
    *,
    seed: int = 0,
    captures: int = 6,
    workers: int = 1,
    full: bool = True,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the demo in ``out`` (default ``$MFRKIT_HOME/demo``).

    ``out/sample`` is the sample (registered as dataset ``demo``), ``out/sample-masked``
    its masked copy (``demo-masked``), ``out/protocols/<spec>`` the protocols (registered
    as ``demo/<spec>``, so ``--protocol mr-mp`` finds them),
    ``out/models/dlib_resnet.onnx`` the baseline model and ``out/runs`` the benchmark
    runs with their leaderboard. ``full=False`` stops after the landmarks.
    """
    log = log or (lambda msg: None)
    out = Path(out) if out else mfrkit_home() / "demo"
    sample = out / "sample"
    manifest = build_demo_sample(sample, seed=seed, captures=captures)
    masked = out / "sample-masked"
    if _stale_masked_copy(masked, manifest, seed):
        # synth refuses a folder that holds another job; this one is the demo's own.
        shutil.rmtree(masked)
    result = DemoResult(out=out, manifest=manifest)
    for backend in ("mediapipe", "dlib"):
        result.landmarks.append(detect_landmarks(manifest, backend, workers=workers, progress=progress))
    write_card(manifest, sample / CARD_NAME, landmark_summary={s.backend: s.counts for s in result.landmarks})
    if not full:
        return result

    from .bench.benchmark import BenchConfig, run_benchmark
    from .maskgen.pipeline import SynthConfig, synthesize
    from .models.dlib_resnet import import_dlib
    from .protocols.workflow import make_protocol_folder

    log("masking the sample (synth --mask random)")
    result.synth = synthesize(manifest, masked, SynthConfig(types="random", seed=seed), workers=workers, progress=progress)
    add_dataset("demo-masked", masked, replace=True)
    folders = {"sample": sample / MANIFEST_NAME, "sample-masked": masked / MANIFEST_NAME}
    for spec, (reference, probe) in DEMO_PROTOCOLS.items():
        # Two identities cannot fill identity-disjoint folds: one fold, every pair there is.
        folder = out / "protocols" / spec
        make_protocol_folder(
            folder, folders[reference], folders[probe] if probe else None, spec=spec, seed=seed,
            n_folds=1, allow_fewer=True, overwrite=True, register=f"demo/{spec}",
        )  # fmt: skip
        result.protocols[spec] = folder
    model = out / "models" / "dlib_resnet.onnx"
    if not model.exists():
        log("converting dlib's face-recognition ResNet to ONNX (models import-dlib)")
        import_dlib(model)
    result.model = model
    log("benchmarking (bench)")
    result.bench = run_benchmark(
        BenchConfig(models=[str(model)], protocols=[str(p) for p in result.protocols.values()], out=out / "runs", n_boot=200, seed=seed),
        log=log,
    )
    return result
