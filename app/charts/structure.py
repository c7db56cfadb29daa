"""Charts of a network's structure, from the library's rows (resnet_core.structure.report)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from app.charts import PALETTE, configure, mode_scale, px
from resnet_core.i18n import N_, _

MEASURES = {"parameters": N_("parameters"), "mult-adds": N_("mult-adds")}  # stage_bars' measures, as shown


def _tooltip() -> list:
    return [alt.Tooltip("layer:N", title=_("layer")), alt.Tooltip("type:N", title=_("type")),
            alt.Tooltip("shape:N", title=_("shape")), alt.Tooltip("part:N", title=_("part"))]


def staircase(rows: list[dict], field: str = "spatial", title: str | None = None,
              scale: float | None = None) -> alt.LayerChart:
    """Spatial size ("spatial") or channels ("channels") through the depth on a log-2 axis, labelled where it
    changes: the 224 → 112 → 56 → 28 → 14 → 7 → 1 staircase."""
    s = mode_scale(scale)
    df = pd.DataFrame(rows)
    color = PALETTE[0] if field == "spatial" else PALETTE[1]
    label = _("spatial size (H)") if field == "spatial" else _("channels")
    top = int(df[field].max())
    scale = alt.Scale(type="log", base=2, domain=[1, max(2, top * 2)])
    tooltip = _tooltip()
    base = alt.Chart(df).encode(x=depth_axis(df))
    line = base.mark_line(interpolate="step-after", color=color, strokeWidth=3, point=len(df) == 1).encode(
        y=alt.Y(f"{field}:Q", title=label, scale=scale, axis=alt.Axis(format="d", values=_powers_of_two(top))),
        tooltip=tooltip)
    hover = base.mark_point(color=color, filled=True, size=60, opacity=0.01).encode(y=f"{field}:Q", tooltip=tooltip)
    changes = df[df[field] != df[field].shift()]
    text = alt.Chart(changes).mark_text(dy=-10 * s, dx=3, align="left", fontSize=px(14, s), fontWeight="bold",
                                        color=color).encode(x="depth:Q", y=f"{field}:Q", text=f"{field}:Q")
    return configure(alt.layer(line, hover, text).properties(height=px(230, s), title=title or label), s)


def depth_axis(df: pd.DataFrame) -> alt.X:
    """Depth as the paper counts it, in whole layers, from 0 to at least 1 (no NaN or fractional ticks, even
    when a broken network stops at its first layer)."""
    last = int(df["depth"].max()) if len(df) else 0
    return alt.X("depth:Q", title=_("weight layers (depth, as the paper counts)"),
                 scale=alt.Scale(domain=[0, max(1, last)], nice=False),
                 axis=alt.Axis(format="d", tickMinStep=1))


def _powers_of_two(top: int) -> list[int]:
    values, v = [], 1
    while v <= max(2, top * 2):
        values.append(v)
        v *= 4 if top > 64 else 2
    return values


def stage_bars(rows: list[dict], measure: str, scale: float | None = None) -> alt.Chart:
    """One measure ("parameters" or "mult-adds") per stem / stage / head."""
    s = mode_scale(scale)
    df = pd.DataFrame([r for r in rows if r["measure"] == measure])
    order = list(dict.fromkeys(df["part"]))
    shown = _(MEASURES.get(measure, measure))
    return configure(alt.Chart(df).mark_bar(color=PALETTE[0] if measure == "parameters" else PALETTE[3]).encode(
        x=alt.X("part:N", sort=order, title=None, axis=alt.Axis(labelAngle=0, labelLimit=120)),
        y=alt.Y("value:Q", title=shown, axis=alt.Axis(format="~s", tickMinStep=1),
                scale=alt.Scale(domain=[0, max(1, int(df["value"].max()) if len(df) else 1)])),
        tooltip=[alt.Tooltip("part:N", title=_("part")), alt.Tooltip("value:Q", format=",", title=shown)],
    ).properties(height=px(230, s), title=_("{measure} per stage", measure=shown)), s)


def compare_staircase(rows_a: list[dict], rows_b: list[dict], label_a: str, label_b: str,
                      scale: float | None = None) -> alt.Chart:
    s = mode_scale(scale)
    df = pd.concat([pd.DataFrame(rows_a).assign(network=label_a), pd.DataFrame(rows_b).assign(network=label_b)])
    return configure(alt.Chart(df).mark_line(interpolate="step-after", strokeWidth=2.5).encode(
        x=depth_axis(df),
        y=alt.Y("spatial:Q", title=_("spatial size (H)"), scale=alt.Scale(type="log", base=2),
                axis=alt.Axis(format="d")),
        color=alt.Color("network:N", scale=alt.Scale(range=PALETTE[:2]),
                        legend=alt.Legend(orient="bottom", title=None, direction="vertical")),
        strokeDash=alt.StrokeDash("network:N"),
        tooltip=[alt.Tooltip("network:N", title=_("network")), alt.Tooltip("layer:N", title=_("layer")),
                 alt.Tooltip("shape:N", title=_("shape"))],
    ).properties(height=px(220, s)), s)
