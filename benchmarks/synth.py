"""Mask-synthesis speed and quality: per-stage milliseconds, images per second per core,
the ratio against MaskTheFace, and the quality checks a speed change must keep.

Run from the repository root (figures are noisy on a shared machine: rerun idle)::

    PYTHONPATH=. python benchmarks/synth.py                 # stages, whole process, quality
    PYTHONPATH=. python benchmarks/synth.py --lfw           # + the 13,233-image LFW-shaped run, -j 2
    PYTHONPATH=. python benchmarks/synth.py --quality 400 --save /tmp/q-before   # keep outputs
    PYTHONPATH=. python benchmarks/synth.py --quality 400 --compare /tmp/q-before  # pixel diffs
    PYTHONPATH=/path/to/other/checkout python benchmarks/synth.py ...   # the same figures for other code

Sections:

* **stages**: one process after a warm-up pass, CPU milliseconds per image of each
  stage on the demo sample's 250x250 LFW-style captures of real photos: ``decode`` (the
  JPEG), ``landmarks`` (mediapipe's face mesh), ``render`` (sample the parameters, draw,
  light, warp and composite the mask, check its coverage), ``encode`` (JPEG) and
  ``write`` (atomic file write); ``per core`` is ``1000 / sum`` images per second and
  ``vs MTF`` the speed-up over MaskTheFace's 42 ms per image on the development machine
  (single process, whole run). CPU time counts every thread of the process.
* **whole process**: ``mfrkit synth`` as a user runs it, single process (``-j 1``), on a
  fresh folder of N captures with a fresh ``$MFRKIT_HOME`` (scan, landmarks, render,
  write, data card, contact sheet, start-up and imports included): wall and CPU
  seconds, ms per image all in, and the ratio against MaskTheFace: measured in the
  same run on the same images when ``--masktheface DIR`` names a checkout of it (its
  dlib model in place; ``--masktheface-python`` its interpreter), else its recorded
  42 ms per image (development machine, 400 LFW-like images, one process), labelled so.
* **start-up**: the same command on 4 images under ``python -X importtime``: its CPU
  seconds (the fixed cost of a run) and the imports by package.
* **quality** (must not drop when the speed changes): on N captures, every mask worn
  ``proper``: the boundary gradient ratio (gradient magnitude on the mask's edge in the
  masked image over the original's at the same pixels, pooled; a pasted mask is ~2.7,
  MaskTheFace's 2.71 was measured on the development machine) and the coverage checks
  (nose tip, mouth corners and chin covered, eyes clear); then every coverage preset;
  and how hard the masks make recognition for a real recogniser (dlib's ResNet, when
  dlib is installed: genuine and impostor similarity and d' of masked probes
  against unmasked references, beside unmasked against unmasked). ``--save DIR`` keeps the outputs as PNG, ``--compare DIR`` prints pixel differences
  against outputs saved earlier (same images, same parameters).
* **RecordIO** (``--rec``, only this section): a synthetic insightface RecordIO of N
  112x112 crops (``--rec-images``, default 2000), the scan's records/s, ``mfrkit synth
  --src <it> --mask surgical --format rec -j 1`` whole process (masked img/s per core,
  the ratio against MaskTheFace's 42 ms/img), the same on 4N records and the steady
  rate from the difference (each image beyond the fixed start-up, card and contact
  sheet: the rate of a long run), the projection for CASIA-WebFace and MS1MV2 on 16
  cores at that rate, and the container finish's cost per image (part files vs image files);
  see ``benchmarks/_recordio_bench.py``.
* **LFW-shaped run** (``--lfw``): 13,233 captures in 5,749 identity folders (LFW's
  counts), ``mfrkit synth -j 2`` from scratch (landmarks included), wall time.

Nothing is asserted: this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

STAGES = ("decode", "landmarks", "render", "encode", "write")
#: MaskTheFace on the development machine: 400 LFW-like images, one process, 16.9 s.
MASKTHEFACE_MS = 42.0
#: LFW: 13,233 images of 5,749 people, 4,069 of them with one image.
LFW_IMAGES, LFW_PEOPLE, LFW_SINGLES = 13233, 5749, 4069


def _sample_tree(root: Path, images: int, seed: int = 1) -> list[Path]:
    """A folder of ``images`` LFW-style captures of the demo's real photos (identity
    folders of the two people); the image paths."""
    from mfrkit.data.sample import build_sample

    records = build_sample(root, captures=max(1, -(-images // 2)), seed=seed)
    paths = [root / r["path"] for r in records]
    for extra in paths[images:]:
        extra.unlink()
    return paths[:images]


def _faces(images: list[np.ndarray]) -> list:
    from mfrkit.landmarks import create_backend, detect_primary

    backend = create_backend("mediapipe")
    try:
        return [detect_primary(backend, img) for img in images]
    finally:
        backend.close()


# --- stages -------------------------------------------------------------------------------------------


def stages(n: int, repeat: int, renderer_name: str) -> dict:
    """CPU ms per image of each stage, one process, after a warm-up pass."""
    import cv2

    from mfrkit.atomic import atomic_write_bytes
    from mfrkit.data.imageio import decode_image, encode_image
    from mfrkit.landmarks import create_backend, detect_primary
    from mfrkit.maskgen import StyleSpec, check_coverage, create_renderer
    from mfrkit.rng import item_rng

    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        raw = [p.read_bytes() for p in _sample_tree(Path(tmp) / "src", n)]
        out = Path(tmp) / "out"
        renderer = create_renderer(renderer_name)
        backend = create_backend("mediapipe")
        spec = StyleSpec(coverages=("proper",))
        cpu = dict.fromkeys(STAGES, 0.0)
        done = 0
        for r in range(repeat + 1):  # pass 0 warms up models and caches
            for k, data in enumerate(raw):
                t0 = time.process_time()
                img = decode_image(data)
                t1 = time.process_time()
                face = detect_primary(backend, img)
                t2 = time.process_time()
                params = renderer.sample(item_rng(r, str(k)), face.landmarks, spec)
                rendered = renderer.apply(img, params)
                check_coverage(rendered.occlusion, face.landmarks, params.style.coverage)
                t3 = time.process_time()
                encoded = encode_image(rendered.image, ".jpg")
                t4 = time.process_time()
                atomic_write_bytes(out / f"{k:05d}.jpg", encoded)
                t5 = time.process_time()
                if r:
                    for stage, dt in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                        cpu[stage] += dt
                    done += 1
        backend.close()
    return {k: 1000 * v / done for k, v in cpu.items()}


# --- whole process ----------------------------------------------------------------------------------


def run_synth(src: Path, out: Path, workers: int, *extra: str) -> dict:
    """``mfrkit synth`` in a fresh process with a fresh ``$MFRKIT_HOME``: wall and CPU
    seconds (children), and the command's last line."""
    home = out.parent / f"{out.name}-home"
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "MFRKIT_HOME": str(home), "GLOG_minloglevel": "2"}
    cmd = [sys.executable, "-m", "mfrkit.cli", "synth", "--src", str(src), "--out", str(out), "-j", str(workers), *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"mfrkit synth failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(("synth:", "coverage"))]
    return {"wall": wall, "cpu": cpu, "summary": "; ".join(lines)}


def whole_process(n: int, workdir: Path) -> dict:
    src = workdir / f"captures-{n}"
    if not src.exists():
        _sample_tree(src, n)
    return run_synth(src, workdir / f"out-{n}", 1)


# --- quality ------------------------------------------------------------------------------------------


def quality(n: int, renderer_name: str, save: Path | None, compare: Path | None) -> None:
    """Boundary gradient ratio and coverage checks on ``n`` captures (see the module doc)."""
    from mfrkit.data.imageio import read_image, write_image
    from mfrkit.maskgen import StyleSpec, check_coverage, create_renderer
    from mfrkit.maskgen.quality import boundary_gradients
    from mfrkit.rng import item_rng

    renderer = create_renderer(renderer_name)
    with tempfile.TemporaryDirectory() as tmp:
        paths = _sample_tree(Path(tmp) / "src", n)
        images = [read_image(p) for p in paths]
    faces = _faces(images)
    found = [(i, img, f.landmarks) for i, (img, f) in enumerate(zip(images, faces)) if f.status == "ok"]
    print(f"quality: {len(found)}/{n} captures with a face ({renderer_name} renderer)")
    kept = []
    for label, spec in (("proper", StyleSpec(coverages=("proper",))), ("all coverages", StyleSpec())):
        sums = np.zeros(2)
        ratios, failed, per_cov = [], {}, {}
        diffs = []
        for i, img, lm in found:
            params = renderer.sample(item_rng(0, f"quality-{i}", label), lm, spec)
            out = renderer.apply(img, params)
            check = check_coverage(out.occlusion, lm, params.style.coverage)
            cov = params.style.coverage
            ok, total = per_cov.get(cov, (0, 0))
            per_cov[cov] = (ok + check.ok, total + 1)
            for reason in check.failed:
                failed[reason] = failed.get(reason, 0) + 1
            if label == "proper":
                kept.append((img, out.image, lm.points68, paths[i].parent.name))
            g_masked, g_orig, px = boundary_gradients(img, out.image, out.occlusion)
            if px:
                sums += (g_masked, g_orig)
                ratios.append(g_masked / max(g_orig, 1e-6))
            name = f"{label.replace(' ', '_')}-{i:04d}.png"
            if save is not None:
                save.mkdir(parents=True, exist_ok=True)
                write_image(save / name, out.image)
            if compare is not None and (compare / name).exists():
                old = read_image(compare / name).astype(np.int16)
                d = np.abs(old - out.image.astype(np.int16))
                diffs.append((float(d.mean()), int(d.max()), float((d.max(-1) > 8).mean()), float((d.max(-1) > 0).mean())))
        checks = ", ".join(f"{c} {ok}/{t}" for c, (ok, t) in sorted(per_cov.items()))
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(failed.items())) or "none"
        print(f"  {label:<14} boundary gradient ratio {sums[0] / sums[1]:.3f} pooled, {np.median(ratios):.3f} median per image "
              f"(MaskTheFace 2.71); coverage checks passed: {checks}; failed: {reasons}")
        if diffs:
            d = np.array(diffs)
            print(f"  {'':<14} vs {compare}: mean |diff| {d[:, 0].mean():.3f} levels (worst image {d[:, 0].max():.2f}), max {int(d[:, 1].max())}, "
                  f"pixels off by > 8 levels {100 * d[:, 2].mean():.3f}%, changed at all {100 * d[:, 3].mean():.2f}% ({len(d)} images)")
    if kept:
        from _synth_checks import difficulty, print_difficulty

        print_difficulty(difficulty(*(list(col) for col in zip(*kept))), len(kept))


# --- LFW-shaped tree ------------------------------------------------------------------------------------


def lfw_counts(seed: int = 0) -> list[int]:
    """Images per person for an LFW-shaped set: 5,749 people, 4,069 with one image,
    13,233 in all, a long tail (one person with 530)."""
    rng = np.random.default_rng(seed)
    multi = LFW_PEOPLE - LFW_SINGLES
    # Zipf-like tail for the people with two or more images, scaled to the total.
    raw = 2 + rng.zipf(1.9, multi).clip(max=600)
    raw[0] = 530
    budget = LFW_IMAGES - LFW_SINGLES
    while raw.sum() != budget:
        k = int(rng.integers(1, multi))
        step = 1 if raw.sum() < budget else -1
        if raw[k] + step >= 2:
            raw[k] += step
    return [1] * LFW_SINGLES + sorted(raw.tolist(), reverse=True)


def build_lfw_tree(root: Path) -> int:
    """Write the LFW-shaped tree (captures of the demo's two real photos, renamed into
    5,749 identity folders); reused when already there. Returns the image count."""
    marker = root / ".complete"
    if marker.exists():
        return int(marker.read_text())
    from mfrkit.atomic import atomic_write_bytes
    from mfrkit.data.sample import _EYES, apply_capture, sample_capture, source_photos
    from mfrkit.rng import item_rng

    photos = source_photos()
    names = sorted(photos)
    k = 0
    for person, count in enumerate(lfw_counts()):
        for j in range(1, count + 1):
            who = names[k % 2]
            params = sample_capture(item_rng(3, f"lfw-{k}"))
            rel = f"person_{person:04d}/person_{person:04d}_{j:04d}.jpg"
            atomic_write_bytes(root / rel, apply_capture(photos[who], _EYES[who], params))
            k += 1
    marker.write_text(str(k))
    return k


# --- printing -----------------------------------------------------------------------------------------

MTF_RECORDED = f"MaskTheFace's recorded {MASKTHEFACE_MS:.0f} ms/img (development machine; not run here)"


def print_stages(ms: dict, renderer: str, images: int, repeat: int) -> None:
    """The stage table: CPU ms per image, share, and the per-core rate of their sum."""
    total = sum(ms.values())
    print(f"stages ({renderer} renderer, 250x250 captures, one process, CPU ms per image over {images} images x {repeat} passes):")
    print(f"  {'stage':<10}{'CPU ms/img':>11}{'share':>8}")
    for stage in STAGES:
        print(f"  {stage:<10}{ms[stage]:>11.2f}{100 * ms[stage] / total:>7.0f}%")
    print(f"  {'sum':<10}{total:>11.2f}   = {1000 / total:.1f} img/s per core, {MASKTHEFACE_MS / total:.2f}x {MTF_RECORDED}; "
          f"render alone {1000 / ms['render']:.0f} img/s")


def print_whole(r: dict, n: int, src: Path, checkout: Path | None, python: str | None) -> None:
    """The whole-process line, with MaskTheFace measured on the same images when a
    checkout is given, else its recorded figure."""
    wall_ms, cpu_ms = 1000 * r["wall"] / n, 1000 * r["cpu"] / n
    print(f"whole process (mfrkit synth -j 1, {n} images, fresh scan + landmarks, start-up included): {r['wall']:.2f} s wall, "
          f"{r['cpu']:.2f} s CPU; {wall_ms:.1f} ms/img wall, {cpu_ms:.1f} ms/img CPU ({r['summary']})")
    if checkout is not None:
        from _synth_checks import masktheface

        m = masktheface(checkout, src, python)
        print(f"  MaskTheFace measured now on the same {n} images: {m['wall']:.2f} s wall, {m['cpu']:.2f} s CPU: mfrkit is "
              f"{m['wall'] / r['wall']:.2f}x faster (wall), {m['cpu'] / r['cpu']:.2f}x per core (CPU)")
    else:
        print(f"  vs {MTF_RECORDED}: {MASKTHEFACE_MS / wall_ms:.2f}x (wall), {MASKTHEFACE_MS / cpu_ms:.2f}x per core (CPU)")


# --- main -------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32, help="Distinct images for the stage timing.")
    parser.add_argument("--repeat", type=int, default=3, help="Timed passes over them.")
    parser.add_argument("--renderer", default="mesh", help="mesh or template.")
    parser.add_argument("--whole", type=int, default=400, help="Images for the whole-process run (0 skips it).")
    parser.add_argument("--quality", type=int, default=400, help="Images for the quality check (0 skips it).")
    parser.add_argument("--save", type=Path, help="Keep the quality outputs here (PNG).")
    parser.add_argument("--compare", type=Path, help="Compare the quality outputs with those saved here.")
    parser.add_argument("--lfw", action="store_true", help="Also run the 13,233-image LFW-shaped set with -j 2.")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "mfrkit-bench-synth", help="Where trees and outputs go (kept for reruns).")
    parser.add_argument("--skip-stages", action="store_true", help="Skip the per-stage timing.")
    parser.add_argument("--rec", action="store_true", help="Only the RecordIO run (synth --format rec on synthetic 112x112 crops).")
    parser.add_argument("--rec-images", type=int, default=2000, help="Records in the synthetic RecordIO of --rec.")
    parser.add_argument("--masktheface", type=Path, help="A MaskTheFace checkout: run it on the whole-process images for the ratio.")
    parser.add_argument("--masktheface-python", help="The interpreter of MaskTheFace's environment (default: this one).")
    args = parser.parse_args()
    os.environ.setdefault("GLOG_minloglevel", "2")
    args.workdir.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    print(f"{os.cpu_count()} cores; load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())} (figures are noisy when the machine is shared)")
    if args.rec:
        from _recordio_bench import report

        report(args.rec_images, args.workdir, run_synth, MASKTHEFACE_MS)
        return
    if not args.skip_stages:
        ms = stages(args.images, args.repeat, args.renderer)
        print_stages(ms, args.renderer, args.images, args.repeat)
    if args.whole:
        r = whole_process(args.whole, args.workdir)
        print_whole(r, args.whole, args.workdir / f"captures-{args.whole}", args.masktheface, args.masktheface_python)
        from _synth_checks import print_startup, startup

        small = args.workdir / "captures-4"
        if not small.exists():
            _sample_tree(small, 4)
        print_startup(startup(small, args.workdir), 4)
    if args.quality:
        quality(args.quality, args.renderer, args.save, args.compare)
    if args.lfw:
        root = args.workdir / "lfw-shaped"
        t = time.perf_counter()
        n = build_lfw_tree(root)
        built = time.perf_counter() - t
        r = run_synth(root, args.workdir / "lfw-shaped-masked", 2)
        print(f"LFW-shaped ({n} images, {LFW_PEOPLE} folders; tree built in {built:.0f} s, reused next time): mfrkit synth -j 2 from scratch "
              f"{r['wall']:.1f} s wall ({r['wall'] / 60:.2f} min), {r['cpu']:.1f} s CPU; {r['summary']}")


if __name__ == "__main__":
    main()
