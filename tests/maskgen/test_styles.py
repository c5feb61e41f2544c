"""Mask styles: registries, sampling from declared weights, and drawing every type."""

import numpy as np
import pytest

from mfrkit.errors import UnknownNameError
from mfrkit.maskgen.draw import DRAWINGS, draw_roles
from mfrkit.maskgen.styles import (
    COLORS,
    COVERAGES,
    MASK_TYPES,
    StyleSpec,
    color_hex,
    sample_style,
)
from mfrkit.maskgen.textures import TEXTURES, Canvas, TextureNoise


def test_registries_hold_the_required_families():
    assert {"surgical", "n95", "kn95", "cloth", "gas"} <= set(MASK_TYPES.names())
    assert {"proper", "nose_exposed", "chin"} <= set(COVERAGES.names())
    assert {"plain", "weave", "stripes", "dots", "floral", "camo"} <= set(TEXTURES.names())
    assert DRAWINGS.names() == MASK_TYPES.names()  # every type knows how to draw itself
    for mtype in (MASK_TYPES.get(n) for n in MASK_TYPES.names()):
        assert set(mtype.textures) <= set(TEXTURES.names())
        for c in mtype.colors:
            color_hex(c)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(UnknownNameError, match="surgical"):
        StyleSpec(types=("hazmat",))
    with pytest.raises(UnknownNameError, match="#rrggbb"):
        StyleSpec(colors=("ultraviolet",))
    with pytest.raises(UnknownNameError, match="proper"):
        StyleSpec.parse(coverage="under_the_eyes")


def test_colors_by_name_or_hex():
    assert color_hex("white") == COLORS["white"]
    assert color_hex("#A0B1C2") == "#a0b1c2" and color_hex("a0b1c2") == "#a0b1c2"


def test_sampling_is_reproducible_and_respects_the_spec():
    spec = StyleSpec.parse("cloth,kn95", "#112233,white", "random", "chin")
    a = [sample_style(np.random.default_rng([3, i]), spec) for i in range(30)]
    b = [sample_style(np.random.default_rng([3, i]), spec) for i in range(30)]
    assert [s.to_json() for s in a] == [s.to_json() for s in b]
    assert {s.mask_type for s in a} == {"cloth", "kn95"}
    assert {s.color for s in a} == {"#112233", "white"}
    assert {s.coverage for s in a} == {"chin"}
    for s in a:
        assert s.texture in MASK_TYPES.get(s.mask_type).textures


def test_random_follows_the_declared_weights():
    rng = np.random.default_rng(0)
    n = 3000
    draws = [sample_style(rng) for _ in range(n)]
    types = MASK_TYPES.names()
    weights = np.array([MASK_TYPES.get(t).weight for t in types])
    expected = weights / weights.sum()
    observed = np.array([sum(d.mask_type == t for d in draws) for t in types]) / n
    np.testing.assert_allclose(observed, expected, atol=0.03)
    cov = np.array([sum(d.coverage == c for d in draws) for c in COVERAGES.names()]) / n
    cw = np.array([COVERAGES.get(c).weight for c in COVERAGES.names()])
    np.testing.assert_allclose(cov, cw / cw.sum(), atol=0.03)


@pytest.mark.parametrize("name", TEXTURES.names())
def test_textures_are_resolution_independent(name):
    colors = np.array([[0.8, 0.2, 0.2], [0.1, 0.1, 0.6], [0.9, 0.9, 0.2], [0.2, 0.6, 0.2]], np.float32)
    means = []
    for res in (1.0, 2.0):
        u, v = np.meshgrid(np.arange(0, 200, 1 / res, dtype=np.float32), np.arange(0, 160, 1 / res, dtype=np.float32))
        canvas = Canvas(u=u, v=v, res=res, s=np.zeros_like(u), t=np.zeros_like(u))
        img = TEXTURES.get(name)(canvas, colors, {"period": 8.0, "scale": 5.0}, TextureNoise(np.random.default_rng(0)))
        assert img.shape == u.shape + (3,) and np.isfinite(img).all()
        means.append(img.reshape(-1, 3).mean(0))
    # Patterns are defined in canonical units: the colour mix does not depend on the resolution.
    np.testing.assert_allclose(means[0], means[1], atol=0.06)


@pytest.mark.parametrize("mtype", ["surgical", "n95", "kn95", "cloth", "gas"])
def test_every_type_and_coverage_draws_where_the_preset_says(mtype):
    tops = {}
    for coverage in ("proper", "nose_exposed", "chin"):
        style = sample_style(np.random.default_rng(1), StyleSpec(types=(mtype,), coverages=(coverage,)))
        layer = draw_roles(style, 1.0)
        alpha = layer.alpha
        assert alpha.max() == pytest.approx(1.0) and alpha.min() >= 0.0
        col = int(round(56 - layer.origin[0]))  # the face's centre line
        rows = np.flatnonzero(alpha[:, col] > 0.5) + layer.origin[1]
        tops[coverage] = rows.min()
        assert rows.max() > 118.5  # reaches below the canonical chin
        assert np.isfinite(layer.depth).all() and np.isfinite(layer.relief).all()
    # proper starts over the nose (tip at v=74), nose_exposed under it, chin under the lips (v=99).
    assert tops["proper"] < 65 < 76 < tops["nose_exposed"] < 95 < 100 < tops["chin"]
