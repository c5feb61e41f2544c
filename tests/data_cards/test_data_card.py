"""Data cards of manifests: the YAML header must round-trip and agree with the manifest."""

from __future__ import annotations

import dataclasses
import statistics
from collections import Counter
from pathlib import Path

import pytest
import yaml

from mfrkit.data.manifest import Manifest, make_table, read_manifest, write_manifest
from mfrkit.data_cards import (
    CARD_NAME,
    CardError,
    parse_front_matter,
    read_card_header,
    render_card,
    summarize_manifest,
    write_card,
)
from mfrkit.data_cards.card import HIST_BINS

# identity -> number of usable images: sizes 1, 2, 4, 7 and 12 hit five different bins.
SIZES = {"alice": 1, "bob": 2, "carol": 4, "dave": 7, "eve": 12}
FAILED = [("corrupt", "bob"), ("corrupt", None), ("missing", "eve"), ("no_face", "alice"), ("no_face", "dave"), ("no_face", None)]


def _rows() -> list[dict]:
    rows = []
    for ident, n in SIZES.items():
        for k in range(n):
            rows.append(
                {
                    "image_id": f"{ident}/{k:04d}.jpg",
                    "path": f"{ident}/{k:04d}.jpg",
                    "identity": ident,
                    "variant": "masked" if k % 3 == 1 else "unmasked",
                    "status": "ok",
                    "width": 100 + k,
                    "height": 120,
                    "landmark_backend": "mediapipe" if k % 2 == 0 else "dlib",
                }
            )
    rows.append({"image_id": "loose.jpg", "path": "loose.jpg", "identity": None, "variant": None, "status": "ok"})
    for i, (reason, ident) in enumerate(FAILED):
        rows.append({"image_id": f"bad{i}.jpg", "path": f"bad{i}.jpg", "identity": ident, "status": reason})
    return rows


def _manifest(**meta) -> Manifest:
    return Manifest(table=make_table(_rows()), meta={"name": "toy", **meta})


def _header(text: str) -> dict:
    assert text.startswith("---\n")
    front = text[4 : text.index("\n---\n", 3) + 1]
    return yaml.safe_load(front)


def test_header_round_trips_through_yaml_and_matches_counts():
    rows = _rows()
    text = render_card(_manifest())
    header = _header(text)
    assert header == parse_front_matter(text)[0]

    ok = [r for r in rows if r["status"] == "ok"]
    assert header["name"] == "toy"
    assert header["counts"] == {
        "images": len(rows),
        "ok": len(ok),
        "failed": len(rows) - len(ok),
        "identities": len(SIZES),
        "images_without_identity": 1,
    }
    sizes = sorted(SIZES.values())
    ipi = header["images_per_identity"]
    assert ipi["min"] == 1 and ipi["max"] == 12
    assert ipi["median"] == statistics.median(sizes)
    assert ipi["mean"] == pytest.approx(sum(sizes) / len(sizes))
    assert ipi["histogram"] == {"1": 1, "2": 1, "3-5": 1, "6-10": 1, "11-20": 1, "21-50": 0, "51-100": 0, "101+": 0}
    assert list(ipi["histogram"]) == [label for label, _, _ in HIST_BINS]

    variants = Counter(r["variant"] or "unknown" for r in ok)
    assert header["variants"] == dict(variants)
    backends = Counter(r["landmark_backend"] for r in ok if r.get("landmark_backend"))
    assert header["landmarks"]["backends"] == dict(backends)
    widths = [r["width"] for r in ok if r.get("width") is not None]
    assert header["image_size"]["width"] == {"min": min(widths), "median": statistics.median(widths), "max": max(widths)}
    assert "masks" not in header and "partial" not in header and "n_faces" not in header


def test_failures_counted_by_reason():
    header = summarize_manifest(_manifest())
    assert header["failures"]["total"] == len(FAILED)
    assert header["failures"]["by_reason"] == dict(Counter(reason for reason, _ in FAILED))
    # most frequent first
    assert list(header["failures"]["by_reason"]) == ["no_face", "corrupt", "missing"]
    body = render_card(_manifest())
    assert "| no_face | 3 |" in body


def test_missing_status_is_a_failure_not_a_crash():
    table = make_table([{"image_id": "a", "path": "a.jpg", "status": "ok"}, {"image_id": "b", "path": "b.jpg", "status": None}])
    header = summarize_manifest(Manifest(table=table))
    assert header["counts"]["failed"] == 1
    assert header["failures"]["by_reason"] == {"(no status)": 1}


def test_mask_fields_counted_over_usable_images():
    rows = [
        {"image_id": f"m{i}", "path": f"p/m{i}.png", "identity": f"p{i % 2}", "variant": "masked", "status": "ok",
         "mask_type": t, "mask_color": c, "mask_texture": x, "coverage": cov, "source_id": f"u{i}"}
        for i, (t, c, x, cov) in enumerate(
            [("surgical", "#1f77b4", None, "nose"), ("surgical", "#ffffff", "check", "nose"), ("n95", "#ffffff", None, "chin"), ("cloth", "#ff0000", "floral", "nose")]
        )
    ]
    rows.append({"image_id": "bad", "path": "p/bad.png", "identity": "p0", "variant": "masked", "status": "render_failed", "mask_type": "gas"})
    header = summarize_manifest(Manifest(table=make_table(rows), meta={"name": "toy-masked"}))
    masks = header["masks"]
    assert masks["types"] == {"surgical": 2, "cloth": 1, "n95": 1}  # the failed "gas" row is not counted
    assert masks["colors"] == {"#ffffff": 2, "#1f77b4": 1, "#ff0000": 1}
    assert masks["textures"] == {"check": 1, "floral": 1}
    assert masks["coverage"] == {"nose": 3, "chin": 1}
    assert header["variants"] == {"masked": 4}
    assert header["failures"]["by_reason"] == {"render_failed": 1}


def test_partial_fields():
    regions = ["lEye", "Nose", "Nose", "Mouth", "Mouth", "Mouth"]
    factors = [0.1, 0.15, 0.15, 0.5, 0.1, 0.1]
    centered = [True, False, True, True, False, True]
    rows = [
        {"image_id": f"x{i}", "path": f"x{i}.png", "identity": "a", "variant": "partial", "status": "ok", "region": r, "factor": f, "centered": c}
        for i, (r, f, c) in enumerate(zip(regions, factors, centered))
    ]
    text = render_card(Manifest(table=make_table(rows), meta={"name": "partial"}))
    partial = _header(text)["partial"]
    assert partial["regions"] == {"Mouth": 3, "Nose": 2, "lEye": 1}
    assert partial["factors"] == {"0.1": 3, "0.15": 2, "0.5": 1}
    assert list(partial["factors"]) == ["0.1", "0.15", "0.5"]  # numeric order
    assert partial["centered"] == {"centered": 4, "not_centered": 2}
    assert "## Partial faces" in text


def test_empty_manifest():
    empty = Manifest(table=make_table([]), meta={})
    text = render_card(empty)
    header = _header(text)
    assert header["counts"] == {"images": 0, "ok": 0, "failed": 0, "identities": 0, "images_without_identity": 0}
    assert header["images_per_identity"] is None
    assert header["variants"] == {} and header["failures"] == {"total": 0, "by_reason": {}}
    assert "empty" in text


def test_manifest_with_only_failures():
    rows = [{"image_id": f"b{i}", "path": f"id/b{i}.jpg", "identity": "id", "status": s} for i, s in enumerate(["corrupt", "corrupt", "too_large"])]
    header = summarize_manifest(Manifest(table=make_table(rows), meta={"name": "broken"}))
    assert header["counts"]["ok"] == 0 and header["counts"]["identities"] == 0
    assert header["images_per_identity"] is None
    assert header["failures"] == {"total": 3, "by_reason": {"corrupt": 2, "too_large": 1}}


def test_n_faces_columns():
    n = [0, 1, 1, 3, None, 2]
    rows = [{"image_id": f"f{i}", "path": f"f{i}.jpg", "identity": "a", "status": "ok" if v else "no_face", "n_faces": v, "n_faces_dlib": 1} for i, v in enumerate(n)]
    header = summarize_manifest(Manifest(table=make_table(rows)))
    got = header["n_faces"]["n_faces"]
    values = [v for v in n if v is not None]
    assert got["images"] == len(values)
    assert (got["min"], got["max"], got["none"], got["several"]) == (0, 3, 1, 2)
    assert got["median"] == statistics.median(values) and got["mean"] == pytest.approx(sum(values) / len(values))
    assert header["n_faces"]["n_faces_dlib"]["several"] == 0


def test_parquet_round_trip_gives_the_same_card(tmp_path):
    manifest = _manifest(kind="scanned", layout="imagefolder", layout_options={"identity_regex": None})
    write_manifest(manifest, tmp_path / "manifest.parquet")
    again = read_manifest(tmp_path)
    h1, h2 = summarize_manifest(manifest), summarize_manifest(again)
    assert h1 == h2
    assert h2["provenance"]["fingerprint"] == again.fingerprint()
    assert "fingerprint_recorded" not in h2["provenance"]


def test_provenance_and_parameters_from_meta():
    meta = {
        "created": "2025-01-02T03:04:05+00:00",
        "mfrkit_version": "0.1.0",
        "seed": 7,
        "kind": "synthetic",
        "source_fingerprint": "abc123",
        "source_name": "casia",
        "params": {"styles": ["surgical", "n95"], "coverage": 0.5},
        "command": "mfrkit synth mask --src casia --seed 7",
        "renderer": "uv",
        "fingerprint": "stale",  # recorded before the table changed
    }
    manifest = _manifest(**meta)
    header = _header(render_card(manifest))
    prov = header["provenance"]
    assert prov["seed"] == 7 and prov["created"] == meta["created"] and prov["mfrkit_version"] == "0.1.0"
    assert prov["source_fingerprint"] == "abc123" and prov["source_name"] == "casia"
    assert prov["fingerprint"] == manifest.fingerprint()
    assert prov["fingerprint_recorded"] == "stale"
    assert header["parameters"] == {"params": meta["params"], "command": meta["command"]}
    assert header["other_meta"] == {"renderer": "uv"}


def test_known_dataset_link():
    header = summarize_manifest(_manifest(), landmark_summary=None)
    assert "known_dataset" not in header
    renamed = Manifest(table=make_table(_rows()), meta={"name": "CASIA"})
    known = summarize_manifest(renamed)["known_dataset"]
    assert known["name"] == "casia-webface" and known["card"] == "mfrkit card --known casia-webface"
    assert known["reported"]["identities"] == 10575
    text = render_card(renamed)
    assert "mfrkit card --known casia-webface" in text and "10,575" in text


def test_landmark_summary_is_recorded_as_plain_yaml(tmp_path):
    @dataclasses.dataclass
    class Summary:
        backend: str
        path: Path
        counts: dict

    text = render_card(_manifest(), landmark_summary={"mediapipe": Summary("mediapipe", tmp_path / "lm.parquet", {"ok": 20, "no_face": 1})})
    got = _header(text)["landmarks"]["summary"]
    assert got == {"mediapipe": {"backend": "mediapipe", "path": str(tmp_path / "lm.parquet"), "counts": {"ok": 20, "no_face": 1}}}


def test_render_is_deterministic_and_escapes_tables():
    rows = [{"image_id": "a", "path": "a.png", "identity": "x", "variant": "masked", "status": "ok", "mask_type": "odd|name"}]
    manifest = Manifest(table=make_table(rows), meta={"name": "esc"})
    assert render_card(manifest) == render_card(manifest)
    assert "| odd\\|name | 1 |" in render_card(manifest)


def test_write_card_atomic_to_file_and_folder(tmp_path):
    manifest = _manifest()
    path = write_card(manifest, tmp_path / "cards" / "toy.md", landmark_summary={"dlib": {"ok": 3}})
    assert path == tmp_path / "cards" / "toy.md"
    assert read_card_header(path)["counts"]["images"] == len(_rows())
    assert path.read_text(encoding="utf-8") == render_card(manifest, landmark_summary={"dlib": {"ok": 3}})
    in_dir = write_card(manifest, tmp_path)
    assert in_dir == tmp_path / CARD_NAME and in_dir.is_file()
    assert not [p for p in tmp_path.rglob("*.tmp*")]


def test_bad_input():
    with pytest.raises(CardError):
        summarize_manifest({"image_id": []})
    with pytest.raises(CardError):
        parse_front_matter("# no header\n")
    with pytest.raises(CardError):
        parse_front_matter("---\nname: x\n")
    with pytest.raises(CardError):
        read_card_header("/nonexistent/card.md")


class _SmallBatches(Manifest):
    """A manifest read back 97 rows at a time (a card of millions of rows sees many row groups)."""

    def batches(self, columns=None, size=97):
        return super().batches(columns, 97)


def test_a_card_counted_over_row_groups_equals_the_whole_table_counts():
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(3)
    n = 2000
    ids = rng.integers(0, 150, n)
    rows = [{"image_id": f"x{i}", "path": f"x{i}.jpg", "identity": f"p{ids[i]}" if i % 31 else None, "status": "ok" if i % 13 else "no_face",
             "variant": ["masked", "partial", "unmasked", None][i % 4], "mask_type": ["surgical", "cloth", None][i % 3],
             "factor": [0.3, 0.5, None][i % 3], "centered": [True, False, None][i % 3], "width": int(rng.integers(90, 130)),
             "height": int(rng.integers(90, 130)), "n_faces": int(rng.integers(0, 4))} for i in range(n)]
    whole = Manifest(table=make_table(rows), meta={"name": "toy"})
    streamed = _SmallBatches(table=whole.table, meta=whole.meta)
    assert summarize_manifest(streamed) == summarize_manifest(whole)
    h = summarize_manifest(streamed)
    t = whole.table
    ok = t[t["status"] == "ok"]
    per_id = ok["identity"].dropna().value_counts().to_numpy()
    assert h["counts"]["identities"] == len(per_id) and h["counts"]["failed"] == int((t["status"] != "ok").sum())
    assert h["images_per_identity"]["median"] == np.median(per_id) and h["images_per_identity"]["mean"] == pytest.approx(per_id.mean())
    assert sum(h["images_per_identity"]["histogram"].values()) == len(per_id)
    assert h["image_size"]["width"]["median"] == np.median(ok["width"].astype(float))
    assert h["n_faces"]["n_faces"]["several"] == int((t["n_faces"] > 1).sum())
    assert h["variants"] == {str(k): int(v) for k, v in ok["variant"].fillna("unknown").value_counts().items()}
    assert h["partial"]["factors"] == {f"{k:g}": int(v) for k, v in pd.to_numeric(ok["factor"]).dropna().value_counts().sort_index().items()}
