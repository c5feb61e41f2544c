"""The learning check: do the model families learn to tell (synthetic) people apart?

A check of the training machinery, never a benchmark of face recognition. It runs the
whole data flow on synthetic identities (:mod:`mfrkit.synthetic.identities`):

1. identities -> ``train`` / ``test`` (identity-disjoint);
2. ``synth --mix`` on ``train`` (each capture unmasked and masked, linked by
   ``source_id``) and ``synth`` on ``test`` (the masked probes);
3. ``pack`` of the training mix (aligned crops, read by every training run);
4. protocols on the held-out identities: ``umr-ump`` (unmasked vs unmasked) and
   ``umr-mp`` (unmasked reference vs masked probe), 10 identity-disjoint folds;
5. each family (and the plain CosFace baseline, trained on unmasked images only and on
   the same mix) trained small -> exported to ONNX -> benchmarked with ``mfrkit bench``.

Accuracy is the benchmark's 10-fold verification accuracy (threshold chosen on the
other nine folds), on balanced genuine/impostor pairs: chance is 50 %. A model that
learned nothing stays within :func:`chance_bound` of it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import MfrkitError
from .jobs import ExecutorSpec, OutputFolder

#: The protocols of the check: spec -> (reference folder, probe folder or None). Each is
#: named ``synthetic-<spec>`` so it never passes for a protocol on real photos.
CHECK_PROTOCOLS = {"umr-ump": ("test", None), "umr-mp": ("test", "test-masked")}
SYNTHETIC_NOTE = "synthetic identities: a check of the training machinery, not a face-recognition benchmark"


@dataclass(frozen=True)
class CheckModel:
    """One model the check trains: a name for the table, a family, its options, and
    which training images it sees (``variants``; None = the whole mix)."""

    name: str
    family: str
    options: dict = field(default_factory=dict)
    variants: tuple[str, ...] | None = None


def small_models(cfg: "CheckConfig | None" = None) -> list[CheckModel]:
    """The check's line-up: the four families and the CosFace baseline (on unmasked
    images only, and on the same mix as the families), all with one small backbone on the
    same ``arcface<input_size>`` crop (the attention family too: its published crop has a
    padding of 0.3, here one crop serves every model so they are compared on equal input)."""
    cfg = cfg or CheckConfig()
    common = {"backbone": cfg.backbone, "width": cfg.width, "input_size": cfg.input_size}
    emb = {**common, "embedding_dim": cfg.embedding_dim}
    return [
        CheckModel("cosface-unmasked", "cosface", emb, variants=("unmasked",)),
        CheckModel("cosface-mix", "cosface", emb),
        CheckModel("csn", "csn", {**emb, "concept_hidden": 32}),
        CheckModel("attention", "attention", {**emb, "n_maps": 4, "padding": 0.0}),
        CheckModel("heterogeneous", "heterogeneous", emb),
        CheckModel("domain_adapt", "domain_adapt", {**emb, "domain_hidden": 64}),
    ]


@dataclass(frozen=True)
class CheckConfig:
    """Sizes and settings of a learning check.

    Attributes
    ----------
    n_identities, captures, test_fraction, seed : synthetic identities (see
        :func:`~mfrkit.synthetic.identities.build_synthetic_identities`).
    backbone, width, embedding_dim, input_size : the models (one small backbone for all;
        the training images are packed as ``arcface<input_size>`` crops).
    epochs, batch_size, lr, warmup_steps : training of every model.
    pairs_per_fold : genuine and impostor pairs per fold of each protocol (10 folds).
    executor : where data preparation runs (default: in this process).
    """

    n_identities: int = 300
    captures: int = 8
    test_fraction: float = 0.2
    seed: int = 0
    backbone: str = "iresnet18"
    width: int = 8
    embedding_dim: int = 128
    input_size: int = 64
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.1
    warmup_steps: int = 20
    pairs_per_fold: int = 100
    executor: ExecutorSpec = ExecutorSpec()


@dataclass(frozen=True)
class CheckData:
    """The check's data, made by :func:`build_check_data` (all paths absolute)."""

    root: Path
    identities: Path
    train_mix: Path
    test: Path
    test_masked: Path
    pack: Path
    protocols: dict[str, Path]


def chance_bound(n_pairs: int, alpha: float = 1e-6) -> float:
    """Accuracy a model at chance exceeds with probability at most ``alpha`` on
    ``n_pairs`` balanced verification pairs: the binomial(n, 1/2) upper quantile over n.

    (The benchmark chooses each fold's threshold on the other folds, so a chance-level
    model's accuracy is a binomial draw around 1/2.)
    """
    from scipy.stats import binom

    if n_pairs < 1:
        raise MfrkitError("need at least one pair")
    return float(binom.ppf(1.0 - alpha, n_pairs, 0.5)) / n_pairs


def _data_fingerprint(cfg: CheckConfig) -> str:
    keys = ("n_identities", "captures", "test_fraction", "seed", "pairs_per_fold", "input_size")
    return hashlib.sha256(json.dumps({k: getattr(cfg, k) for k in keys}, sort_keys=True).encode()).hexdigest()[:16]


def build_check_data(out: str | Path, cfg: CheckConfig = CheckConfig(), *, progress: bool = False, log: Callable[[str], None] | None = None) -> CheckData:
    """Make (or reuse) the check's data in ``out`` (see the module docstring).

    Every stage is an mfrkit job in its own sub-folder, so a rerun reuses what is done
    and a folder that is not the check's own is refused.
    """
    from .synthetic.identities import build_synthetic_identities
    from .maskgen.synth_job import SynthConfig, synthesize
    from .packs.write import PackConfig, write_pack
    from .protocols.workflow import make_protocol_folder

    log = log or (lambda msg: None)
    root = Path(out).resolve()
    folder = OutputFolder(root, kind="learning-check-data", fingerprint=_data_fingerprint(cfg))
    with folder.claim():
        log(f"synthetic identities: {cfg.n_identities} x {cfg.captures} captures")
        ids = build_synthetic_identities(root / "identities", n_identities=cfg.n_identities, captures=cfg.captures,
                                         test_fraction=cfg.test_fraction, seed=cfg.seed, executor=cfg.executor, progress=progress)  # fmt: skip
        log("masked copies (synth --mix on train, synth on test)")
        mix = synthesize(ids.train, root / "train-mix", SynthConfig(seed=cfg.seed, mix=True), executor=cfg.executor, progress=progress)
        masked = synthesize(ids.test, root / "test-masked", SynthConfig(seed=cfg.seed), executor=cfg.executor, progress=progress)
        log(f"pack of the training mix (arcface{cfg.input_size})")
        write_pack(mix.manifest, root / "train-pack", PackConfig(align=f"arcface{cfg.input_size}"), executor=cfg.executor, progress=progress)
        manifests = {"test": ids.test.path, "test-masked": masked.manifest}
        protocols = {}
        for spec, (reference, probe) in CHECK_PROTOCOLS.items():
            target = root / "protocols" / spec
            if not (target / "protocol.json").exists():
                make_protocol_folder(target, manifests[reference], manifests[probe] if probe else None, spec=spec, seed=cfg.seed,
                                     name=f"synthetic-{spec}", genuine_per_fold=cfg.pairs_per_fold,
                                     impostor_per_fold=cfg.pairs_per_fold, allow_fewer=True)  # fmt: skip
            protocols[spec] = target
        folder.finished()
    return CheckData(root=root, identities=root / "identities", train_mix=mix.manifest, test=Path(ids.test.path), test_masked=masked.manifest,
                     pack=root / "train-pack", protocols=protocols)  # fmt: skip


@dataclass(frozen=True)
class TrainedModel:
    """A model the check trained and exported."""

    name: str
    family: str
    checkpoint: Path
    onnx: Path
    seconds: float
    steps: int
    n_samples: int
    last_losses: dict


def train_check_model(model: CheckModel, data: CheckData, out: str | Path, cfg: CheckConfig = CheckConfig(), *,
                      progress: bool = False) -> TrainedModel:  # fmt: skip
    """Train ``model`` on the check's packed training mix and export it to
    ``out/<name>.onnx`` (a heterogeneous model: ``out/<name>/<name>-{reference,probe}.onnx``,
    the folder the bench reads as one model). A finished run is reused."""
    from .models.export import export_family
    from .models.train import TrainConfig, train

    out = Path(out)
    run = out / "runs" / model.name
    config = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, warmup_steps=cfg.warmup_steps, workers=0,
                         device="cpu", precision="fp32", seed=cfg.seed, log_every=10, checkpoint_every=10_000,
                         variants=model.variants)  # fmt: skip
    started = time.time()
    result = train(model.family, data.pack, run, options=model.options, config=config, progress=progress,
                   recipe=f"learning-check:{model.name}")
    seconds = time.time() - started
    timing = run / "train_seconds.json"  # a finished run is reused: keep the time it took
    if result.step > result.resumed_from or not timing.exists():
        timing.write_text(json.dumps({"seconds": seconds, "steps": result.step}))
    else:
        seconds = float(json.loads(timing.read_text())["seconds"])
    target = out / "models" / (model.name if model.family == "heterogeneous" else "") / f"{model.name}.onnx"
    export_family(None, target, checkpoint=result.checkpoint)
    return TrainedModel(name=model.name, family=model.family, checkpoint=result.checkpoint, onnx=target, seconds=seconds,
                        steps=result.step, n_samples=result.n_samples, last_losses=result.last_losses)  # fmt: skip


@dataclass(frozen=True)
class CheckRow:
    """One line of the learning table: held-out accuracy per protocol, and the gap."""

    name: str
    family: str
    trained_on: str
    acc: dict
    gap: float
    train_seconds: float
    acc_std: dict = field(default_factory=dict)


@dataclass
class CheckResult:
    """What :func:`run_learning_check` measured."""

    data: CheckData
    rows: list[CheckRow]
    n_pairs: dict[str, int]
    chance_bound: dict[str, float]
    bench_folder: Path
    config: CheckConfig

    def table(self) -> str:
        """The learning table as Markdown (labelled synthetic)."""
        lines = [
            f"Held-out verification accuracy, 10-fold ({SYNTHETIC_NOTE}).",
            f"{self.config.n_identities} identities x {self.config.captures} captures, "
            + ", ".join(f"{s}: {self.n_pairs[s]} pairs" for s in self.n_pairs)
            + "; chance is 0.5, and a model at chance exceeds "
            + ", ".join(f"{self.chance_bound[s]:.3f} ({s})" for s in self.chance_bound) + " with probability below 1e-6.",
            "",
            "Accuracy is the mean over the folds, ± the standard deviation across folds.",
            "",
            "| model | family | trained on | umr-ump | umr-mp | masked gap | train s |",
            "|---|---|---|---:|---:|---:|---:|",
        ]
        nan = float("nan")
        for r in self.rows:
            cells = [f"{r.acc.get(s, nan):.3f} ± {r.acc_std.get(s, nan):.3f}" for s in ("umr-ump", "umr-mp")]
            lines.append(f"| {r.name} | {r.family} | {r.trained_on} | {cells[0]} | {cells[1]} | {r.gap:+.3f} | {r.train_seconds:.0f} |")
        return "\n".join(lines)


def evaluate_models(models_dir: Path, data: CheckData, out: Path, seed: int = 0):
    """Benchmark every model in ``models_dir`` on the check's protocols (``mfrkit bench``)."""
    from .bench.benchmark import BenchConfig, run_benchmark

    config = BenchConfig(models=[str(models_dir)], protocols=[str(p) for p in data.protocols.values()], out=out, n_boot=100,
                         seed=seed, plots=False, report=False, cache_dir=None, executor=ExecutorSpec(workers=0))  # fmt: skip
    return run_benchmark(config)


def run_learning_check(out: str | Path, cfg: CheckConfig = CheckConfig(), *, models: list[CheckModel] | None = None, progress: bool = False,
                       log: Callable[[str], None] | None = None) -> CheckResult:  # fmt: skip
    """Build the data, train and export every model, bench them; the learning table."""
    log = log or (lambda msg: None)
    out = Path(out).resolve()
    data = build_check_data(out / "data", cfg, progress=progress, log=log)
    models = models if models is not None else small_models(cfg)
    trained = {}
    for m in models:
        log(f"training {m.name} ({m.family})")
        trained[m.name] = train_check_model(m, data, out, cfg, progress=progress)
    log("benchmarking")
    run = evaluate_models(out / "models", data, out / "bench", cfg.seed)
    board = run.leaderboard
    acc: dict[str, dict[str, float]] = {}
    std: dict[str, dict[str, float]] = {}
    n_pairs: dict[str, int] = {}
    for _, row in board.iterrows():
        spec = str(row["protocol"]).removeprefix("synthetic-")
        acc.setdefault(str(row["model"]), {})[spec] = float(row["acc_mean"])
        std.setdefault(str(row["model"]), {})[spec] = float(row["acc_std"])
        n_pairs[spec] = int(row["n_pairs"])
    rows = []
    for m in models:
        a = acc.get(m.name, {})
        rows.append(CheckRow(name=m.name, family=m.family, trained_on="unmasked" if m.variants == ("unmasked",) else "mix",
                             acc=a, gap=a.get("umr-ump", float("nan")) - a.get("umr-mp", float("nan")),
                             train_seconds=trained[m.name].seconds, acc_std=std.get(m.name, {})))  # fmt: skip
    bounds = {s: chance_bound(n) for s, n in n_pairs.items() if n}
    return CheckResult(data=data, rows=rows, n_pairs=n_pairs, chance_bound=bounds, bench_folder=run.folder, config=cfg)


#: The demo's small check: four families, about a minute of training on two cores.
DEMO_CONFIG = CheckConfig(n_identities=60, captures=6, test_fraction=0.3, epochs=8, batch_size=32, lr=0.1, warmup_steps=10,
                          pairs_per_fold=30, width=8, embedding_dim=64, input_size=64)  # fmt: skip
DEMO_FAMILIES = ("csn", "attention", "heterogeneous", "domain_adapt")


@dataclass(frozen=True)
class DemoFamilies:
    """What :func:`demo_families` made: the exported models (one folder the bench reads),
    the synthetic protocols, and per model its training time."""

    models: Path
    protocols: dict[str, Path]
    trained: list[TrainedModel]
    config: CheckConfig
    note: str = SYNTHETIC_NOTE


def demo_families(out: str | Path, *, seed: int = 0, executor: ExecutorSpec = ExecutorSpec(), progress: bool = False,
                  log: Callable[[str], None] | None = None) -> DemoFamilies:  # fmt: skip
    """Train small versions of the four families on synthetic identities and export them
    (``mfrkit demo``): ``out/models`` holds the ONNX files, ``out/data`` the identities,
    masked copies, pack and held-out protocols. Reuses whatever an earlier demo finished."""
    log = log or (lambda msg: None)
    out = Path(out).resolve()
    cfg = dataclasses.replace(DEMO_CONFIG, seed=seed, executor=executor)
    data = build_check_data(out / "data", cfg, progress=progress, log=log)
    models = [m for m in small_models(cfg) if m.name in DEMO_FAMILIES]
    trained = []
    for m in models:
        log(f"training {m.name} on {cfg.n_identities} synthetic identities")
        trained.append(train_check_model(m, data, out, cfg, progress=progress))
    return DemoFamilies(models=out / "models", protocols=data.protocols, trained=trained, config=cfg)
