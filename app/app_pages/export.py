"""Share the network as a link; export it (JSON, YAML, CSV, DOT, SVG, PyTorch); import a spec file."""

import streamlit as st

from app import state, ui
from app.builder import section
from resnet_core import BuildError, i18n
from resnet_core.i18n import _
from resnet_core.structure.codegen import generate_code
from resnet_core.structure.graph import dot_available
from resnet_core.structure.spec import parse_spec_text, spec_key
from resnet_core.structure.spec_text import SpecError
from resnet_core.text import md


@st.cache_resource(max_entries=32, show_spinner=False)
def _code(key: str, _spec) -> str | None:
    try:
        return generate_code(_spec)
    except BuildError:
        return None


def load(spec) -> None:
    problems = state.apply_spec_to_widgets(spec, source=spec.name)
    st.session_state["export.load_problems"] = problems


spec = ui.current_spec()
t = ui.cached_trace(spec)
st.title(_("Share & export"))
ui.error_panel(t)

st.subheader(_("Share"))
pages = st.session_state.get("ui.pages") or {"": _("Shape trace")}
came_from = st.session_state.get("ui.from_page", "")
opens = st.selectbox(_("The link opens on"), list(pages), index=list(pages).index(came_from) if came_from in pages else 0,
                     format_func=pages.get, key="export.opens", width=320,
                     help=_("The page you came from, with this network; every page's own address bar works too."))
st.markdown(_("This link opens **{page}** with exactly this network, **{name}**:", page=pages.get(opens, opens),
              name=md(spec.name)))
st.code(state.share_url(spec, page=opens, current="export"), language=None, wrap_lines=True)

st.subheader(_("Export"))
row = st.container(horizontal=True, gap="small", key="export.buttons")  # content-wide, wrapping: no label cut
c = [row] * 7
stem = ui.file_stem(spec)
c[0].download_button(_("⬇ Spec (JSON)"), spec.to_json() + "\n", f"{stem}.json", "application/json",
                     key="export.json")
c[1].download_button(_("⬇ Spec (YAML)"), spec.to_yaml(), f"{stem}.yaml", "application/yaml", key="export.yaml")
lang = i18n.language()
c[2].download_button(_("⬇ Trace (CSV)"), lambda: ui.trace_csv(t, lang), f"{stem}_trace.csv", "text/csv",
                     key="export.csv")
dot = ui.cached_dot(spec, "block", None)
c[3].download_button(_("⬇ Graph (DOT)"), dot, f"{stem}.dot", "text/vnd.graphviz", key="export.dot")
if dot_available():
    c[4].download_button(_("⬇ Graph (SVG)"), ui.graph_image(dot, "svg"), f"{stem}.svg", "image/svg+xml",
                         key="export.svg")
    c[5].download_button(_("⬇ Graph (PNG)"), ui.graph_image(dot, "png"), f"{stem}.png", "image/png",
                         key="export.png")
else:
    c[4].caption(_("SVG and PNG need Graphviz's `dot` (Debian package `graphviz`)."))
code = _code(spec_key(spec), spec)
if code is None:
    c[6].button(_("⬇ PyTorch code"), disabled=True, key="export.code_disabled",
                help=_("A network whose shapes do not meet cannot be built: fix the error first."))
else:
    c[6].download_button(_("⬇ PyTorch code"), code, f"{stem.replace('-', '_').replace('.', '_')}.py", "text/x-python",
                         key="export.code")
if code is not None:  # drawn only while open (app/builder.py's sections): ~500 lines are not sent on every rerun
    exp = section(_("PyTorch code (standalone: needs only torch)"), "export.code_view")
    if exp.open:
        with exp:
            st.code(code, language="python", line_numbers=True, height=500)

st.subheader(_("Import"))
st.markdown(_("Open a spec file (JSON or YAML, as exported above or written by hand), or paste one. "
              "It is checked exactly as the command line checks it."))
left, right = st.columns(2)
with left:
    upload = st.file_uploader(_("Spec file"), type=["json", "yaml", "yml"], key="export.upload")
with right:
    pasted = st.text_area(_("…or paste a spec"), key="export.paste", height=140,
                          placeholder="name: tiny\ninput_size: 32\nstages:\n  - {width: 16}")  # i18n: not shown (code)
source = None
text = None
if upload is not None:
    source = upload.name
    raw = upload.getvalue()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        st.error(_("{source}: not UTF-8 text — is it a binary file?", source=md(source)), icon=":material/dangerous:")
elif pasted.strip():
    source, text = _("pasted text"), pasted
if text is not None:
    try:
        imported = parse_spec_text(text, source=source)
    except SpecError as e:
        st.error(_("This is not a spec:") + "\n\n" + "\n".join(f"- {md(line)}" for line in e.lines()),
                 icon=":material/dangerous:")
    else:
        outside = state.check_bounds(imported)
        if outside:  # checked before anything is traced: the builder could not show it anyway
            st.error(_("**{name}** from {source} is a spec, but the builder cannot show it: {problems}. The command "
                       "line traces it.", name=md(imported.name), source=md(source), problems=md("; ".join(outside))),
                     icon=":material/dangerous:")
        else:
            it = ui.cached_trace(imported)
            verdict = (_("builds: {n} parameters", n=format(it.total_params, ",")) if it.ok
                       else _("loads, but breaks at {where}", where=it.errors[0].where))
            st.success(_("**{name}** from {source}: {verdict}.", name=md(imported.name), source=md(source),
                         verdict=md(verdict)), icon=":material/check_circle:")
            st.button(_("Load into the builder"), key="export.load", on_click=load, args=(imported,), type="primary")
problems = st.session_state.pop("export.load_problems", None)
if problems:
    st.error(_("The builder cannot show this network: {problems}", problems=md("; ".join(problems))),
             icon=":material/dangerous:")
elif problems == []:
    st.success(_("Loaded into the builder."), icon=":material/check_circle:")
