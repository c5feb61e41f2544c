"""Mask styles: types, colours, textures, coverage presets, and how they are sampled.

A :class:`StyleSpec` says what the user asked for ("surgical or cloth, any colour,
coverage ``proper``"); :func:`sample_style` draws one concrete :class:`StyleParams`
from it with a per-image generator. Everything random about a mask's look lives in
``StyleParams``, so rendering is a pure function of the image, the landmarks and these
parameters.

Registries (:data:`MASK_TYPES`, :data:`COVERAGES`, :data:`COLORS`, and
:data:`~mfrkit.maskgen.textures.TEXTURES`) carry declared sampling weights; ``random``
draws from them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import MfrkitError, UnknownNameError
from ..registry import Registry
from .texture_files import check_texture_file, expand_textures, is_texture_file, sample_file_pattern
from .textures import TEXTURES

#: Named colours (sRGB hex). Users may also give any ``#rrggbb``.
COLORS: dict[str, str] = {
    "white": "#f1f3f2",
    "light_blue": "#8ec1df",
    "surgical_blue": "#6fa8d0",
    "sky": "#b3d6ea",
    "surgical_green": "#8fc7b3",
    "mint": "#b8e0cf",
    "pink": "#f0b9c8",
    "lavender": "#c3b4dd",
    "yellow": "#ead37a",
    "beige": "#d8c3a4",
    "khaki": "#a39568",
    "olive": "#66683d",
    "grey": "#8c9094",
    "charcoal": "#45474c",
    "black": "#2a2a2e",
    "navy": "#27365a",
    "blue": "#3d6fb0",
    "teal": "#2b8a86",
    "red": "#b2292f",
    "burgundy": "#6e2133",
    "orange": "#df7a37",
    "purple": "#6c4a8c",
    "magenta": "#c23a8e",
}

_HEX = re.compile(r"^#?[0-9a-fA-F]{6}$")


def color_hex(color: str) -> str:
    """``#rrggbb`` of a colour name or hex string; raises for unknown names."""
    if color in COLORS:
        return COLORS[color]
    if _HEX.match(color):
        return "#" + color.lstrip("#").lower()
    valid = ", ".join(sorted(COLORS))
    raise UnknownNameError(f"unknown mask colour {color!r}; use #rrggbb or one of: {valid}")


def hex_rgb(color: str) -> np.ndarray:
    """sRGB triple in 0-1 of a colour name or hex string, shape (3,)."""
    h = color_hex(color).lstrip("#")
    return np.array([int(h[i : i + 2], 16) for i in (0, 2, 4)], dtype=np.float32) / 255.0


@dataclass(frozen=True)
class Coverage:
    """How the mask is worn.

    Attributes
    ----------
    name : str
    top_centre, top_side : float
        Canonical ``v`` of the mask's top edge over the face's centre line and at its
        top corners (the canonical nose tip is at v=74, mouth corners 89, chin 118).
    hang : float
        How far below the chin the mask's lower edge shows, canonical units.
    covers, exposes : tuple of str
        Landmark groups (``eyes``, ``nose``, ``mouth``, ``chin``) the preset must and
        must not cover; :mod:`mfrkit.maskgen.quality` checks them.
    weight : float
        Sampling weight for ``random``.
    """

    name: str
    top_centre: float
    top_side: float
    hang: float
    covers: tuple[str, ...]
    exposes: tuple[str, ...]
    weight: float


COVERAGES: Registry = Registry("mask coverage")
for _c in (
    Coverage("proper", 57.5, 66.0, 7.0, ("nose", "mouth", "chin"), ("eyes",), 0.7),
    # Worn under the nose: the nostrils show, the mouth stays covered.
    Coverage("nose_exposed", 82.0, 85.0, 9.0, ("mouth", "chin"), ("eyes", "nose"), 0.2),
    # Pulled down onto the chin: mouth and nose show.
    Coverage("chin", 104.0, 102.0, 12.0, ("chin",), ("eyes", "nose", "mouth"), 0.1),
):
    COVERAGES.add(_c.name, _c)


@dataclass(frozen=True)
class NoseCoverage:
    """How far up the nose a properly worn mask reaches (NIST's "nose coverage" axis).

    Attributes
    ----------
    name : str
    top_centre, top_side : float
        Canonical ``v`` of the mask's top edge over the centre line and at its top
        corners; they replace the ``proper`` preset's (the bridge of the nose is near
        v=55, the nose tip v=74, the eyes v=52).
    description : str
    """

    name: str
    top_centre: float
    top_side: float
    description: str


#: NIST's three levels of nose coverage (NISTIR 8311): the names and their order are
#: NIST's; the heights are mfrkit's choice (NIST's drawings are not public). All three
#: still cover the nose tip, so a ``proper`` mask passes its coverage check at any level.
NOSE_COVERAGES: Registry = Registry("nose coverage")
for _n in (
    NoseCoverage("high", 57.5, 66.0, "over the bridge of the nose, just below the eyes (the proper preset's own edge)"),
    NoseCoverage("medium", 63.5, 69.0, "across the middle of the nose"),
    NoseCoverage("low", 69.5, 72.5, "just over the nose tip: the nostrils' upper edge shows at the sides"),
):
    NOSE_COVERAGES.add(_n.name, _n)


@dataclass(frozen=True)
class MaskShape:
    """An outline family a mask can take instead of its type's own (NIST's "shape" axis).

    Attributes
    ----------
    name : str
    description : str
    """

    name: str
    description: str


NATURAL = "natural"
#: Mask outlines. ``natural`` is each type's own; ``wide`` and ``round`` are NIST's two
#: shapes (NISTIR 8311): a mask as wide as the face, and a rounded mask over nose and
#: mouth. How they are drawn is mfrkit's choice (see ``mfrkit.maskgen.draw``).
SHAPES: Registry = Registry("mask shape")
for _s in (
    MaskShape(NATURAL, "the mask type's own outline"),
    MaskShape("wide", "as wide as the face: the top edge runs cheek to cheek, the sides follow the face outline, the lower edge hangs under the jaw"),
    MaskShape("round", "rounded over the nose and mouth, narrower than the face: an egg-shaped cup from the top edge to under the chin"),
):
    SHAPES.add(_s.name, _s)


@dataclass(frozen=True)
class MaskType:
    """A kind of mask and the looks it comes in.

    Attributes
    ----------
    name : str
    description : str
    weight : float
        Sampling weight for ``random``.
    colors : dict
        Colour name -> weight for the body colour.
    textures : dict
        Texture name -> weight.
    accents : tuple of str
        Colours for straps, valves, prints (sampled as needed).
    tent : float
        0-1: how taut the mask stands off the face (1 spans the nose-cheek grooves).
    """

    name: str
    description: str
    weight: float
    colors: dict
    textures: dict
    accents: tuple[str, ...] = ()
    tent: float = 0.8


MASK_TYPES: Registry = Registry("mask type")
for _t in (
    MaskType(
        "surgical",
        "three-ply pleated medical mask with ear loops and a nose wire",
        0.35,
        {"light_blue": 0.45, "surgical_blue": 0.12, "white": 0.2, "surgical_green": 0.08, "pink": 0.05, "black": 0.07, "lavender": 0.03},
        {"nonwoven": 1.0},
        tent=0.8,
    ),
    MaskType(
        "n95",
        "moulded cup respirator with head straps, optionally with an exhalation valve",
        0.12,
        {"white": 0.75, "grey": 0.1, "beige": 0.1, "sky": 0.05},
        {"nonwoven": 1.0},
        accents=("yellow", "blue", "white", "orange", "grey"),
        tent=1.0,
    ),
    MaskType(
        "kn95",
        "flat-fold respirator with a centre fold, welded edges and ear loops",
        0.18,
        {"white": 0.55, "black": 0.2, "grey": 0.07, "pink": 0.06, "sky": 0.06, "beige": 0.06},
        {"nonwoven": 1.0},
        tent=1.0,
    ),
    MaskType(
        "cloth",
        "contoured fabric mask with a centre seam and printed patterns",
        0.25,
        {
            "black": 0.2, "navy": 0.12, "charcoal": 0.08, "grey": 0.08, "white": 0.06, "blue": 0.08, "red": 0.06,
            "burgundy": 0.05, "beige": 0.06, "khaki": 0.04, "olive": 0.04, "pink": 0.05, "teal": 0.04, "purple": 0.04,
        },
        {"weave": 0.4, "stripes": 0.12, "dots": 0.12, "floral": 0.12, "camo": 0.1, "plaid": 0.14},
        accents=("white", "black", "red", "yellow", "pink", "navy", "beige", "orange", "teal", "mint", "lavender", "olive", "khaki"),
        tent=0.7,
    ),
    MaskType(
        "gas",
        "elastomeric half-face respirator with two filter cartridges and an exhalation valve",
        0.10,
        {"charcoal": 0.45, "black": 0.25, "grey": 0.2, "blue": 0.1},
        {"rubber": 1.0},
        accents=("magenta", "pink", "black", "grey", "yellow", "olive"),
        tent=1.0,
    ),
):
    MASK_TYPES.add(_t.name, _t)


RANDOM = "random"


class StyleError(MfrkitError):
    """A mask style option that cannot be used (empty, malformed)."""


def parse_names(text: str, option: str) -> tuple[str, ...] | None:
    """A comma list as typed for ``option``: its names, or None for ``random``.

    Raises StyleError for an empty value or an empty item: ``--mask ""`` or
    ``--mask ",,"`` is a typo, not a request for random masks.
    """
    raw = str(text)
    items = tuple(x.strip() for x in raw.split(","))
    if not raw.strip() or not all(items):
        raise StyleError(f"{option} {raw!r}: empty name in the list; give names separated by commas, or random")
    if RANDOM in items:
        if items != (RANDOM,):
            raise StyleError(f"{option} {raw!r}: random cannot be mixed with names; give random alone or a list of names")
        return None
    return items


@dataclass(frozen=True)
class StyleSpec:
    """What to draw masks from. ``None`` means "sample from the declared weights".

    Attributes
    ----------
    types : tuple of str or None
    colors : tuple of str or None
        Names or ``#rrggbb``; None uses each type's own palette.
    textures : tuple of str or None
        None uses each type's own textures.
    coverages : tuple of str or None
    """

    types: tuple[str, ...] | None = None
    colors: tuple[str, ...] | None = None
    textures: tuple[str, ...] | None = None
    coverages: tuple[str, ...] | None = None
    shapes: tuple[str, ...] | None = None
    noses: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for field_name in ("types", "colors", "textures", "coverages", "shapes", "noses"):
            value = getattr(self, field_name)
            if value is not None and (not isinstance(value, tuple) or not value):
                raise StyleError(f"{field_name} must be None (sample) or a non-empty tuple of names, got {value!r}")
        for name in self.types or ():
            MASK_TYPES.get(name)
        for name in self.colors or ():
            color_hex(name)
        for name in self.textures or ():
            if is_texture_file(name):
                check_texture_file(name)
            else:
                TEXTURES.get(name)
        for name in self.coverages or ():
            COVERAGES.get(name)
        for name in self.shapes or ():
            SHAPES.get(name)
        for name in self.noses or ():
            NOSE_COVERAGES.get(name)

    @classmethod
    def parse(cls, types: str = RANDOM, colors: str = RANDOM, textures: str = RANDOM, coverage: str = RANDOM, shapes: str = NATURAL,
              noses: str = RANDOM) -> "StyleSpec":
        """From comma lists as typed on the command line (``random`` = sample).

        Raises StyleError for an empty value or an empty item (``""``, ``",,"``,
        ``"surgical,"``): it is a typo, not a request for random masks.
        """
        return cls(
            parse_names(types, "--mask"),
            parse_names(colors, "--color"),
            expand_textures(parse_names(textures, "--texture")),
            parse_names(coverage, "--coverage"),
            None if str(shapes).strip() == NATURAL else parse_names(shapes, "--shape"),
            parse_names(noses, "--nose"),
        )

    def with_type(self, name: str) -> "StyleSpec":
        return replace(self, types=(name,))


@dataclass(frozen=True)
class StyleParams:
    """One sampled mask look. All fields are JSON-serialisable.

    Attributes
    ----------
    mask_type, color, texture, coverage : str
        ``color`` is the name as given (or the hex), ``color_hex`` its value.
    color_hex : str
    accents : tuple of str
        Hex colours for prints, straps, valves and cartridges.
    pattern : dict
        Texture parameters (scales in canonical units, angles in degrees).
    shape : dict
        Small per-image variations of the fit: ``top`` and ``side`` (units moved down),
        ``hang`` (units), ``width`` (factor), ``loops`` (ear loops drawn).
    extras : dict
        Type-specific options (``valve`` for n95).
    texture_seed : int
        Seeds the texture's noise.
    outline : str
        :data:`SHAPES` name: ``natural`` (the type's own) or NIST's ``wide``, ``round``.
    nose : str or None
        :data:`NOSE_COVERAGES` name when a ``proper`` mask's height on the nose was
        chosen; None keeps the coverage preset's own top edge.
    """

    mask_type: str
    color: str
    color_hex: str
    texture: str
    coverage: str
    accents: tuple[str, ...] = ()
    pattern: dict = field(default_factory=dict)
    shape: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)
    texture_seed: int = 0
    outline: str = NATURAL
    nose: str | None = None

    def as_dict(self) -> dict:
        """The fields as a plain dict (JSON-serialisable)."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)


def _choose(rng: np.random.Generator, weights: dict[str, float]) -> str:
    """A name drawn by weight: exactly ``rng.choice(len(names), p=p)`` (one uniform
    draw against the cumulative weights, as numpy does), without its checks' cost."""
    names = sorted(weights)
    cdf = np.cumsum([weights[n] for n in names], dtype=np.float64)
    cdf /= cdf[-1]
    return names[int(cdf.searchsorted(rng.random(), side="right"))]


def _pattern(rng: np.random.Generator, texture: str) -> dict:
    if is_texture_file(texture):
        return sample_file_pattern(rng)
    if texture == "stripes":
        return {"period": float(rng.uniform(5, 11)), "duty": float(rng.uniform(0.3, 0.6)), "angle": float(rng.choice([0.0, 90.0, 45.0, -45.0, 0.0])), "thread": 0.9}
    if texture == "dots":
        return {"period": float(rng.uniform(6, 10)), "radius": float(rng.uniform(1.2, 2.4)), "thread": 0.9}
    if texture == "floral":
        return {"period": float(rng.uniform(11, 16)), "size": float(rng.uniform(3.2, 5.0)), "thread": 0.9}
    if texture == "camo":
        return {"scale": float(rng.uniform(3.5, 6.0)), "thread": 0.9}
    if texture == "plaid":
        return {"period": float(rng.uniform(10, 16)), "thread": 0.9}
    if texture == "weave":
        return {"thread": float(rng.uniform(0.7, 1.2)), "angle": 0.0}
    if texture == "nonwoven":
        return {"grain": float(rng.uniform(0.025, 0.045))}
    return {}


def _accents(rng: np.random.Generator, mtype: MaskType, body_hex: str, n: int) -> tuple[str, ...]:
    pool = [color_hex(c) for c in mtype.accents or tuple(COLORS)]
    pool = [c for c in pool if c != body_hex] or [color_hex("white")]
    picks = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
    return tuple(pool[int(i)] for i in picks)


def sample_style(rng: np.random.Generator, spec: StyleSpec = StyleSpec()) -> StyleParams:
    """Draw one mask look from ``spec`` with ``rng``.

    The number of draws does not depend on the outcome of earlier ones in a way that
    matters for reproducibility: the same generator state always gives the same
    result.
    """
    type_weights = {n: MASK_TYPES.get(n).weight for n in (spec.types or MASK_TYPES.names())}
    mtype: MaskType = MASK_TYPES.get(_choose(rng, type_weights) if len(type_weights) > 1 else next(iter(type_weights)))
    if spec.colors:
        color = spec.colors[int(rng.integers(len(spec.colors)))]
    else:
        color = _choose(rng, mtype.colors)
    body_hex = color_hex(color)
    if spec.textures:
        texture = spec.textures[int(rng.integers(len(spec.textures)))]
    else:
        texture = _choose(rng, mtype.textures)
    cov_names = spec.coverages or tuple(COVERAGES.names())
    coverage = _choose(rng, {n: COVERAGES.get(n).weight for n in cov_names}) if len(cov_names) > 1 else cov_names[0]
    accents = _accents(rng, mtype, body_hex, 3)
    shape = {
        "top": float(rng.uniform(-1.2, 1.2)),
        "side": float(rng.uniform(-2.0, 2.0)),
        "hang": float(rng.uniform(-1.5, 1.5)),
        "width": float(rng.uniform(0.97, 1.03)),
        "loops": bool(rng.random() < 0.9),
    }
    extras: dict = {}
    if mtype.name == "n95":
        extras["valve"] = bool(rng.random() < 0.35)
    if mtype.name == "cloth":
        extras["seam"] = bool(rng.random() < 0.8)
    pattern = _pattern(rng, texture)
    texture_seed = int(rng.integers(0, 2**31 - 1))
    # The NIST axes draw last and only when asked, so every other style samples
    # exactly as before they existed.
    outline = spec.shapes[int(rng.integers(len(spec.shapes)))] if spec.shapes else NATURAL
    nose = None
    if spec.noses and coverage == "proper":
        nose = spec.noses[int(rng.integers(len(spec.noses)))]
    return StyleParams(
        mask_type=mtype.name,
        color=color,
        color_hex=body_hex,
        texture=texture,
        coverage=coverage,
        accents=accents,
        pattern=pattern,
        shape=shape,
        extras=extras,
        texture_seed=texture_seed,
        outline=outline,
        nose=nose,
    )


def top_edge(style: StyleParams) -> tuple[float, float]:
    """Canonical ``v`` of the mask's top edge (centre, top corners) before the per-image
    jitter: the coverage preset's, or the nose coverage's when one was chosen."""
    if style.nose is not None:
        nose = NOSE_COVERAGES.get(style.nose)
        return nose.top_centre, nose.top_side
    cov = COVERAGES.get(style.coverage)
    return cov.top_centre, cov.top_side


# --- grids of styles --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridCell:
    """One cell of a style grid: a fully specified look (type, colour, coverage, shape,
    nose coverage); what is still random per image is the small fit jitter and the
    texture's noise.

    Attributes
    ----------
    name : str
        Unique within the grid, usable in file names (``wide-high-light_blue``).
    spec : StyleSpec
    params : dict
        The grid's axes and their values for this cell (written to the manifest).
    """

    name: str
    spec: StyleSpec
    params: dict


def _nist_grid() -> tuple[GridCell, ...]:
    """NIST FRVT face-mask study's axes (NISTIR 8311 and 8331): shape (wide, round) x
    nose coverage (high, medium, low) x colour (light blue, black, red, white), every
    combination, worn properly. Drawn as mfrkit's wide surgical mask and its round
    flat-fold (KN95) mask in those colours: NIST's own drawings are not public."""
    cells = []
    for shape, mask_type in (("wide", "surgical"), ("round", "kn95")):
        for nose in ("high", "medium", "low"):
            for color in ("light_blue", "black", "red", "white"):
                spec = StyleSpec(types=(mask_type,), colors=(color,), textures=("nonwoven",), coverages=("proper",), shapes=(shape,), noses=(nose,))
                cells.append(GridCell(f"{shape}-{nose}-{color}", spec, {"grid": "nist", "mask_shape": shape, "nose_coverage": nose, "mask_color": color}))
    return tuple(cells)


#: Style grids by name (``--mask grid:<name>``: one output per cell and image).
GRIDS: Registry = Registry("mask grid")
GRIDS.add("nist", _nist_grid())


def grid_cells(name: str) -> tuple[GridCell, ...]:
    """The cells of grid ``name`` (see :data:`GRIDS`)."""
    return GRIDS.get(name)
