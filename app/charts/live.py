"""Charts of the Live lab, from the library's rows (resnet_core.lab.forward / gradients): the forward views' as
server-drawn SVG (app/charts/svg.py), the gradient flow's in Altair."""

from __future__ import annotations

import altair as alt
import pandas as pd

from app.charts import PALETTE, configure, mode_scale, px, svg

_STAT_KINDS = {"conv": "conv output", "norm": "norm output", "act": "activation output", "add": "F(x) + x"}


def stats_frame(stats) -> pd.DataFrame:
    """One row per layer call that ran (LayerStats), with its label and kind."""
    return pd.DataFrame([{"depth": s.index, "layer": s.label or s.name, "kind": _STAT_KINDS[s.op], "mean": s.mean,
                          "std": s.std, "fraction of zeros": s.zeros}
                         for s in stats if s.ran and s.std is not None and s.op in _STAT_KINDS],
                        columns=["depth", "layer", "kind", "mean", "std", "fraction of zeros"])


_KIND_STYLE = {"conv output": (PALETTE[0], "circle"), "norm output": (PALETTE[2], "square"),
               "activation output": (PALETTE[3], "triangle"), "F(x) + x": (PALETTE[1], "diamond")}


def activation_charts(df: pd.DataFrame) -> tuple[svg.Chart, svg.Chart]:
    """The spread (std, log) and the fraction of exact zeros of the activations through the depth, one line
    per kind of layer (drawn on the server: app/charts/svg.py). A std of exactly 0 (a dead layer) has no
    place on a log scale: it is named in the chart's title instead."""
    def series(field: str) -> list[svg.Series]:
        out = []
        for kind, (color, marker) in _KIND_STYLE.items():
            part = df[df["kind"] == kind]
            if len(part):
                out.append(svg.Series(kind, [svg.Point(
                    float(r.depth), float(r[field]),
                    f"{r.layer} · {kind} · mean {r['mean']:.3g} · std {r['std']:.3g} · zeros {r['fraction of zeros']:.0%}")
                    for _, r in part.iterrows()], color, marker=marker))
        return out
    dead = df[df["std"] <= 0]["layer"].tolist()
    title = "spread of the activations, by kind of layer"
    if dead:
        title += f" (std exactly 0, not drawn: {', '.join(dead[:3])}{'…' if len(dead) > 3 else ''})"
    spread = svg.Chart(title, "layer (plan order)", "std (log)", series("std"), log_y=True, height=280)
    zeros = svg.Chart("exact zeros (ReLU outputs that are off)", "layer (plan order)", "fraction of zeros",
                      series("fraction of zeros"), y_domain=(0.0, 1.0), y_percent=True, height=240)
    return spread, zeros


_SHORTCUT_MARKER = {"identity": "circle", "projection": "square", "pad": "triangle", "none": "diamond"}


def block_ratio_chart(rows: list[dict], current: str | None = None) -> svg.Chart:
    """‖F(x)‖/‖x‖ of every residual block through the depth, from 0 (a block that is the identity) up, the
    chosen block ringed; the dashed line at 1: the branch is as large as the signal it adds to. Points
    coloured by stage, shaped by shortcut."""
    kept = [r for r in rows if r["ratio"] is not None and r["ratio"] < float("inf")]
    stages = sorted({r["stage"] for r in kept if r["stage"] is not None})
    stage_color = {stage: PALETTE[(i + 1) % len(PALETTE)] for i, stage in enumerate(stages)}
    points = [svg.Point(float(i), float(r["ratio"]),
                        f"{r['block']} · stage {r['stage']} · shortcut {r['shortcut']} · ‖F(x)‖/‖x‖ {r['ratio']:.3g}",
                        color=stage_color.get(r["stage"], PALETTE[0]), shape=_SHORTCUT_MARKER.get(r["shortcut"], "circle"))
              for i, r in enumerate(kept)]
    top = max(1.2, max((r["ratio"] for r in kept), default=0.0) * 1.1)
    legend = [("§stage", "", "none", False), *[(f"{stage}", stage_color[stage], "circle", False) for stage in stages],
              ("§shortcut", "", "none", False),
              *[(sc, "#555", _SHORTCUT_MARKER.get(sc, "circle"), False)
                for sc in dict.fromkeys(r["shortcut"] for r in kept)]]
    rings = [(float(i), float(r["ratio"])) for i, r in enumerate(kept) if r["block"] == current]
    return svg.Chart("the residual branch's share, block by block", "residual block (input → output)",
                     "‖F(x)‖ / ‖x‖", [svg.Series("‖F(x)‖ / ‖x‖", points, PALETTE[0])], y_domain=(0.0, top),
                     x_labels=[r["block"] for r in kept], rules=[svg.Rule(1.0, "1: the branch as large as x")],
                     rings=rings, legend=legend, height=300)


def gradient_charts(chart_rows: list[dict], labels: list[str], vanished_below: float,
                    exploded_above: float, scale: float | None = None) -> list[tuple[str, alt.LayerChart]]:
    """One log-scale chart per quantity (weight gradients, block-input gradients), every variant a line;
    the vanished and exploded thresholds dashed; exact zeros at the floor and NaN/Inf at the ceiling."""
    s = mode_scale(scale)
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
            color=alt.Color("variant:N", scale=colors, legend=alt.Legend(orient="bottom", title=None, columns=1)))
        points = alt.Chart(part).mark_point(size=px(60, s * s), filled=True).encode(
            x="depth:Q", y="plot_norm:Q", color=alt.Color("variant:N", scale=colors),
            shape=alt.Shape("status:N", scale=shapes, legend=None),
            tooltip=["variant", "name", "depth", alt.Tooltip("norm:Q", format=".3g"), "status"])
        rules = alt.Chart(thresholds).mark_rule(strokeDash=[4, 4], color="#888").encode(y="y:Q")
        text = alt.Chart(thresholds).mark_text(align="left", dx=4, dy=-6 * s, color="#666", fontSize=px(12, s)).encode(
            y="y:Q", x=alt.value(4), text="label:N")
        out.append((quantity, configure(alt.layer(lines, points, rules, text).properties(height=px(340, s), title=quantity),
                                        s)))
    return out
