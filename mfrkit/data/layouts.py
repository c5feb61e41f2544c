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
from typing import Callable, Iterator

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


class LayoutStream:
    """A layout's records made while they are read, for a scan of millions of images:
    the walk of the folder is never held.

    Iterate it once. Its :attr:`warnings` are complete, and a folder the layout cannot
    use (no images, no identity folder) raises :class:`~mfrkit.errors.DatasetError`, when
    the iteration ends; :meth:`result` reads it whole into a :class:`LayoutResult` (what
    :func:`read_layout` returns). The records and warnings are those of the layout's
    function in :data:`LAYOUTS`, in the same order.

    Parameters
    ----------
    layout : str
    make : callable(stream) -> iterator of dict
        Yields the records; appends to ``stream.warnings``; raises at its end.
    """

    def __init__(self, layout: str, make: Callable[["LayoutStream"], Iterator[dict]]) -> None:
        self.layout = layout
        self.warnings: list[str] = []
        self.count = 0
        self._make = make
        self._checks: list[Callable[[dict], None]] = []
        self._ends: list[Callable[[], None]] = []

    @classmethod
    def of(cls, result: LayoutResult) -> "LayoutStream":
        """A stream over the records of a layout read whole (layouts without a stream)."""
        stream = cls(result.layout, lambda s: iter(result.records))
        stream.warnings = list(result.warnings)
        return stream

    def watch(self, check: Callable[[dict], None], end: Callable[[], None]) -> None:
        """Call ``check(record)`` on every record and ``end()`` after the last one."""
        self._checks.append(check)
        self._ends.append(end)

    def __iter__(self) -> Iterator[dict]:
        for rec in self._make(self):
            self.count += 1
            for check in self._checks:
                check(rec)
            yield rec
        for end in self._ends:
            end()

    def result(self) -> LayoutResult:
        records = list(self)
        return LayoutResult(records, self.warnings, self.layout)


def iter_images(root: Path, not_files: list[str] | None = None, unreadable: list[str] | None = None, *,
                follow_links: bool = False, left_links: list[str] | None = None) -> Iterator[str]:
    """Relative POSIX paths of every image under ``root``, recursively, sorted: the paths
    of :func:`walk_images` one at a time, never all held.

    Each folder's entries are sorted by name (a folder's name followed by ``/``), so the
    depth-first walk gives the paths in the order ``sorted()`` gives them. A symbolic
    link to a folder inside ``root`` is not walked: its images are listed at their own
    path (a link to a hidden folder, walked nowhere else, is followed once); one that
    leaves ``root`` is followed (once) only with ``follow_links``, else skipped and
    appended to ``left_links`` as ``"<link> -> <target>"``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist or is not a folder")
    real_root = os.path.realpath(root)
    linked: set[str] = set()  # real paths of the folders walked through a link

    def listing_failed(exc: OSError, where: str) -> None:
        if unreadable is not None:
            unreadable.append(f"{where or '.'}: {(exc.strerror or str(exc)).lower()}")

    def entries(folder: str, rel: str) -> list[tuple[str, str, bool, bool]]:
        """(sort key, name, is a folder, is a link) of a folder's entries."""
        try:
            with os.scandir(folder) as it:
                found = []
                for e in it:
                    if e.name.startswith("."):
                        continue
                    try:
                        is_dir = e.is_dir()
                    except OSError:
                        is_dir = False
                    found.append((e.name + "/" if is_dir else e.name, e.name, is_dir, is_dir and e.is_symlink()))
        except OSError as exc:
            listing_failed(exc, rel)
            return []
        return sorted(found)

    def skip_link(path: str, real: str, rel: str) -> bool:
        """Whether the folder link at ``path`` (to ``real``) is not walked."""
        if real in linked:
            return True  # walked once already (a link cycle, or two links to one folder)
        if real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep):
            # walked at its own path anyway, unless hidden: listing its images there keeps
            # their identity folder (p1/same -> ../p2 must not relabel p2's images as p1)
            return not any(part.startswith(".") for part in Path(os.path.relpath(real, real_root)).parts)
        if follow_links:
            return False
        if left_links is not None:
            left_links.append(f"{rel} -> {real}")
        return True

    def walk(folder: str, rel: str, through_link: bool) -> Iterator[str]:
        prefix = rel + "/" if rel else ""
        for key, name, is_dir, is_link in entries(folder, rel):
            path = os.path.join(folder, name)
            if is_dir:
                sub_rel = prefix + name
                if is_link:
                    real = os.path.realpath(path)
                    if skip_link(path, real, sub_rel):
                        continue
                    linked.add(real)
                yield from walk(path, sub_rel, through_link or is_link)
            elif is_image_file(name):
                if os.path.isfile(path):  # stat follows links; S_ISREG only
                    yield prefix + name
                elif not_files is not None:
                    not_files.append(prefix + name)

    yield from walk(str(root), "", False)


def walk_images(root: Path, not_files: list[str] | None = None, unreadable: list[str] | None = None, *,
                follow_links: bool = False, left_links: list[str] | None = None) -> list[str]:
    """Relative POSIX paths of every image under ``root``, recursively, sorted.

    Only regular files are images (a symbolic link counts by its target): a FIFO, device
    or socket named ``x.jpg`` would hang or flood whoever reads it; such names are
    appended to ``not_files`` when given. Folders that cannot be listed (permission
    denied) are appended to ``unreadable``, as ``"<folder>: <reason>"``. Hidden files and
    folders (starting with ``.``) are skipped; folder links as :func:`iter_images` says
    (its stream of the same paths).
    """
    return list(iter_images(root, not_files, unreadable, follow_links=follow_links, left_links=left_links))


def _layout_images(root: Path, layout: str, warnings: list[str], follow_links: bool = False) -> Iterator[str]:
    """The images a layout reads; the walk's warnings are appended to ``warnings`` at its
    end, where a folder without any image is refused."""
    not_files: list[str] = []
    unreadable: list[str] = []
    left: list[str] = []
    n = 0
    for rel in iter_images(root, not_files, unreadable, follow_links=follow_links, left_links=left):
        n += 1
        yield rel
    if left:
        warnings.append(f"{len(left)} folder link(s) lead out of the dataset folder and were not followed, e.g. {left[0]} "
                        "(register the dataset with --follow-links to follow them)")
    if not_files:
        warnings.append(f"{len(not_files)} image name(s) are not regular files (FIFO, device, socket or broken link), "
                        f"skipped: e.g. {not_files[0]}")
    if unreadable:
        warnings.append(f"{len(unreadable)} folder(s) could not be read, their images are not listed: e.g. "
                        f"{unreadable[0]}")
    if not n:
        raise DatasetError(f"no images found under {root} (layout {layout!r}; extensions .jpg .jpeg .png .bmp .webp .tif)"
                           + "".join(f"; {w}" for w in warnings))


#: Layouts that can be read as a stream (:class:`LayoutStream`); the others are read whole.
STREAMS: dict[str, Callable[..., LayoutStream]] = {}


def _register_stream(name: str, make_stream: Callable[..., LayoutStream]) -> Callable[..., LayoutResult]:
    """Register a layout by its stream: :data:`STREAMS` gets the stream, :data:`LAYOUTS`
    (returned) the function that reads it whole."""

    def read_whole(root: Path, **options) -> LayoutResult:
        return make_stream(Path(root), **options).result()

    read_whole.__signature__ = inspect.signature(make_stream).replace(return_annotation=LayoutResult)
    read_whole.__doc__ = make_stream.__doc__
    read_whole.__name__ = read_whole.__qualname__ = name
    STREAMS[name] = make_stream
    return LAYOUTS.register(name)(read_whole)


def imagefolder_stream(root: Path, variant: str | None = None, follow_links: bool = False) -> LayoutStream:
    """``<identity>/**/<image>``: the identity is the first folder under the root.

    ``variant`` (``-o variant=masked``) labels every image, e.g. a folder of masked
    photos such as RMFD's ``RWMFD_part_1/<person>/``; without it images count as unmasked.
    ``follow_links`` (every layout that walks folders takes it): follow folder links that
    lead out of the root (see :func:`iter_images`).
    """
    _check_variant(variant)

    def records(stream: LayoutStream) -> Iterator[dict]:
        loose = total = 0
        for rel in _layout_images(root, "imagefolder", stream.warnings, follow_links):
            total += 1
            slash = rel.find("/")
            if slash < 0:
                loose += 1
                rec = {"path": rel, "identity": None, "status": STATUS_NO_IDENTITY}
            else:
                rec = {"path": rel, "identity": rel[:slash]}
            if variant is not None:
                rec["variant"] = variant
            yield rec
        if loose == total:
            raise DatasetError(f"{root} has images but no identity folders; for a flat folder use --layout flat")
        if loose:
            stream.warnings.append(f"{loose} image(s) directly under the root have no identity folder (status {STATUS_NO_IDENTITY})")

    return LayoutStream("imagefolder", records)


_LFW_NAME = re.compile(r"^(?P<name>.+)_(?P<num>\d{4})$")


imagefolder = _register_stream("imagefolder", imagefolder_stream)


def lfw_stream(root: Path, variant: str | None = None, follow_links: bool = False) -> LayoutStream:
    """``<Name>/<Name>_0001.jpg``: identity folders whose files follow LFW's naming
    (``variant`` and ``follow_links`` as for ``imagefolder``)."""
    inner = imagefolder_stream(root, variant, follow_links)

    def records(stream: LayoutStream) -> Iterator[dict]:
        odd = 0
        for rec in inner:
            if rec.get("identity") is not None:
                m = _LFW_NAME.match(PurePosixPath(rec["path"]).stem)
                if not m or m.group("name") != rec["identity"]:
                    odd += 1
            yield rec
        stream.warnings.extend(inner.warnings)
        if odd:
            stream.warnings.append(f"{odd} file(s) do not follow LFW's <Name>/<Name>_0001 naming; LFW pair lists cannot refer to them")

    return LayoutStream("lfw", records)


lfw = _register_stream("lfw", lfw_stream)

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


def rmfd_stream(root: Path, masked_dir: str | None = None, unmasked_dir: str | None = None, follow_links: bool = False) -> LayoutStream:
    """RMFD: ``<tree>/<identity>/<image>`` for a masked and an unmasked tree.

    By default a top-level folder whose name contains "mask" (but not "unmask",
    "no_mask", ...) or is one of RMFD's raw sample folders (``RWMFD_part_1``) is a masked
    tree (``AFDB_masked_face_dataset``) and the others are unmasked
    (``AFDB_face_dataset``); ``masked_dir`` / ``unmasked_dir`` name them explicitly.
    Identities are shared across trees by folder name.
    """
    root = Path(root)

    def records(stream: LayoutStream) -> Iterator[dict]:
        skipped, masked_seen, trees = 0, False, set()
        for rel in _layout_images(root, "rmfd", stream.warnings, follow_links):
            parts = PurePosixPath(rel).parts
            trees.add(parts[0])  # a few trees: RMFD has two
            if len(parts) < 3:
                skipped += 1
                yield {"path": rel, "identity": None, "status": STATUS_NO_IDENTITY}
                continue
            tree = parts[0]
            if masked_dir or unmasked_dir:
                masked = tree == masked_dir if masked_dir else tree != unmasked_dir
            else:
                masked = _is_masked_dir(tree)
            masked_seen = masked_seen or masked
            yield {"path": rel, "identity": parts[1], "variant": "masked" if masked else "unmasked"}
        if not masked_seen:
            raise DatasetError(f"no masked tree found under {root}; name it with masked_dir=... (folders: {sorted(trees)})")
        if skipped:
            stream.warnings.append(f"{skipped} image(s) are not inside <tree>/<identity>/ (status {STATUS_NO_IDENTITY})")

    return LayoutStream("rmfd", records)


rmfd = _register_stream("rmfd", rmfd_stream)


_DEFAULT_FLAT = r"^(?P<identity>.+?)(?:_\d+)+$"


def flat_stream(root: Path, identity_regex: str = _DEFAULT_FLAT, variant: str | None = None, follow_links: bool = False) -> LayoutStream:
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

    def matched(rels: list[str]) -> Iterator[tuple[str, "re.Match | None"]]:
        try:
            found = bounded_matches(pattern, [PurePosixPath(rel).stem for rel in rels], what="identity_regex")
        except UnsafeRegexError as exc:
            raise DatasetError(str(exc)) from None
        return zip(rels, found)

    def pairs(stream: LayoutStream) -> Iterator[tuple[str, "re.Match | None"]]:
        batch: list[str] = []  # matched a batch at a time: the walk is never held
        for rel in _layout_images(root, "flat", stream.warnings, follow_links):
            batch.append(rel)
            if len(batch) >= 4096:
                yield from matched(batch)
                batch = []
        yield from matched(batch)

    def records(stream: LayoutStream) -> Iterator[dict]:
        bad = 0
        for rel, m in pairs(stream):
            if m:
                rec = {"path": rel, "identity": m.group("identity")}
            else:
                bad += 1
                rec = {"path": rel, "identity": None, "status": STATUS_NO_IDENTITY}
            if variant is not None:
                rec["variant"] = variant
            yield rec
        if bad:
            stream.warnings.append(f"{bad} file name(s) do not match {identity_regex!r} (status {STATUS_NO_IDENTITY})")

    return LayoutStream("flat", records)


flat = _register_stream("flat", flat_stream)


@LAYOUTS.register("insightface-rec")
def insightface_rec(root: Path, rec: str = "train.rec") -> LayoutResult:
    """insightface's RecordIO: ``<rec>`` (default ``train.rec``) with its ``.idx`` and
    ``property``. Its images are records (``train.rec#17``), read in place; a scan
    (:func:`mfrkit.data.recordio_manifest.scan_recordio`) reads them once, and this function
    returns the scan's path, identity and status per image."""
    from .recordio_manifest import scan_recordio

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


def stream_layout(root: str | os.PathLike, layout: str = "auto", **options) -> LayoutStream:
    """The records of the dataset at ``root`` read with ``layout`` (``auto`` guesses it),
    as a :class:`LayoutStream` (a layout without a stream is read whole first)."""
    root = Path(root).expanduser()
    if layout == "auto":
        layout = detect_layout(root)
    if "follow_links" not in inspect.signature(LAYOUTS.get(layout)).parameters:
        options.pop("follow_links", None)  # a layout that walks no folders (insightface-rec)
    elif isinstance(options.get("follow_links"), str):  # --option follow_links=no is not "yes"
        options["follow_links"] = options["follow_links"].strip().lower() in ("1", "true", "yes", "on")
    check_layout_options(layout, options)
    make = STREAMS.get(layout)
    stream = make(root, **options) if make is not None else LayoutStream.of(LAYOUTS.get(layout)(root, **options))
    stream.layout = layout
    _warn_masked_names(root, stream)
    return stream


def read_layout(root: str | os.PathLike, layout: str = "auto", **options) -> LayoutResult:
    """Records of the dataset at ``root`` read with ``layout`` (``auto`` guesses it)."""
    return stream_layout(root, layout, **options).result()


def _warn_masked_names(root: Path, stream: LayoutStream) -> None:
    """Warn, once the records are read, when folder names say "masked" but the layout
    labelled every image unmasked (RMFD's ``RWMFD_part_1/0000/...`` read as identity
    folders)."""
    seen = {"labelled": False, "top": None, "hinted": set()}

    def check(rec: dict) -> None:
        if rec.get("variant") not in (None, "unmasked"):
            seen["labelled"] = True
        path = rec["path"]
        if "/" in path:
            top = path.split("/", 1)[0]
            if top != seen["top"]:  # a top folder's images come together: one check per folder
                seen["top"] = top
                if _is_masked_dir(top):
                    seen["hinted"].add(top)

    def end() -> None:
        if seen["labelled"]:
            return
        hinted = [n for n in [Path(root).resolve().name, *sorted(seen["hinted"])] if _is_masked_dir(n)]
        if hinted:
            stream.warnings.append(
                f"folder name(s) {', '.join(repr(n) for n in hinted[:3])} suggest masked photos, but the {stream.layout!r} "
                "layout labels every image unmasked: for a folder holding masked and unmasked trees use --layout rmfd "
                "(-o masked_dir=NAME), for a folder of masked photos only add -o variant=masked")

    stream.watch(check, end)


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
