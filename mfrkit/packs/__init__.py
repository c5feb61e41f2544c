"""Packs of aligned face crops (``mfrkit pack``): written once, memory-mapped by training
and the bench. Reading lives in :mod:`mfrkit.packs.pack` (no ``bench``/``models``
imports); writing in :mod:`mfrkit.packs.write`."""

from .pack import FORMAT, Pack, PackError, is_pack, open_pack, serves

__all__ = ["FORMAT", "Pack", "PackError", "is_pack", "open_pack", "serves"]
