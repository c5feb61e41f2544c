"""1:N top-k on torch: CUDA-sized blocks and full float32 products (checked on the CPU)."""

from __future__ import annotations

import numpy as np
import torch

from mfrkit.bench.score import search as S


def unit(rng, n, d=16):
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_cuda_search_uses_large_blocks(monkeypatch):
    seen = {}

    def fake(Q, G, k, probe_block, gallery_block, device, progress):
        seen.update(blocks=(probe_block, gallery_block), device=device)
        return S._topk_numpy(Q, G, k, 64, 64, progress)

    monkeypatch.setattr(S, "resolve_search_device", lambda device="auto": "cuda")
    monkeypatch.setattr(S, "_topk_torch", fake)
    rng = np.random.default_rng(0)
    s, i, used = S.topk_search(unit(rng, 10), unit(rng, 50), 3)
    assert used == "cuda" and seen == {"blocks": S.CUDA_BLOCKS, "device": "cuda"}
    S.topk_search(unit(rng, 10), unit(rng, 50), 3, probe_block=8, gallery_block=16)
    assert seen["blocks"] == (8, 16)  # given sizes win


def test_torch_search_runs_in_full_float32(monkeypatch):
    m = torch.backends.cuda.matmul
    before = m.fp32_precision
    flags = []
    real = torch.topk

    def spy(*a, **k):
        flags.append(m.fp32_precision)
        return real(*a, **k)

    monkeypatch.setattr(torch, "topk", spy)
    m.fp32_precision = "tf32"
    try:
        rng = np.random.default_rng(1)
        S._topk_torch(unit(rng, 20), unit(rng, 70), 4, 8, 32, "cpu", None)
        assert flags and set(flags) == {"ieee"} and m.fp32_precision == "tf32"
    finally:
        m.fp32_precision = before
