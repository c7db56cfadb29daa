"""Every chart of the app, one module per area: structure (trace, compare, learn), live (the Live lab),
training (the Training lab), experiments (Why it works); Altair, except the Live lab's forward views,
drawn on the server as SVG (svg.py). Pages only place them.

Every Altair chart takes `scale`: its text, marks and heights are multiplied by it. Left out (None), it is the
session's mode: 1 normally, PROJECTOR_SCALE in projector mode (app/projector.py), where each chart has the
page's whole width and its text shows at 17 px or more."""

from __future__ import annotations

import threading

from resnet_core import palette as _palette

# Okabe-Ito, told apart under protanopia, deuteranopia and tritanopia (resnet_core/palette.py, tests/test_palette.py);
# every series also has its own dash pattern (DASHES) or marker, so colour is never the only cue
PALETTE = list(_palette.SERIES)
DASHES = [list(d) for d in _palette.DASHES]
PROJECTOR_SCALE = 1.35
LABEL, TITLE, HEADING = 13, 14, 15  # font sizes (px) at scale 1: axis and legend labels, axis titles, chart title


def mode_scale(value: float | None = None) -> float:
    """`value`, or the session's: PROJECTOR_SCALE in projector mode, else 1."""
    if value is not None:
        return float(value)
    from app import projector
    return PROJECTOR_SCALE if projector.on() else 1.0


def px(size: float, s: float) -> int:
    return round(size * s)


def configure(chart, s: float, autosize: str | None = "fit-x"):
    """The chart's text at `s` times the house sizes: axes, legends, facet headers, titles.

    `autosize`: "fit-x" (a single or layered chart) fits the width to its column and ADDS the title, the axes and
    the legend to the plot's height (Streamlit's default, "fit", squeezes them all into the height: the plot was
    flattened and the title cut off above the chart); "pad" (facets, concatenations) keeps every size as given;
    None leaves it to Streamlit (a small chart in a narrow column: shrunk whole rather than flattened)."""
    import altair as alt
    if autosize is not None:
        chart = chart.properties(autosize=alt.AutoSizeParams(type=autosize, contains="padding"))
    return (chart.configure_axis(labelFontSize=px(LABEL, s), titleFontSize=px(TITLE, s), labelLimit=px(180, s))
            .configure_legend(labelFontSize=px(LABEL, s), titleFontSize=px(LABEL, s), symbolSize=px(120, s * s),
                              labelLimit=0)
            .configure_header(labelFontSize=px(TITLE, s), titleFontSize=px(TITLE, s))
            .configure_title(fontSize=px(HEADING, s)))


# ---- a chart drawn many times: its Vega-Lite made once ----
#
# Building an Altair chart and turning it into Vega-Lite costs 30–40 ms of Python per chart (schema objects,
# validation, a deep copy of the spec): the Shape trace's four charts were most of the page's 0.17 CPU s, and a
# class of 40 following the teacher to that page redraws it 40 times (benchmarks/bench_class.py). `show` keeps
# the finished spec per (chart function, its arguments, the session's scale and language): the next session
# with the same network is sent the same spec without building anything.

def _spec_key(value):
    """A hashable stand-in for a chart function's argument (lists of row dicts, as the library gives them)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _spec_key(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_spec_key(v) for v in value)
    return value


_SPECS: dict = {}
_SPECS_MAX = 256
_SPECS_LOCK = threading.Lock()  # the sessions' script threads share it
_BUILDING: dict = {}  # key → the lock of the one session building that spec


def vega_spec(build, *args, **kwargs) -> dict:
    """The Vega-Lite dict of `build(*args, **kwargs)` at the session's scale and language, made once."""
    from resnet_core import i18n
    kwargs["scale"] = mode_scale(kwargs.get("scale"))
    key = (build.__module__, build.__qualname__, _spec_key(args), _spec_key(kwargs), i18n.language())
    spec = _SPECS.get(key)
    if spec is not None:
        return spec
    with _SPECS_LOCK:  # one session builds it, the others wait for it (a class asks for it all at once)
        building = _BUILDING.setdefault(key, threading.Lock())
    with building:
        spec = _SPECS.get(key)
        if spec is None:
            spec = build(*args, **kwargs).to_dict()
            with _SPECS_LOCK:
                if len(_SPECS) >= _SPECS_MAX:  # the oldest goes first
                    _SPECS.pop(next(iter(_SPECS)))
                _SPECS[key] = spec
                _BUILDING.pop(key, None)
    return spec


def show(where, build, *args, **kwargs) -> None:
    """Draw `build(*args, **kwargs)` in `where` (st or a column) from its kept spec, the width of its column."""
    where.vega_lite_chart(spec=vega_spec(build, *args, **kwargs), width="stretch")
