"""Two architectures side by side: totals, per-stage differences, the staircase, both traces."""

import streamlit as st

import resnet_core as rc
from app import state, ui
from app.charts import structure as charts
from resnet_core.formatting import fmt_count
from resnet_core.structure.presets import preset_info
from resnet_core.structure.report import compare_rows, compare_totals, staircase_rows, table_rows
from resnet_core.text import md

PAIRS = [  # (A into the builder, B, label)
    ("resnet34", "plain34", "ResNet-34 · plain-34"),
    ("resnet34", "resnet50", "basic · bottleneck"),
    ("resnet50", "resnext50_32x4d", "ResNet-50 · ResNeXt-50"),
    ("resnet50", "wide_resnet50_2", "ResNet-50 · Wide-50-2"),
    ("resnet56", "plain56", "ResNet-56 · plain-56"),
]


def nb(text: str) -> str:
    """A number and its unit stay on one line ("11.69 M", not "11.69" / "M")."""
    return text.replace(" ", "\u00a0")


def load_pair(a: str, b: str) -> None:
    state.apply_spec_to_widgets(rc.get_preset(a), source=a)
    st.session_state["compare.b"] = b


spec_a = ui.current_spec()
names = rc.list_presets()
if "compare.b" not in st.session_state:
    twin = next((n for n in names if preset_info(n).plain_of == spec_a.name), None)
    st.session_state["compare.b"] = twin or "plain18"

st.title("Compare two networks")
st.caption("**A** is the network in the builder (sidebar); choose **B** below, or load a classic pair.")
with st.container(horizontal=True, gap="small", key="compare.pairs"):  # content-wide buttons: no label cut
    for a, b, label in PAIRS:
        st.button(label, key=f"compare.pair.{a}.{b}", on_click=load_pair, args=(a, b))

b_name = st.selectbox("Network B", names, key="compare.b", persist_state="session", width=360)
spec_b = rc.get_preset(b_name)
label_a = f"A: {spec_a.name}"
label_b = f"B: {spec_b.name}" if spec_b.name != spec_a.name else f"B: {spec_b.name} (preset)"
md_a, md_b = "A: " + md(label_a[3:]), "B: " + md(label_b[3:])  # in Markdown a name from a link is text, never syntax
ta, tb = ui.cached_trace(spec_a), ui.cached_trace(spec_b)
if not ta.ok:
    ui.error_panel(ta)
st.markdown(f"| | **{md_a}** | **{md_b}** | **B − A** |\n|---|---:|---:|---:|\n"
            + "\n".join(f"| {m} | {nb(x)} | {nb(y)} | {nb(d)} |" for m, x, y, d in compare_totals(ta, tb)))
if not (ta.ok and tb.ok):
    broken = " and ".join(x for x, t in ((md_a, ta), (md_b, tb)) if not t.ok)
    st.caption(f"{broken} breaks: its totals are **partial** (the layers planned before the failure), so no "
               "relative change is given against them.")
else:
    st.caption("Depth as He et al. count it: weight layers on the main path (convolutions and the FC); shortcut "
               "projections are not counted, so a ResNet and its plain twin have the same depth.")

st.subheader("Per stage")
ui.dataframe(compare_rows(ta, tb, "A", "B"), key="compare.stages")
st.altair_chart(charts.compare_staircase(staircase_rows(ta), staircase_rows(tb), label_a, label_b), width="stretch")

st.subheader("Both traces")
depth = st.segmented_control("Depth", ["stage", "block", "layer"], default="block", key="compare.depth",
                             required=True, persist_state="session")
left, right = st.columns(2)
with left:
    st.markdown(f"**{md_a}** · {fmt_count(ta.total_params)} parameters")
    ui.dataframe(table_rows(ta, depth), height=420, key="compare.a")
with right:
    st.markdown(f"**{md_b}** · {fmt_count(tb.total_params)} parameters")
    ui.dataframe(table_rows(tb, depth), height=420, key="compare.b_table")
