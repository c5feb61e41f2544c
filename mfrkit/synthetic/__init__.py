"""Synthetic datasets made from the photos that ship with the dependencies: identities
(:mod:`mfrkit.synthetic.identities`) for checking that training, losses and export work.

Here, not in :mod:`mfrkit.data`, because making them detects landmarks: ``data`` holds
dataset I/O only and sits below :mod:`mfrkit.landmarks`.
"""
