"""Throughput of the benchmark's three stages. Prints figures; asserts nothing.

1. Embedding: images/second of the full input pipeline (decode + crop in worker
   processes, prefetch, preprocessing, model) against a bare ``session.run`` loop over
   tensors decoded and preprocessed beforehand, same model and batch size. The default
   model is dlib's face-recognition ResNet converted by ``mfrkit models import-dlib``
   (a real 29-convolution network, 150x150 input), fed already-aligned JPEG crops
   (``align=none``); ``--source-size 250`` feeds LFW-sized photos resized by the pipeline.
2. 1:1 scoring: pairs/second of :func:`mfrkit.bench.score.search.pair_scores`.
3. 1:N search: time and peak memory of :func:`mfrkit.bench.score.search.topk_search` (blocked
   matrix products, streaming top-k) for ``--probes`` x ``--gallery`` synthetic embeddings,
   against one plain numpy matrix product of the same size. The plain product holds the
   whole probes x gallery matrix (10k x 1M float32 is 40 GB), so it runs at
   ``--baseline-gallery`` entries (largest that fits comfortably) and is scaled linearly
   to the full gallery; top-k runs at both sizes. Peak memory is numpy's traced
   allocations during the call (tracemalloc), beyond the inputs.

    python benchmarks/bench_throughput.py [--images 1500] [--batch 32] [--workers 0,1] [--repeats 3]
        [--probes 10000] [--gallery 1000000] [--baseline-gallery 50000] [--dim 512] [--k 20]
        [--skip-embedding] [--skip-search]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np


def make_images(folder: Path, n: int, size: int) -> list:
    """``n`` JPEGs of ``size`` x ``size`` cut from the real photos with random shifts and scales."""
    import cv2
    from skimage import data as skdata

    from mfrkit.bench.embed.pipeline import ImageRef
    from mfrkit.data.imageio import write_image

    photo = skdata.astronaut()[:300, 100:400]
    rng = np.random.default_rng(0)
    refs = []
    for i in range(n):
        s = rng.integers(180, 300)
        y, x = rng.integers(0, 300 - s + 1), rng.integers(0, 300 - s + 1)
        crop = cv2.resize(np.ascontiguousarray(photo[y : y + s, x : x + s]), (size, size), interpolation=cv2.INTER_AREA)
        write_image(folder / f"{i:05d}.jpg", crop)
        refs.append(ImageRef(f"{i:05d}", str(folder / f"{i:05d}.jpg")))
    return refs


def bench_embedding(args) -> None:
    from mfrkit.crops import CropRequest, crop_chunk, default_workers
    from mfrkit.bench.embed.pipeline import embed_images
    from mfrkit.jobs import ExecutorSpec
    from mfrkit.onnx_model import OnnxModel
    from mfrkit.model_input import to_tensor

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = args.model
        if path is None:
            from mfrkit.models.dlib_resnet import import_dlib

            path = import_dlib(tmp / "dlib_resnet.onnx")
        model = OnnxModel(path, options={"align": "none"}, threads=args.threads)
        h, w = model.spec.input_size
        refs = make_images(tmp / "img", args.images, args.source_size or h)
        modes = [int(v) for v in args.workers.split(",")] if args.workers else sorted({0, 1, default_workers(model.provider)})
        print(f"\n== embedding: {model.name} ({h}x{w}, provider {model.provider}), {len(refs)} JPEGs of "
              f"{args.source_size or h}px, batch {args.batch}; pipeline worker processes: {modes} "
              f"(default here: {default_workers(model.provider)})")

        # bare loop: everything decoded and preprocessed before the clock starts, on a plain
        # onnxruntime session with its default settings (threads, spinning)
        import onnxruntime as ort

        crops, _ = crop_chunk([CropRequest(r.path) for r in refs], "none", (h, w))
        batches = [to_tensor(crops[i : i + args.batch], model.spec) for i in range(0, len(crops), args.batch)]
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        sess.run(None, {name: batches[0]})  # warm-up

        def bare_once() -> float:
            t0 = time.perf_counter()
            for b in batches:
                sess.run(None, {name: b})
            return len(refs) / (time.perf_counter() - t0)

        def pipeline_once(workers: int) -> tuple[float, float]:
            stamps: list[tuple[float, int]] = []
            done = 0

            def progress(n: int) -> None:
                nonlocal done
                done += n
                stamps.append((time.perf_counter(), done))

            emb = embed_images(model, refs, batch_size=args.batch, executor=ExecutorSpec(workers=workers), cache_dir=None, progress=progress)
            assert emb.ok.all()
            # steady state: from the first finished batch on (leaves out starting the workers)
            (t_first, n_first), (t_last, n_last) = stamps[0], stamps[-1]
            return emb.images_per_second, (n_last - n_first) / (t_last - t_first)

        # interleaved repeats: the machine is shared, so compare runs made under the same load
        bare: list[float] = []
        full: dict[int, list[float]] = {w: [] for w in modes}
        steady: dict[int, list[float]] = {w: [] for w in modes}
        for _ in range(args.repeats):
            bare.append(bare_once())
            for w in modes:
                f, s = pipeline_once(w)
                full[w].append(f)
                steady[w].append(s)
        med = lambda v: float(np.median(v))  # noqa: E731
        # best of the repeats = the run least disturbed by other load (as timeit's min)
        print(f"bare session.run on pre-decoded tensors: best {max(bare):7.1f} img/s, median {med(bare):7.1f} "
              f"(runs: {' '.join(f'{b:.0f}' for b in bare)})")
        for w in modes:
            for label, v in (("end to end", full[w]), ("steady state", steady[w])):
                print(f"pipeline, {w} worker(s), {label:<12}: best {max(v):7.1f} img/s, median {med(v):7.1f}; "
                      f"ratio of bests {max(v) / max(bare):.2f}, of medians {med(v) / med(bare):.2f}")


def bench_pairs(args) -> None:
    from mfrkit.bench.score.search import pair_scores

    rng = np.random.default_rng(1)
    n_emb, n_pairs = 100_000, args.pairs
    emb = rng.standard_normal((n_emb, args.dim), dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    li, ri = rng.integers(0, n_emb, n_pairs), rng.integers(0, n_emb, n_pairs)
    ok = np.ones(n_emb, bool)
    pair_scores(emb, emb, left_index=li[:1000], right_index=ri[:1000], left_ok=ok, right_ok=ok)
    t0 = time.perf_counter()
    pair_scores(emb, emb, left_index=li, right_index=ri, left_ok=ok, right_ok=ok)
    dt = time.perf_counter() - t0
    print(f"\n== 1:1 scoring: {n_pairs:,} pairs of {args.dim}-d embeddings (gathered from {n_emb:,}): "
          f"{dt:.2f} s, {n_pairs / dt / 1e6:.1f} M pairs/s")


def traced(fn):
    tracemalloc.start()
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, dt, peak


def bench_search(args) -> None:
    from mfrkit.bench.score.search import topk_search

    rng = np.random.default_rng(2)

    def unit(n):
        x = np.empty((n, args.dim), np.float32)
        for s in range(0, n, 100_000):  # in chunks: no float64 temporaries of the full array
            part = rng.standard_normal((min(100_000, n - s), args.dim), dtype=np.float32)
            x[s : s + len(part)] = part / np.linalg.norm(part, axis=1, keepdims=True)
        return x

    Q = unit(args.probes)
    Gb = unit(args.baseline_gallery)
    gb = args.baseline_gallery
    flops = lambda g: 2.0 * args.probes * g * args.dim  # noqa: E731
    print(f"\n== 1:N search: {args.probes:,} probes, k={args.k}, {args.dim}-d float32, numpy "
          f"(probe block {args.probe_block}, gallery block {args.gallery_block})")

    def plain():
        _, dt, peak = traced(lambda: Q @ Gb.T)
        return dt, peak

    def topk(G):
        return traced(lambda: topk_search(Q, G, args.k, device="cpu", probe_block=args.probe_block, gallery_block=args.gallery_block))[1:]

    buf = np.empty(args.probe_block * args.gallery_block, np.float32)

    def blocked_product():
        # the same blocked products as the search, without the selection: its floor
        for p0 in range(0, len(Q), args.probe_block):
            q = Q[p0 : p0 + args.probe_block]
            for g0 in range(0, gb, args.gallery_block):
                g = Gb[g0 : g0 + args.gallery_block]
                np.matmul(q, g.T, out=buf[: len(q) * len(g)].reshape(len(q), len(g)))

    # interleaved: the machine is shared, so compare runs made under the same load
    plain_t, topk_t, blocked_t = [], [], []
    for _ in range(args.repeats):
        dt, m_mm = plain()
        plain_t.append(dt)
        dt, m_tk = topk(Gb)
        topk_t.append(dt)
        t0 = time.perf_counter()
        blocked_product()
        blocked_t.append(time.perf_counter() - t0)
    med = lambda v: float(np.median(v))  # noqa: E731
    print(f"plain numpy Q @ G.T, gallery {gb:>9,}: median {med(plain_t):7.2f} s ({flops(gb) / med(plain_t) / 1e9:5.1f} GFLOP/s), "
          f"peak {m_mm / 2**30:6.2f} GiB")
    print(f"blocked top-k,       gallery {gb:>9,}: median {med(topk_t):7.2f} s ({flops(gb) / med(topk_t) / 1e9:5.1f} GFLOP/s), "
          f"peak {m_tk / 2**30:6.2f} GiB; time ratio per repeat "
          + " ".join(f"{a / b:.2f}" for a, b in zip(topk_t, plain_t)))
    print(f"blocked products only (no selection): median {med(blocked_t):7.2f} s; top-k / that: "
          + " ".join(f"{a / b:.2f}" for a, b in zip(topk_t, blocked_t)))
    if args.gallery > gb:
        G = unit(args.gallery)
        t_full, m_full = topk(G)
        del G
        after, _ = plain()  # the load may have changed during the long run: bracket it
        plain_t.append(after)
        est = med(plain_t) * args.gallery / gb
        print(f"blocked top-k,       gallery {args.gallery:>9,}: {t_full:7.2f} s ({flops(args.gallery) / t_full / 1e9:5.1f} GFLOP/s), "
              f"peak {m_full / 2**30:6.2f} GiB (the {args.gallery * args.dim * 4 / 2**30:.2f} GiB gallery itself not counted)")
        print(f"plain product at that size: ~{est:.1f} s scaled linearly from the {len(plain_t)} runs at {gb:,} "
              f"(last one after the long run: {after:.2f} s); it would need {args.probes * args.gallery * 4 / 2**30:.0f} GiB "
              f"for its output; time ratio ~{t_full / est:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=None, help="ONNX model (default: dlib's ResNet, converted now)")
    p.add_argument("--images", type=int, default=1500)
    p.add_argument("--source-size", type=int, default=None, help="JPEG side in pixels (default: the model's input size)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats of each comparison")
    p.add_argument("--workers", default=None, help="comma-separated worker counts to compare (default: 0, 1 and the default)")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: its default)")
    p.add_argument("--pairs", type=int, default=5_000_000)
    p.add_argument("--probes", type=int, default=10_000)
    p.add_argument("--gallery", type=int, default=1_000_000)
    p.add_argument("--baseline-gallery", type=int, default=50_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--probe-block", type=int, default=1024)
    p.add_argument("--gallery-block", type=int, default=8192)
    p.add_argument("--skip-embedding", action="store_true")
    p.add_argument("--skip-pairs", action="store_true")
    p.add_argument("--skip-search", action="store_true")
    args = p.parse_args()
    import onnxruntime

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}, "
          f"onnxruntime {onnxruntime.__version__} {onnxruntime.get_available_providers()}")
    if not args.skip_embedding:
        bench_embedding(args)
    if not args.skip_pairs:
        bench_pairs(args)
    if not args.skip_search:
        bench_search(args)


if __name__ == "__main__":
    main()
