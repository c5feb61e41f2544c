"""Protocols: 1:1 verification pair lists, all-pairs 1:1 protocols and 1:N identification splits.

A protocol is a folder (see :mod:`.folder` for the exact format): ``protocol.json``
plus ``pairs.csv`` (1:1), ``reference_images.csv`` / ``probe_images.csv`` (all-pairs
1:1: every reference against every probe, see :mod:`.all_pairs`) or ``gallery.csv`` /
``probes.csv`` (1:N), whose ids are ``image_id``s of the manifests named, with their
fingerprints, in ``protocol.json``.

Typical use::

    from mfrkit.protocols import make_verification, save_protocol, load_protocol
    p = make_verification("lfw/manifest.parquet", "lfw-masked/manifest.parquet", spec="umr-mp", seed=0)
    save_protocol(p, "protocols/lfw-umr-mp")
    p = load_protocol("protocols/lfw-umr-mp")   # refuses a changed manifest
    p.pairs            # fold, left_id (reference manifest), right_id (probe manifest), label
    p.abspath("probe", p.pairs.right_id[0])
"""

from .all_pairs import count_comparisons, make_all_pairs
from .derive import derive_verification
from .errors import (
                     InsufficientDataError,
                     PairFormatError,
                     ProtocolError,
                     StaleManifestError,
                     UnsafePickleError,
)
from .folder import (
                     ROLE_OF_COLUMN,
                     TABLES,
                     Protocol,
                     load_protocol,
                     protocol_sha256,
                     read_info,
                     save_protocol,
)
from .formats import FORMATS, read_bin, read_pairs, read_people, write_pairs
from .identification import MODES, make_identification
from .interop import (
                     ImportReport,
                     export_protocol,
                     import_insightface_bin,
                     import_pairs,
                     people_folds,
)
from .pool import available_crops
from .spec import ROLES, SPECS, ProtocolSpec, Selector, describe_specs, resolve_spec
from .summary import summarize
from .validate import ValidationReport, validate_protocol
from .verification import make_verification
from .workflow import resolve_protocol

__all__ = [
    "count_comparisons", "make_all_pairs", "derive_verification", "InsufficientDataError", "PairFormatError", "ProtocolError", "StaleManifestError",
    "UnsafePickleError", "ROLE_OF_COLUMN", "TABLES", "Protocol", "load_protocol", "protocol_sha256", "read_info",
    "save_protocol", "FORMATS", "read_bin", "read_pairs", "read_people", "write_pairs", "MODES",
    "make_identification", "ImportReport", "export_protocol", "import_insightface_bin", "import_pairs",
    "people_folds", "available_crops", "ROLES", "SPECS", "ProtocolSpec", "Selector", "describe_specs",
    "resolve_spec", "summarize", "ValidationReport", "validate_protocol", "make_verification", "resolve_protocol",
]
