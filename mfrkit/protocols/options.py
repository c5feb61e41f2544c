"""The options of ``mfrkit protocol make`` (declared once per protocol kind) and of the
registration every command writing a protocol offers (:class:`RegisterOptions`).

Each kind's settings are a dataclass whose fields declare their command-line form
(:func:`mfrkit.options.option`); :class:`MakeConfig` holds them all, and
:meth:`MakeConfig.kind_options` picks the ones the chosen kind takes, as the keyword
options of :func:`mfrkit.protocols.workflow.make_protocol_folder`. A flag, its default and
its help live here only; ``mfrkit/cli/protocol.py`` builds the command from them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..options import option, options_of
from .registry import protocol_folder


@dataclass(frozen=True)
class SpecParams:
    """Parameters of a spec (None: not given; a partial spec then takes every crop the
    probe manifest has)."""

    region: str | None = option(None, help="partial-*: crop region (all available if omitted).")
    region2: str | None = option(None, help="partial-cross: second region.")
    factor: float | None = option(None, help="partial-*: crop factor (all available if omitted).")
    centered: bool | None = option(None, negatable="--non-centered", help="partial-*: centered crops or not.")
    mask_types: str | None = option(None, help="Masked specs: comma-separated mask types to use.")
    mask_pairing: str | None = option(None, help="Masked specs: mlfw or independent.")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class VerificationOptions:
    """A 1:1 pair list drawn from the manifests (:func:`~mfrkit.protocols.verification.make_verification`)."""

    n_folds: int = option(10, flags="--folds", help="1:1: number of identity-disjoint folds.")
    genuine_per_fold: int = option(300, flags="--genuine", help="1:1: genuine pairs per fold.")
    impostor_per_fold: int = option(300, flags="--impostor", help="1:1: impostor pairs per fold.")
    allow_fewer: bool = option(False, help="1:1: take fewer pairs when the data cannot supply them.")


@dataclass(frozen=True)
class IdentificationOptions:
    """A 1:N gallery/probe protocol (:func:`~mfrkit.protocols.identification.make_identification`)."""

    mode: str = option("closed", help="1:N mode: closed, open or megaface.")
    gallery_per_identity: int | None = option(None, help="1:N: gallery images per identity (megaface: mates).")
    probes_per_identity: int | None = option(None, help="1:N: at most this many probes per identity.")
    unmated_fraction: float = option(0.5, help="1:N open set: fraction of identities left out of the gallery.")
    probe_fraction: float = option(0.5, help="1:N megaface: fraction of identities used as probes.")
    n_distractors: int | None = option(None, flags="--distractors", help="1:N megaface: number of distractor images.")
    max_identities: int | None = option(None, help="1:N: at most this many enrolled / probe identities.")


@dataclass(frozen=True)
class AllPairsOptions:
    """Every reference image x every probe image (:func:`~mfrkit.protocols.all_pairs.make_all_pairs`)."""

    max_per_identity: int | None = option(None, min=1, help="--all-pairs: at most this many images per identity and side (seeded sample).")


_FROM_HELP = ("Derive from this 1:1 protocol (folder or registered name): same pairs and folds, new variants; or from an IJB "
              "protocol: the same templates with the probe side from --probe-manifest (its masked loose crops).")


@dataclass(frozen=True)
class MakeConfig:
    """Settings of one ``mfrkit protocol make``: the spec, the kind (1:1 by default,
    ``identification``, ``all_pairs``, or derived with ``derive_from``), each kind's
    options and ``people`` (1:1 identity folds); the manifests and output folder are the
    command's own, the registration :class:`RegisterOptions`."""

    spec: str = option("umr-ump", help="Protocol spec (see `mfrkit protocol list`).")
    seed: int | None = option(None, help="Seed (default 0; --from: the parent's): the same seed and manifests give the same files.")
    identification: bool = option(False, negatable=False, help="Make a 1:N gallery/probe protocol.")
    all_pairs: bool = option(False, negatable=False, help="1:1 without a pair list: every reference image x every probe image "
                             "(same image and same source photo excluded).")  # fmt: skip
    all_pairs_options: AllPairsOptions = options_of(AllPairsOptions, help="--all-pairs options.")
    verification_options: VerificationOptions = options_of(VerificationOptions, help="1:1 options.")
    allow_same_source: bool = option(False, help="Allow pairing a synthetic image with its own source photo.")
    people: Path | None = option(None, help="1:1: LFW people.txt giving the identity folds.")
    derive_from: Path | None = option(None, flags="--from", parse=protocol_folder, metavar="PROTOCOL", help=_FROM_HELP)
    allow_missing: bool = option(False, help="--from: keep pairs whose variant is missing, as failures; --people: go ahead when "
                                 "most of its identities have no usable image in the manifests.")  # fmt: skip
    spec_params: SpecParams = options_of(SpecParams, help="Spec parameters.")
    identification_options: IdentificationOptions = options_of(IdentificationOptions, help="1:N options.")

    @property
    def kind(self) -> str:
        """``identification``, ``all-pairs`` or ``verification``."""
        return "identification" if self.identification else "all-pairs" if self.all_pairs else "verification"

    def kind_options(self) -> dict[str, Any]:
        """The keyword options of the generator (or the deriver) this config runs."""
        if self.all_pairs:
            return {"seed": self.seed or 0, "max_per_identity": self.all_pairs_options.max_per_identity,
                    "allow_same_source": self.allow_same_source}  # fmt: skip
        if self.derive_from is not None:
            return {"seed": self.seed, "allow_missing": self.allow_missing, "allow_same_source": self.allow_same_source}
        if self.identification:
            return {"seed": self.seed or 0, **dataclasses.asdict(self.identification_options)}
        v = self.verification_options
        return {"seed": self.seed or 0, "n_folds": v.n_folds, "genuine_per_fold": v.genuine_per_fold,
                "impostor_per_fold": v.impostor_per_fold, "allow_fewer": v.allow_fewer,
                "allow_same_source": self.allow_same_source, "allow_missing": self.allow_missing}  # fmt: skip


@dataclass(frozen=True)
class RegisterOptions:
    """How a command writing a protocol folder (``make``, ``import``, ``import-ijb``)
    registers it and treats an existing one."""

    name: str | None = option(None, help="Name to register the protocol under (default: <dataset>/<spec> for make, the folder's "
                              "name for import); also its recorded name.")  # fmt: skip
    register: bool = option(True, help="Register the protocol in $MFRKIT_HOME, so that --protocol NAME finds it.")
    force: bool = option(False, negatable=False, help="Replace an existing protocol folder (and re-point its registered name).")

    def target(self) -> bool | str:
        """The ``register`` argument of the workflow functions: the name, True (the
        default name) or False."""
        return (self.name or True) if self.register else False
