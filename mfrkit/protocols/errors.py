"""Errors raised by the protocol engine (all :class:`~mfrkit.errors.MfrkitError`)."""

from __future__ import annotations

from ..errors import MfrkitError


class ProtocolError(MfrkitError):
    """A protocol cannot be made, read, written or used as asked."""


class StaleManifestError(ProtocolError):
    """A manifest no longer holds the images a protocol was made from (fingerprint changed)."""


class InsufficientDataError(ProtocolError):
    """The manifests cannot supply the pairs, folds or identities asked for."""


class PairFormatError(ProtocolError):
    """A pair-list file is malformed, or a protocol cannot be written in a format."""


class UnsafePickleError(PairFormatError):
    """A pickle holds something other than the plain data it should: refused unread."""
