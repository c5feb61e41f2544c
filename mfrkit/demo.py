"""``mfrkit demo``: the whole pipeline on the built-in sample, as a smoke test.

sample -> landmarks -> masked copy (``synth``) -> protocols (``umr-ump``, ``umr-mp``,
``mr-mp``) -> dlib's pretrained ResNet as ONNX -> the four model families trained small
on synthetic identities (:func:`mfrkit.learning_check.demo_families`, with their own
held-out ``synthetic-umr-ump`` / ``synthetic-umr-mp`` protocols) -> benchmark of all five
-> leaderboard. With two identities the sample's figures mean nothing, and the synthetic
identities check the training machinery, not face recognition; every stage runs for real.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .data.manifest import MANIFEST_NAME, Manifest, read_manifest, write_manifest
from .data.imageio import is_image_file
from .data.registry import add_dataset, mfrkit_home
from .data.sample import SAMPLE_DESCRIPTION, build_sample, source_photos
from .data.scan import scan_dataset
from .data_cards import CARD_NAME, write_card
from .errors import ManifestError, MfrkitError
from .jobs import ExecutorSpec, OutputFolder
from .landmarks.lookup import LandmarkSummary, detect_landmarks
from .maskgen.dataset_job import check_registrable

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
    families: object | None = None  # mfrkit.learning_check.DemoFamilies
    bench: object | None = None


def _legacy_sample(root: Path) -> str | None:
    """The fingerprint of a demo sample made before output markers existed."""
    try:
        meta = read_manifest(root / MANIFEST_NAME).meta
    except ManifestError:
        return None
    if meta.get("kind") != "demo-sample":
        return None
    return _sample_fingerprint(int(meta.get("seed", 0)), int(meta.get("captures_per_identity", 6)))


def _sample_fingerprint(seed: int, captures: int) -> str:
    return f"seed={seed},captures={captures}"


def _sample_files(root: Path) -> list[str]:
    """Every file an earlier demo sample wrote in ``root`` (its manifest lists the images)."""
    files = [MANIFEST_NAME, CARD_NAME] + [p.name for p in root.glob("landmarks.*")]
    try:
        files += [str(p) for p in read_manifest(root / MANIFEST_NAME).table["path"]]
    except ManifestError:
        pass
    return files


def _refuse_foreign_files(root: Path, expected: set[str]) -> None:
    """The demo scans its sample folder: files it did not write would be mixed in."""
    foreign = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink() or (p.is_file() and is_image_file(p) and rel not in expected):
            foreign.append(rel)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise MfrkitError(f"{root} holds files the demo did not write ({shown}); the demo would mix them into its sample. Move them away or use another --out")


def register_demo_dataset(name: str, root: Path) -> None:
    """Register ``root`` (a folder the demo made) as ``name``.

    An existing registration of ``name`` is re-pointed only when it points at a folder
    mfrkit made (another demo) or at a folder that is gone: a user's own dataset that
    happens to be called ``demo`` is never taken over silently.
    """
    check_registrable(name, root, legacy=_legacy_sample,
                      remedy="free the name with `mfrkit datasets remove {name}` (your files are not touched) and run the demo again")
    add_dataset(name, root, layout="imagefolder", replace=True)


def build_demo_sample(out: Path, *, seed: int = 0, captures: int = 6) -> Manifest:
    """Write the sample into ``out`` with its manifest, and register it as ``demo``.

    ``out`` must be new, empty or a demo sample: the demo never writes into (or scans)
    a folder holding files it did not write.
    """
    out = Path(out)
    expected = {f"{identity}/{identity}_{k:04d}.jpg" for identity in source_photos() for k in range(1, captures + 1)}
    if out.is_dir() and not out.is_symlink():
        # Before the claim replaces an earlier sample: a user's file found only afterwards
        # would leave the earlier sample deleted and `demo` registered to a half-empty folder.
        _refuse_foreign_files(out, expected | set(_sample_files(out)))
    folder = OutputFolder(out, kind="demo-sample", fingerprint=_sample_fingerprint(seed, captures), adopt=_legacy_sample)
    with folder.claim(replace=_sample_files):
        _refuse_foreign_files(out, expected)
        build_sample(out, captures=captures, seed=seed)
        manifest, _ = scan_dataset(out, layout="imagefolder", name="demo")
        manifest.meta.update({"root": ".", "kind": "demo-sample", "seed": seed, "captures_per_identity": captures, "description": SAMPLE_DESCRIPTION})
        write_manifest(manifest, out / MANIFEST_NAME)
        folder.finished()
    register_demo_dataset("demo", out)
    return manifest


def _legacy_demo(root: Path) -> str | None:
    return "demo" if _legacy_sample(root / "sample") is not None else None


def run_demo(
    out: str | Path | None = None,
    *,
    seed: int = 0,
    captures: int = 6,
    executor: ExecutorSpec = ExecutorSpec(),
    full: bool = True,
    train: bool = True,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the demo in ``out`` (default ``$MFRKIT_HOME/demo``).

    ``out/sample`` is the sample (registered as dataset ``demo``), ``out/sample-masked``
    its masked copy (``demo-masked``), ``out/protocols/<spec>`` the protocols (registered
    as ``demo/<spec>``, so ``--protocol mr-mp`` finds them),
    ``out/models/dlib_resnet.onnx`` the baseline model and ``out/runs`` the benchmark
    runs with their leaderboard and ``report.html``. ``full=False`` stops after the
    landmarks; ``train=False`` leaves out the four trained families (the slowest stage),
    benchmarking dlib's ResNet alone: a fast smoke run of every other stage.
    """
    log = log or (lambda msg: None)
    out = Path(out) if out else mfrkit_home() / "demo"
    # The demo's folder is marked as the demo's: a folder holding anything else is refused
    # (the demo replaces its own earlier outputs, never a user's files).
    with OutputFolder(out, kind="demo", fingerprint="demo", adopt=_legacy_demo).claim():
        return _run_demo(out, seed=seed, captures=captures, executor=executor, full=full, train=train, progress=progress, log=log)


def _run_demo(out: Path, *, seed: int, captures: int, executor: ExecutorSpec, full: bool, train: bool, progress: bool,
              log: Callable[[str], None]) -> DemoResult:  # fmt: skip
    sample = out / "sample"
    manifest = build_demo_sample(sample, seed=seed, captures=captures)
    masked = out / "sample-masked"
    result = DemoResult(out=out, manifest=manifest)
    for backend in ("mediapipe", "dlib"):
        result.landmarks.append(detect_landmarks(manifest, backend, executor=executor, progress=progress))
    write_card(manifest, sample / CARD_NAME, landmark_summary={s.backend: s.counts for s in result.landmarks})
    if not full:
        return result

    from .bench.benchmark import BenchConfig, run_benchmark
    from .maskgen.synth_job import SynthConfig, synthesize
    from .models.dlib_resnet import import_dlib
    from .protocols.workflow import make_protocol_folder

    log("masking the sample (synth --mask random)")
    # replace: a masked copy of another seed or sample is the demo's own, made again
    result.synth = synthesize(manifest, masked, SynthConfig(types="random", seed=seed), executor=executor, progress=progress, replace=True)
    register_demo_dataset("demo-masked", masked)
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
    models, protocols = [str(model)], [str(p) for p in result.protocols.values()]
    if train:
        from .learning_check import demo_families

        log("training small csn, attention, heterogeneous and domain_adapt models on synthetic identities")
        result.families = demo_families(out / "families", seed=seed, executor=executor, progress=progress, log=log)
        models.append(str(result.families.models))
        protocols += [str(p) for p in result.families.protocols.values()]
    log(f"benchmarking {len(models)} model source(s) on {len(protocols)} protocols (bench)")
    cfg = BenchConfig(models=models, protocols=protocols, out=out / "runs", n_boot=200, seed=seed)
    result.bench = run_benchmark(cfg, log=log, progress=_bench_progress(progress))
    return result


def _bench_progress(enabled: bool):
    """The progress-bar factory :func:`~mfrkit.bench.benchmark.run_benchmark` takes."""
    if not enabled:
        return None
    from .progress import progress_bar

    return lambda total, description: progress_bar(total, description)
