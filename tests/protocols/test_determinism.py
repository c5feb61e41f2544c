"""Same seed, same bytes, whatever the process: no reliance on Python's salted str hash."""

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
from mfrkit.data.manifest import read_manifest
from mfrkit.protocols import make_identification, make_verification, save_protocol
lfw, masked, out = read_manifest(sys.argv[1]), read_manifest(sys.argv[2]), sys.argv[3]
save_protocol(make_verification(lfw, masked, spec="umr-mp", seed=9, genuine_per_fold=10, impostor_per_fold=10),
              out + "/umr-mp")
save_protocol(make_verification(masked, spec="mr-mp", seed=9, genuine_per_fold=10, impostor_per_fold=10),
              out + "/mr-mp")
save_protocol(make_identification(lfw, masked, spec="umr-mp", mode="megaface", seed=9), out + "/megaface")
"""


def test_same_bytes_across_processes(tmp_path, lfw, masked):
    repo = Path(__file__).resolve().parents[2]
    outputs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"run{hash_seed}"
        env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=str(repo))
        subprocess.run([sys.executable, "-c", SCRIPT, str(lfw.path), str(masked.path), str(out)], check=True, env=env,
                       cwd=repo)
        outputs.append({p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and not p.name.startswith(".mfrkit")})
    assert len(outputs[0]) == 7
    assert outputs[0] == outputs[1]
