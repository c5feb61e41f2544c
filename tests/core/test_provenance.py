"""Model provenance read from ONNX metadata: trained, untrained, or unknown (never guessed)."""

from __future__ import annotations

import pytest

from mfrkit.errors import ModelError
from mfrkit.model_input import Provenance, read_provenance, resolve_model_input


def test_written_keys_read_back():
    meta = Provenance.to_metadata(trained=True, weights="sha256:ab", recipe="csn-zhao2022", data_fingerprint="f00", steps=120)
    p = read_provenance(meta)
    assert (p.label, p.recipe, p.data_fingerprint, p.steps, p.source) == ("trained", "csn-zhao2022", "f00", 120, "metadata")


def test_foreign_model_is_unknown_not_trained():
    p = read_provenance({"producer": "pytorch", "mfrkit.input_size": "112"})
    assert p.trained is None and p.label == "unknown" and p.source == "none"


def test_older_exports_are_read_from_their_weights_key():
    assert read_provenance({"mfrkit.weights": "untrained"}).label == "untrained"
    assert read_provenance({"mfrkit.weights": "sha256:abc"}).label == "trained"
    assert read_provenance({"mfrkit.weights": "something else"}).label == "unknown"


def test_sidecar_may_declare_it_and_is_not_an_unknown_key():
    p = read_provenance({}, {"trained": "true", "recipe": "arcface-ms1m"})
    assert (p.label, p.source) == ("trained", "sidecar")
    spec = resolve_model_input({}, sidecar={"input_size": 112, "color": "RGB", "mean": 127.5, "std": 127.5,
                                            "align": "arcface112", "trained": "true"})
    assert spec.input_size == (112, 112)


def test_malformed_values_are_errors():
    with pytest.raises(ModelError, match="trained must be true or false"):
        read_provenance({"mfrkit.trained": "maybe"})
    with pytest.raises(ModelError, match="steps must be an integer"):
        read_provenance({"mfrkit.steps": "many"})
