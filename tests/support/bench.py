"""Protocol folders and bench configs for the bench tests' runs."""

from __future__ import annotations

from pathlib import Path

from mfrkit.data.manifest import Manifest


def config(tmp_path: Path, models, protocols, **kw):
    """The ``BenchConfig`` of a run of ``models`` on ``protocols`` into ``tmp_path/runs``: 20
    bootstrap rounds and the embedding cache under ``tmp_path/cache`` unless ``kw`` says
    otherwise."""
    from mfrkit.bench.benchmark import BenchConfig  # imported when used: collection stays light

    kw.setdefault("n_boot", 20)
    kw.setdefault("cache_dir", tmp_path / "cache")
    return BenchConfig(models=[str(m) for m in models], protocols=[str(p) for p in protocols], out=tmp_path / "runs", **kw)


def all_pairs(manifest: Manifest, n_folds: int = 2) -> list[tuple]:
    """Every unordered pair of images, labelled, spread over folds."""
    t = manifest.table
    ids, idents = t["image_id"].tolist(), t["identity"].tolist()
    out = []
    for a in range(len(ids)):
        for b in range(a + 1, len(ids)):
            out.append((len(out) % n_folds, ids[a], ids[b], int(idents[a] == idents[b])))
    return out


def write_protocol(folder: Path, manifests, *, name: str, pairs=None, gallery=None, probes=None, distractors=()) -> Path:
    """A protocol folder written by the protocol engine.

    ``manifests``: a list of one manifest (both roles) or a dict role -> manifest.
    ``pairs``: (fold, left_id, right_id, label) tuples; ``gallery``: image ids (those in
    ``distractors`` flagged as such); ``probes``: (image_id, mated[, mate_id]) tuples.
    Identities are left empty: the bench takes them from the manifests.
    """
    import pandas as pd

    from mfrkit.protocols import Protocol, save_protocol

    roles = manifests if isinstance(manifests, dict) else {"reference": manifests[0], "probe": manifests[0]}
    info = {"name": name, "spec": None, "seed": 0}
    if pairs is not None:
        df = pd.DataFrame(pairs, columns=["fold", "left_id", "right_id", "label"])
        protocol = Protocol(info={**info, "kind": "verification"}, manifests=roles, pairs=df)
    else:
        g = pd.DataFrame({"image_id": list(gallery), "identity": "", "distractor": [int(i in distractors) for i in gallery]})
        rows = [(p[0], "", int(p[1]), p[2] if len(p) > 2 else "") for p in probes]
        pr = pd.DataFrame(rows, columns=["image_id", "identity", "mated", "mate_id"])
        protocol = Protocol(info={**info, "kind": "identification"}, manifests=roles, gallery=g, probes=pr)
    save_protocol(protocol, folder, overwrite=True)
    return folder
