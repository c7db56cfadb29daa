"""Charts of the Why it works page, one function per measurement, from an ExperimentResult's tables."""

from __future__ import annotations

import math

import altair as alt
import pandas as pd

from app.charts import DASHES, PALETTE, configure, mode_scale, px
from resnet_core import palette
from resnet_core.i18n import _

RES, PLAIN = palette.RESIDUAL, palette.PLAIN  # residual blue, plain vermillion — the same in every chart of the page
# The tables' labels (residual, plain, feed-forward, a variant, the toggles) are English keys: each chart shows
# them, and the names of its tooltips' fields, through _() — the legends' domains are translated with them.


def _arch_scale(colors: bool = True) -> alt.Scale:
    return alt.Scale(domain=[_("residual"), _("feed-forward")],
                     range=[RES, PLAIN] if colors else [DASHES[0], DASHES[1]])  # plain dashed: not colour alone


def _role_scale() -> alt.Scale:
    return alt.Scale(domain=[_("residual"), _("plain")], range=[RES, PLAIN])


def _labels(df: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """The label columns' values in this run's language (a copy)."""
    df = df.copy()
    for col in columns:
        df[col] = df[col].map(lambda v: _(v) if isinstance(v, str) else v)
    return df


def _role_scale_en() -> alt.Scale:
    """The lesion charts' roles stay keys (their legends show the networks' names)."""
    return alt.Scale(domain=["residual", "plain"], range=[RES, PLAIN])


def _tip(field: str, **kw) -> alt.Tooltip:
    """A tooltip whose title is the field's name in this run's language."""
    return alt.Tooltip(field, title=_(field.split(":")[0]), **kw)


def _legend(columns: int = 2, **kw) -> alt.Legend:
    """A legend under the plot, in `columns` columns (1 for long labels), every label whole: four entries never
    run off a half-width chart."""
    return alt.Legend(orient="bottom", title=None, labelLimit=0, columns=columns, **kw)


def _width(label: str) -> int:
    """A label's width in Latin letters (a Chinese character is about two)."""
    return sum(2 if "\u2e80" <= ch <= "\uffef" else 1 for ch in label)


def _columns(labels: list[str], most: int = 16) -> int:
    """Two legend columns while the longest label is at most `most` letters wide (the English ones), else one."""
    return 2 if max((_width(v) for v in labels), default=0) <= most else 1


# ------------------------------------------------------------------------------------------- signal

def signal_variance(rows: list[dict], scale: float | None = None) -> alt.Chart:
    s = mode_scale(scale)
    df = _labels(pd.DataFrame(rows), "variant")
    order = list(dict.fromkeys(df["variant"]))
    colors = alt.Scale(domain=order, range=[RES, PALETTE[2], PALETTE[3], PLAIN][:len(order)])
    dashes = alt.Scale(domain=order, range=DASHES[:len(order)])
    lines = alt.Chart(df).mark_line(point=True, strokeWidth=2.5).encode(
        strokeDash=alt.StrokeDash("variant:N", scale=dashes, legend=_legend(_columns(order))),
        x=alt.X("block:Q", title=_("after block ℓ (0: entering block 1)"), axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("variance:Q", title=_("variance of the residual stream (log)"), scale=alt.Scale(type="log")),
        color=alt.Color("variant:N", scale=colors, legend=_legend(_columns(order))),
        tooltip=[_tip("variant"), _tip("block"), _tip("variance:Q", format=".3g"),
                 _tip("channel_variance:Q", format=".3g"), _tip("squared_channel_mean:Q", format=".3g")])
    ref = pd.DataFrame({"block": sorted(set(df["block"]))})
    ref["l_plus_1"] = ref["block"] + 1
    guide = alt.Chart(ref).mark_line(strokeDash=[6, 4], color="black", strokeWidth=1.5).encode(
        x="block:Q", y="l_plus_1:Q", tooltip=[alt.Tooltip("l_plus_1:Q", title="ℓ + 1")])
    return configure(alt.layer(lines, guide).properties(height=px(340, s), title=_("Variance of the stream (dashed: ℓ + 1)")),
                     s)


def signal_parts(rows: list[dict], variant: str, scale: float | None = None) -> alt.Chart:
    s = mode_scale(scale)
    df = pd.DataFrame([r for r in rows if r["variant"] == variant])
    long = df.melt(id_vars=["block"], value_vars=["channel_variance", "squared_channel_mean"], var_name="part",
                   value_name="value")
    long["part"] = long["part"].map({"channel_variance": _("average channel variance"),
                                     "squared_channel_mean": _("average squared channel mean")})
    return configure(alt.Chart(long).mark_area(opacity=0.8).encode(
        x=alt.X("block:Q", title=_("after block ℓ"), axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("value:Q", stack=True, title=_("variance, split in two")),
        color=alt.Color("part:N", scale=alt.Scale(range=[PALETTE[0], PALETTE[3]]),
                        legend=_legend(columns=1)),
        tooltip=[_tip("block"), alt.Tooltip("part", title=_("part")), _tip("value:Q", format=".3g")],
    ).properties(height=px(340, s), title=[_("{variant}:", variant=_(variant)), _("within the channels and in their means")]), s)


# ------------------------------------------------------------------------------------------- shatter

def shatter_depth(rows: list[dict], toggles: str, scale: float | None = None) -> alt.Chart:
    s = mode_scale(scale)
    df = _labels(pd.DataFrame([r for r in rows if r["toggles"] == toggles]), "arch", "toggles")
    df["low"] = df["autocorrelation"] - df["sd"]
    df["high"] = df["autocorrelation"] + df["sd"]
    enc_x = alt.X("depth:Q", title=_("depth (layers or blocks)"))
    band = alt.Chart(df).mark_area(opacity=0.18).encode(
        x=enc_x, y="low:Q", y2="high:Q", color=alt.Color("arch:N", scale=_arch_scale(), legend=None))
    line = alt.Chart(df).mark_line(point=True, strokeWidth=2.5).encode(
        x=enc_x, y=alt.Y("autocorrelation:Q", title=_("lag-1 autocorrelation of dy/dx"),
                         scale=alt.Scale(domain=[-0.2, 1])),
        color=alt.Color("arch:N", scale=_arch_scale(), legend=_legend()),
        strokeDash=alt.StrokeDash("arch:N", scale=_arch_scale(colors=False), legend=_legend()),
        tooltip=[_tip("arch"), _tip("depth"), _tip("autocorrelation:Q", format=".3f"), _tip("sd:Q", format=".3f"),
                 _tip("seeds")])
    zero = alt.Chart(pd.DataFrame({"y": [0]})).mark_rule(color="gray", strokeDash=[4, 4]).encode(y="y:Q")
    return configure(alt.layer(line, band, zero).properties(
        height=px(360, s), title=_("Correlation against depth ({toggles})", toggles=_(toggles))), s)


def shatter_gradients(rows: list[dict], scale: float | None = None) -> alt.Chart:
    s = mode_scale(scale)
    df = _labels(pd.DataFrame(rows), "arch")
    return configure(alt.Chart(df).mark_line(strokeWidth=1.2).encode(
        x=alt.X("x:Q", title=_("input x along the line")),
        y=alt.Y("gradient_scaled:Q", title=_("dy/dx, scaled")),
        color=alt.Color("arch:N", scale=_arch_scale(), legend=None),
        row=alt.Row("arch:N", title=None, header=alt.Header(labelFontSize=px(14, s))),
        tooltip=[_tip("arch"), _tip("x:Q", format=".3f"), _tip("gradient:Q", format=".3g")],
    ).properties(height=px(130, s), width=px(520, s),
                 title=_("The gradient along the line at depth {d}", d=df["depth"].iloc[0])), s, autosize="pad")


def shatter_toggles(rows: list[dict], scale: float | None = None) -> alt.Chart:
    """Every toggle setting at full depth: one pair of bars (residual, feed-forward) per setting, the setting's
    name on the axis (one chart, not a facet per setting: it takes its column's width and nothing runs off)."""
    s = mode_scale(scale)
    depth = max(r["depth"] for r in rows)
    df = _labels(pd.DataFrame([r for r in rows if r["depth"] == depth]), "arch", "toggles")
    return configure(alt.Chart(df).mark_bar().encode(
        x=alt.X("autocorrelation:Q", title=_("autocorrelation at depth {d}", d=depth),
                scale=alt.Scale(domain=[-0.2, 1])),
        y=alt.Y("toggles:N", title=None, sort=list(dict.fromkeys(df["toggles"])), axis=alt.Axis(labelLimit=0)),
        yOffset=alt.YOffset("arch:N", scale=alt.Scale(domain=[_("residual"), _("feed-forward")])),
        color=alt.Color("arch:N", scale=_arch_scale(), legend=_legend()),
        tooltip=[_tip("toggles"), _tip("arch"), _tip("autocorrelation:Q", format=".3f"), _tip("seeds")],
    ).properties(height=px(46, s) * df["toggles"].nunique(), width=px(300, s),
                 title=_("Every toggle setting at full depth")), s)


# ------------------------------------------------------------------------------------------- erf

def erf_growth(rows: list[dict], scale: float | None = None) -> alt.Chart:
    s = mode_scale(scale)
    df = pd.DataFrame(rows)
    df["role"] = df["stack"].map(_)
    line = alt.Chart(df).mark_line(point=True, strokeWidth=2.5).encode(
        x=alt.X("layers:Q", title=_("conv layers n"), scale=alt.Scale(type="sqrt")),
        y=alt.Y("erf_std:Q", title=_("ERF σ (pixels)")),
        color=alt.Color("role:N", scale=_role_scale(), legend=_legend()),
        tooltip=[alt.Tooltip("role:N", title=_("stack")), _tip("layers"), _tip("erf_std:Q", format=".2f"),
                 _tip("std_over_sqrt_n:Q", format=".3f"), _tip("theoretical_rf")])
    plain = df[df["stack"] == "plain"]
    k = float((plain["std_over_sqrt_n"]).mean()) if len(plain) else 1.0
    ns = sorted(set(df["layers"]))
    fit = pd.DataFrame({"layers": ns, "fit": [k * math.sqrt(n) for n in ns]})
    guide = alt.Chart(fit).mark_line(strokeDash=[6, 4], color="black").encode(x="layers:Q", y="fit:Q")
    return configure(alt.layer(line, guide).properties(height=px(300, s),
                                                       title=_("ERF σ against depth (dashed: {k}·√n)", k=f"{k:.2f}")), s)


def erf_vs_rf(rows: list[dict], scale: float | None = None) -> alt.Chart:
    s = mode_scale(scale)
    df = pd.DataFrame(rows)
    plain = df[df["stack"] == "plain"].copy()
    rf, erf = _("theoretical RF 2n+1"), {k: _("{stack} ERF ±2σ", stack=_(k)) for k in ("plain", "residual")}
    long = pd.concat([plain.assign(what=rf, pixels=plain["theoretical_rf"]),
                      df.assign(what=df["stack"].map(erf), pixels=4 * df["erf_std"])])
    return configure(alt.Chart(long).mark_line(point=True, strokeWidth=2.5).encode(
        x=alt.X("layers:Q", title=_("conv layers n")), y=alt.Y("pixels:Q", title=_("width in pixels")),
        color=alt.Color("what:N", scale=alt.Scale(range=["#555555", PLAIN, RES],
                                                  domain=[rf, erf["plain"], erf["residual"]]),
                        legend=_legend(columns=1)),
        tooltip=[alt.Tooltip("what", title=_("what")), _tip("layers"), alt.Tooltip("pixels:Q", format=".1f",
                                                                                   title=_("pixels"))],
    ).properties(height=px(300, s), title=_("Effective against theoretical receptive field")), s)


def map_title(label: str) -> str:
    """An ERF map's label ("plain, 8 layers", or a network's name) in this run's language."""
    stack, _sep, layers = label.partition(", ")
    if stack in ("plain", "residual") and layers.endswith(" layers") and layers[:-7].isdigit():
        return _("{stack}, {n} layers", stack=_(stack), n=layers[:-7])
    return label


def erf_map(rows: list[dict], label: str, radius: int | None = None, scale: float | None = None) -> alt.Chart:
    """The map as a heat map. With `radius`, on a common frame of ±radius input pixels around the centre, so
    maps of different sizes compare at one scale (the map's own square is its input: for the stacks, exactly
    the theoretical receptive field)."""
    s = mode_scale(scale)
    df = pd.DataFrame([r for r in rows if r["map"] == label])
    r = int(max(df["row"].abs().max(), df["col"].abs().max())) if radius is None else radius
    df["x0"], df["x1"] = df["col"] - 0.5, df["col"] + 0.5
    df["y0"], df["y1"] = df["row"] - 0.5, df["row"] + 0.5
    dom = alt.Scale(domain=[-r - 0.5, r + 0.5], nice=False, zero=False)
    return configure(alt.Chart(df).mark_rect().encode(
        x=alt.X("x0:Q", scale=dom, axis=None), x2="x1:Q",
        y=alt.Y("y0:Q", scale=dom, axis=None), y2="y1:Q",
        color=alt.Color("relative:Q", scale=alt.Scale(scheme="inferno", domain=[0, 1]), legend=None),
        tooltip=[_tip("row"), _tip("col"), _tip("value:Q", format=".2e")],
    ).properties(width=px(140, s), height=px(140, s), title=map_title(label)), s, autosize="pad").configure_view(fill="#eeeeee", strokeWidth=0)


# ------------------------------------------------------------------------------------------- lesion

def lesion_single(rows: list[dict], baseline: list[dict], labels: dict[str, str], scale: float | None = None) -> alt.Chart:
    s = mode_scale(scale)
    df = pd.DataFrame(rows).melt(id_vars=["index", "block", "downsampling"], value_vars=["residual", "plain"],
                                 var_name="role", value_name="accuracy")
    df["network"] = df["role"].map(labels)
    enc_x = alt.X("block:N", sort=list(dict.fromkeys(r["block"] for r in rows)), title=_("deleted block"),
                  axis=alt.Axis(labelAngle=-40))
    points = alt.Chart(df).mark_line(point=alt.OverlayMarkDef(size=px(90, s * s), filled=True), strokeWidth=2.5).encode(
        x=enc_x, y=alt.Y("accuracy:Q", title=_("held-out accuracy"), scale=alt.Scale(domain=[0, 1]),
                         axis=alt.Axis(format="%")),
        color=alt.Color("role:N", scale=_role_scale_en(), legend=_legend(labelExpr=_label_expr(labels))),
        tooltip=[_tip("network"), _tip("block"), _tip("accuracy:Q", format=".1%"), _tip("downsampling")])
    base = pd.DataFrame(baseline)
    rules = alt.Chart(base).mark_rule(strokeDash=[6, 4], strokeWidth=1.5).encode(
        y="accuracy:Q", color=alt.Color("net:N", scale=_role_scale_en(), legend=None),
        tooltip=[alt.Tooltip("accuracy:Q", format=".1%", title=_("nothing deleted")), _tip("net")])
    return configure(alt.layer(points, rules).properties(height=px(400, s),
                                                         title=_("Delete one block (dashed: nothing deleted)")), s)


def _label_expr(labels: dict[str, str]) -> str:
    parts = [f"datum.label == '{k}' ? '{v.replace(chr(39), '')}'" for k, v in labels.items()]
    return " : ".join(parts) + " : datum.label"


def lesion_random(rows: list[dict], labels: dict[str, str], scale: float | None = None) -> alt.Chart:
    s = mode_scale(scale)
    df = pd.DataFrame(rows)
    df["network"] = df["net"].map(labels)
    enc_x = alt.X("k:Q", title=_("blocks deleted at random"), axis=alt.Axis(tickMinStep=1))
    band = alt.Chart(df).mark_area(opacity=0.18).encode(x=enc_x, y="min:Q", y2="max:Q",
                                                        color=alt.Color("net:N", scale=_role_scale_en(), legend=None))
    line = alt.Chart(df).mark_line(point=True, strokeWidth=2.5).encode(
        x=enc_x, y=alt.Y("mean:Q", title=_("held-out accuracy (mean, band: min–max)"),
                         scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        color=alt.Color("net:N", scale=_role_scale_en(), legend=_legend(labelExpr=_label_expr(labels))),
        tooltip=[_tip("network"), _tip("k"), _tip("mean:Q", format=".1%"), _tip("min:Q", format=".1%"),
                 _tip("max:Q", format=".1%"), _tip("draws")])
    return configure(alt.layer(line, band).properties(height=px(400, s), title=_("Delete k blocks at random")), s)


def path_histogram(rows: list[dict], scale: float | None = None) -> alt.Chart:
    s = mode_scale(scale)
    df = pd.DataFrame(rows)
    n = int(df["length"].max())
    return configure(alt.Chart(df).mark_bar(color=RES).encode(
        x=alt.X("length:O", title=[_("path length"), _("(branches it takes)")],  # two short lines: never wider
                axis=alt.Axis(labelAngle=0, labelOverlap=True)),                 # than the plot
        y=alt.Y("paths:Q", title=_("number of paths")),
        tooltip=[_tip("length"), _tip("paths:Q", format=","), _tip("fraction:Q", format=".1%")],
    ).properties(height=px(400, s), title=[_("The 2^{n} = {count} paths", n=n, count=f"{2 ** n:,}"),
                                           _("by length: Binomial({n}, ½)", n=n)]), s)


# ------------------------------------------------------------------------------------------- landscape

def landscape_1d(rows: list[dict], scale: float | None = None) -> alt.Chart:
    s = mode_scale(scale)
    df = pd.DataFrame(rows)
    return configure(alt.Chart(df).mark_line(point=True, strokeWidth=2.5).encode(
        x=alt.X("alpha:Q", title=_("α (filter-normalised distance along δ)")),
        y=alt.Y("loss:Q", title=_("training loss (log)"), scale=alt.Scale(type="log")),
        color=alt.Color("net:N", scale=alt.Scale(range=[RES, PLAIN]), sort=None, legend=None),
        strokeDash=alt.StrokeDash("net:N", scale=alt.Scale(range=[DASHES[0], DASHES[1]]), sort=None, legend=None),
        tooltip=[_tip("net"), _tip("alpha:Q", format=".2f"), _tip("loss:Q", format=".4g")],
    ).properties(height=px(300, s), width=px(380, s),
                 title=_("1-D slice (blue solid: residual, vermillion dashed: plain)")), s, autosize="pad")


def landscape_2d(rows: list[dict], net: str, levels: list[float], scale: float | None = None) -> alt.Chart:
    """Filled contours: the loss on the grid, coloured by which of the shared log-spaced levels it is in."""
    s = mode_scale(scale)
    df = pd.DataFrame([r for r in rows if r["net"] == net])
    df["log10 loss"] = df["loss"].clip(lower=1e-12).map(math.log10)
    return alt.Chart(df).mark_rect().encode(
        x=alt.X("alpha:O", title="α", axis=alt.Axis(format=".2f", labelAngle=0, labelOverlap=True)),
        y=alt.Y("beta:O", title="β", sort="descending", axis=alt.Axis(format=".2f", labelOverlap=True)),
        color=alt.Color("log10 loss:Q", scale=alt.Scale(type="threshold", domain=levels, scheme="viridis"),
                        legend=alt.Legend(title=_("log₁₀ loss"), orient="right", format=".1f")),
        tooltip=[_tip("alpha:Q", format=".2f"), _tip("beta:Q", format=".2f"), _tip("loss:Q", format=".4g")],
    ).properties(width=px(215, s), height=px(215, s), title=net)


def contour_levels(rows: list[dict], count: int = 9) -> list[float]:
    """Log-spaced thresholds shared by both 2-D charts, so one colour means one loss in both."""
    values = [math.log10(max(r["loss"], 1e-12)) for r in rows if math.isfinite(r["loss"])]
    if not values:
        return [0.0]
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        return [lo]
    return [lo + (hi - lo) * i / count for i in range(1, count)]


def landscape_pair(rows: list[dict], nets: list[str], scale: float | None = None) -> alt.HConcatChart:
    levels = contour_levels(rows)
    s = mode_scale(scale)
    return configure(alt.hconcat(*[landscape_2d(rows, n, levels, scale=s) for n in nets]).resolve_scale(color="shared"),
                     s, autosize="pad")
