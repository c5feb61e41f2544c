"""IJB release reading, the ijb-templates protocol folder, and template pooling against
insightface's loops (on features given directly: no model involved)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from tests.support.fake_data import make_release
from tests.support.insightface_ijb import _image2template, _input_feats, insightface_1n
from sklearn.preprocessing import normalize
from typer.testing import CliRunner

from mfrkit.cli import app
from mfrkit.protocols import load_protocol, validate_protocol
from mfrkit.protocols.errors import PairFormatError, ProtocolError
from mfrkit.protocols.ijb import import_ijb
from mfrkit.protocols.ijb_release import find_release, read_faces
from mfrkit.protocols.ijb_templates import SearchReducer, face_features, pair_scores, pool_templates


def _copy(release, tmp_path):
    dst = tmp_path / "IJBC"
    shutil.copytree(release, dst)
    return dst


def test_import_counts_and_round_trip(release, tmp_path):
    result = import_ijb(release, tmp_path / "p", set_name="ijbc")
    c = result.info["counts"]
    pairs = pd.read_csv(release / "meta" / "ijbc_template_pair_label.txt", sep=" ", header=None)
    assert c["pairs"] == len(pairs) and c["genuine"] == int(pairs[2].sum())
    assert c["faces"] == c["faces_found"] == len((release / "meta" / "ijbc_face_tid_mid.txt").read_text().splitlines())
    assert c["gallery"] == {"S1": 8, "S2": 8} and c["probes"] == 64
    p = load_protocol(tmp_path / "p")
    assert p.kind == "ijb-templates" and len(p.ijb.faces) == c["faces"]
    got = np.concatenate([np.stack(b[:2], 1) for b in p.ijb.iter_pairs()])
    np.testing.assert_array_equal(got, pairs[[0, 1]].to_numpy())
    # points come back exactly as written (float32 of the text)
    first = (release / "meta" / "ijbc_name_5pts_score.txt").read_text().split("\n")[0].split()
    np.testing.assert_array_equal(p.ijb.points[0].reshape(-1), np.array(first[1:11], np.float32))
    # the manifest's identities are the templates' subjects
    m = p.manifest("reference").table.set_index("image_id")
    assert m.loc["1.jpg", "identity"] == "1"
    assert validate_protocol(tmp_path / "p").ok


def test_parent_folder_is_accepted(release):
    assert find_release(release.parent, "ijbc").root == release.resolve()


def test_lists_out_of_step_are_an_error(release, tmp_path):
    root = _copy(release, tmp_path)
    lm = root / "meta" / "ijbc_name_5pts_score.txt"
    lines = lm.read_text().splitlines()
    lines[3], lines[4] = lines[4], lines[3]
    lm.write_text("\n".join(lines) + "\n")
    with pytest.raises(PairFormatError, match=r"ijbc_name_5pts_score.txt:4 names '5.jpg'"):
        read_faces(root / "meta" / "ijbc_face_tid_mid.txt", lm)


def test_malformed_pair_line_is_named(release, tmp_path):
    root = _copy(release, tmp_path)
    pairs = root / "meta" / "ijbc_template_pair_label.txt"
    lines = pairs.read_text().splitlines()
    lines[7] = "1 2 x"
    pairs.write_text("\n".join(lines) + "\n")
    with pytest.raises(PairFormatError, match=r"ijbc_template_pair_label.txt:8: LABEL must be an integer"):
        import_ijb(root, tmp_path / "p")
    assert not (tmp_path / "p" / "protocol.json").exists()


def test_unknown_template_in_pairs_is_an_error(release, tmp_path):
    root = _copy(release, tmp_path)
    pairs = root / "meta" / "ijbc_template_pair_label.txt"
    pairs.write_text(pairs.read_text() + "1 99999 0\n")
    with pytest.raises(ProtocolError, match="TEMPLATE_2 99999 has no face"):
        import_ijb(root, tmp_path / "p")


def test_most_faces_missing_fails_unless_allowed(release, tmp_path):
    root = _copy(release, tmp_path)
    crops = sorted((root / "loose_crop").iterdir())
    for f in crops[: int(len(crops) * 0.8)]:
        f.unlink()
    runner = CliRunner()
    r = runner.invoke(app, ["protocol", "import-ijb", str(root), "--out", str(tmp_path / "p"), "--no-register"])
    assert r.exit_code == 1 and "of the 236 faces" in str(r.exception) and "--allow-missing" in str(r.exception)
    assert not (tmp_path / "p" / "protocol.json").exists()
    r = runner.invoke(app, ["protocol", "import-ijb", str(root), "--out", str(tmp_path / "p"), "--no-register",
                            "--allow-missing"])
    assert r.exit_code == 0, r.output
    assert "48 of 236 faces found" in r.output


# --- pooling and scoring against insightface's loops -------------------------------------------------


def _random_faces(release, seed=0, dim=16):
    faces = read_faces(release / "meta" / "ijbc_face_tid_mid.txt", release / "meta" / "ijbc_name_5pts_score.txt")
    rng = np.random.default_rng(seed)
    img_feats = rng.normal(0, 1, (len(faces), 2 * dim)).astype(np.float32) * rng.uniform(0.5, 3, (len(faces), 1)).astype(np.float32)
    return faces, img_feats


@pytest.mark.parametrize("modes", [{}, {"norm": False}, {"detector": False}, {"flip": False}])
def test_pooling_equals_insightface(release, modes):
    faces, img = _random_faces(release)
    want, uniq = _image2template(_input_feats(img, faces.scores, **modes), faces.templates, faces.medias)
    d = img.shape[1] // 2
    raw = img[:, :d] + img[:, d:] if modes.get("flip", True) else img[:, :d]
    x = face_features(raw, faces.scores if modes.get("detector", True) else None, normalise=not modes.get("norm", True))
    got = pool_templates(x, faces.templates, faces.medias)
    np.testing.assert_array_equal(got.ids, uniq)
    np.testing.assert_allclose(got.vectors, normalize(want), atol=1e-6)
    t1, t2 = got.ids[:5], got.ids[-5:]
    np.testing.assert_allclose(pair_scores(got, got, t1, t2), np.sum(normalize(want)[:5] * normalize(want)[-5:], -1), atol=1e-6)


def test_failed_faces_leave_their_template(release):
    faces, img = _random_faces(release)
    x = face_features(img[:, :16], faces.scores)
    usable = np.ones(len(x), bool)
    lone = faces.templates[0]
    usable[faces.templates == lone] = False
    got = pool_templates(x, faces.templates, faces.medias, usable)
    row = got.rows([lone])[0]
    assert not got.usable[row] and got.faces[row] == 0
    assert pair_scores(got, got, [lone], [faces.templates[-1]])[0] == -np.inf


def test_insightface_1n_equals_ijb_1n(release):
    faces, img = _random_faces(release, seed=3)
    want = insightface_1n(release, img, faces.scores)
    x = face_features(img[:, :16] + img[:, 16:], faces.scores)
    tables = {}
    for f in ("G1", "G2"):
        df = pd.read_csv(release / "meta" / f"ijbc_1N_gallery_{f}.csv").drop_duplicates("TEMPLATE_ID")
        tables[f] = df
    gal = pd.concat([tables["G1"].assign(s="S1"), tables["G2"].assign(s="S2")]).sort_values("TEMPLATE_ID")
    probes = pd.read_csv(release / "meta" / "ijbc_1N_probe_mixed.csv").drop_duplicates("TEMPLATE_ID").sort_values("TEMPLATE_ID")
    g = pool_templates(x, faces.templates, faces.medias, only=gal["TEMPLATE_ID"].to_numpy())
    p = pool_templates(x, faces.templates, faces.medias, only=probes["TEMPLATE_ID"].to_numpy())
    red = SearchReducer(g, gal["SUBJECT_ID"].to_numpy(), gal["s"].to_numpy(), n_probes=len(p.ids))
    red.add(p, probes["SUBJECT_ID"].to_numpy())
    ranks = red.insightface_ranks()
    assert [ranks[k] for k in (1, 5, 10)] == pytest.approx([want["top1"], want["top5"], want["top10"]])
    assert [r["tpir"] for r in red.insightface_tpir()] == pytest.approx([want["tpir@0.01"], want["tpir@0.1"]])
    # per gallery (mfrkit's open set): half the probes are mated in each
    assert len(red.per_gallery["S1"].mated_scores) == len(red.per_gallery["S1"].nonmated_scores) == 32
