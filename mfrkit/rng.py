"""Per-item random generators, so results never depend on order or worker count."""

from __future__ import annotations

import hashlib

import numpy as np


def stable_hash(text: str) -> int:
    """A 64-bit hash of ``text`` that is the same on every run and platform.

    (Python's ``hash`` of a string is salted per process.)
    """
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def keyed_rng(seed: int, *keys: int) -> np.random.Generator:
    """The generator for a stream named by integers rather than by an item:
    ``default_rng([seed, *keys])`` (e.g. ``keyed_rng(seed, epoch)`` for an epoch's order,
    ``keyed_rng(17, rows, cols)`` for a fixed tile). ``keys`` tell the streams of one
    seed apart; a stream of one item of a dataset is :func:`item_rng`'s."""
    return np.random.default_rng([int(seed), *(int(k) for k in keys)])


def item_rng(seed: int, item_id: str, *extra: int | str) -> np.random.Generator:
    """The generator for one item: ``default_rng([seed, stable_hash(item_id), ...])``.

    ``extra`` separates independent streams for the same item (e.g. one output per
    mask type) without them sharing draws.
    """
    keys = [stable_hash(e) if isinstance(e, str) else int(e) for e in extra]
    return keyed_rng(int(seed) & (2**63 - 1), stable_hash(item_id), *keys)
