"""ResNet Explorer: `streamlit run app/streamlit_app.py`.

A thin entry: page config, the network builder in the sidebar, navigation across the pages.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app import builder, classroom_ui, delivery, lang, model_session, model_views, projector, server, state, ui  # noqa: E402
from resnet_core.i18n import _  # noqa: E402

lang.apply()  # this run's language (the switch, the link's ?lang=, the browser's), for every message below

# projector mode (`?present=1`) collapses the sidebar to the network chip; Streamlit applies a changed state
st.set_page_config(page_title="ResNet Explorer", page_icon=str(ROOT / "assets" / "favicon.png"), layout="wide",  # i18n: not shown (a name)
                   initial_sidebar_state=projector.sidebar_state(state.presenting()))

server.settle_once()

PAGES = Path(__file__).parent / "app_pages"

state.init_session()
state.keep_alive()
pages = [
    st.Page(PAGES / "trace.py", title=_("Shape trace"), icon=":material/straighten:", default=True),
    st.Page(PAGES / "graph.py", title=_("Graph"), icon=":material/account_tree:", url_path="graph"),
    st.Page(PAGES / "compare.py", title=_("Compare"), icon=":material/compare_arrows:", url_path="compare"),
    st.Page(PAGES / "export.py", title=_("Share"), icon=":material/ios_share:", url_path="export"),
    st.Page(PAGES / "learn.py", title=_("Learn"), icon=":material/school:", url_path="learn"),
    st.Page(PAGES / "roadmap.py", title=_("To ConvNeXt"), icon=":material/route:", url_path="roadmap"),
    st.Page(PAGES / "live.py", title=_("Live lab"), icon=":material/biotech:", url_path="live"),
    st.Page(PAGES / "train.py", title=_("Training lab"), icon=":material/monitoring:", url_path="train"),
    st.Page(PAGES / "why.py", title=_("Why it works"), icon=":material/verified:", url_path="why"),
    st.Page(PAGES / "classroom.py", title=_("Class"), icon=":material/groups:", url_path="classroom"),
]
if model_session.configured() is not None:  # only a server started with --model has it (nothing a visitor sends)
    pages.insert(0, st.Page(PAGES / "model.py", title=_("Your model"), icon=":material/code:", url_path="model",
                            default=True))
    pages[1] = st.Page(PAGES / "trace.py", title=_("Shape trace"), icon=":material/straighten:", url_path="trace")
projector.shorten(pages)  # short titles in projector mode: every page in the top bar at 1024×768
nav = st.navigation(pages, position="top")

ui.apply_style()
lang.declare()  # <html lang> follows the language (screen readers read Chinese as Chinese)
# where a share link opens: the page the visitor was on before Share & export (see app_pages/export.py)
st.session_state["ui.pages"] = {p.url_path: p.title for p in pages}
if nav.url_path != "export":
    st.session_state["ui.from_page"] = nav.url_path
# the run's elements reach the browser together (app/delivery.py): one redraw, not one per element
with delivery.together():
    message = st.session_state.pop(state.P + "url_message", None)
    if message:
        st.warning(message, icon=":material/link_off:")
    classroom_ui.follow(pages, nav)  # a class: the teacher's push applied before the builder draws
    with st.sidebar:
        lang.selector()
    model_views.sidebar()  # only on a server started with --model: which network the pages show
    spec = builder.sidebar()
    st.session_state["spec"] = spec
    state.sync_url(spec)
    if ui.presenting():
        projector.chip(spec, ui.cached_trace(spec))
    nav.run()
