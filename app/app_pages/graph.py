"""The computation graph: main path, skip edges, projections, additions, shapes on the edges."""

import streamlit as st

from app import model_views, ui
from resnet_core.structure.graph import dot_available
from resnet_core.text import md

if model_views.showing_model():  # a server started with --model, the sidebar's Explore on the model
    model_views.header("{name}: computation graph")
    model_views.graph(key="graph.model")
    st.stop()

spec = ui.current_spec()
t = ui.cached_trace(spec)
plan = t.plan

st.title(f"{md(spec.name)}: computation graph")  # a name from a link is text, never Markdown
st.caption(ui.network_caption(t))
ui.error_panel(t)

n_stages = len(plan.stages)
with st.container(horizontal=True, gap="medium", vertical_alignment="bottom", key="graph.controls"):
    detail = st.segmented_control("Detail", ["stage", "block", "layer"], default="block", key="graph.detail",
                                  required=True, persist_state="session")
    options = [None] + list(range(n_stages))
    expand = st.selectbox("Show in detail", options, key="graph.expand", persist_state="session", width=260,
                          format_func=lambda i: "all stages" if i is None else
                          f"stage {i + 1} only ({plan.stages[i].stage.block} × {len(plan.stages[i].blocks)})",
                          disabled=detail == "stage",
                          help="Collapse every other stage to one node: a 152- or 1202-layer network stays readable.")
    if expand is not None and expand >= n_stages:
        expand = None
    zoom = st.select_slider("Zoom", ui.ZOOMS, key="graph.zoom", value=ui.default_zoom(), width=260,
                            persist_state="session",
                            format_func=lambda z: f"{z} %", help="Scroll inside the frame to pan.")
st.caption("Solid: main path F(x) · **blue dashed: skip connections** · orange: projection or zero-pad "
           "shortcuts · ⊕: the addition F(x) + x · labels: tensor shapes C×H×W")

dot = ui.cached_dot(spec, detail, None if detail == "stage" else expand)
ui.graph_view(dot, key="graph.view", zoom=zoom / 100)

stem = ui.file_stem(spec)
with st.container(horizontal=True, key="graph.downloads"):
    st.download_button("⬇ DOT", dot, file_name=f"{stem}_{detail}.dot", mime="text/vnd.graphviz", key="graph.dl_dot")
    if dot_available():
        st.download_button("⬇ SVG", ui.graph_image(dot, "svg"), file_name=f"{stem}_{detail}.svg",
                           mime="image/svg+xml", key="graph.dl_svg")
    else:
        st.caption("SVG export needs Graphviz's `dot` (Debian package `graphviz`); the DOT file renders anywhere.")
