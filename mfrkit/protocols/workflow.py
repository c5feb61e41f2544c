"""Folder-level entry points used by ``mfrkit protocol make`` and ``import``.

Each one reads its inputs, calls the generator, importer or deriver, and saves the
protocol folder(s), so the CLI stays a thin parse-call-print layer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from ..data.manifest import STATUS_OK
from ..errors import require_made
from ..userfiles import user_file_sha256
from .all_pairs import make_all_pairs
from .derive import derive_verification
from .errors import InsufficientDataError, ProtocolError
from .folder import Protocol, open_manifest, read_info, save_protocol
from .identification import MODES, make_identification
from .interop import ImportReport, bin_protocol_in_place, import_insightface_bin, import_pairs
from .kinds import PROTOCOL_KINDS, protocol_kind
from .pool import available_crops
from .registry import check_registrable, default_name, get_protocol, list_protocols, lookup, register_protocol, safe_part
from .spec import SPECS
from .verification import make_verification

PathLike = str | os.PathLike
#: ``SPEC:all-pairs`` names an all-pairs protocol drawn from the manifests (beside 1:N's ``SPEC:MODE``).
ALL_PAIRS_MODE = "all-pairs"


def _crop_folder(spec: str, region: str, region2: str | None, factor: float, centered: bool | None) -> str:
    name = f"{spec}_{region}" + (f"-{region2}" if region2 else "") + f"_f{factor:g}"
    return name + ("" if centered is None else ("_centered" if centered else "_noncentered"))


def partial_grid(spec: str, probe_manifest, spec_params: dict) -> list[dict]:
    """Every crop a partial spec can use in ``probe_manifest``, filtered by the given params."""
    crops = available_crops(open_manifest(probe_manifest))
    if not crops:
        raise ProtocolError("the probe manifest has no partial images; run `mfrkit partial` first")
    region, factor, centered = spec_params.get("region"), spec_params.get("factor"), spec_params.get("centered")
    keep = [c for c in crops if (region is None or c[0] == region) and (factor is None or abs(c[1] - float(factor)) < 1e-9)
            and (centered is None or c[2] == centered)]
    out = []
    for r, f, c in keep:
        if spec == "partial-cross":
            seconds = [r2 for r2, f2, c2 in crops if r2 != r and f2 == f and c2 == c
                       and (spec_params.get("region2") in (None, r2))]
            out += [{"region": r, "region2": r2, "factor": f, "centered": c} for r2 in seconds]
        else:
            out.append({"region": r, "factor": f, "centered": c})
    if not out:
        raise ProtocolError(f"no crop of the probe manifest matches {spec_params}; available: "
                            + "; ".join(f"{r}@{f:g}{'' if c is None else (' centered' if c else ' non-centered')}"
                                        for r, f, c in crops))
    return out


def make_protocol_folder(out: PathLike, reference: PathLike | None, probe: PathLike | None = None, *, spec: str = "umr-ump",
                         spec_params: dict | None = None, kind: str = "verification", derive_from: PathLike | None = None,
                         people: PathLike | None = None, overwrite: bool = False, name: str | None = None,
                         register: bool | str = False, **options: Any) -> list[tuple[Path, Protocol]]:
    """Make (or derive) a protocol and save it under ``out``.

    A partial spec without a region or factor makes one protocol per available crop,
    in sub-folders of ``out`` named ``<spec>_<region>[-<region2>]_f<factor>[_centered]``,
    all from the same seed (so the same identities fall into the same folds).

    Parameters
    ----------
    out : path-like
    reference, probe : manifest paths
    spec, spec_params : the spec
    kind : ``verification``, ``all-pairs`` (every reference x every probe image, see
        :mod:`.all_pairs`) or ``identification``
    derive_from : path of a 1:1 protocol folder to derive from (same pairs and folds), or of
        an ``ijb-templates`` protocol: its masked-probe variant, ``probe`` (or ``reference``)
        being the masked copy of its loose crops (:mod:`.ijb_masked`)
    people : LFW ``people.txt`` giving the identity folds (1:1 only)
    name : the protocol's recorded name (default: the folder's name)
    register : False, True (register as ``<dataset>/<spec>``, with ``-<mode>`` for 1:N,
        ``-all-pairs`` for an all-pairs protocol, and
        the crop folder's name for a partial grid; the dataset is the reference
        manifest's name) or the registry name (a grid adds ``/<crop folder>``, or
        ``-<crop folder>`` after a name with a ``/``). ``overwrite`` also re-points a
        name registered for another folder. The name is set in ``Protocol.registered_as``.
    options : forwarded to :func:`make_verification`, :func:`make_all_pairs`,
        :func:`make_identification` or :func:`derive_verification`.

    Returns
    -------
    list of (folder, Protocol) written.
    """
    if derive_from is not None:  # a parent kind that derives its own way (IJB templates: a masked probe side)
        derived = protocol_kind(read_info(derive_from)["kind"]).derive_folder(
            out, derive_from, probe if probe is not None else reference, name=name, register=register,
            overwrite=overwrite, allow_missing=bool(options.get("allow_missing")))
        if derived is not None:
            return [derived]
    if reference is None:
        raise ProtocolError("give the manifest to draw from (--manifest)")
    if not isinstance(kind, str) or kind not in PROTOCOL_KINDS:
        raise ProtocolError(f"kind must be verification, all-pairs or identification, got {kind!r}")
    of_kind = protocol_kind(kind)
    of_kind.check_make(derive_from, people)
    spec_params = {k: v for k, v in (spec_params or {}).items() if v is not None}
    SPECS.get(spec)
    jobs: list[tuple[Path, dict]] = [(Path(out), spec_params)]
    if spec.startswith("partial-") and not ({"region", "factor"} <= set(spec_params)
                                            and (spec != "partial-cross" or "region2" in spec_params)):
        grid = partial_grid(spec, probe if probe is not None else reference, spec_params)
        jobs = [(Path(out) / _crop_folder(spec, g["region"], g.get("region2"), g["factor"], g["centered"]), g)
                for g in grid]
    written = []
    for folder, params in jobs:
        label = name if len(jobs) == 1 else f"{name or spec}:{folder.name}"
        if derive_from is not None:
            if not of_kind.pair_list:
                raise ProtocolError("only 1:1 protocols can be derived")
            protocol = derive_verification(derive_from, reference, probe, spec=spec, spec_params=params, name=label,
                                           **options)
        else:
            protocol = of_kind.make(reference, probe, spec=spec, spec_params=params, name=label, people=people,
                                    options=options)
        if label is None:
            protocol.info["name"] = folder.name
        if people is not None and derive_from is None and of_kind.pair_list:
            protocol.info["params"]["identity_folds"] = {"file": Path(people).name, "sha256": user_file_sha256(people)}
        reg_name = None
        if register:
            if isinstance(register, str):
                reg_name = register if len(jobs) == 1 else f"{register}{'-' if '/' in register else '/'}{folder.name}"
            else:
                what = folder.name if len(jobs) > 1 else of_kind.registered_suffix(spec, options)
                reg_name = default_name(protocol.manifests["reference"].name, what)
            check_registrable(reg_name, folder, replace=overwrite)  # before writing: a refused name writes nothing
        save_protocol(protocol, folder, overwrite=overwrite)
        if reg_name is not None:
            protocol.registered_as = register_protocol(reg_name, folder, replace=overwrite).name
        written.append((folder, protocol))
    return written


def derive_ijb_folder(out: PathLike, parent: PathLike, probe: PathLike | None, *, name: str | None,
                       register: bool | str, overwrite: bool, allow_missing: bool) -> tuple[Path, Protocol]:
    """The masked-probe variant of an IJB protocol (:mod:`.ijb_masked`), registered as
    ``<parent name>-masked-probe`` (or ``register`` when a name)."""
    from .folder import load_protocol
    from .ijb_masked import derive_masked_ijb

    if probe is None:
        raise ProtocolError("give the masked copy of the IJB loose crops as the probe manifest (--probe-manifest)")
    source = load_protocol(parent)
    label = name or f"{source.name}-masked-probe"
    reg_name = None
    if register:
        reg_name = register if isinstance(register, str) else safe_part(label)
        check_registrable(reg_name, Path(out), replace=overwrite)
    derive_masked_ijb(source, probe, out, name=label, allow_missing=allow_missing, overwrite=overwrite)
    protocol = load_protocol(out)
    if reg_name is not None:
        protocol.registered_as = register_protocol(reg_name, Path(out), replace=overwrite).name
    return Path(out), protocol


def import_protocol_folder(file: PathLike, out: PathLike, fmt: str, reference: PathLike | None = None,
                           probe: PathLike | None = None, *, images_to: PathLike | None = None,
                           variant: str = "unmasked", overwrite: bool = False, name: str | None = None,
                           strict: bool = False, allow_missing: bool = False, register: bool | str = False,
                           **read_options: Any) -> tuple[Protocol, ImportReport | None]:
    """Import a public pair list (or an insightface ``.bin``) and save it as a protocol folder.

    For ``insightface-bin`` the images are unpacked into ``images_to`` (with a manifest),
    or, without ``images_to``, read in place from the ``.bin``
    (:func:`~mfrkit.protocols.interop.bin_protocol_in_place`); ``reference`` / ``probe``
    are not used and ``n_folds`` is the only read option.
    ``register``: False, True (registered under the folder's name) or the registry name
    (see :func:`make_protocol_folder`).
    """
    read_options = {k: v for k, v in read_options.items() if v is not None}
    reg_name = None
    if register:
        reg_name = register if isinstance(register, str) else safe_part(Path(out).resolve().name)
        # Before anything is written (a .bin's images, the folder): a refused name writes nothing.
        check_registrable(reg_name, out, replace=overwrite)
    if fmt == "insightface-bin":
        unknown = sorted(set(read_options) - {"n_folds"})
        if unknown:
            raise ProtocolError(f"a .bin import takes no {', '.join(unknown)} option")
        if images_to is None:  # the images stay in the .bin (read in place)
            protocol, _ = bin_protocol_in_place(file, name=name or Path(out).name, **read_options)
        else:
            protocol, _ = import_insightface_bin(file, images_to, variant=variant, name=name or Path(out).name,
                                                 **read_options)
        report = ImportReport(pairs=len(protocol.pairs), folds=int(protocol.pairs["fold"].nunique()),
                              genuine=int(protocol.pairs["label"].sum()))
    else:
        if reference is None:
            raise ProtocolError("importing a pair list needs the manifest of the images it names (--manifest)")
        protocol, report = import_pairs(file, fmt, reference, probe, name=name or Path(out).name, strict=strict,
                                        allow_missing=allow_missing, **read_options)
    unusable = _require_usable_pair(protocol, file)  # nothing is saved for a pair list of nothing
    report.unusable = unusable - len({row for row, _, _ in report.unresolved})
    save_protocol(protocol, out, overwrite=overwrite)
    if reg_name is not None:
        protocol.registered_as = register_protocol(reg_name, out, replace=overwrite).name
    return protocol, report


def _require_usable_pair(protocol: Protocol, source: PathLike) -> int:
    """The "made nothing -> exit 1" rule for an import: at least one pair whose two
    images are in the manifests and readable (a ``.bin`` whose images all fail to
    decode, a pair list none of whose references match, is refused, with the counts).
    Returns the number of pairs that are not usable."""
    pairs = protocol.pairs
    status = {role: dict(zip(protocol.manifests[role].table["image_id"].astype(str),
                             protocol.manifests[role].table["status"].astype(str))) for role in ("reference", "probe")}
    left = pairs["left_id"].astype(str).map(status["reference"])
    right = pairs["right_id"].astype(str).map(status["probe"])
    usable = int(((left == STATUS_OK) & (right == STATUS_OK)).sum())
    why = pd.concat([left[left != STATUS_OK], right[right != STATUS_OK]]).fillna("not in the manifest")
    require_made(usable, f"no pair of {source} has two usable images ({len(pairs)} pairs)",
                 {f"image references {k}": int(v) for k, v in why.value_counts().items()})
    return len(pairs) - usable


def import_ijb_folder(root: PathLike, out: PathLike | None = None, *, set_name: str = "ijbc", name: str | None = None,
                      register: bool | str = False, allow_missing: bool = False, overwrite: bool = False,
                      workers: int = 1, progress: bool = False):
    """Import insightface's IJB release as an ``ijb-templates`` protocol folder (see :mod:`.ijb`).

    ``out`` defaults to ``$MFRKIT_HOME/ijb/<set>``; ``register``: False, True (registered
    as the set's name, ``ijbc``) or the registry name. Returns (:class:`~.ijb.IjbImport`,
    registered name or None).
    """
    from ..data.registry import mfrkit_home
    from .ijb import import_ijb

    folder = Path(out) if out is not None else mfrkit_home() / "ijb" / str(set_name).lower()
    reg_name = None
    if register:
        reg_name = register if isinstance(register, str) else safe_part(name or str(set_name).lower())
        check_registrable(reg_name, folder, replace=overwrite)  # a refused name writes nothing
    result = import_ijb(root, folder, set_name=set_name, name=name, allow_missing=allow_missing, overwrite=overwrite,
                        workers=workers, progress=progress)
    if reg_name is not None:
        reg_name = register_protocol(reg_name, folder, replace=overwrite).name
    return result, reg_name


def resolve_protocol(value: PathLike, reference: PathLike | None = None, probe: PathLike | None = None, *,
                     spec_params: dict | None = None, seed: int = 0, **options: Any) -> Protocol:
    """A protocol from a folder, a registered name or a spec name (what ``--protocol`` on
    the bench accepts).

    A path to a protocol folder is loaded with :func:`load_protocol` (``reference`` /
    ``probe``, when given, replace the recorded manifest paths and are checked against
    the recorded fingerprints). So is a registered protocol (:mod:`.registry`): its exact
    name, or the last part of exactly one registered name (``mr-mp`` for ``demo/mr-mp``)
    unless ``value`` is a spec and ``reference`` is given. Otherwise ``value`` names a spec, and the
    protocol is generated in memory from ``reference`` / ``probe`` with ``seed`` and
    ``options``: ``SPEC`` (``mr-mp``, ...) makes a 1:1 protocol
    (:func:`make_verification`), ``SPEC:all-pairs`` an all-pairs one
    (:func:`make_all_pairs`), ``SPEC:MODE`` (``umr-mp:closed``, ``umr-mp:open``,
    ``umr-mp:megaface``) a 1:N one (:func:`make_identification`).
    """
    from .folder import INFO_NAME, load_protocol

    manifests = {k: v for k, v in (("reference", reference), ("probe", probe or reference)) if v is not None}
    if Path(value).is_dir():
        if not (Path(value) / INFO_NAME).is_file():
            raise ProtocolError(f"{value} is a folder but not a protocol folder (no {INFO_NAME})")
        return load_protocol(value, manifests or None)
    name, colon, mode = str(value).partition(":")
    is_spec = name in SPECS and (not colon or mode in (*MODES, ALL_PAIRS_MODE))
    # A registered name wins; a bare suffix of one (mr-mp for demo/mr-mp) too, unless
    # manifests are given with a spec name: then the spec is drawn from them, as always.
    if not (is_spec and reference is not None) or get_protocol(str(value)) is not None:
        entry = lookup(str(value))
        if entry is not None:
            protocol = load_protocol(entry.folder, manifests or None)
            protocol.registered_as = entry.name
            return protocol
    if not is_spec:
        registered = ", ".join(e.name for e in list_protocols()) or "none"
        raise ProtocolError(f"{str(value)!r} is neither a protocol folder nor a spec, nor a registered protocol "
                            f"(registered: {registered}): give a protocol folder, a registered name, a spec "
                            f"({', '.join(SPECS.names())}) for 1:1, SPEC:all-pairs for every reference x probe, "
                            f"or SPEC:MODE with a mode of {', '.join(MODES)} for 1:N")
    if reference is None:
        raise ProtocolError(f"spec {name!r} needs the manifest(s) to draw the protocol from (--manifest), and no "
                            f"registered protocol is called {str(value)!r} (see `mfrkit protocol list`)")
    try:
        if mode == ALL_PAIRS_MODE:
            return make_all_pairs(reference, probe, spec=name, spec_params=spec_params, seed=seed,
                                  name=f"{name}:all-pairs")
        if mode:
            return make_identification(reference, probe, spec=name, spec_params=spec_params, seed=seed, mode=mode,
                                       **options)
        return make_verification(reference, probe, spec=name, spec_params=spec_params, seed=seed, **options)
    except InsufficientDataError as exc:
        raise InsufficientDataError(f"{exc} (--protocol {value} uses the default settings; to choose others, "
                                    "write the protocol with `mfrkit protocol make` and pass its folder)") from None
