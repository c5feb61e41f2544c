"""A/B of the whole ``mfrkit synth`` process: another checkout (e.g. main) against this
one, run interleaved on the same inputs so both see the same machine load.

Usage (from the repository root; the inputs are those ``benchmarks/synth.py`` built in
its work folder: run ``synth.py --whole 400`` and ``synth.py --rec`` first)::

    python benchmarks/synth_ab.py /work/main              # 2 runs of each, both cases
    python benchmarks/synth_ab.py /work/main --runs 3

Prints each run's wall and CPU seconds (children, so the whole command) and the load
average when it started, then per checkout the best CPU time per image and the ratio.
Figures, not assertions.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth import MASKTHEFACE_MS, run_synth  # noqa: E402

HERE = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="The other checkout (its mfrkit is run with PYTHONPATH set to it).")
    parser.add_argument("--runs", type=int, default=2, help="Runs of each checkout per case (alternating order).")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "mfrkit-bench-synth", help="synth.py's work folder.")
    parser.add_argument("--rec-images", type=int, default=2000)
    parser.add_argument("--whole", type=int, default=400)
    args = parser.parse_args()
    code = {"other": str(args.other.resolve()), "this": str(HERE)}
    cases = [(f"{args.whole} captures 250x250", args.workdir / f"captures-{args.whole}", args.whole, ()),
             (f"{args.rec_images}-record RecordIO 112x112", args.workdir / f"rec-{args.rec_images}", args.rec_images,
              ("--mask", "surgical", "--format", "rec"))]
    for label, src, n, extra in cases:
        if not src.exists():
            print(f"{label}: {src} is missing (run benchmarks/synth.py first); skipped")
            continue
        best: dict[str, float] = {}
        for r in range(args.runs):
            for name in (("other", "this") if r % 2 == 0 else ("this", "other")):
                os.environ["PYTHONPATH"] = code[name]
                load = os.getloadavg()[0]
                out = run_synth(src, args.workdir / f"ab-{name}", 1, *extra)
                best[name] = min(best.get(name, float("inf")), out["cpu"])
                print(f"{label}, {name} ({code[name]}) run {r}: {out['wall']:.2f} s wall, {out['cpu']:.2f} s CPU, load {load:.1f}", flush=True)
        for name, cpu in best.items():
            print(f"{label}, {name}: best {cpu:.2f} s CPU = {1000 * cpu / n:.2f} ms/img = {n / cpu:.0f} img per CPU second, "
                  f"{MASKTHEFACE_MS * n / 1000 / cpu:.2f}x MaskTheFace's recorded {MASKTHEFACE_MS:.0f} ms/img")
        print(f"{label}: this / other CPU = {best['this'] / best['other']:.2f}")


if __name__ == "__main__":
    main()
