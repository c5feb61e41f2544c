"""Time render_card on a CASIA-WebFace-sized synthetic manifest (494,414 rows, 10,575 identities).

Prints seconds; asserts nothing. Run from the repository root:
    python benchmarks/data_cards.py
"""

import time

import numpy as np
import pandas as pd

from mfrkit.data.manifest import Manifest, make_table
from mfrkit.data_cards import render_card


def main(n: int = 494_414, identities: int = 10_575) -> None:
    rng = np.random.default_rng(0)
    ident = rng.integers(0, identities, n)
    df = pd.DataFrame({"identity": [f"{i:07d}" for i in ident]})
    df["image_id"] = df["path"] = [f"{i}/{k:06d}.jpg" for k, i in enumerate(df["identity"])]
    df["status"] = np.where(rng.random(n) < 0.01, "no_face", "ok")
    df["variant"], df["width"], df["height"], df["sha256"] = "unmasked", 250, 250, "0" * 64
    manifest = Manifest(make_table(df), meta={"name": "casia", "layout": "imagefolder"})
    t0 = time.perf_counter()
    manifest.fingerprint()
    t1 = time.perf_counter()
    text = render_card(manifest)
    t2 = time.perf_counter()
    print(f"rows={n} identities={identities}")
    print(f"manifest.fingerprint(): {t1 - t0:.2f} s")
    print(f"render_card (includes one fingerprint): {t2 - t1:.2f} s, card {len(text)} chars")


if __name__ == "__main__":
    main()
