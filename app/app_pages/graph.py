"""The computation graph: main path, skip edges, projections, additions, shapes on the edges."""

import streamlit as st

from app import model_views, ui
from resnet_core.i18n import _
from resnet_core.structure.graph import dot_available
from resnet_core.text import md

if model_views.showing_model():  # a server started with --model, the sidebar's Explore on the model
    model_views.header(_("{name}: computation graph"))
    model_views.graph(key="graph.model")
    st.stop()

spec = ui.current_spec()
t = ui.cached_trace(spec)
plan = t.plan

st.title(_("{name}: computation graph", name=md(spec.name)))  # a name from a link is text, never Markdown
st.caption(ui.network_caption(t))
ui.error_panel(t)

n_stages = len(plan.stages)
with st.container(horizontal=True, gap="medium", vertical_alignment="bottom", key="graph.controls"):
    detail = st.segmented_control(_("Detail"), ["stage", "block", "layer"], default="block", key="graph.detail",
                                  required=True, persist_state="session", format_func=ui.depth_labels())
    options = [None] + list(range(n_stages))
    expand = st.selectbox(_("Show in detail"), options, key="graph.expand", persist_state="session", width=260,
                          format_func=ui.labelled({None: _("all stages")} | {  # already translated: _() keeps them
                              i: _("stage {i} only ({block} × {n})", i=i + 1, block=plan.stages[i].stage.block,
                                   n=len(plan.stages[i].blocks)) for i in range(n_stages)}),
                          disabled=detail == "stage",
                          help=_("Collapse every other stage to one node: a 152- or 1202-layer network stays "
                                 "readable."))
    if expand is not None and expand >= n_stages:
        expand = None
    zoom = st.select_slider(_("Zoom"), ui.ZOOMS, key="graph.zoom", value=ui.default_zoom(), width=260,
                            persist_state="session",
                            format_func=lambda z: f"{z} %", help=_("Scroll inside the frame to pan."))
st.caption(_("Solid: main path F(x) · **blue dashed: skip connections** · orange: projection or zero-pad "
             "shortcuts · ⊕: the addition F(x) + x · labels: tensor shapes C×H×W"))

dot = ui.cached_dot(spec, detail, None if detail == "stage" else expand)
ui.graph_view(dot, key="graph.view", zoom=zoom / 100)

stem = ui.file_stem(spec)
with st.container(horizontal=True, key="graph.downloads"):
    st.download_button("⬇ DOT", dot, file_name=f"{stem}_{detail}.dot", mime="text/vnd.graphviz", key="graph.dl_dot")
    if dot_available():
        st.download_button("⬇ SVG", ui.graph_image(dot, "svg"), file_name=f"{stem}_{detail}.svg",
                           mime="image/svg+xml", key="graph.dl_svg")
    else:
        st.caption(_("SVG export needs Graphviz's `dot` (Debian package `graphviz`); the DOT file renders anywhere."))
