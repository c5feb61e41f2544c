"""Backend ``mediapipe``: mediapipe 0.10.21's legacy face mesh (478 points with depth).

The face-mesh models ship inside the mediapipe wheel, so nothing is downloaded. The
dense mesh is kept; the 68 iBUG points are mesh vertices chosen by
``scripts/derive_ibug68_map.py`` (stored in ``data/mediapipe_ibug68.json``); the 5
ArcFace points use the iris centres for the eyes, which are more stable than the
eyelid contour on half-closed eyes.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
from importlib import resources
from typing import ClassVar

import numpy as np

from ..errors import LandmarkError
from ..quiet import native_logs
from .base import BACKENDS, Landmarks

# mediapipe's refined mesh: 468 face vertices, then two irises of 5 points each
# (centre first). Vertex 468 is the iris of the subject's right eye (image left).
IRIS_IMAGE_LEFT = 468
IRIS_IMAGE_RIGHT = 473
N_POINTS = 478


@functools.lru_cache(maxsize=1)
def ibug68_indices() -> np.ndarray:
    """Mesh vertex index of each iBUG-68 point, shape (68,), int (read once, read-only)."""
    text = resources.files(__package__).joinpath("data/mediapipe_ibug68.json").read_text()
    idx = np.asarray(json.loads(text)["indices"], dtype=np.int64)
    if idx.shape != (68,):
        raise LandmarkError("mediapipe_ibug68.json must hold 68 indices")
    idx.setflags(write=False)
    return idx


def five_vertices() -> np.ndarray:
    """Mesh vertex of each ArcFace point, shape (5,): the two iris centres, then the
    vertices of iBUG points 30 (nose tip), 48 and 54 (mouth corners)."""
    idx = ibug68_indices()
    return np.array([IRIS_IMAGE_LEFT, IRIS_IMAGE_RIGHT, idx[30], idx[48], idx[54]], dtype=np.int64)


def five_from_mesh(mesh: np.ndarray) -> np.ndarray:
    """ArcFace 5 points of a mediapipe mesh of shape (478, 2+), shape (5, 2), float32."""
    return np.asarray(mesh)[five_vertices(), :2].astype(np.float32)


def landmarks_from_mesh(mesh: np.ndarray, backend: str = "mediapipe") -> Landmarks:
    """Build :class:`Landmarks` from a mediapipe mesh of shape (478, 3), in pixels
    (``z`` on the ``x`` scale)."""
    mesh = np.asarray(mesh, dtype=np.float32)
    p68 = mesh[ibug68_indices(), :2]
    p5 = five_from_mesh(mesh)
    xy = mesh[:, :2]
    bbox = np.concatenate([xy.min(0), xy.max(0)]).astype(np.float32)
    return Landmarks(points5=p5, points68=p68.astype(np.float32), bbox=bbox, backend=backend, mesh=mesh)


def _same_face(a: np.ndarray, b: np.ndarray) -> bool:
    """Two meshes are the same face when their nose tips are closer than a fifth of the face width."""
    width = float(np.ptp(b[:, 0]))
    return float(np.linalg.norm(a[4, :2] - b[4, :2])) < 0.2 * width


# --- loading mediapipe ---------------------------------------------------------------------------------

_FACE_MESH_GRAPH = "mediapipe/modules/face_landmark/face_landmark_front_cpu.binarypb"
_FULL_RANGE_GRAPH = "mediapipe/modules/face_detection/face_detection_full_range_cpu.binarypb"
#: The mesh alone on a given region: the front graph's landmark subgraph, fed a
#: NormalizedRect instead of the face detector's output (no detection runs).
_ROI_MESH_GRAPH = """
input_stream: "image"
input_stream: "roi"
output_stream: "face_landmarks"
input_side_packet: "with_attention"
node {
  calculator: "FaceLandmarkCpu"
  input_stream: "IMAGE:image"
  input_stream: "ROI:roi"
  input_side_packet: "WITH_ATTENTION:with_attention"
  output_stream: "LANDMARKS:face_landmarks"
}
"""
#: mediapipe's region from a face's landmarks (face_landmark_landmarks_to_roi): their
#: box, turned so the eye corners 33 -> 263 are level, enlarged 1.5 times, made square.
_ROI_EYES = (33, 263)
_ROI_SCALE = 1.5


def mesh_roi(mesh: np.ndarray, width: int, height: int):
    """The region (a ``NormalizedRect``) mediapipe's mesh graph would take from a face's
    mesh (478 or 468, 2+) in a ``width`` x ``height`` image, as its tracking does."""
    from mediapipe.framework.formats import rect_pb2

    xy = np.asarray(mesh, dtype=np.float64)[:, :2]
    lo, hi = xy.min(0), xy.max(0)
    (x0, y0), (x1, y1) = xy[_ROI_EYES[0]], xy[_ROI_EYES[1]]
    rotation = float(np.arctan2(y1 - y0, x1 - x0))  # mediapipe: target 0 - atan2(-(dy), dx)
    rotation = (rotation + np.pi) % (2 * np.pi) - np.pi
    side = _ROI_SCALE * float(max(hi[0] - lo[0], hi[1] - lo[1]))
    centre = (lo + hi) / 2.0
    return rect_pb2.NormalizedRect(x_center=float(centre[0] / width), y_center=float(centre[1] / height), width=side / width,
                                   height=side / height, rotation=rotation)


def _solution_base():
    """mediapipe's ``SolutionBase`` (the graph runner behind every legacy solution).

    ``import mediapipe`` runs the package's ``__init__``, which imports every legacy
    solution, their drawing utilities (and with them matplotlib's pyplot) and the
    tasks API: about half a second in every process that detects landmarks, of which
    the face mesh needs none. When mediapipe is not imported yet, the package is
    registered without running its ``__init__`` and the graph runner is imported
    directly; the first access to any other attribute of the package (``import
    mediapipe; mediapipe.solutions``) runs the ``__init__`` then, so other code in the
    process sees the usual package. Any surprise falls back to the plain import.
    """
    if "mediapipe" not in sys.modules:
        spec = importlib.util.find_spec("mediapipe")
        if spec is None:
            raise LandmarkError("mediapipe is not installed (pip install mediapipe==0.10.21)")
        try:
            package = importlib.util.module_from_spec(spec)

            def finish(name: str):
                # PEP 562: called for attributes the half-imported package lacks.
                if name.startswith("__"):
                    raise AttributeError(name)
                package.__dict__.pop("__getattr__", None)
                spec.loader.exec_module(package)
                return getattr(package, name)

            package.__getattr__ = finish
            sys.modules["mediapipe"] = package
            return _import_solution_base()
        except Exception:  # noqa: BLE001 - fall back to the ordinary import below
            for name in [m for m in sys.modules if m == "mediapipe" or m.startswith("mediapipe.")]:
                del sys.modules[name]
    return _import_solution_base()


def _import_solution_base():
    # The calculator options of the face mesh graph are proto extensions: their
    # modules must be imported (as mediapipe's face_mesh module does) or the options
    # are lost when the graph config passes through Python.
    from mediapipe.calculators.core import constant_side_packet_calculator_pb2, gate_calculator_pb2, split_vector_calculator_pb2  # noqa: F401
    from mediapipe.calculators.tensor import (  # noqa: F401
        image_to_tensor_calculator_pb2,
        inference_calculator_pb2,
        tensors_to_classification_calculator_pb2,
        tensors_to_detections_calculator_pb2,
        tensors_to_landmarks_calculator_pb2,
    )
    from mediapipe.calculators.tflite import ssd_anchors_calculator_pb2  # noqa: F401
    from mediapipe.calculators.util import (  # noqa: F401
        association_calculator_pb2,
        detections_to_rects_calculator_pb2,
        landmarks_refinement_calculator_pb2,
        logic_calculator_pb2,
        non_max_suppression_calculator_pb2,
        rect_transformation_calculator_pb2,
        thresholding_calculator_pb2,
    )
    from mediapipe.framework.formats import detection_pb2, landmark_pb2, location_data_pb2  # noqa: F401
    from mediapipe.modules.face_detection import face_detection_pb2  # noqa: F401
    from mediapipe.python.solution_base import SolutionBase

    return SolutionBase


def _parse_landmarks(face) -> np.ndarray:
    """(N, 3) float32 normalised x, y, z of a ``NormalizedLandmarkList`` proto (see
    :func:`_parse_serialized`)."""
    return _parse_serialized(face.SerializeToString(), face)


def _parse_serialized(data: bytes, face=None) -> np.ndarray:
    """(N, 3) float32 normalised x, y, z of a serialised ``NormalizedLandmarkList``.

    Reading 478 landmarks attribute by attribute costs about 0.15 ms; the message is
    read here as a packed array instead (each landmark a 17-byte submessage: tag,
    length, then x, y, z as fixed32 fields), checked field by field, with the parsed
    proto's attributes (``face``, parsed from ``data`` when not given) as the fallback
    for any other layout.
    """
    if data and len(data) % 17 == 0:
        rec = np.frombuffer(data, dtype=_LANDMARK_RECORD)
        if (rec["tag"] == 0x0A).all() and (rec["size"] == 15).all() and (rec["fx"] == 0x0D).all() and (rec["fy"] == 0x15).all() and (rec["fz"] == 0x1D).all():
            return np.stack([rec["x"], rec["y"], rec["z"]], axis=1).astype(np.float32)
    if face is None:
        from mediapipe.framework.formats import landmark_pb2

        face = landmark_pb2.NormalizedLandmarkList.FromString(data)
    return np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32).reshape(-1, 3)


_LANDMARK_RECORD = np.dtype(
    [("tag", "u1"), ("size", "u1"), ("fx", "u1"), ("x", "<f4"), ("fy", "u1"), ("y", "<f4"), ("fz", "u1"), ("z", "<f4")]
)
assert _LANDMARK_RECORD.itemsize == 17


def _lean_ok(graph, inputs: dict[str, tuple], output: str, output_type: str) -> bool:
    """Whether :func:`_lean_outputs` can run ``graph`` (mediapipe 0.10's ``SolutionBase``
    internals): its input streams are exactly ``inputs`` (name -> the allowed
    ``PacketDataType`` names), and ``output`` is an observed stream of ``output_type``."""
    try:
        from mediapipe.python.solution_base import PacketDataType

        types = graph._input_stream_type_info
        return (set(types) == set(inputs) and all(types[name] in [PacketDataType[t] for t in allowed] for name, allowed in inputs.items())
                and graph._output_stream_type_info.get(output) == PacketDataType[output_type] and isinstance(graph._graph_outputs, dict)
                and isinstance(graph._simulated_timestamp, int))
    except Exception:  # noqa: BLE001 - another mediapipe: the public path
        return False


#: The inputs and output :func:`_serialized_faces` and :func:`_serialized_face_in_region` need.
_IMAGE_TYPES = ("IMAGE", "IMAGE_FRAME")
_FACES_IO = ({"image": _IMAGE_TYPES}, "multi_face_landmarks", "PROTO_LIST")
_REGION_IO = ({"image": _IMAGE_TYPES, "roi": ("PROTO",)}, "face_landmarks", "PROTO")


def _lean_outputs(graph, image: np.ndarray, region=None) -> dict:
    """``SolutionBase.process`` of ``graph`` on an RGB ``image`` (and a ``roi`` proto when
    ``region`` is given), up to the raw output packets: the same packets, in the same
    order, at the same timestamps; the output stream name -> packet dict is returned."""
    from mediapipe.python import packet_creator
    from mediapipe.python._framework_bindings import image_frame

    graph._graph_outputs.clear()
    graph._simulated_timestamp += 33333  # as process: a 30 fps video's timestamps
    make = getattr(packet_creator, "create_" + graph._input_stream_type_info["image"].value)  # as SolutionBase._make_packet
    graph._graph.add_packet_to_input_stream(stream="image", packet=make(image, image_format=image_frame.ImageFormat.SRGB).at(graph._simulated_timestamp))
    if region is not None:
        graph._graph.add_packet_to_input_stream(stream="roi", packet=packet_creator.create_proto(region).at(graph._simulated_timestamp))
    graph._graph.wait_until_idle()
    return graph._graph_outputs


def _serialized_faces(graph, image: np.ndarray) -> list[bytes]:
    """``SolutionBase.process`` of a face-mesh graph on an RGB ``image``, its
    ``multi_face_landmarks`` as serialised protos (see ``MediapipeBackend._face_records``)."""
    from mediapipe.python._framework_bindings import _packet_getter

    out = _lean_outputs(graph, image).get("multi_face_landmarks")
    return [] if out is None or out.is_empty() else list(_packet_getter._get_serialized_proto_list(out))


def _serialized_face_in_region(graph, image: np.ndarray, region) -> list[bytes]:
    """``SolutionBase.process`` of the region mesh graph (``_ROI_MESH_GRAPH``) on an RGB
    ``image`` and a ``NormalizedRect``: ``[]`` or the face's serialised landmarks."""
    from mediapipe.python._framework_bindings import _packet_getter

    out = _lean_outputs(graph, image, region).get("face_landmarks")
    return [] if out is None or out.is_empty() else [_packet_getter._get_serialized_proto(out)]


def _pixel_meshes(records: list[bytes], image: np.ndarray) -> list[np.ndarray]:
    """Each serialised ``NormalizedLandmarkList`` of ``records`` as a (478, 3) float32
    mesh in ``image``'s pixels."""
    h, w = image.shape[:2]
    out = []
    for data in records:
        pts = _parse_serialized(data)
        if len(pts) != N_POINTS:
            raise LandmarkError(f"mediapipe returned {len(pts)} points, expected {N_POINTS}")
        # Normalised coordinates -> pixels; mediapipe's z uses the x scale.
        out.append(pts * np.array([w, h, w], dtype=np.float32))
    return out


@BACKENDS.register("mediapipe")
class MediapipeBackend:
    """mediapipe face mesh, static images, iris refinement (478 points).

    The face mesh finds faces with mediapipe's short-range detector, which misses faces
    smaller than about a fifth of the image. When it finds none, the full-range detector
    (also in the wheel) looks for faces, and the mesh runs on a square crop around each.
    With ``thorough=True`` the full-range detector always runs, so small secondary
    faces are found and counted too (about twice the time per image).

    At most ``max_faces`` faces get a mesh, so ``n_faces`` (the faces found) saturates
    there: with the default of 10, ``n_faces == 10`` means ten or more. Only images with
    several faces pay for the higher cap (each face is one run of the mesh model).

    Parameters
    ----------
    max_faces : int
        How many faces to mesh at most (the primary one is chosen afterwards).
    min_confidence : float
        mediapipe's ``min_detection_confidence``.
    thorough : bool
        Always run the full-range detector as well (see above).
    roi_template : str or None
        The images are aligned crops of this template (:mod:`mfrkit.alignments`): no
        face is detected, the mesh runs once on the region the template's face gives
        (what ``synth --aligned T --redetect`` asks for; about two thirds of the time).
        ``n_faces`` is then 1, or 0 when the mesh finds no face there.
    """

    name: ClassVar[str] = "mediapipe"
    has_68: ClassVar[bool] = True
    has_mesh: ClassVar[bool] = True

    def __init__(self, max_faces: int = 10, min_confidence: float = 0.5, thorough: bool = False, roi_template: str | None = None) -> None:
        if int(max_faces) < 1:
            raise LandmarkError(f"max_faces must be at least 1, got {max_faces}")
        try:
            self._SolutionBase = _solution_base()
        except LandmarkError:
            raise
        except Exception as exc:  # pragma: no cover - depends on the install
            raise LandmarkError(f"cannot import mediapipe's face mesh: {exc}") from exc
        self.max_faces = int(max_faces)
        self.min_confidence = float(min_confidence)
        self.thorough = thorough
        self.roi_template = roi_template
        if roi_template is not None:
            from ..alignments import crop_template

            crop_template(roi_template)  # an unknown template lists the valid ones
        # (graph, square image?) pairs that have run: a graph's first run logs (mediapipe's
        # C++ logging is noisy; shown with --verbose), and so does its first non-square
        # image; later runs do not, so only those pay for the quieting (it redirects
        # stderr through a file).
        self._warm: set[tuple[int, bool]] = set()
        # Made on first use: most datasets never need the others (about 0.1 s each to load).
        self._mesh = self._face_mesh(self.max_faces) if roi_template is None else None
        self._crop_mesh = None
        self._detector = None
        self._roi_mesh = None

    def _run(self, graph, image: np.ndarray, process=None):
        """``graph.process`` (or ``process(graph, image)``) on an image, quietly the first
        time the graph runs, and the first time it sees a non-square image (a calculator
        then logs a warning once)."""
        process = process or (lambda g, im: g.process({"image": im}))
        key = (id(graph), image.shape[0] == image.shape[1])
        if key in self._warm:
            return process(graph, image)
        with native_logs(settle=graph._graph.wait_until_idle):
            out = process(graph, image)
        self._warm.add(key)
        return out

    def _face_records(self, graph, image: np.ndarray) -> list[bytes]:
        """The serialised ``NormalizedLandmarkList`` of each face a face-mesh graph finds
        in ``image``.

        ``SolutionBase.process`` builds a namedtuple class per call, parses every output
        proto into Python objects (which :func:`_parse_landmarks` would serialise again):
        about 0.3 ms an image. The packet goes in and the serialised protos come out here
        as ``process`` does it (same packet, timestamps, outputs), without that; anything
        unexpected of mediapipe's internals takes ``process`` itself.
        """
        if image.ndim == 3 and image.shape[2] == 3 and _lean_ok(graph, *_FACES_IO):
            return self._run(graph, image, _serialized_faces)
        return [face.SerializeToString() for face in self._run(graph, image).multi_face_landmarks or []]

    def _face_mesh(self, faces: int):
        return self._quietly_made(lambda: self._new_face_mesh(faces))

    def _quietly_made(self, make):
        """A new graph, made with its start-up logs filtered (calculators open on graph
        threads after the graph starts: wait until they are idle)."""
        made = []
        with native_logs(settle=lambda: made and made[0]._graph.wait_until_idle()):
            made.append(make())
        return made[0]

    def _new_face_mesh(self, faces: int):
        return self._SolutionBase(
            binary_graph_path=_FACE_MESH_GRAPH,
            side_inputs={"num_faces": faces, "with_attention": True, "use_prev_landmarks": False},
            calculator_params={
                "facedetectionshortrangecpu__facedetectionshortrange__facedetection__TensorsToDetectionsCalculator.min_score_thresh": self.min_confidence,
                "facelandmarkcpu__ThresholdingCalculator.threshold": 0.5,
            },
            outputs=["multi_face_landmarks"],
        )

    def _full_range_detector(self):
        if self._detector is None:
            from mediapipe.modules.face_detection import face_detection_pb2

            options = face_detection_pb2.FaceDetectionOptions(min_score_thresh=self.min_confidence)
            self._detector = self._quietly_made(lambda: self._SolutionBase(binary_graph_path=_FULL_RANGE_GRAPH, graph_options=options, outputs=["detections"]))
        return self._detector

    def _meshes(self, mesh, image: np.ndarray) -> list[np.ndarray]:
        return _pixel_meshes(self._face_records(mesh, image), image)

    def mesh_in_region(self, image: np.ndarray, region) -> list[np.ndarray]:
        """The mesh of the face in ``region`` (a ``NormalizedRect``, see :func:`mesh_roi`),
        without detecting: ``[]`` or one (478, 3) array in pixels."""
        if self._roi_mesh is None:
            self._roi_mesh = self._quietly_made(
                lambda: self._SolutionBase(graph_config=_ROI_MESH_GRAPH, side_inputs={"with_attention": True}, outputs=["face_landmarks"]))
        image = np.ascontiguousarray(image)
        return _pixel_meshes(self._region_records(image, region), image)

    def _region_records(self, image: np.ndarray, region) -> list[bytes]:
        """The serialised landmarks of the face the region mesh graph finds in ``region``
        of ``image`` (``[]`` or one). As :meth:`_face_records`: the packets go in and the
        serialised proto comes out as ``process`` does it (about 0.1 to 0.2 ms an image less
        than ``process``, which builds a namedtuple class and parses the 478 landmarks into
        Python objects), with ``process`` itself for anything unexpected."""
        graph = self._roi_mesh
        if image.ndim == 3 and image.shape[2] == 3 and _lean_ok(graph, *_REGION_IO):
            return self._run(graph, image, lambda g, im: _serialized_face_in_region(g, im, region))
        face = self._run(graph, image, lambda g, im: g.process({"image": im, "roi": region})).face_landmarks
        return [] if face is None else [face.SerializeToString()]

    def detect(self, image: np.ndarray, *, image_id: str | None = None) -> list[Landmarks]:
        image = np.ascontiguousarray(image)
        if self.roi_template is not None:
            from .template import template_landmarks

            h, w = image.shape[:2]
            region = mesh_roi(template_landmarks(self.roi_template, w, h).mesh, w, h)
            return [landmarks_from_mesh(m) for m in self.mesh_in_region(image, region)]
        meshes = self._meshes(self._mesh, image)
        if not meshes or self.thorough:
            extra = self._small_faces(image)
            # Keep the crop meshes of faces the full-image pass did not find.
            meshes += [m for m in extra if not any(_same_face(m, k) for k in meshes)]
        return [landmarks_from_mesh(m) for m in meshes[: self.max_faces]]

    def _small_faces(self, image: np.ndarray, crop: int = 256) -> list[np.ndarray]:
        """Full-range detection, then the mesh on a square crop (twice the box) per face."""
        import cv2

        h, w = image.shape[:2]
        meshes = []
        found = self._run(self._full_range_detector(), image).detections or []
        detections = sorted(found, key=lambda d: -d.score[0])
        if detections and self._crop_mesh is None:
            self._crop_mesh = self._face_mesh(1)
        for det in detections[: self.max_faces]:
            box = det.location_data.relative_bounding_box
            cx, cy = (box.xmin + box.width / 2) * w, (box.ymin + box.height / 2) * h
            side = 2.0 * max(box.width * w, box.height * h)
            k = crop / side
            m = np.array([[k, 0, crop / 2 - k * cx], [0, k, crop / 2 - k * cy]], dtype=np.float64)
            patch = cv2.warpAffine(image, m, (crop, crop), flags=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            for pts in self._meshes(self._crop_mesh, patch):
                pts[:, 0] = (pts[:, 0] - m[0, 2]) / k
                pts[:, 1] = (pts[:, 1] - m[1, 2]) / k
                pts[:, 2] /= k
                meshes.append(pts)
        return meshes

    def close(self) -> None:
        for graph in (self._mesh, self._crop_mesh, self._detector, self._roi_mesh):
            if graph is not None:
                graph.close()
        self._mesh = self._crop_mesh = self._detector = self._roi_mesh = None
