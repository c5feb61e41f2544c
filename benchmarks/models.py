"""Size and CPU speed of every reference family's exported ONNX model (onnxruntime).

For each family at its default (published-size) config, with untrained weights (speed
does not depend on them): the exported graph's parameters, GFLOPs of one image counted
on the torch module with ``torch.utils.flop_counter.FlopCounterMode`` (2 x
multiply-adds of convolutions and matrix products; elementwise ops not counted; GMACs,
the unit insightface quotes as "GFLOPs", are half of it), the
median latency of one image and the throughput at batch 64, with onnxruntime's CPU
provider. ``heterogeneous`` exports one graph per domain (same architecture, so one
row each). Figures, not assertions.

    python benchmarks/models.py [--families csn,attention] [--repeats 10] [--threads 0]
        [--backbone iresnet50] [--no-dlib]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from timing import median_seconds


def gflops(module, input_size) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    module = module.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(torch.zeros(1, 3, *input_size))
    return counter.get_total_flops() / 1e9


def measure(name: str, module, onnx_path: Path, input_size, args) -> dict:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if args.threads:
        options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    one = rng.standard_normal((1, 3, *input_size)).astype(np.float32)
    many = rng.standard_normal((args.batch, 3, *input_size)).astype(np.float32)
    run = lambda x: session.run(["embedding"], {"input": x})  # noqa: E731
    t1 = median_seconds(lambda: run(one), args.repeats)
    tb = median_seconds(lambda: run(many), max(3, args.repeats // 4))
    return {
        "model": name,
        "params_M": sum(p.numel() for p in module.parameters()) / 1e6,
        "gflops": gflops(module, input_size),
        "input": f"{input_size[0]}x{input_size[1]}",
        "latency_ms": 1e3 * t1,
        "img_per_s": args.batch / tb,
        "mb": onnx_path.stat().st_size / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="csn,attention,heterogeneous,domain_adapt")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs at batch 1 (a quarter of them at --batch)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: its default)")
    parser.add_argument("--backbone", default=None, help="override every family's backbone (default: each family's own)")
    parser.add_argument("--no-dlib", action="store_true", help="skip the dlib ResNet baseline")
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    from mfrkit.models import create_family
    from mfrkit.models.export import calibrate_batchnorm, domain_paths, write_onnx

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; torch {torch.__version__}, "
          f"onnxruntime {ort.__version__}, threads {args.threads or 'default'}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families.split(","):
            options = {"backbone": args.backbone} if args.backbone else {}
            torch.manual_seed(0)
            model = create_family(family, **options).eval()
            modules = model.export_modules()
            paths = domain_paths(Path(tmp) / f"{family}.onnx", list(modules))
            for domain, module in modules.items():
                calibrate_batchnorm(module, model.preprocessing)
                t0 = time.perf_counter()
                extra = {"family": family, **({"domain": domain} if domain else {})}
                write_onnx(module, paths[domain], model.preprocessing, extra)
                export_s = time.perf_counter() - t0
                label = f"{family}:{domain}" if domain else family
                row = measure(label, module, paths[domain], model.preprocessing.input_size, args)
                row["backbone"] = model.config.backbone
                row["export_s"] = export_s
                rows.append(row)
                print(f"  measured {label} (export + check {export_s:.0f} s)", flush=True)
        if not args.no_dlib:
            from mfrkit.models.dlib_resnet import import_dlib, load_dlib_resnet

            path = import_dlib(Path(tmp) / "dlib_resnet.onnx")
            row = measure("dlib_resnet", load_dlib_resnet(), path, (150, 150), args)
            row["backbone"] = "dlib ResNet-29"
            row["export_s"] = float("nan")
            rows.append(row)

    head = (f"{'model':<28}{'backbone':<16}{'input':>9}{'params M':>10}{'GFLOPs':>9}{'GMACs':>8}{'MB':>8}{'ms @1':>9}"
            f"{'img/s @' + str(args.batch):>12}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['model']:<28}{r['backbone']:<16}{r['input']:>9}{r['params_M']:>10.2f}{r['gflops']:>9.2f}{r['gflops'] / 2:>8.2f}"
              f"{r['mb']:>8.1f}{r['latency_ms']:>9.1f}{r['img_per_s']:>12.1f}")


if __name__ == "__main__":
    main()
