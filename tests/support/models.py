"""The model tests' tiny family configs and random training batches (their synthetic
faces are in :mod:`tests.support.fake_data`)."""

from __future__ import annotations

import torch

#: The smallest sensible config of every family: tests stay fast on two CPU cores.
TINY = {
    "csn": {"backbone": "iresnet18", "width": 4, "embedding_dim": 16, "concept_hidden": 8},
    "attention": {"backbone": "iresnet18", "width": 4, "embedding_dim": 16, "n_maps": 3, "input_size": 64},
    "heterogeneous": {"backbone": "iresnet18", "width": 4, "embedding_dim": 16},
    "domain_adapt": {"backbone": "iresnet18", "width": 4, "embedding_dim": 16, "domain_hidden": 8},
    "cosface": {"backbone": "iresnet18", "width": 4, "embedding_dim": 16},
}


def make_batch(model, n: int = 6, *, teacher_dim: int | None = None, n_attr: int = 0, seed: int = 0) -> dict:
    """A random batch with every key a family may read."""
    g = torch.Generator().manual_seed(seed)
    h, w = model.preprocessing.input_size
    batch = {
        "image": torch.randn(n, 3, h, w, generator=g),
        "source": torch.randn(n, 3, h, w, generator=g),
        "label": torch.tensor([i % 3 for i in range(n - 1)] + [-1]),
        "domain": torch.tensor([1, 0] * (n // 2) + [1] * (n % 2)),
    }
    if teacher_dim:
        batch["teacher_embedding"] = torch.randn(n, teacher_dim, generator=g)
    if n_attr:
        a = torch.randint(0, 2, (n, n_attr), generator=g).float()
        a[0, 0] = float("nan")
        batch["attributes"], batch["source_attributes"] = a, a.flip(0)
    return batch
