"""The shape trace: headline numbers, the located error, the staircase, per-stage charts, the table."""

import streamlit as st

from app import model_views, ui
from app.charts import show
from app.charts import structure as charts
from resnet_core.i18n import _
from resnet_core.structure.report import DEPTHS, stage_chart_rows, staircase_rows, staircase_summary, table_rows
from resnet_core.text import md

if model_views.showing_model():  # a server started with --model, the sidebar's Explore on the model
    model_views.header(_("{name}: shape trace"))
    model_views.trace_table(key="trace.model_table")
    st.subheader(_("Residual blocks found"))
    model_views.residual_blocks(key="trace.model_blocks")
    st.stop()

spec = ui.current_spec()
t = ui.cached_trace(spec)

st.title(_("{name}: shape trace", name=md(spec.name)))  # a name from a link is text, never Markdown
st.caption(ui.network_caption(t))
ui.error_panel(t)
ui.metrics(t)

st.subheader(_("Shapes through the depth"))
spatial, channels = staircase_summary(t)
st.markdown(_("**Spatial size:** {spatial} &nbsp;&nbsp;·&nbsp;&nbsp; **Channels:** {channels}", spatial=spatial,
               channels=channels))
rows = staircase_rows(t)
left, right = st.columns(2)
# each chart's Vega-Lite is made once per network, scale and language (a class redraws this page 40 times)
show(left, charts.staircase, rows, "spatial")
show(right, charts.staircase, rows, "channels")
stage_rows = stage_chart_rows(t)
left, right = st.columns(2)
show(left, charts.stage_bars, stage_rows, "parameters")
show(right, charts.stage_bars, stage_rows, "mult-adds")

st.subheader(_("Layer by layer"))
depth = st.segmented_control(_("Depth"), DEPTHS, default="block", key="trace.depth", required=True,
                             persist_state="session", format_func=ui.depth_labels(),
                             help=_("stage: stem, each stage, head · block: each residual block · layer: every layer"))
ui.dataframe(table_rows(t, depth), key="trace.table")
st.caption(_("Mult-adds follow torchinfo's rule (conv = parameters × output H × W; norm and linear = parameters). "
             "Element-wise ops are what it leaves out: activations and additions 1 per element, norms 2, "
             "pools k² per output. RF: receptive field in input pixels; memory: the layer's float32 output. "
             "A module used twice (a basic block's `relu`) is listed once per use: `relu (1)`, `relu (2)`."))
