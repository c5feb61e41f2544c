"""PartialLFW crops: exact boxes, fill, placement and alignment."""

import numpy as np
import pytest

from mfrkit.errors import MfrkitError, UnknownNameError
from mfrkit.maskgen.partial import (
    GREY,
    PARTIAL_LFW_FACTORS,
    alignment_matrix,
    crop_region,
    get_template,
    parse_factors,
    parse_regions,
    partial_box,
)

# Hand-worked from PartialLFW's definition: centre of the padded mean face (+15 px in y),
# half-sizes 15 + 120 f and 10 + 105 f, int() truncation, inclusive corners.
#   nose:  cx = (0.3 + 0.4971) / 1.6 * 160 = 79.71, cy = (0.3 + 0.5337) / 1.6 * 160 + 15 = 98.37
#   mouth: cx = (0.3 + (0.3207 + 0.6735) / 2) / 1.6 * 160 = 79.71, cy = 106.33 + 15 = 121.33
#   leye:  cx = 51.94, cy = 63.71; reye: cx = 107.47, cy = 63.71
EXPECTED = {
    ("nose", 0.10): (52, 77, 106, 118),
    ("nose", 0.50): (4, 35, 154, 160),
    ("mouth", 0.25): (34, 85, 124, 157),
    ("leye", 0.10): (24, 43, 78, 84),
    ("reye", 0.45): (38, 6, 176, 120),
}


@pytest.mark.parametrize(("key", "box"), EXPECTED.items())
def test_box_matches_the_hand_worked_values(key, box):
    assert partial_box(*key) == box


@pytest.mark.parametrize("region", ["leye", "reye", "nose", "mouth"])
@pytest.mark.parametrize("factor", PARTIAL_LFW_FACTORS)
def test_box_sizes_and_fill_are_exact(region, factor):
    rng = np.random.default_rng(0)
    aligned = rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)
    aligned[aligned == GREY] = GREY + 1  # so grey marks the fill only
    x1, y1, x2, y2 = partial_box(region, factor)
    hw, hh = 15 + 120 * factor, 10 + 105 * factor
    # Width and height follow the formula up to the truncation of both corners.
    assert abs((x2 - x1) - 2 * hw) <= 1 and abs((y2 - y1) - 2 * hh) <= 1
    out = crop_region(aligned, region, factor)
    keep = np.zeros((160, 160), bool)
    keep[max(0, y1) : y2 + 1, max(0, x1) : x2 + 1] = True
    np.testing.assert_array_equal(out[keep], aligned[keep])
    assert (out[~keep] == GREY).all()


def test_centered_variant_moves_the_region_centre_to_the_middle():
    aligned = np.full((160, 160, 3), 200, np.uint8)
    for region in ("leye", "reye", "nose", "mouth"):
        out = crop_region(aligned, region, 0.1, centered=True)
        ys, xs = np.nonzero(out[..., 0] > 160)
        centre = np.array([(xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2])
        assert np.abs(centre - 80).max() <= 1.0, region
        assert out[0, 0, 0] == GREY


def test_alignment_puts_the_eye_midpoint_at_80_64():
    pts = np.array([[100.0, 120.0], [150.0, 110.0], [128.0, 150.0], [108.0, 175.0], [150.0, 170.0]])
    m = alignment_matrix(pts, get_template("partiallfw"))
    np.testing.assert_allclose(m[:, :2] @ pts[:2].mean(0) + m[:, 2], [80.0, 64.0], atol=1e-9)
    # A face already on the padded mean face keeps its scale and rotation.
    t = get_template("partiallfw")
    m = alignment_matrix(t.points, t)
    np.testing.assert_allclose(m[:, :2], np.eye(2), atol=1e-9)


def test_arcface_template_scales_the_boxes():
    t = get_template("arcface112")
    x1, y1, x2, y2 = partial_box("nose", 0.5, t)
    assert abs((x2 - x1) - 2 * 75 * 0.7) <= 1 and abs((y2 - y1) - 2 * 62.5 * 0.7) <= 1
    out = crop_region(np.full((112, 112, 3), 9, np.uint8), "nose", 0.5, centered=True, template=t)
    assert out.shape == (112, 112, 3) and out[56, 56, 0] == 9


def test_parsing_factors_and_regions():
    assert parse_factors("0.10:0.50:0.05") == PARTIAL_LFW_FACTORS
    assert parse_factors("0.2, 0.4") == (0.2, 0.4)
    assert parse_factors("0.2,0.20,0.4,0.2") == (0.2, 0.4)  # a repeat would name the same files twice
    assert parse_regions("all") == ("leye", "reye", "nose", "mouth")
    with pytest.raises(MfrkitError):
        parse_factors("0.1:0.5:0")
    with pytest.raises(MfrkitError):
        parse_factors("1.5")
    with pytest.raises(UnknownNameError, match="leye"):
        parse_regions("forehead")


def test_factors_that_name_the_same_files_are_refused_up_front():
    """0.1 and 0.10000001 are both written factor_0.1: the old code ran to the end and then
    failed on duplicate ids, leaving the output folder unusable."""
    with pytest.raises(MfrkitError, match="both written factor_0.1"):
        parse_factors("0.1,0.10000001")
    with pytest.raises(MfrkitError, match="both written factor_0.123457"):
        parse_factors("0.1234567,0.12345671")
    assert parse_factors("0.123456,0.123457") == (0.123456, 0.123457)  # distinct names: fine


@pytest.mark.parametrize("text", ["0.1:0.5:0.0000001", "0.1:0.5:1e-300", "0.01:1:0.0099"])
def test_a_huge_factor_grid_is_refused_with_the_limit(text):
    with pytest.raises(MfrkitError, match="at most 100 per run"):
        parse_factors(text)


def test_the_refused_grid_size_is_written_out():
    with pytest.raises(MfrkitError, match=r"make 4,001 values; at most 100"):
        parse_factors("0.1:0.5:0.0001")
    with pytest.raises(MfrkitError, match=r"make about 4\.0e\+299 values"):
        parse_factors("0.1:0.5:1e-300")


def test_factor_limit_and_range_checks():
    many = ",".join(f"{0.005 * k:.3f}" for k in range(1, 102))
    with pytest.raises(MfrkitError, match="at most 100"):
        parse_factors(many)
    assert len(parse_factors(many, max_count=200)) == 101
    assert len(parse_factors("0.01:1:0.01")) == 100
    with pytest.raises(MfrkitError, match="stop >= start"):
        parse_factors("0.5:0.1:0.1")
    with pytest.raises(MfrkitError, match="cannot read"):
        parse_factors("0.1:0.5:1e-320")


def test_partial_job_refuses_colliding_factors_before_writing(tmp_path, sample_manifest):
    from mfrkit.maskgen import PartialConfig, make_partial

    out = tmp_path / "partial"
    with pytest.raises(MfrkitError, match="factor_0.1"):
        make_partial(sample_manifest.path, out, PartialConfig(factors="0.1,0.10000001"))
    assert not out.exists()
