"""The palette stays readable under colour-vision deficiency (issue 24): every set of colours a reader must
tell apart keeps a minimum colour difference under Machado et al.'s (2009) simulation of protanopia,
deuteranopia and tritanopia, and each chart series has a second cue besides colour.

Reference: colorspacious (Nathaniel Smith's implementation of the Machado 2009 matrices and of CAM02-UCS).
"""

from __future__ import annotations

import itertools

import pytest

from resnet_core import palette

colorspacious = pytest.importorskip("colorspacious")

VISIONS = {"normal": None, "protanopia": "protanomaly", "deuteranopia": "deuteranomaly",
           "tritanopia": "tritanomaly"}


def _rgb(hex_colour: str) -> list[float]:
    h = hex_colour.lstrip("#")
    return [int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)]


def _seen(hex_colour: str, vision: str | None) -> list[float]:
    rgb = _rgb(hex_colour)
    if vision is None:
        return rgb
    space = {"name": "sRGB1+CVD", "cvd_type": vision, "severity": 100}
    return [min(1.0, max(0.0, v)) for v in colorspacious.cspace_convert(rgb, space, "sRGB1")]


@pytest.mark.parametrize("vision", list(VISIONS))
@pytest.mark.parametrize("name", list(palette.MUST_DIFFER))
def test_every_pair_that_must_differ_stays_apart(name, vision):
    colours = palette.MUST_DIFFER[name]
    seen = {c: _seen(c, VISIONS[vision]) for c in colours}
    worst = min(((colorspacious.deltaE(seen[a], seen[b], input_space="sRGB1"), a, b)
                 for a, b in itertools.combinations(colours, 2)))
    assert worst[0] >= palette.MIN_DELTA_E, f"{name} under {vision}: {worst[1]} vs {worst[2]} ΔE {worst[0]:.1f}"


def test_the_old_red_green_pair_would_fail_the_check():
    """The check can fail: the tab10 red/green pair the charts used before is too close for a deuteranope."""
    red, green = "#d62728", "#2ca02c"
    d = colorspacious.deltaE(_seen(red, "deuteranomaly"), _seen(green, "deuteranomaly"), input_space="sRGB1")
    assert d < palette.MIN_DELTA_E


def test_every_series_has_a_second_cue_besides_colour():
    n = len(palette.SERIES)
    assert len({tuple(d) for d in palette.DASHES[:n]}) == n and len(set(palette.MARKERS[:n])) == n
