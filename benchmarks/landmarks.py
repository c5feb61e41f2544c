"""Landmark throughput per backend on the demo sample (images/second, one process).

    python benchmarks/landmarks.py [--captures 20] [--repeat 3]
    python benchmarks/landmarks.py --cpu [--calculators] [--captures 50 --seed 1]

Decoding is excluded (images are decoded once up front); the figure is detection
plus landmarks for the primary face, median over repeats.

``--cpu`` gives mediapipe's stages instead, in CPU milliseconds per image
(``time.process_time``, which counts mediapipe's graph threads too; best of the
repeats): the full face mesh (``detect``), the short-range detector alone, and the
mesh on a known region (``mesh_in_region``, then the same graph through
``SolutionBase.process`` as the reference). ``--calculators`` adds mediapipe's own
profile of the face mesh graph: microseconds per image in each calculator (wall
clock inside its ``Process``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from mfrkit.data.imageio import read_image
from mfrkit.data.sample import build_sample
from mfrkit.landmarks import create_backend, detect_primary

#: The short-range detector alone: the first stage of the face mesh graph.
_DETECTOR_GRAPH = """
input_stream: "image"
output_stream: "detections"
node { calculator: "FaceDetectionShortRangeCpu" input_stream: "IMAGE:image" output_stream: "DETECTIONS:detections" }
"""


def throughput(images: list[np.ndarray], repeat: int) -> None:
    """Images per second of each backend (median of ``repeat`` passes)."""
    for name, options in [("mediapipe", {}), ("mediapipe", {"thorough": True}), ("dlib", {}), ("dlib", {"upsample": 0})]:
        backend = create_backend(name, **options)
        detect_primary(backend, images[0])  # warm-up (model load, graph init)
        rates, found = [], 0
        for _ in range(repeat):
            start = time.perf_counter()
            found = sum(detect_primary(backend, img).status == "ok" for img in images)
            rates.append(len(images) / (time.perf_counter() - start))
        label = name + "".join(f" {k}={v}" for k, v in options.items())
        print(f"{label:<28} {statistics.median(rates):8.1f} images/s  ({found}/{len(images)} faces found)")


def cpu_ms(run, items: list, repeat: int) -> float:
    """Best over ``repeat`` passes of the CPU time of ``run(item)`` per item, in ms."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for item in items:
            run(item)
        best = min(best, (time.process_time() - start) / len(items) * 1e3)
    return best


def mediapipe_stages(images: list[np.ndarray], repeat: int) -> None:
    """CPU ms per image of the face mesh's stages; the passes of the stages alternate,
    so a busy machine slows them alike."""
    from mfrkit.landmarks import mediapipe_mesh as mm

    backend = mm.MediapipeBackend(max_faces=10)
    detector = mm._solution_base()(graph_config=_DETECTOR_GRAPH, outputs=["detections"])
    h, w = images[0].shape[:2]
    pairs = [(img, mm.mesh_roi(faces[0].mesh, w, h)) for img in images if (faces := backend.detect(img))]
    backend.mesh_in_region(*pairs[0])
    roi_graph = backend._roi_mesh
    stages = {
        "detect (face mesh graph)": (lambda img: backend.detect(img), images),
        "short-range detector alone": (lambda img: mm._lean_outputs(detector, img), images),
        "mesh_in_region": (lambda p: backend.mesh_in_region(*p), pairs),
        "mesh_in_region via process": (lambda p: roi_graph.process({"image": p[0], "roi": p[1]}), pairs),
    }
    best = defaultdict(lambda: float("inf"))
    for _ in range(repeat):
        for label, (run, items) in stages.items():
            run(items[0])  # warm-up
            best[label] = min(best[label], cpu_ms(run, items, 1))
    print(f"{len(images)} images of {w}x{h} px ({len(pairs)} with a face for the region mesh); CPU ms per image, best of {repeat}")
    for label in stages:
        print(f"  {label:<30} {best[label]:6.2f}")
    detector.close()
    backend.close()


def calculator_profile(images: list[np.ndarray], passes: int = 3) -> list[tuple[str, float]]:
    """mediapipe's profile of the face mesh graph (as ``MediapipeBackend`` makes it) over
    ``passes`` passes of ``images``: (calculator, microseconds per image), largest first.
    Each calculator's ``Process`` time only (wall clock, so a busy machine inflates it):
    scheduling between them is not counted."""
    import os

    from mediapipe.framework import calculator_pb2, calculator_profile_pb2
    from mediapipe.python import solution_base
    from mediapipe.python._framework_bindings import validated_graph_config

    from mfrkit.landmarks import mediapipe_mesh as mm

    base = mm._solution_base()
    root = os.sep.join(os.path.abspath(solution_base.__file__).split(os.sep)[:-3])  # as SolutionBase finds its graphs
    validated = validated_graph_config.ValidatedGraphConfig()
    validated.initialize(binary_graph_path=os.path.join(root, mm._FACE_MESH_GRAPH))
    config = calculator_pb2.CalculatorGraphConfig.FromString(validated.binary_config)
    config.ClearField("type")
    with tempfile.TemporaryDirectory() as tmp:
        config.profiler_config.enable_profiler = True
        config.profiler_config.trace_enabled = True  # the profile is written with the trace
        config.profiler_config.trace_log_path = tmp + os.sep
        graph = base(graph_config=config, side_inputs={"num_faces": 10, "with_attention": True, "use_prev_landmarks": False},
                     calculator_params={"facedetectionshortrangecpu__facedetectionshortrange__facedetection__TensorsToDetectionsCalculator.min_score_thresh": 0.5,
                                        "facelandmarkcpu__ThresholdingCalculator.threshold": 0.5},
                     outputs=["multi_face_landmarks"])
        for _ in range(passes):
            for img in images:
                mm._serialized_faces(graph, img)
        graph.close()
        total: dict[str, float] = defaultdict(float)
        for path in Path(tmp).glob("*.binarypb"):
            profile = calculator_profile_pb2.GraphProfile.FromString(path.read_bytes())
            for calc in profile.calculator_profiles:
                total[calc.name] += calc.process_runtime.total
    n = passes * len(images)
    return sorted(((name, us / n) for name, us in total.items() if us), key=lambda row: -row[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captures", type=int, default=20, help="captures per identity")
    parser.add_argument("--seed", type=int, default=0, help="the sample's seed")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpu", action="store_true", help="mediapipe's stages in CPU ms per image instead of throughput")
    parser.add_argument("--calculators", action="store_true", help="with --cpu: mediapipe's per-calculator profile of the face mesh")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        records = build_sample(tmp, captures=args.captures, seed=args.seed)
        images = [np.ascontiguousarray(read_image(Path(tmp) / r["path"])) for r in records]
    if not args.cpu:
        h, w = images[0].shape[:2]
        print(f"{len(images)} sample images of {w}x{h} px")
        throughput(images, args.repeat)
        return
    mediapipe_stages(images, args.repeat)
    if args.calculators:
        rows = calculator_profile(images)
        print(f"face mesh calculators, us per image (sum {sum(us for _, us in rows):.0f}):")
        for name, us in rows:
            if us >= 1.0:
                print(f"  {us:8.1f}  {name}")


if __name__ == "__main__":
    main()
