"""The array pool (:mod:`mfrkit.protocols.compact_pool`, used for manifest files) must draw
exactly the pairs of the dict pool (:func:`mfrkit.protocols.pool.build_pool`, used for
in-memory manifests): same folds, ids, labels, in the same order."""

import pandas as pd
import pytest

from mfrkit.protocols import make_verification, verification
from mfrkit.protocols.compact_pool import compact_eligible
from mfrkit.protocols.spec import resolve_spec


@pytest.mark.parametrize("spec", ["umr-ump", "umr-mp"])
@pytest.mark.parametrize("seed", [0, 11])
def test_file_path_pairs_equal_in_memory_pairs(lfw, masked, spec, seed, monkeypatch):
    assert compact_eligible(resolve_spec(spec))
    kw = dict(spec=spec, seed=seed, genuine_per_fold=25, impostor_per_fold=25, allow_fewer=True)
    probe = None if spec == "umr-ump" else masked
    from_memory = make_verification(lfw, probe, **kw)
    built = []
    real = verification.build_compact_pool
    monkeypatch.setattr(verification, "build_compact_pool", lambda *a: built.append(1) or real(*a))
    from_files = make_verification(lfw.path, None if probe is None else probe.path, **kw)
    assert built, "manifest files must go through the array pool"
    assert len(from_memory.pairs) > 0
    pd.testing.assert_frame_equal(from_files.pairs.reset_index(drop=True), from_memory.pairs.reset_index(drop=True))
