"""NIST-style axes of the style registry (shape, nose coverage), the NIST grid, and the
option parsing that refuses empty names."""

import numpy as np
import pytest

from mfrkit.maskgen import check_coverage, create_renderer
from mfrkit.maskgen.draw import mask_outline
from mfrkit.maskgen.styles import (
    NOSE_COVERAGES,
    SHAPES,
    StyleError,
    StyleSpec,
    grid_cells,
    parse_names,
    sample_style,
)


@pytest.mark.parametrize("text", ["", " ", ",,", "surgical,", ",surgical", "surgical,,cloth"])
def test_an_empty_name_is_an_error_not_random(text):
    with pytest.raises(StyleError, match="empty name"):
        StyleSpec.parse(types=text)
    with pytest.raises(StyleError, match="--color"):
        StyleSpec.parse(colors=text)


def test_random_alone_samples_and_cannot_be_mixed():
    assert parse_names("random", "--mask") is None
    assert parse_names(" surgical , cloth ", "--mask") == ("surgical", "cloth")
    with pytest.raises(StyleError, match="random cannot be mixed"):
        parse_names("random,surgical", "--mask")
    with pytest.raises(StyleError, match="non-empty tuple"):
        StyleSpec(types=())


def test_the_new_axes_leave_every_other_draw_unchanged():
    # The shape and nose axes draw last and only when asked: a style sampled without
    # them is what it was before they existed, field for field.
    for i in range(40):
        plain = sample_style(np.random.default_rng([7, i]), StyleSpec(coverages=("proper",)))
        nist = sample_style(np.random.default_rng([7, i]), StyleSpec(coverages=("proper",), shapes=("round",), noses=("low",)))
        a, b = plain.as_dict(), nist.as_dict()
        assert (a.pop("outline"), a.pop("nose")) == ("natural", None)
        assert (b.pop("outline"), b.pop("nose")) == ("round", "low")
        assert a == b


def test_nose_coverage_only_applies_to_a_proper_mask():
    spec = StyleSpec(coverages=("chin",), noses=("low",))
    assert {sample_style(np.random.default_rng(i), spec).nose for i in range(10)} == {None}


def test_shapes_change_the_outline():
    base = sample_style(np.random.default_rng(0), StyleSpec(types=("surgical",), coverages=("proper",)))
    width = {}
    for shape in SHAPES.names():
        style = sample_style(np.random.default_rng(0), StyleSpec(types=("surgical",), coverages=("proper",), shapes=(shape,)))
        poly = mask_outline(style).polygon
        width[shape] = float(np.ptp(poly[:, 0]))
    assert width["natural"] == pytest.approx(width["wide"])  # a surgical mask is NIST's wide shape
    assert width["round"] < 0.85 * width["wide"]
    assert base.outline == "natural"


def test_lower_nose_coverage_lowers_the_top_edge_and_keeps_the_checks(faces):
    image, lm, _ = faces["eileen_collins"]
    renderer = create_renderer("mesh")
    tops = {}
    for nose in ("high", "medium", "low"):
        spec = StyleSpec(types=("surgical",), coverages=("proper",), noses=(nose,))
        out = renderer(image, lm, np.random.default_rng(5), spec)
        rows = np.flatnonzero(out.occlusion[:, int(lm.points5[2, 0])])  # the column through the nose tip
        tops[nose] = int(rows.min())
        check = check_coverage(out.occlusion, lm, "proper")
        assert check.ok, (nose, check.failed)
    assert tops["high"] < tops["medium"] < tops["low"]
    assert [NOSE_COVERAGES.get(n).top_centre for n in ("high", "medium", "low")] == sorted(NOSE_COVERAGES.get(n).top_centre for n in ("high", "medium", "low"))


def test_the_nist_grid_is_every_combination_and_each_cell_renders(faces):
    cells = grid_cells("nist")
    assert len(cells) == 2 * 3 * 4 and len({c.name for c in cells}) == len(cells)
    axes = {(c.params["mask_shape"], c.params["nose_coverage"], c.params["mask_color"]) for c in cells}
    assert axes == {(s, n, c) for s in ("wide", "round") for n in ("high", "medium", "low") for c in ("light_blue", "black", "red", "white")}
    image, lm, _ = faces["grace_hopper"]
    renderer = create_renderer("mesh")
    for cell in cells:
        params = renderer.sample(np.random.default_rng(1), lm, cell.spec)
        assert (params.style.outline, params.style.nose, params.style.color) == (cell.params["mask_shape"], cell.params["nose_coverage"], cell.params["mask_color"])
        out = renderer.apply(image, params)
        assert check_coverage(out.occlusion, lm, "proper").ok, cell.name
