import pandas as pd
import pytest

from mfrkit.errors import UnknownNameError
from mfrkit.protocols import SPECS, ProtocolError, Selector, resolve_spec

EXPECTED = ["mr-mp", "mr-ump", "partial-cross", "partial-holistic", "partial-same", "umr-mp", "umr-ump"]


def test_registry_holds_every_spec_of_the_issue():
    assert SPECS.names() == EXPECTED


def test_unknown_spec_lists_the_valid_ones():
    with pytest.raises(UnknownNameError, match="umr-mp"):
        resolve_spec("mr-xx")


@pytest.mark.parametrize("name", ["umr-ump", "umr-mp", "mr-mp", "mr-ump"])
def test_masked_specs_select_their_variants(name):
    spec = resolve_spec(name)
    ref, probe = name.split("-")
    assert spec.reference.variant == ("masked" if ref == "mr" else "unmasked")
    assert spec.probe.variant == ("masked" if probe == "mp" else "unmasked")
    assert not spec.doubled


def test_mr_mp_uses_mlfw_mask_pairing_by_default():
    assert resolve_spec("mr-mp").mask_pairing == "mlfw"
    assert resolve_spec("mr-mp", mask_pairing="independent").mask_pairing == "independent"
    with pytest.raises(ProtocolError, match="mask_pairing"):
        resolve_spec("mr-mp", mask_pairing="sometimes")


def test_unknown_parameter_is_refused_with_the_valid_ones():
    with pytest.raises(ProtocolError, match="region"):
        resolve_spec("partial-same", regoin="Nose", factor=0.3)


def test_partial_specs_need_a_crop():
    with pytest.raises(ProtocolError, match="region and a factor"):
        resolve_spec("partial-holistic", region="Nose")
    with pytest.raises(ProtocolError, match="region2"):
        resolve_spec("partial-cross", region="Nose", region2="Nose", factor=0.3)
    spec = resolve_spec("partial-cross", region="Nose", region2="Mouth", factor=0.3, centered=True)
    assert spec.doubled and spec.reference.region == "Nose" and spec.probe.region == "Mouth"
    assert spec.params == {"region": "Nose", "region2": "Mouth", "factor": 0.3, "centered": True}


def test_partial_holistic_has_a_holistic_reference():
    spec = resolve_spec("partial-holistic", region="Nose", factor="0.3")
    assert spec.reference.variant == "unmasked" and spec.probe.variant == "partial"
    assert spec.probe.factor == 0.3 and spec.doubled
    assert not resolve_spec("partial-same", region="Nose", factor=0.3).doubled


def test_selector_matches_variant_and_crop():
    table = pd.DataFrame({
        "variant": ["partial", "partial", "partial", None, "masked"],
        "mask_type": [None, None, None, None, "cloth"],
        "region": ["Nose", "Nose", "Mouth", None, None],
        "factor": [0.3, 0.5, 0.3, None, None],
        "centered": pd.array([True, True, True, None, None], dtype="boolean"),
    })
    assert Selector("partial", region="Nose", factor=0.3).matches(table).tolist() == [True, False, False, False, False]
    assert Selector("partial", centered=False).matches(table).tolist() == [False] * 5
    # A null variant counts as unmasked (scanned datasets leave it empty).
    assert Selector("unmasked").matches(table).tolist() == [False, False, False, True, False]
    assert Selector("masked", mask_types=("surgical",)).matches(table).sum() == 0
