"""Two architectures side by side: totals, per-stage differences, the staircase, both traces."""

import streamlit as st

import resnet_core as rc
from app import state, ui
from app.charts import structure as charts
from resnet_core.formatting import fmt_count
from resnet_core.i18n import N_, _
from resnet_core.structure.presets import preset_info
from resnet_core.structure.report import compare_rows, compare_totals, staircase_rows, table_rows
from resnet_core.text import md

PAIRS = [  # (A into the builder, B, label)
    ("resnet34", "plain34", N_("ResNet-34 · plain-34")),
    ("resnet34", "resnet50", N_("basic · bottleneck")),
    ("resnet50", "resnext50_32x4d", "ResNet-50 · ResNeXt-50"),
    ("resnet50", "wide_resnet50_2", "ResNet-50 · Wide-50-2"),
    ("resnet56", "plain56", N_("ResNet-56 · plain-56")),
]


def nb(text: str) -> str:
    """A number and its unit stay on one line ("11.69 M", not "11.69" / "M")."""
    return text.replace(" ", "\u00a0")


def header(column: str) -> str:
    """A per-stage column's name in the run's language: "Params A" → its measure translated, then the side."""
    for side in (" A", " B"):
        if column.endswith(side):
            return _(column[: -len(side)]) + side
    return _(column)


def load_pair(a: str, b: str) -> None:
    state.apply_spec_to_widgets(rc.get_preset(a), source=a)
    st.session_state["compare.b"] = b


spec_a = ui.current_spec()
names = rc.list_presets()
if "compare.b" not in st.session_state:
    twin = next((n for n in names if preset_info(n).plain_of == spec_a.name), None)
    st.session_state["compare.b"] = twin or "plain18"

st.title(_("Compare two networks"))
st.caption(_("**A** is the network in the builder (sidebar); choose **B** below, or load a classic pair."))
with st.container(horizontal=True, gap="small", key="compare.pairs"):  # content-wide buttons: no label cut
    for a, b, label in PAIRS:
        st.button(_(label), key=f"compare.pair.{a}.{b}", on_click=load_pair, args=(a, b))

b_name = st.selectbox(_("Network B"), names, key="compare.b", persist_state="session", width=360)
spec_b = rc.get_preset(b_name)
same_name = spec_b.name == spec_a.name
label_a = f"A: {spec_a.name}"
label_b = _("B: {name} (preset)", name=spec_b.name) if same_name else f"B: {spec_b.name}"
md_a = "A: " + md(spec_a.name)  # in Markdown a name from a link is text, never syntax
md_b = _("B: {name} (preset)", name=md(spec_b.name)) if same_name else "B: " + md(spec_b.name)
ta, tb = ui.cached_trace(spec_a), ui.cached_trace(spec_b)
if not ta.ok:
    ui.error_panel(ta)
st.markdown(f"| | **{md_a}** | **{md_b}** | **B − A** |\n|---|---:|---:|---:|\n"
            + "\n".join(f"| {_(m)} | {nb(x)} | {nb(y)} | {nb(d)} |" for m, x, y, d in compare_totals(ta, tb)))
if not (ta.ok and tb.ok):
    broken = (_("{a} and {b}", a=md_a, b=md_b) if not (ta.ok or tb.ok) else md_a if not ta.ok else md_b)
    st.caption(_("{networks} breaks: its totals are **partial** (the layers planned before the failure), so no "
                 "relative change is given against them.", networks=broken))
else:
    st.caption(_("Depth as He et al. count it: weight layers on the main path (convolutions and the FC); shortcut "
                 "projections are not counted, so a ResNet and its plain twin have the same depth."))

st.subheader(_("Per stage"))
per_stage = compare_rows(ta, tb, "A", "B")
ui.dataframe([{header(k): v for k, v in row.items()} for row in per_stage], key="compare.stages")
st.altair_chart(charts.compare_staircase(staircase_rows(ta), staircase_rows(tb), label_a, label_b), width="stretch")

st.subheader(_("Both traces"))
depth = st.segmented_control(_("Depth"), ["stage", "block", "layer"], default="block", key="compare.depth",
                             required=True, persist_state="session", format_func=ui.depth_labels())
left, right = st.columns(2)
with left:
    st.markdown(_("**{name}** · {n} parameters", name=md_a, n=fmt_count(ta.total_params)))
    ui.dataframe(table_rows(ta, depth), height=420, key="compare.a")
with right:
    st.markdown(_("**{name}** · {n} parameters", name=md_b, n=fmt_count(tb.total_params)))
    ui.dataframe(table_rows(tb, depth), height=420, key="compare.b_table")
