"""Charts of the Live lab, from the library's rows (resnet_core.lab.forward / gradients): the forward views' as
server-drawn SVG (app/charts/svg.py), the gradient flow's in Altair."""

from __future__ import annotations

import altair as alt
import pandas as pd

from app.charts import PALETTE, configure, mode_scale, px, svg
from resnet_core.i18n import N_, _

# the kinds of layer (keys of the data; shown as _(kind))
_STAT_KINDS = {"conv": N_("conv output"), "norm": N_("norm output"), "act": N_("activation output"), "add": "F(x) + x"}
SHORTCUT_NAME = {"identity": N_("identity"), "projection": N_("projection"), "pad": N_("pad"), "none": N_("none")}
_ZEROS = N_("fraction of zeros")  # a column of the frame (its key), shown as _(...)
_STATS_COLUMNS = {"depth": N_("depth"), "layer": N_("layer"), "kind": N_("kind"), "mean": N_("mean"), "std": "std",
                  _ZEROS: _ZEROS}


def stats_frame(stats) -> pd.DataFrame:
    """One row per layer call that ran (LayerStats), with its label and kind."""
    return pd.DataFrame([{"depth": s.index, "layer": s.label or s.name, "kind": _STAT_KINDS[s.op], "mean": s.mean,
                          "std": s.std, _ZEROS: s.zeros}
                         for s in stats if s.ran and s.std is not None and s.op in _STAT_KINDS],
                        columns=["depth", "layer", "kind", "mean", "std", _ZEROS])


def shown_stats(df: pd.DataFrame) -> pd.DataFrame:
    """`stats_frame` as a table shows it: its column names and kinds in this run's language."""
    out = df.assign(kind=df["kind"].map(_)) if len(df) else df
    return out.rename(columns={c: _(t) for c, t in _STATS_COLUMNS.items()})


_KIND_STYLE = {_STAT_KINDS["conv"]: (PALETTE[0], "circle"), _STAT_KINDS["norm"]: (PALETTE[2], "square"),
               _STAT_KINDS["act"]: (PALETTE[3], "triangle"), _STAT_KINDS["add"]: (PALETTE[1], "diamond")}


def activation_charts(df: pd.DataFrame) -> tuple[svg.Chart, svg.Chart]:
    """The spread (std, log) and the fraction of exact zeros of the activations through the depth, one line
    per kind of layer (drawn on the server: app/charts/svg.py). A std of exactly 0 (a dead layer) has no
    place on a log scale: it is named in the chart's title instead."""
    def series(field: str) -> list[svg.Series]:
        out = []
        for kind, (color, marker) in _KIND_STYLE.items():
            part = df[df["kind"] == kind]
            if len(part):
                out.append(svg.Series(_(kind), [svg.Point(
                    float(r.depth), float(r[field]),
                    _("{layer} · {kind} · mean {mean} · std {std} · zeros {zeros}", layer=r.layer, kind=_(kind),
                      mean=f"{r['mean']:.3g}", std=f"{r['std']:.3g}", zeros=f"{r[_ZEROS]:.0%}"))
                    for _i, r in part.iterrows()], color, marker=marker))
        return out
    dead = df[df["std"] <= 0]["layer"].tolist()
    title = _("spread of the activations, by kind of layer")
    if dead:
        title += _(" (std exactly 0, not drawn: {layers})",
                   layers=", ".join(dead[:3]) + ("…" if len(dead) > 3 else ""))
    spread = svg.Chart(title, _("layer (plan order)"), _("std (log)"), series("std"), log_y=True, height=280)
    zeros = svg.Chart(_("exact zeros (ReLU outputs that are off)"), _("layer (plan order)"), _("fraction of zeros"),
                      series(_ZEROS), y_domain=(0.0, 1.0), y_percent=True, height=240)
    return spread, zeros


_STATUS_TEXT = {"ok": N_("ok"), "vanished": N_("vanished"), "exploded": N_("exploded"), "unused": N_("unused")}
_SHORTCUT_MARKER = {"identity": "circle", "projection": "square", "pad": "triangle", "none": "diamond"}


def block_ratio_chart(rows: list[dict], current: str | None = None) -> svg.Chart:
    """‖F(x)‖/‖x‖ of every residual block through the depth, from 0 (a block that is the identity) up, the
    chosen block ringed; the dashed line at 1: the branch is as large as the signal it adds to. Points
    coloured by stage, shaped by shortcut."""
    kept = [r for r in rows if r["ratio"] is not None and r["ratio"] < float("inf")]
    stages = sorted({r["stage"] for r in kept if r["stage"] is not None})
    stage_color = {stage: PALETTE[(i + 1) % len(PALETTE)] for i, stage in enumerate(stages)}
    points = [svg.Point(float(i), float(r["ratio"]),
                        _("{block} · stage {stage} · shortcut {shortcut} · ‖F(x)‖/‖x‖ {ratio}", block=r["block"],
                          stage=r["stage"], shortcut=_(SHORTCUT_NAME.get(r["shortcut"], r["shortcut"])),
                          ratio=f"{r['ratio']:.3g}"),
                        color=stage_color.get(r["stage"], PALETTE[0]), shape=_SHORTCUT_MARKER.get(r["shortcut"], "circle"))
              for i, r in enumerate(kept)]
    top = max(1.2, max((r["ratio"] for r in kept), default=0.0) * 1.1)
    legend = [("§" + _("stage"), "", "none", False),
              *[(f"{stage}", stage_color[stage], "circle", False) for stage in stages],
              ("§" + _("shortcut"), "", "none", False),
              *[(_(SHORTCUT_NAME.get(sc, sc)), "#555", _SHORTCUT_MARKER.get(sc, "circle"), False)
                for sc in dict.fromkeys(r["shortcut"] for r in kept)]]
    rings = [(float(i), float(r["ratio"])) for i, r in enumerate(kept) if r["block"] == current]
    return svg.Chart(_("the residual branch's share, block by block"), _("residual block (input → output)"),
                     "‖F(x)‖ / ‖x‖", [svg.Series("‖F(x)‖ / ‖x‖", points, PALETTE[0])], y_domain=(0.0, top),
                     x_labels=[r["block"] for r in kept], rules=[svg.Rule(1.0, _("1: the branch as large as x"))],
                     rings=rings, legend=legend, height=300)


def gradient_charts(chart_rows: list[dict], labels: list[str], vanished_below: float,
                    exploded_above: float, scale: float | None = None) -> list[tuple[str, alt.LayerChart]]:
    """One log-scale chart per quantity (weight gradients, block-input gradients), every variant a line;
    the vanished and exploded thresholds dashed; exact zeros at the floor and NaN/Inf at the ceiling."""
    s = mode_scale(scale)
    df = pd.DataFrame(chart_rows)
    if df.empty:
        return []
    # what is drawn in this run's language: the variants (the legend), the statuses (the tooltips); the rows'
    # keys stay English
    df = df.assign(variant=df["variant"].map(_), status=df["status"].map(lambda v: _(_STATUS_TEXT.get(v, v))))
    colors = alt.Scale(domain=[_(lab) for lab in labels], range=[PALETTE[0], PALETTE[1]][:len(labels)])
    shapes = alt.Scale(domain=[_(_STATUS_TEXT[k]) for k in ("ok", "vanished", "exploded", "unused")],
                       range=["circle", "triangle-down", "triangle-up", "cross"])
    thresholds = pd.DataFrame({"y": [vanished_below, exploded_above],
                               "label": [_("vanished below {limit}", limit=f"{vanished_below:g}"),
                                         _("exploded above {limit}", limit=f"{exploded_above:g}")]})
    out = []
    for quantity in df["quantity"].unique():
        part = df[df["quantity"] == quantity]
        shown = _(quantity)
        lines = alt.Chart(part).mark_line(point=False, strokeWidth=2.5).encode(
            x=alt.X("depth:Q", title=_("depth (layer or block, input → output)")),
            y=alt.Y("plot_norm:Q", scale=alt.Scale(type="log"), title=_("{quantity} (log)", quantity=shown)),
            color=alt.Color("variant:N", scale=colors, legend=alt.Legend(orient="bottom", title=None, columns=1)))
        points = alt.Chart(part).mark_point(size=px(60, s * s), filled=True).encode(
            x="depth:Q", y="plot_norm:Q", color=alt.Color("variant:N", scale=colors),
            shape=alt.Shape("status:N", scale=shapes, legend=None),
            tooltip=[alt.Tooltip("variant:N", title=_("variant")), alt.Tooltip("name:N", title=_("name")),
                     alt.Tooltip("depth:Q", title=_("depth")), alt.Tooltip("norm:Q", format=".3g", title=_("gradient norm")),
                     alt.Tooltip("status:N", title=_("status"))])
        rules = alt.Chart(thresholds).mark_rule(strokeDash=[4, 4], color="#888").encode(y="y:Q")
        text = alt.Chart(thresholds).mark_text(align="left", dx=4, dy=-6 * s, color="#666", fontSize=px(12, s)).encode(
            y="y:Q", x=alt.value(4), text="label:N")
        out.append((quantity, configure(alt.layer(lines, points, rules, text).properties(height=px(340, s), title=shown),
                                        s)))
    return out
