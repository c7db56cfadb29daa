"""Charts of the Live lab, from the library's rows (resnet_core.lab.forward / gradients)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from app.charts import PALETTE

_STAT_KINDS = {"conv": "conv output", "norm": "norm output", "act": "activation output", "add": "F(x) + x"}


def stats_frame(stats) -> pd.DataFrame:
    """One row per layer call that ran (LayerStats), with its label and kind."""
    return pd.DataFrame([{"depth": s.index, "layer": s.label or s.name, "kind": _STAT_KINDS[s.op], "mean": s.mean,
                          "std": s.std, "fraction of zeros": s.zeros}
                         for s in stats if s.ran and s.std is not None and s.op in _STAT_KINDS],
                        columns=["depth", "layer", "kind", "mean", "std", "fraction of zeros"])


def activation_charts(df: pd.DataFrame) -> tuple[alt.Chart, alt.Chart]:
    """The spread (std, log) and the fraction of exact zeros of the activations through the depth."""
    base = alt.Chart(df).encode(
        x=alt.X("depth:Q", title="layer (plan order)"),
        color=alt.Color("kind:N", legend=alt.Legend(orient="right", title=None)),
        tooltip=["layer", "kind", alt.Tooltip("mean:Q", format=".3g"), alt.Tooltip("std:Q", format=".3g"),
                 alt.Tooltip("fraction of zeros:Q", format=".0%")])
    spread = base.mark_line(point=True, strokeWidth=1.5).encode(
        y=alt.Y("std:Q", scale=alt.Scale(type="log"), title="std (log)")
    ).properties(height=280, title="spread of the activations, by kind of layer")
    zeros = base.mark_line(point=True, strokeWidth=1.5).encode(
        y=alt.Y("fraction of zeros:Q", axis=alt.Axis(format="%"), title="fraction of zeros")
    ).properties(height=240, title="exact zeros (ReLU outputs that are off)")
    return spread, zeros


def block_ratio_chart(rows: list[dict], current: str | None = None) -> alt.LayerChart:
    """‖F(x)‖/‖x‖ of every residual block through the depth, from 0 (a block that is the identity) up, the
    chosen block ringed; the dashed line at 1: the branch is as large as the signal it adds to."""
    df = pd.DataFrame([{**r, "chosen": r["block"] == current} for r in rows
                       if r["ratio"] is not None and r["ratio"] < float("inf")],
                      columns=["position", "block", "stage", "shortcut", "ratio", "chosen"])
    order = list(df["block"])
    x = alt.X("block:N", sort=order, title="residual block (input → output)",
              axis=alt.Axis(labelAngle=-45, labelOverlap=True))
    tooltip = ["block", "shortcut", alt.Tooltip("ratio:Q", format=".3g", title="‖F(x)‖/‖x‖")]
    top = max(1.2, float(df["ratio"].max()) * 1.1) if len(df) else 1.2
    y = alt.Y("ratio:Q", title="‖F(x)‖ / ‖x‖", scale=alt.Scale(domain=[0, top], nice=False))
    line = alt.Chart(df).mark_line(color=PALETTE[0], strokeWidth=2.5).encode(x=x, y=y)
    points = alt.Chart(df).mark_point(filled=True, size=90).encode(
        x=x, y=y, color=alt.Color("stage:N", title="stage", legend=alt.Legend(orient="right")),
        shape=alt.Shape("shortcut:N", title="shortcut", legend=alt.Legend(orient="right")), tooltip=tooltip)
    ring = alt.Chart(df[df["chosen"]]).mark_point(size=400, color="black", strokeWidth=2).encode(x=x, y=y)
    one = alt.Chart(pd.DataFrame({"y": [1.0]})).mark_rule(strokeDash=[4, 4], color="#888").encode(y="y:Q")
    return alt.layer(line, points, ring, one).properties(height=300, title="the residual branch's share, block by block")


def gradient_charts(chart_rows: list[dict], labels: list[str], vanished_below: float,
                    exploded_above: float) -> list[tuple[str, alt.LayerChart]]:
    """One log-scale chart per quantity (weight gradients, block-input gradients), every variant a line;
    the vanished and exploded thresholds dashed; exact zeros at the floor and NaN/Inf at the ceiling."""
    df = pd.DataFrame(chart_rows)
    if df.empty:
        return []
    colors = alt.Scale(domain=labels, range=[PALETTE[0], PALETTE[1]][:len(labels)])
    shapes = alt.Scale(domain=["ok", "vanished", "exploded", "unused"],
                       range=["circle", "triangle-down", "triangle-up", "cross"])
    thresholds = pd.DataFrame({"y": [vanished_below, exploded_above],
                               "label": [f"vanished below {vanished_below:g}", f"exploded above {exploded_above:g}"]})
    out = []
    for quantity in df["quantity"].unique():
        part = df[df["quantity"] == quantity]
        lines = alt.Chart(part).mark_line(point=False, strokeWidth=2.5).encode(
            x=alt.X("depth:Q", title="depth (layer or block, input → output)"),
            y=alt.Y("plot_norm:Q", scale=alt.Scale(type="log"), title=quantity + " (log)"),
            color=alt.Color("variant:N", scale=colors, legend=alt.Legend(orient="bottom", title=None)))
        points = alt.Chart(part).mark_point(size=60, filled=True).encode(
            x="depth:Q", y="plot_norm:Q", color=alt.Color("variant:N", scale=colors),
            shape=alt.Shape("status:N", scale=shapes, legend=None),
            tooltip=["variant", "name", "depth", alt.Tooltip("norm:Q", format=".3g"), "status"])
        rules = alt.Chart(thresholds).mark_rule(strokeDash=[4, 4], color="#888").encode(y="y:Q")
        text = alt.Chart(thresholds).mark_text(align="left", dx=4, dy=-6, color="#666").encode(
            y="y:Q", x=alt.value(4), text="label:N")
        out.append((quantity, alt.layer(lines, points, rules, text).properties(height=340, title=quantity)))
    return out
