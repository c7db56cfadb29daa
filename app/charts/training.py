"""Charts of the Training lab: each net's training loss and accuracy per step, faint per batch, bold smoothed."""

from __future__ import annotations

import altair as alt
import pandas as pd

from app.charts import DASHES, PALETTE, configure, mode_scale, px
from resnet_core.i18n import N_, _

# the measures' names as a tooltip shows them
MEASURES = {"loss": N_("loss"), "accuracy": N_("accuracy")}


def smoothing_window(df: pd.DataFrame) -> int:
    """Steps in the bold curve's running mean: a twentieth of the steps so far, 1 to 25."""
    return max(1, min(25, int(df["step"].max()) // 20)) if not df.empty else 1


def smoothed(df: pd.DataFrame, column: str, window: int) -> pd.DataFrame:
    out = df.sort_values(["net", "step"]).copy()
    out[column + " (smoothed)"] = out.groupby("net")[column].transform(
        lambda s: s.rolling(window, min_periods=1).mean())
    return out


def curve(df: pd.DataFrame, column: str, order: list[str], title: str, scale: float | None = None) -> alt.LayerChart:
    """One measure ("loss" on a log axis, or "accuracy") for every net. The legend is drawn from the bold
    curves, so its swatches are at full opacity; under the plot in two columns, every name whole."""
    s = mode_scale(scale)
    window = smoothing_window(df)
    d = smoothed(df, column, window)
    palette = alt.Scale(domain=order, range=(PALETTE * 2)[:len(order)])
    fmt = ".3g" if column == "loss" else ".0%"
    y_scale = alt.Scale(type="log") if column == "loss" else alt.Scale(domain=[0, 1])
    # one legend for both layers, its swatches at full opacity (not the faint layer's 18 %)
    legend = alt.Legend(orient="bottom", title=None, symbolOpacity=1, symbolStrokeWidth=4, labelFontSize=px(14, s),
                        symbolSize=px(300, s * s), columns=2, labelLimit=0)
    raw = alt.Chart(d).mark_line(opacity=0.18, strokeWidth=1).encode(
        x=alt.X("step:Q", title=_("step")), y=alt.Y(f"{column}:Q", scale=y_scale, title=title, axis=alt.Axis(format=fmt)),
        color=alt.Color("net:N", scale=palette, sort=order, legend=legend), detail="net:N")
    smooth = alt.Chart(d).mark_line(strokeWidth=3).encode(
        x=alt.X("step:Q", title=_("step")), y=alt.Y(f"{column} (smoothed):Q", scale=y_scale, title=title),
        color=alt.Color("net:N", scale=palette, sort=order, legend=legend),
        strokeDash=alt.StrokeDash("net:N", scale=alt.Scale(domain=order, range=(DASHES * 2)[:len(order)]), sort=order,
                                  legend=legend),  # a dash pattern per net: colour is not the only cue
        tooltip=[alt.Tooltip("net:N", title=_("net")), alt.Tooltip("step:Q", title=_("step")),
                 alt.Tooltip(f"{column} (smoothed):Q", format=fmt, title=_(MEASURES.get(column, column)))])
    return configure(alt.layer(raw, smooth).properties(height=px(320, s), title=title), s)
