"""Your model: a network brought as code by the person who started this server (`resnet-explorer app --model`).

Its trace (rows per layer and per functional operation), the residual blocks found in it, its graph with the
skip edges, its located error when its shapes cannot meet, its forward views and its gradient flow with and
without skips. The Shape trace, Graph and Live lab pages show the same views while the sidebar's "Explore"
switch is on the model (app/model_views.py).
"""

import json

import streamlit as st

from app import model_session
from app import model_views as views
from resnet_core.i18n import _
from resnet_core.text import safe_filename

conf, t, name = views.loaded()
views.header(_("Your model: {name}"))

trace_tab, blocks_tab, graph_tab, forward_tab, flow_tab = st.tabs(
    [_("Shape trace"), _("Residual blocks"), _("Graph"), _("Forward views"), _("Gradient flow")])
with trace_tab:
    views.trace_table()
with blocks_tab:
    views.residual_blocks()
with graph_tab:
    views.graph()
with forward_tab:
    views.forward_views()
with flow_tab:
    views.gradient_flow()

stem = safe_filename(name)
with st.container(horizontal=True, key="model.downloads"):
    st.download_button(_("⬇ Trace (JSON)"), json.dumps(t.to_dict(), indent=2), f"{stem}_trace.json", "application/json",
                       key="model.dl_json")
    st.download_button(_("⬇ Graph (DOT)"), model_session.dot(conf.source, conf.input_shape, "layer"), f"{stem}.dot",
                       "text/vnd.graphviz", key="model.dl_dot")
