"""What a run writes into its folder, and the typed result read back from it.

==================  =====================================================================
``run_result``      :class:`RunResult`: one model x protocol's ``metrics.json``, written
                    and read here only (typed views of its sections)
``files``           strict JSON (NaN as null, infinities as strings) and CSV, atomically
``plots``           the PNG plots of a result (ROC, DET, CMC); the report draws its own SVGs
==================  =====================================================================
"""

from __future__ import annotations

from .files import ReportError, as_float, read_result, write_csv, write_json
from .run_result import (
    METRICS_NAME,
    FtaSummary,
    ModelInfo,
    Preprocessing,
    ProtocolInfo,
    RunResult,
    RunSettings,
    SubsetRecord,
    Throughput,
    metrics_files,
    new_result,
)

__all__ = ["ReportError", "as_float", "read_result", "write_csv", "write_json", "METRICS_NAME", "FtaSummary",
           "ModelInfo", "Preprocessing", "ProtocolInfo", "RunResult", "RunSettings", "SubsetRecord", "Throughput", "metrics_files", "new_result"]  # fmt: skip
