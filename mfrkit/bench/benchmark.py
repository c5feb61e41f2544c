"""``mfrkit bench``: models x protocols -> embeddings -> scores -> metrics -> run folder.

:func:`run_benchmark` is the one call behind the command. Per model it embeds every
image the protocols need once (through the embedding cache, so a later run on another
protocol reuses them), then scores and evaluates each protocol, applies the threshold
transfer, and writes the run folder and its leaderboard rows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import platform
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .. import __version__
from ..alignments import get_alignment
from ..errors import MfrkitError
from ..jobs.executors import ExecutorSpec
from ..landmarks import BACKENDS
from ..names import unique_components
from ..onnx_model import CudaOptions, ModelSet, load_models
from ..options import none_for, option, options_of, rates
from . import metrics as M
from .embed.embedding_cache import default_cache_dir, preprocessing_key
from .embed.embeddings_file import EMBEDDINGS_NAME, save_embeddings
from .embed.images import ImageTable, Sides
from .embed.model_set import EmbedOptions, ProgressFactory, embed_model_set, no_progress
from .embed.pipeline import TTA_MODES, Embeddings
from .evaluators import EvalSettings, ProtocolRun, SubsetRequest, describe_protocol, evaluator_of, fta_rows, subsets_of
from .evaluators.subset import checked_condition
from .evaluators.transfer import apply_transfer, source_threshold, transfer_far, transfer_source
from .protocol_io import parse_manifest_options, resolve_protocol
from .report.leaderboard import leaderboard_row, write_leaderboard
from .report.notes import provenance_warning
from .results import METRICS_NAME, FtaSummary, RunResult, new_result, write_csv, write_json
from .score.ijb_templates import IjbPooling
from .score.search import SEARCH_DEVICES

FTA_POLICIES = ("reject", "exclude")



class BenchError(MfrkitError):
    """A benchmark run cannot go ahead (settings, missing landmarks, protocol/manifest mismatch)."""


@dataclass
class BenchConfig:
    """Settings of one ``mfrkit bench`` run. Each field declares its ``mfrkit bench``
    option (:func:`mfrkit.options.option`): flag, help and parsing live here only.

    Attributes
    ----------
    models : model files or folders (see :func:`~mfrkit.onnx_model.load_models`), or training
        checkpoints (exported by :mod:`mfrkit.models.checkpoint_onnx`).
    protocols : protocol folders or spec names (see :func:`mfrkit.protocols.resolve_protocol`).
    probe_model : the probe half of a heterogeneous model given as two files.
    manifests : ``--manifest`` values, ``PATH`` (both roles) or ``reference=PATH`` /
        ``probe=PATH``, instead of the paths recorded in ``protocol.json``.
    out : results root; the run goes in ``out/<run_id>``.
    provider : ``auto`` | ``cuda`` | ``cpu`` (onnxruntime).
    batch_size, tta (None or ``flip``), threads (onnxruntime).
    executor : where images are cropped and embedded (``kind`` local or ray, ``workers``
        None: automatic, ``address`` of a Ray cluster); ``workers`` reads its workers.
    tf32 : on CUDA, allow TF32 in onnxruntime (recorded in metrics.json and the cache key).
    model_options : preprocessing keys overriding the model's metadata; sidecar : a JSON of them.
    landmarks : landmark backend whose cached landmarks align the faces.
    cache_dir : embedding cache root; None disables it (default: :func:`default_cache_dir`).
    fta_policy : ``reject`` (FtA comparisons are rejections, the default) or ``exclude``
        (left out of the metrics, still counted and listed).
    far_targets, max_rank, search_device, n_boot, seed, confidence : metric settings.
    where, limit : take part of each protocol (:mod:`mfrkit.bench.evaluators.subset`: the
        images whose manifest rows meet ``where``, a seeded sample of ``limit`` pairs /
        images per side / probes, by ``seed``); the results say so and are kept apart.
    transfer_from, transfer_far : the threshold for ``transfer_far`` on the 1:1 protocol
        called ``transfer_from`` (or, when none is, the only one of that spec, so
        ``umr-ump`` finds ``protocols/lfw-umr-ump``) is applied to every other 1:1
        protocol of the run.
    plots : write PNG plots.
    rules : the rule set the leaderboard shows (``mfrkit`` or ``insightface``, see
        :data:`~mfrkit.bench.metrics.RULE_SETS`); metrics.json always holds both.
    save_embeddings : write ``embeddings.parquet`` per model into the run folder.
    report : write ``report.html`` (:mod:`mfrkit.bench.report.page`) into the run folder.
    """

    models: list[str] = option(flags="--model", help="ONNX model, a folder of models, or a training checkpoint (.pt: exported "
                                                     "to ONNX once, cached by its hash); repeatable.")
    protocols: list[str] = option(
        flags="--protocol",
        help="Protocol: a registered name (or a unique suffix of one, e.g. mr-mp), a protocol folder, or a spec "
        "drawn from --manifest: SPEC (1:1) or SPEC:closed|open|megaface (1:N); repeatable.",
    )  # fmt: skip
    probe_model: str | None = option(None, help="Probe half of a heterogeneous model; --model is then the reference half.")
    manifests: list[str] = option(
        default_factory=list, flags="--manifest", short="-m",
        help="Manifest instead of the path in protocol.json: PATH (both roles) or reference=PATH / probe=PATH (repeatable).",
    )  # fmt: skip
    out: Path = option(Path("runs"), short="-o", help="Results root; the run goes in OUT/<run id>.")
    provider: str = option("auto", help="onnxruntime provider: auto, cuda or cpu.")
    batch_size: int = option(64, flags="--batch", min=1, help="Images per model call.")
    executor: ExecutorSpec = options_of(
        ExecutorSpec, ExecutorSpec(workers=None), help="Where images are cropped and embedded, by how many workers.",
        parts={
            "workers": {"help": "Pipeline worker processes (default: automatic; 0: none)."},
            "kind": {"help": "Where images are cropped and embedded: local (this machine's pipeline) or ray (Ray actors holding "
                             "one ONNX session each; one GPU each with --provider cuda when the cluster has GPUs)."},
            "address": {"help": "Ray cluster to join ('auto', host:port, ray://host:10001); none starts a local Ray instance."},
        },
    )  # fmt: skip
    tta: str | None = option(None, parse=none_for("none"), show_default="none", help="Test-time augmentation: none or flip.")
    threads: int = option(0, min=0, help="onnxruntime intra-op threads (0: its default).")
    tf32: bool = option(False, help="On CUDA, let onnxruntime run float32 convolutions and products in TF32 (faster on "
                        "Ampere and later, about 1e-3 relative error); recorded in metrics.json and the embedding "
                        "cache key.")
    model_options: dict = option(
        default_factory=dict, help="Preprocessing keys overriding the model's metadata.",
        entries={
            "input_size": "Override mfrkit.input_size, e.g. 112 or 112,112.",
            "color": "Override mfrkit.color: RGB or BGR.",
            "mean": "Override mfrkit.mean (0-255 units), e.g. 127.5.",
            "std": "Override mfrkit.std (0-255 units), e.g. 127.5.",
            "align": "Override mfrkit.align: arcface<S> or arcface<S>p<P> (S up to 2048 px, P up to 100 %; e.g. arcface112, arcface160p30), dlib150 or none.",
        },
    )  # fmt: skip
    sidecar: str | None = option(None, flags="--model-meta", help="Sidecar JSON with the mfrkit.* keys of a third-party model.")
    landmarks: str = option("mediapipe", help="Landmark backend whose (cached) landmarks align the faces.")
    redetect: bool = option(
        False, negatable=False,
        help="Detect landmarks on the images themselves, replacing landmarks a masked copy inherited from its "
        "source photos (what a deployed system would do; the default uses the inherited ones, as MLFW does).",
    )  # fmt: skip
    packs: list[str] = option(
        default_factory=list, flags="--pack",
        help="A pack (mfrkit pack) of a manifest the protocols use: its crops are read instead of decoding and aligning the photos (repeatable).",
    )  # fmt: skip
    cache_dir: Path | None = option(
        default_factory=default_cache_dir, flags="--cache", switches={"--no-cache": None},
        help="Embedding cache folder (default $MFRKIT_HOME/cache/embeddings).",
    )  # fmt: skip
    fta_policy: str = option("reject", flags="--fta", help="Failures to acquire: reject (scored as rejections) or exclude (left out, still counted).")
    far_targets: tuple = option(M.DEFAULT_FAR_TARGETS, flags="--far", parse=rates, help="FAR/FPIR targets, comma-separated.")
    max_rank: int = option(20, min=1, help="1:N candidate-list length and CMC range.")
    search_device: str = option("auto", help="1:N search and all-pairs scoring: auto, cuda (torch) or cpu (numpy).")
    n_boot: int = option(1000, flags="--bootstrap", min=0, help="Identity-bootstrap replicates (0: none).")
    seed: int = option(0, help="Seed of the bootstrap and of the --limit sample.")
    where: list[str] = option(
        default_factory=list, flags="--where", parse=checked_condition, metavar="KEY=VALUE", show_default="",
        help="Only the images whose manifest column KEY holds VALUE (a comma list; KEY!=VALUE: the others; @FILE: "
        "values one a line, e.g. an identity list), e.g. variant=unmasked; repeatable, all must hold. A pair is kept "
        "when both its images pass; all-pairs and 1:N keep the images that pass (IJB templates: refused). The "
        "results are marked as a subset (<protocol>@subset-<tag>), never as the full protocol's.",
    )  # fmt: skip
    limit: int | None = option(None, min=1, help="Only a seeded sample (--seed) of N pairs (1:1 pair lists), N images "
                               "per side (all-pairs) or N probes (1:N), after --where.")
    confidence: float = option(0.95, help="Confidence level of every interval (Clopper-Pearson and bootstrap).")
    transfer_from: str | None = option(
        "umr-ump", parse=none_for(""),
        help="Protocol (its name, or its spec when one protocol of the run has it) whose threshold is applied to the "
        "other 1:1 protocols ('' to skip).",
    )  # fmt: skip
    transfer_far: float = option(1e-4, help="FAR at which that threshold is chosen (where the source protocol has "
                                 "too few impostors for it, the smallest --far it resolves, said so).")
    ijb_pooling: str = option("flip,norm,detector", help="IJB template protocols: insightface's pooling switches, "
                              "comma-separated: flip (flip test), norm (embedding norm weights the face), detector "
                              "(detector score weights it); none for plain averages.")
    plots: bool = option(True, help="Write ROC/DET/CMC plots.")
    rules: str = option("mfrkit", help="Rule set the leaderboard shows: mfrkit (conservative TAR@FAR, midpoint "
                        "thresholds) or insightface (nearest ROC point, threshold grid on squared L2 distance, std "
                        "ddof=0); metrics.json always holds both.")
    save_embeddings: bool = option(False, negatable=False, help="Write embeddings.parquet per model into the run "
                                   "folder (FtA rows with a null embedding and their reason).")
    report: bool = option(True, help="Write report.html, the HTML report of the run, into the run folder.")

    @property
    def workers(self) -> int | None:
        """``executor.workers``: pipeline worker processes (None: automatic)."""
        return self.executor.workers

    def embed_options(self) -> EmbedOptions:
        """The embed stage's settings."""
        return EmbedOptions(batch_size=self.batch_size, tta=self.tta, cache_dir=self.cache_dir,
                            landmarks=self.landmarks, redetect=self.redetect, packs=tuple(self.packs),
                            executor=self.executor_spec())

    def eval_settings(self) -> EvalSettings:
        """The evaluators' settings."""
        return EvalSettings(fta_policy=self.fta_policy, far_targets=self.far_targets, n_boot=self.n_boot, seed=self.seed,
                            confidence=self.confidence, max_rank=self.max_rank, search_device=self.search_device,
                            plots=self.plots, ijb_pooling=self.ijb_pooling)

    def subset_request(self) -> SubsetRequest:
        """The part of each protocol this run takes (``--where`` / ``--limit``)."""
        return SubsetRequest(tuple(self.where), self.limit, self.seed)

    def executor_spec(self) -> ExecutorSpec:
        """The embedding step's executor: the local pipeline as given (``workers`` None:
        automatic), or Ray, whose automatic worker count is one actor per CPU of the
        cluster (0)."""
        if self.executor.kind == "local":
            return self.executor
        return dataclasses.replace(self.executor, workers=self.executor.workers or 0)


@dataclass
class BenchRun:
    """What a run produced: its folder, one result per (model, protocol), the leaderboard rows."""

    folder: Path
    results: list[RunResult]
    leaderboard: pd.DataFrame


#: Files a run folder holds beside its model folders, and a model folder beside its
#: protocol folders: a model or protocol named like one gets a hashed folder instead.
RUN_FILES = ("run.json", "leaderboard.csv", "leaderboard.md", "report.html")
MODEL_FILES = (EMBEDDINGS_NAME,)


def _result_folders(model_sets, protocols) -> tuple[dict[int, str], dict[str, str]]:
    """The folder of each model (by ``id``) and of each protocol (by name) in a run
    folder: :func:`mfrkit.names.unique_components`, so two models whose names sanitise
    alike (``model v1``, ``model_v1``), differ in case, or share a name (two
    ``model.onnx`` from different folders, told apart by sha256) never share a folder.
    The same model file given twice is refused before the run writes anything."""
    try:
        models = unique_components({id(ms): ms.name for ms in model_sets},
                                   identities={id(ms): ms.sha256 for ms in model_sets}, reserved=RUN_FILES)
    except ValueError as exc:
        raise BenchError(f"two models of this run cannot be told apart: {exc}; give each model once") from None
    try:
        protos = unique_components({p.name: p.name for p in protocols}, reserved=MODEL_FILES)
    except ValueError as exc:
        raise BenchError(f"two protocols of this run cannot be told apart: {exc}") from None
    return models, protos


def _embed_for(ms: ModelSet, sides: list[Sides], images: ImageTable, cfg: BenchConfig, log, progress: ProgressFactory):
    """The embed stage for one model set: (reference, probe) embeddings keyed by uid."""
    return embed_model_set(ms, sides, images, cfg.embed_options(), log, progress)


def _first(items: list[str], n: int = 2) -> str:
    """``a, b and 3 more``."""
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def _onnx_models(models: list[str], log) -> list[str]:
    """``--model`` values with each training checkpoint replaced by its (cached) ONNX export."""
    if not any(Path(m).suffix.lower() in (".pt", ".pth", ".ckpt") for m in models):
        return list(models)  # torch is not imported for ONNX models
    from ..models.checkpoint_onnx import exported_checkpoint, is_checkpoint

    return [str(exported_checkpoint(m, log=log)) if is_checkpoint(m) else m for m in models]


def _run_settings(cfg: BenchConfig) -> dict:
    """The settings run.json and metrics.json record: the config less what names the
    inputs; the executor as the keys it has always had (workers in its place, executor
    and ray_address last)."""
    settings: dict = {}
    for k, v in asdict(cfg).items():
        if k == "executor":
            settings["workers"] = v["workers"]
        elif k not in ("models", "protocols", "probe_model", "manifests", "out"):
            settings[k] = v
    settings.update(executor=cfg.executor.kind, ray_address=cfg.executor.address, far_targets=list(cfg.far_targets))
    return settings


# --- the run -----------------------------------------------------------------------------------------


def _validate(cfg: BenchConfig) -> None:
    if cfg.fta_policy not in FTA_POLICIES:
        raise BenchError(f"unknown FtA policy {cfg.fta_policy!r}; choose one of: {', '.join(FTA_POLICIES)}")
    if cfg.tta not in TTA_MODES:
        raise BenchError(f"unknown test-time augmentation {cfg.tta!r}; choose none or flip")
    if cfg.batch_size < 1:
        raise BenchError(f"batch size must be >= 1, got {cfg.batch_size}")
    if cfg.max_rank < 1:
        raise BenchError(f"max rank must be >= 1, got {cfg.max_rank}")
    IjbPooling.parse(cfg.ijb_pooling)  # a bad switch is named before anything runs
    if not cfg.protocols:
        raise BenchError("no protocol given: pass --protocol (a protocol folder or a spec name)")
    if cfg.n_boot == 1 or cfg.n_boot < 0:
        raise BenchError(f"bootstrap replicates must be 0 (none) or >= 2, got {cfg.n_boot}")
    if cfg.search_device not in SEARCH_DEVICES:
        raise BenchError(f"unknown search device {cfg.search_device!r}; choose one of: {', '.join(SEARCH_DEVICES)}")
    BACKENDS.get(cfg.landmarks)  # an unknown backend fails now, not after the models are loaded
    M.RULE_SETS.get(cfg.rules)
    from ..jobs import EXECUTORS

    EXECUTORS.get(cfg.executor.kind)
    for what, path in (("results folder (--out)", cfg.out), ("embedding cache (--cache)", cfg.cache_dir)):
        if path is not None and Path(path).exists() and not Path(path).is_dir():
            raise BenchError(f"the {what} {path} is a file, not a folder")
    if not 0 < cfg.confidence < 1:
        raise BenchError(f"the confidence level must be between 0 and 1, got {cfg.confidence}")
    M._check_targets(cfg.far_targets)
    M._check_targets([cfg.transfer_far], "transfer_far")


def run_benchmark(
    cfg: BenchConfig,
    *,
    log: Callable[[str], None] | None = None,
    progress: ProgressFactory | None = None,
) -> BenchRun:
    """Benchmark every model of ``cfg`` on every protocol; write the run folder.

    Returns
    -------
    BenchRun
    """
    log = log or (lambda msg: None)
    progress = progress or no_progress
    _validate(cfg)
    manifest_options = parse_manifest_options([str(m) for m in cfg.manifests])
    protocols = [resolve_protocol(p, manifest_options) for p in cfg.protocols]
    names = [p.name for p in protocols]
    if len(set(names)) != len(names):
        raise BenchError(f"protocol names repeat in this run: {names}")
    # the transfer source is named by the whole protocols' names; a subset keeps its spec
    source = transfer_source(protocols, cfg.transfer_from, BenchError)
    protocols, source = subsets_of(protocols, source, cfg.subset_request(), log)
    far, note = transfer_far(protocols, source, cfg.transfer_far, cfg.far_targets)
    if note:
        log(f"warning: {note}")
    transfer = (None if far is None else source, far, note)
    images = ImageTable()
    sides = [evaluator_of(p.kind).sides(p, images) for p in protocols]
    model_sets = load_models(
        _onnx_models(cfg.models, log), probe_model=cfg.probe_model, provider=cfg.provider, sidecar=cfg.sidecar,
        options=cfg.model_options, threads=cfg.threads, cuda=CudaOptions(tf32=cfg.tf32),
    )  # fmt: skip
    for ms in model_sets:
        if (untrained := provenance_warning(ms.describe())) is not None:
            log(f"warning: {untrained}")
    model_dirs, proto_dirs = _result_folders(model_sets, protocols)  # refused here, before anything is written
    now = _dt.datetime.now(_dt.timezone.utc)
    run_id = now.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    folder = Path(cfg.out) / run_id
    try:
        folder.mkdir(parents=True, exist_ok=False)
    except OSError as exc:
        raise BenchError(f"cannot create the run folder {folder}: {exc.strerror or exc}") from None
    settings = _run_settings(cfg)
    meta = {"run_id": run_id, "created": now.isoformat(timespec="seconds"), "mfrkit_version": __version__}
    write_json(folder / "run.json", {
        **meta, "settings": settings, "models": [ms.describe() for ms in model_sets],
        "protocols": [describe_protocol(p) for p in protocols], "environment": _environment(),
    })  # fmt: skip
    with _failed_run_cleanup(folder):
        results: list[RunResult] = []
        skipped: dict[tuple[str, str], list[str]] = {}
        for ms in model_sets:
            log(f"model {ms.name}: onnxruntime provider {ms.provider}" + (" (heterogeneous pair)" if ms.heterogeneous else ""))
            ref, probe = _embed_for(ms, sides, images, cfg, log, progress)
            mdir = folder / model_dirs[id(ms)]
            common = {"model": ms.describe(), "settings": {**settings, "batch_size": cfg.batch_size},
                      "preprocessing": _preprocessing(ms, cfg), "throughput": _throughput(ms, ref, probe)}
            if cfg.save_embeddings:
                save_embeddings(mdir / EMBEDDINGS_NAME, ms, protocols, sides, ref, probe, images)
            for res in _run_protocols(protocols, sides, ref, probe, images, cfg, meta, common, mdir, proto_dirs, ms,
                                      transfer, progress, log):
                for metric, why in (res.metrics.get("skipped") or {}).items():
                    skipped.setdefault((metric, why), []).append(f"{ms.name} on {res.protocol}")
                res.write()
                results.append(res)
        for (metric, why), where in skipped.items():  # one counted line per reason, not one per result
            log(f"{metric} skipped on {len(where)} result(s) ({_first(where)}): {why}")
        board = pd.DataFrame([leaderboard_row(r) for r in results])
        write_leaderboard(board, csv=folder / "leaderboard.csv", md=folder / "leaderboard.md")
        if cfg.report:
            from .report.page import REPORT_NAME, write_report

            try:
                write_report([folder], folder / REPORT_NAME)
            except (MfrkitError, OSError) as exc:  # the run's results are written: keep them, say why
                log(f"report not written: {exc}")
        return BenchRun(folder=folder, results=results, leaderboard=board)


def _run_protocols(protocols, sides, ref, probe, images, cfg: BenchConfig, meta: dict, common: dict, mdir: Path,
                   proto_dirs: dict[str, str], ms: ModelSet, transfer: tuple, progress, log) -> list[RunResult]:
    """One model set on every protocol, in the run's order, with the threshold transfer
    (``transfer``: the source's name or None, the FAR, the note saying why it is not the
    one asked).

    The transfer source goes first: all-pairs protocols then get its threshold up front
    and count at it in the same pass over their comparisons."""
    source, far, note = transfer
    model_name = ms.name
    per_model: list = [None] * len(protocols)
    hint = None
    for i in sorted(range(len(protocols)), key=lambda i: protocols[i].name != source):
        proto = protocols[i]
        evaluator = evaluator_of(proto.kind)
        pdir = mdir / proto_dirs[proto.name]
        pdir.mkdir(parents=True, exist_ok=True)
        run = ProtocolRun(proto, sides[i], ref, probe, images, cfg.eval_settings(), pdir, f"{model_name} on {proto.name}",
                          transfer_far=far if proto.name == source else None,
                          transfer_threshold=None if hint is None else hint["threshold"], progress=progress, log=log,
                          models=(ms.reference, ms.probe), embed=cfg.embed_options())
        outcome = evaluator.evaluate(run)
        failed = outcome.fta if outcome.fta is not None else fta_rows(evaluator, run)
        res = new_result(meta, **{**common, **outcome.sections}, protocol=describe_protocol(proto),
                         fta=FtaSummary.of(failed, cfg.fta_policy), folder=pdir)
        write_csv(pdir / "fta.csv", failed)
        res.finish(outcome.metrics, outcome.breakdowns, outcome.search_device)
        per_model[i] = (res, outcome)
        if proto.name == source:
            hint = source_threshold(outcome, far)
    apply_transfer(per_model, source, far, note=note, asked=cfg.transfer_far)
    return [res for res, _ in per_model]


@contextlib.contextmanager
def _failed_run_cleanup(folder: Path):
    """A run that fails (an error, Ctrl-C) leaves no half-written run folder behind: when
    no (model, protocol) finished, the folder (made by this run, under a fresh id) is
    removed; otherwise its ``run.json`` gets ``"status": "failed"`` and the error, and the
    finished ``metrics.json`` files (each complete, written atomically) are kept."""
    try:
        yield
    except BaseException as exc:
        if not any(folder.rglob(METRICS_NAME)):
            shutil.rmtree(folder, ignore_errors=True)
        else:
            with contextlib.suppress(Exception):
                run = json.loads((folder / "run.json").read_text())
                run.update(status="failed", error=f"{type(exc).__name__}: {exc}")
                write_json(folder / "run.json", run)
        raise


def _throughput(ms: ModelSet, ref: Embeddings, probe: Embeddings) -> dict:
    parts = [ref] + ([probe] if ms.heterogeneous else [])
    seconds = sum(e.seconds for e in parts)
    computed = sum(e.computed for e in parts)
    return {
        "images_per_second": computed / seconds if seconds > 0 and computed else None,
        "computed": computed,
        "cached": sum(e.cached for e in parts),
        "seconds": seconds,
        "note": "pipeline + model, over the images of the run not found in the cache",
    }


def _preprocessing(ms: ModelSet, cfg: BenchConfig) -> dict:
    """What turned the images into model inputs, and a short key of it: two results with
    the same model, protocol and key were computed from the same inputs."""
    out = {}
    for side, model in (("reference", ms.reference), ("probe", ms.probe)):
        needs = get_alignment(model.spec.align).needs_landmarks
        # Redetected landmarks of masked copies give other crops than inherited ones: another entry.
        landmarks = (cfg.landmarks + ("+redetect" if cfg.redetect else "")) if needs else None
        out[side] = {**model.spec.preprocessing(), "tta": cfg.tta, "landmarks": landmarks}
    out["key"] = preprocessing_key({"reference": out["reference"], "probe": out["probe"]}, tta=cfg.tta, landmark_backend=None)[:12]
    return out


def _environment() -> dict:
    import onnxruntime

    env = {"python": platform.python_version(), "platform": platform.platform(), "numpy": np.__version__}
    env["onnxruntime"] = onnxruntime.__version__
    env["onnxruntime_providers"] = onnxruntime.get_available_providers()
    from importlib.metadata import PackageNotFoundError, version

    try:
        env["torch"] = version("torch")
    except PackageNotFoundError:
        pass
    env["cuda_device"] = None
    if "CUDAExecutionProvider" in env["onnxruntime_providers"]:
        # Only then is there a device to name; importing torch costs ~180 MB of RSS.
        try:
            import torch

            env["cuda_device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        except ImportError:
            pass
    return env
