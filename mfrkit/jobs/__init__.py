"""The job engine shared by every long command (synth, partial, ...).

==================  ===================================================================
``base``            :class:`Job` (plan / run_item / finish) and :class:`Item`
``engine``          :func:`run_job`: claim, journal, run, resume, finish
``executors``       ``local`` (process pool) and ``ray`` executors, :class:`ExecutorSpec`
``journal``         finished items in atomic shards
``output``          output folders mfrkit owns: marker, lock, no writes through links
``lock``            the folder lock ("in use by PID ...")
``worker``          the worker side of the local pool
==================  ===================================================================
"""

from .base import Item, Job, JobError, Plan, RunStats, check_unique_outputs
from .engine import imap_chunks, map_chunks, run_job
from .executors import EXECUTORS, ExecutorSpec
from .journal import JOURNAL, Journal
from .lock import FolderInUseError, FolderLock
from .output import MARKER, OutputFolder, OutputFolderError, read_marker

__all__ = [
    "EXECUTORS", "ExecutorSpec", "FolderInUseError", "FolderLock", "Item", "JOURNAL", "Job", "JobError", "Journal", "MARKER",
    "OutputFolder", "OutputFolderError", "Plan", "RunStats", "check_unique_outputs", "imap_chunks", "map_chunks", "read_marker", "run_job",
]  # fmt: skip
