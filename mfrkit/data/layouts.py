"""Dataset layouts: how the face datasets researchers have on disk are organised.

Each layout is a function ``(root, **options) -> LayoutResult`` registered in
:data:`LAYOUTS`. It only looks at file names (no decoding); :mod:`mfrkit.data.scan`
turns its records into a manifest. Walks are recursive and sorted, so the same
folder always gives the same records in the same order.

==============  ======================================================================
layout          on disk
==============  ======================================================================
``imagefolder`` ``<identity>/**/<image>`` (CASIA-WebFace ``0000045/001.jpg``); ``variant=``
                labels every image (``masked`` for RMFD's ``RWMFD_part_1``)
``lfw``         ``<Name>/<Name>_0001.jpg`` (LFW and its aligned versions)
``mfr2``        identity folders plus ``mfr2_labels.txt`` (``Dana_Kim, 2, no-mask``)
``rmfd``        a masked tree and an unmasked tree of identity folders (RMFD)
``flat``        all images in one folder, identity parsed from the file name (CALFW, MLFW)
``insightface-rec`` ``train.rec`` + ``train.idx`` + ``property`` (insightface's
                ``faces_webface_112x112``, ``faces_emore``, ...): images are records, the
                identity each record's label (:mod:`mfrkit.data.recordio_scan`)
``auto``        guesses one of the above from what is on disk
==============  ======================================================================
"""

from __future__ import annotations

import inspect
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import DatasetError
from ..registry import Registry
from ..user_regex import UnsafeRegexError, bounded_matches, compile_user_regex
from ..userfiles import read_user_text, user_file_errors_as
from .imageio import is_image_file
from .mask_taxonomy import mask_type_of, unknown_labels_warning

LAYOUTS: Registry = Registry("dataset layout")

STATUS_NO_IDENTITY = "no_identity"


@dataclass
class LayoutResult:
    """Records found by a layout reader.

    Attributes
    ----------
    records : list of dict
        One per image: ``path`` (POSIX, relative to the root), ``identity`` and, where the
        layout knows them, ``variant``, ``mask_type`` and ``status``.
    warnings : list of str
        Things the user should know (unlabelled images, labels without an image).
    layout : str
        The layout that produced the records (useful after ``auto``).
    """

    records: list[dict]
    warnings: list[str] = field(default_factory=list)
    layout: str = ""


def walk_images(root: Path, not_files: list[str] | None = None, unreadable: list[str] | None = None, *,
                follow_links: bool = False, left_links: list[str] | None = None) -> list[str]:
    """Relative POSIX paths of every image under ``root``, recursively, sorted.

    Only regular files are images (a symbolic link counts by its target): a FIFO, device
    or socket named ``x.jpg`` would hang or flood whoever reads it; such names are
    appended to ``not_files`` when given. Folders that cannot be listed (permission
    denied) are appended to ``unreadable``, as ``"<folder>: <reason>"``. Hidden files and
    folders (starting with ``.``) are skipped. A symbolic link to a folder inside
    ``root`` is not walked twice: its images are listed at their own path (a link to a
    hidden folder, walked nowhere else, is followed); one that
    leaves it (``p1/root -> /`` would catalogue the whole file system) is followed only
    with ``follow_links``, else skipped and appended to ``left_links`` as
    ``"<link> -> <target>"``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist or is not a folder")
    found, seen = [], set()
    real_root = os.path.realpath(root)

    def inside(path: str) -> bool:
        return path == real_root or path.startswith(real_root.rstrip(os.sep) + os.sep)

    def keep_dir(dirpath: str, d: str) -> bool:
        if d.startswith("."):
            return False
        full = os.path.join(dirpath, d)
        if not os.path.islink(full):
            return True
        target = os.path.realpath(full)
        if inside(target):
            # walked at its own path anyway, unless hidden: listing its images there keeps
            # their identity folder (p1/same -> ../p2 must not relabel p2's images as p1)
            return any(part.startswith(".") for part in Path(os.path.relpath(target, real_root)).parts)
        if follow_links:
            return True
        if left_links is not None:
            left_links.append(f"{os.path.relpath(full, root)} -> {target}")
        return False

    def listing_failed(exc: OSError) -> None:
        if unreadable is not None:
            where = os.path.relpath(exc.filename, root) if exc.filename else str(root)
            unreadable.append(f"{where}: {(exc.strerror or str(exc)).lower()}")

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=listing_failed):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if keep_dir(dirpath, d))
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        for name in filenames:
            if not name.startswith(".") and is_image_file(name):
                rel = prefix + name
                if os.path.isfile(os.path.join(dirpath, name)):  # stat follows links; S_ISREG only
                    found.append(rel)
                elif not_files is not None:
                    not_files.append(rel)
    return sorted(found)


def _layout_images(root: Path, layout: str, follow_links: bool = False) -> tuple[list[str], list[str]]:
    """The images a layout reads (refusing a folder without any) and the warnings of the walk."""
    not_files: list[str] = []
    unreadable: list[str] = []
    left: list[str] = []
    paths = walk_images(root, not_files, unreadable, follow_links=follow_links, left_links=left)
    warnings = []
    if left:
        warnings.append(f"{len(left)} folder link(s) lead out of the dataset folder and were not followed, e.g. {left[0]} "
                        "(register the dataset with --follow-links to follow them)")
    if not_files:
        warnings.append(f"{len(not_files)} image name(s) are not regular files (FIFO, device, socket or broken link), "
                        f"skipped: e.g. {not_files[0]}")
    if unreadable:
        warnings.append(f"{len(unreadable)} folder(s) could not be read, their images are not listed: e.g. "
                        f"{unreadable[0]}")
    if not paths:
        raise DatasetError(f"no images found under {root} (layout {layout!r}; extensions .jpg .jpeg .png .bmp .webp .tif)"
                           + "".join(f"; {w}" for w in warnings))
    return paths, warnings


@LAYOUTS.register("imagefolder")
def imagefolder(root: Path, variant: str | None = None, follow_links: bool = False) -> LayoutResult:
    """``<identity>/**/<image>``: the identity is the first folder under the root.

    ``variant`` (``-o variant=masked``) labels every image, e.g. a folder of masked
    photos such as RMFD's ``RWMFD_part_1/<person>/``; without it images count as unmasked.
    ``follow_links`` (every layout that walks folders takes it): follow folder links that
    lead out of the root (see :func:`walk_images`).
    """
    _check_variant(variant)
    paths, warnings = _layout_images(root, "imagefolder", follow_links)
    records, loose = [], 0
    for rel in paths:
        parts = PurePosixPath(rel).parts
        if len(parts) == 1:
            loose += 1
            records.append({"path": rel, "identity": None, "status": STATUS_NO_IDENTITY})
        else:
            records.append({"path": rel, "identity": parts[0]})
    if loose == len(records):
        raise DatasetError(f"{root} has images but no identity folders; for a flat folder use --layout flat")
    if loose:
        warnings.append(f"{loose} image(s) directly under the root have no identity folder (status {STATUS_NO_IDENTITY})")
    return _set_variant(LayoutResult(records, warnings, "imagefolder"), variant)


_LFW_NAME = re.compile(r"^(?P<name>.+)_(?P<num>\d{4})$")


@LAYOUTS.register("lfw")
def lfw(root: Path, variant: str | None = None, follow_links: bool = False) -> LayoutResult:
    """``<Name>/<Name>_0001.jpg``: identity folders whose files follow LFW's naming
    (``variant`` and ``follow_links`` as for ``imagefolder``)."""
    result = imagefolder(root, variant, follow_links)
    odd = 0
    for rec in result.records:
        if rec.get("identity") is None:
            continue
        m = _LFW_NAME.match(PurePosixPath(rec["path"]).stem)
        if not m or m.group("name") != rec["identity"]:
            odd += 1
    if odd:
        result.warnings.append(f"{odd} file(s) do not follow LFW's <Name>/<Name>_0001 naming; LFW pair lists cannot refer to them")
    result.layout = "lfw"
    return result


_NO_MASK = {"no-mask", "nomask", "no_mask", "unmasked", "no mask", "none"}


@LAYOUTS.register("mfr2")
def mfr2(root: Path, labels: str | None = None, follow_links: bool = False) -> LayoutResult:
    """MFR2: identity folders plus a labels file with lines ``Name, index, label``.

    ``label`` is ``no-mask`` for an unmasked image and the mask's name otherwise (kept in
    ``mask_label``; ``mask_type`` is its type, :mod:`mfrkit.data.mask_taxonomy`); the
    index refers to the file ``<Name>/<Name>_<index:04d>.<ext>``. Images without a
    label keep a null variant (reported, never guessed).
    """
    root = Path(root)
    labels_path = Path(labels) if labels else root / "mfr2_labels.txt"
    if not labels_path.is_absolute():
        labels_path = root / labels_path
    if not labels_path.is_file():
        raise DatasetError(f"MFR2 layout needs a labels file; {labels_path} not found (pass labels=PATH)")
    result = imagefolder(root, follow_links=follow_links)
    by_key = {}
    for rec in result.records:
        if rec.get("identity") is not None:
            by_key[(rec["identity"], PurePosixPath(rec["path"]).stem)] = rec
    with user_file_errors_as(DatasetError):
        text = read_user_text(labels_path, "labels")
    unmatched = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 3 or not fields[1].isdigit():
            raise DatasetError(f"{labels_path}:{lineno}: expected 'Name, index, label', got {line!r}")
        name, index, label = fields[0], int(fields[1]), fields[2]
        rec = by_key.get((name, f"{name}_{index:04d}"))
        if rec is None:
            unmatched += 1
            continue
        if label.lower() in _NO_MASK:
            rec["variant"] = "unmasked"
        else:
            # the raw label kept; the type on mfrkit's axis (mask_taxonomy)
            rec["variant"], rec["mask_label"], rec["mask_type"] = "masked", label, mask_type_of(label)
    unlabelled = 0
    for rec in result.records:
        if "variant" not in rec:
            rec["variant"] = None
            unlabelled += rec.get("identity") is not None
    unknown = unknown_labels_warning(r["mask_label"] for r in result.records if r.get("mask_label"))
    if unknown:
        result.warnings.append(unknown)
    if unmatched:
        result.warnings.append(f"{unmatched} label line(s) name an image that is not on disk")
    if unlabelled:
        result.warnings.append(f"{unlabelled} image(s) have no line in {labels_path.name}; their variant is left empty")
    result.layout = "mfr2"
    return result


#: RMFD's own folder names for masked photos: the raw samples ``RWMFD_part_1`` (Real-World
#: Masked Face Dataset) and the recognition set's ``RMFRD`` / ``RMFD`` trees.
_RMFD_MASKED = re.compile(r"(?:^|[^a-z])(?:rw?mfr?d)(?:[^a-z]|$)")
_UNMASKED_WORDS = ("unmask", "no_mask", "nomask", "no-mask", "without")


def _is_masked_dir(name: str) -> bool:
    """A folder whose name says it holds masked photos: "mask" (``AFDB_masked_face_dataset``)
    or RMFD's ``RWMFD_part_1``, but not "unmasked", "no_mask", "without_mask", ..."""
    low = name.lower()
    if any(k in low for k in _UNMASKED_WORDS):
        return False
    return "mask" in low or bool(_RMFD_MASKED.search(low))


def _check_variant(variant: str | None) -> str | None:
    from .manifest import VARIANTS

    if variant is not None and variant not in VARIANTS:
        raise DatasetError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    return variant


def _set_variant(result: LayoutResult, variant: str | None) -> LayoutResult:
    if variant is not None:
        for rec in result.records:
            rec["variant"] = variant
    return result


@LAYOUTS.register("rmfd")
def rmfd(root: Path, masked_dir: str | None = None, unmasked_dir: str | None = None, follow_links: bool = False) -> LayoutResult:
    """RMFD: ``<tree>/<identity>/<image>`` for a masked and an unmasked tree.

    By default a top-level folder whose name contains "mask" (but not "unmask",
    "no_mask", ...) or is one of RMFD's raw sample folders (``RWMFD_part_1``) is a masked
    tree (``AFDB_masked_face_dataset``) and the others are unmasked
    (``AFDB_face_dataset``); ``masked_dir`` / ``unmasked_dir`` name them explicitly.
    Identities are shared across trees by folder name.
    """
    root = Path(root)
    paths, warnings = _layout_images(root, "rmfd", follow_links)
    records, skipped = [], 0
    for rel in paths:
        parts = PurePosixPath(rel).parts
        if len(parts) < 3:
            skipped += 1
            records.append({"path": rel, "identity": None, "status": STATUS_NO_IDENTITY})
            continue
        tree = parts[0]
        if masked_dir or unmasked_dir:
            masked = tree == masked_dir if masked_dir else tree != unmasked_dir
        else:
            masked = _is_masked_dir(tree)
        records.append({"path": rel, "identity": parts[1], "variant": "masked" if masked else "unmasked"})
    variants = {r.get("variant") for r in records}
    if "masked" not in variants:
        raise DatasetError(f"no masked tree found under {root}; name it with masked_dir=... (folders: {sorted({PurePosixPath(p).parts[0] for p in paths})})")
    if skipped:
        warnings.append(f"{skipped} image(s) are not inside <tree>/<identity>/ (status {STATUS_NO_IDENTITY})")
    return LayoutResult(records, warnings, "rmfd")


_DEFAULT_FLAT = r"^(?P<identity>.+?)(?:_\d+)+$"


@LAYOUTS.register("flat")
def flat(root: Path, identity_regex: str = _DEFAULT_FLAT, variant: str | None = None, follow_links: bool = False) -> LayoutResult:
    """All images in one folder; the identity is parsed from the file stem.

    ``identity_regex`` must have a named group ``identity``; the default strips the
    trailing numeric groups (``Aaron_Peirsol_0001`` -> ``Aaron_Peirsol``,
    ``Aaron_Peirsol_0001_0002`` -> ``Aaron_Peirsol``). Files it does not match get a
    null identity and status ``no_identity``. ``variant`` as for ``imagefolder``.
    """
    _check_variant(variant)
    try:  # a user's pattern: refused when it could backtrack for ever, and run under a deadline
        pattern = compile_user_regex(str(identity_regex), what="identity_regex", groups=("identity",))
    except UnsafeRegexError as exc:
        raise DatasetError(str(exc)) from None
    paths, warnings = _layout_images(root, "flat", follow_links)
    try:
        matches = bounded_matches(pattern, [PurePosixPath(rel).stem for rel in paths], what="identity_regex")
    except UnsafeRegexError as exc:
        raise DatasetError(str(exc)) from None
    records, bad = [], 0
    for rel, m in zip(paths, matches):
        if m:
            records.append({"path": rel, "identity": m.group("identity")})
        else:
            bad += 1
            records.append({"path": rel, "identity": None, "status": STATUS_NO_IDENTITY})
    if bad:
        warnings.append(f"{bad} file name(s) do not match {identity_regex!r} (status {STATUS_NO_IDENTITY})")
    return _set_variant(LayoutResult(records, warnings, "flat"), variant)


@LAYOUTS.register("insightface-rec")
def insightface_rec(root: Path, rec: str = "train.rec") -> LayoutResult:
    """insightface's RecordIO: ``<rec>`` (default ``train.rec``) with its ``.idx`` and
    ``property``. Its images are records (``train.rec#17``), read in place; a scan
    (:func:`mfrkit.data.recordio_scan.scan_recordio`) reads them once, and this function
    returns the scan's path, identity and status per image."""
    from .recordio_scan import scan_recordio

    manifest, report = scan_recordio(root, rec=rec)
    table = manifest.table[["path", "identity", "status"]]
    return LayoutResult(table.astype(object).where(table.notna(), None).to_dict("records"), report.warnings, "insightface-rec")


def detect_layout(root: Path) -> str:
    """Guess the layout of ``root`` from what is on disk (see :func:`read_layout`)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist or is not a folder")
    if (root / "train.rec").is_file() and (root / "train.idx").is_file():
        return "insightface-rec"
    if (root / "mfr2_labels.txt").is_file():
        return "mfr2"
    subdirs = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    loose = [f for f in root.iterdir() if f.is_file() and is_image_file(f)]
    if not subdirs:
        return "flat"
    if len(subdirs) <= 4 and any(_is_masked_dir(d.name) for d in subdirs) and loose == []:
        return "rmfd"
    sample = []
    for d in subdirs[:20]:
        sample += [(d.name, p.stem) for p in sorted(d.iterdir())[:3] if p.is_file() and is_image_file(p)]
    if sample and all((m := _LFW_NAME.match(stem)) and m.group("name") == name for name, stem in sample):
        return "lfw"
    return "imagefolder"


def read_layout(root: str | os.PathLike, layout: str = "auto", **options) -> LayoutResult:
    """Records of the dataset at ``root`` read with ``layout`` (``auto`` guesses it)."""
    root = Path(root).expanduser()
    if layout == "auto":
        layout = detect_layout(root)
    if "follow_links" not in inspect.signature(LAYOUTS.get(layout)).parameters:
        options.pop("follow_links", None)  # a layout that walks no folders (insightface-rec)
    elif isinstance(options.get("follow_links"), str):  # --option follow_links=no is not "yes"
        options["follow_links"] = options["follow_links"].strip().lower() in ("1", "true", "yes", "on")
    check_layout_options(layout, options)
    result = LAYOUTS.get(layout)(root, **options)
    result.layout = layout
    _warn_masked_names(root, result)
    return result


def _warn_masked_names(root: Path, result: LayoutResult) -> None:
    """Warn when folder names say "masked" but the layout labelled every image unmasked
    (RMFD's ``RWMFD_part_1/0000/...`` read as identity folders)."""
    if any(r.get("variant") not in (None, "unmasked") for r in result.records):
        return
    tops = sorted({r["path"].split("/", 1)[0] for r in result.records if "/" in r["path"]})
    hinted = [n for n in [Path(root).resolve().name, *tops] if _is_masked_dir(n)]
    if hinted:
        result.warnings.append(
            f"folder name(s) {', '.join(repr(n) for n in hinted[:3])} suggest masked photos, but the {result.layout!r} "
            "layout labels every image unmasked: for a folder holding masked and unmasked trees use --layout rmfd "
            "(-o masked_dir=NAME), for a folder of masked photos only add -o variant=masked")


def check_layout_options(layout: str, options: dict) -> None:
    """Refuse options the layout ``layout`` does not take, naming the ones it does."""
    params = inspect.signature(LAYOUTS.get(layout)).parameters
    accepted = [name for name in params if name != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DatasetError(f"layout {layout!r} takes no option {', '.join(unknown)}; its options: {', '.join(accepted) or 'none'}")
    if "identity_regex" in options:  # a bad pattern is refused when registered, not at the first scan
        try:
            compile_user_regex(str(options["identity_regex"]), what="identity_regex", groups=("identity",))
        except UnsafeRegexError as exc:
            raise DatasetError(str(exc)) from None
