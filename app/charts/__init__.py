"""Every chart of the app, one module per area: structure (trace, compare, learn), live (the Live lab),
training (the Training lab), experiments (Why it works); Altair, except the Live lab's forward views,
drawn on the server as SVG (svg.py). Pages only place them.

Every Altair chart takes `scale`: its text, marks and heights are multiplied by it. Left out (None), it is the
session's mode: 1 normally, PROJECTOR_SCALE in projector mode (app/projector.py), where each chart has the
page's whole width and its text shows at 17 px or more."""

from __future__ import annotations

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
