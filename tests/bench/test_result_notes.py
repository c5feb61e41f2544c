"""The notes beside a result's numbers: small protocols, and where the two rule sets differ."""

from __future__ import annotations

import numpy as np

from mfrkit.bench import metrics as M
from mfrkit.bench.report.notes import rule_differences, size_warning, smallest_supported_far

TARGETS = (1e-1, 1e-2, 1e-3, 1e-4)


def result(y, s, kind="verification", name="p"):
    y = np.asarray(y, bool)
    return {"protocol": {"kind": kind, "name": name}, "settings": {"confidence": 0.95},
            "metrics": {"n_genuine": int(y.sum()), "n_impostor": int((~y).sum()),
                        "tar_at_far": M.tar_at_far(y, s, TARGETS).records(),
                        "insightface": {"tar_at_far": M.tar_at_far_nearest(y, s, TARGETS).records()}}}


def test_a_small_protocol_gets_one_line_saying_why():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(90, bool), np.zeros(900, bool)]
    s = np.r_[rng.normal(1, 0.5, 90), rng.normal(0, 0.5, 900)]
    text = size_warning(result(y, s, name="tiny"))
    assert text.startswith("tiny is small for what is reported: 900 impostor comparisons cannot resolve FAR 1e-4, 1e-3")
    assert "the smallest FAR it resolves is 0.01" in text and "only 90 genuine comparisons" in text
    assert "+-0." in text and "95% interval" in text
    # a large one: nothing to say
    y = np.r_[np.ones(400, bool), np.zeros(20_000, bool)]
    s = np.r_[rng.normal(1, 0.5, 400), rng.normal(0, 0.5, 20_000)]
    assert size_warning(result(y, s)) is None
    assert smallest_supported_far(9416, (1e-1, 1e-2, 1e-3, 1e-4)) == 1e-3
    assert smallest_supported_far(5, (1e-1, 1e-2)) is None


def test_rule_sets_that_differ_by_more_than_the_interval_are_explained():
    # 1,000 genuine (a narrow interval) and 9,416 impostors: at FAR 1e-3 mfrkit allows
    # floor(9.416) = 9 false accepts; 300 genuine scores sit between the 10th and 11th highest
    # impostor, and the 10th is nearest the target (|10/9416 - 1e-3| < |9/9416 - 1e-3|)
    rng = np.random.default_rng(1)
    imp = np.sort(rng.uniform(-1, 0.5, 9416))
    imp[-10:] = np.linspace(0.90, 0.99, 10)
    gen = np.r_[rng.uniform(0.991, 1.0, 500), np.full(300, 0.7), rng.uniform(-0.5, 0.3, 200)]
    y = np.r_[np.ones(len(gen), bool), np.zeros(len(imp), bool)]
    s = np.r_[gen, imp]
    notes = rule_differences(result(y, s))
    assert len(notes) == 1 and notes[0].startswith("TAR@FAR=1e-3: mfrkit 0.5000, insightface 0.8000")
    assert "at most 9 false accept(s), 1e-3 x 9,416 = 9.42 rounded down" in notes[0]
    assert "10 false accept(s) (FAR 0.00106, above the target)" in notes[0]
    # equal rules, nothing said
    y2 = np.r_[np.ones(1000, bool), np.zeros(20_000, bool)]
    s2 = np.r_[rng.normal(2, 0.5, 1000), rng.normal(0, 0.5, 20_000)]
    assert rule_differences(result(y2, s2)) == []
