"""Shared pieces of the pages: cached library results and the panels every view uses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from app import projector
from resnet_core import i18n
from resnet_core.formatting import fmt_bytes, fmt_count
from resnet_core.i18n import N_, _
from resnet_core.structure.graph import RenderUnavailable, render, to_dot
from resnet_core.structure.records import shape_str
from resnet_core.structure.report import CSV_COLUMNS, depth_text, problem_sides, to_csv
from resnet_core.structure.spec import ArchSpec, spec_key
from resnet_core.structure.trace import Trace, trace
from resnet_core.text import md


@st.cache_resource(max_entries=32, show_spinner=False)  # a trace at the planner's limits is ~20 MB
def _trace(key: str, lang: str, _spec: ArchSpec) -> Trace:  # `lang`: its errors are in the run's language
    return trace(_spec)


def cached_trace(spec: ArchSpec) -> Trace:
    """The trace of `spec`, shared read-only between reruns and sessions (it is never mutated); one per language
    (its located errors are sentences in the language of the run that traced it)."""
    return _trace(spec_key(spec), i18n.language(), spec)


@st.cache_resource(max_entries=32, show_spinner=False)
def _dot(key: str, detail: str, expand: int | None, lang: str, _spec: ArchSpec) -> str:
    return to_dot(cached_trace(_spec).plan, detail, expand)


def cached_dot(spec: ArchSpec, detail: str, expand: int | None) -> str:
    """The DOT of `spec`'s graph; one per language (its labels and legend are words)."""
    return _dot(spec_key(spec), detail, expand, i18n.language(), spec)


DEPTH_NAMES = {"stage": N_("stage"), "block": N_("block"), "layer": N_("layer")}  # the tables' and graphs' detail


def labelled(labels: dict, other=str):
    """A widget's `format_func`: an option's label (`labels[value]`, marked with N_) in this run's language; an option
    without one through `other`. The labels are translated now, while the run's language is set: a format_func is
    also called outside the run (Streamlit's AppTest calls it in the test's thread)."""
    shown = {value: _(text) for value, text in labels.items()}
    return lambda value: shown[value] if value in shown else other(value)


def depth_labels():
    """`format_func` of a detail choice ("stage", "block", "layer")."""
    return labelled(DEPTH_NAMES)


def current_spec() -> ArchSpec:
    return st.session_state["spec"]


def error_panel(t: Trace) -> None:
    """The located error, prominent: where, the two shapes (F(x) first, the shortcut second), the fix."""
    failed = t.plan.failed_layer
    for e in t.errors:
        lines = [_("**The network breaks at {where}.** {message}.", where=md(e.where),  # values from links: text
                   message=md(e.message))]
        sides = problem_sides(e)
        if sides:
            lines.append(_("Shapes: {sides}.", sides=sides))
        lines.append(_("**Fix:** {fix}.", fix=md(e.fix)))
        if failed is not None:
            lines.append(_("The trace and graph show the network up to the failing layer, `{layer}`, marked in red.",
                           layer=failed.label))
        elif t.layers:
            lines.append(_("The trace and graph show the network up to {where}, where planning stops (the last row "
                           "of the table, in red).", where=md(e.where)))
        st.error("\n\n".join(lines), icon=":material/dangerous:")
    for w in t.warnings:
        st.warning(md(w), icon=":material/warning:")


def network_caption(t: Trace) -> str:
    """Input → output, the paper's depth, and the options that change the lesson, in one line."""
    spec = t.spec
    out = _("output {shape}", shape=shape_str(t.output_shape)) if t.ok else _("breaks before the output")
    shortcut = (_("shortcut option {option}", option=spec.shortcut) if spec.skip
                else _("shortcut option not in use (no skips)"))
    on, off = _("on"), _("off")
    return _("Input {input} → {output} · depth {depth} · skip connections {skips} · {shortcut} · batch norm {norm}",
             input=shape_str(t.input_shape), output=out, depth=depth_text(t), skips=on if spec.skip else off,
             shortcut=shortcut, norm=on if spec.norm == "batch" else off)


def metrics(t: Trace) -> None:
    """The headline numbers. Each metric is as wide as its content and the row wraps, so nothing is cut."""
    def label(text: str) -> str:
        return text if t.ok else _("{label} (partial)", label=text)

    if not t.ok:
        st.caption(_("Partial totals: they count the layers planned before the failure."))
    with st.container(horizontal=True, gap="medium", key="ui.metrics"):
        st.metric(label(_("Depth")), f"{t.depth}", width="content",
                  help=_("weight layers on the main path, as He et al. count them (convolutions and the FC; "
                         "shortcut projections not counted); {n} layers planned in all", n=t.layers_planned))
        st.metric(label(_("Parameters")), fmt_count(t.total_params), width="content",
                  help=_("{n} parameters", n=format(t.total_params, ",")))
        st.metric(label(_("Mult-adds")), fmt_count(t.mult_adds), width="content",
                  help=_("{n} per image (torchinfo's rule)", n=format(t.mult_adds, ",")))
        st.metric(_("Output"), shape_str(t.output_shape) if t.ok else _("breaks"), width="content",
                  help=_("for an input of {shape}", shape=shape_str(t.input_shape)))
        st.metric(label(_("Activations")), fmt_bytes(t.activation_bytes), width="content",
                  help=_("all layer outputs for one image at float32: what a forward pass keeps for backward"))
        st.metric(label(_("Receptive field")), f"{t.receptive_field} px" if t.receptive_field else "—",
                  width="content", help=_("input pixels one unit of the last feature map sees"))


FAIL_STYLE = "background-color: #fde0e0; color: #b00020; font-weight: 600"


ROW = 35  # px a table's row (and header) is tall: given to st.dataframe, so that `table_height` is exact (the grid's
# own row height follows the theme's font, 33–34 px at 15 px: a height counted at 35 left an empty row under the last)


def table_height(n_rows: int, cap: int = 600) -> int:
    return min(ROW * (n_rows + 1) + 3, cap)


def failed_rows(df: pd.DataFrame) -> pd.Series:
    """Which rows mark a failure: a "✗" in any text column."""
    marks = pd.Series(False, index=df.index)
    for c in df.columns:
        if df[c].dtype == object:
            marks |= df[c].astype(str).str.startswith("✗")
    return marks


def dataframe(rows: list[dict] | pd.DataFrame, height: int | str | None = None, key: str | None = None) -> None:
    """A table of library rows, formatted the same way on valid and broken networks: numbers with thousands
    separators and at most three decimals, no trailing zeros (the browser's "localized" format, and `_cell` for
    a styled table), a blank as "—"; a failing row ("✗") in red. Only a table with a failing row is styled:
    a pandas Styler costs ~2 s on ResNet-1202's 4,208 layers.

    The first column (what the row is: a layer, a stage, a channel) is pinned, so it stays in view when the
    table scrolls sideways on a narrow screen; a short table is exactly as tall as its rows (no empty row under
    them: its rows are ROW px tall). In projector mode the table is HTML in the page's large font (app/projector.py)."""
    df = pd.DataFrame(rows, dtype=object) if not isinstance(rows, pd.DataFrame) else rows.astype(object)
    df = translated_headers(df)
    for c in df.columns:  # a column with blanks is shown as text, "—" for a blank (st.dataframe prints "None")
        if df[c].isna().any():
            df[c] = df[c].map(_cell)
    failed = failed_rows(df)
    if presenting():
        projector.table(df, _cell, failed, height if isinstance(height, int) else None)
        return
    h = table_height(len(df)) if height is None else height
    pin = {df.columns[0]: st.column_config.Column(pinned=True)} if len(df.columns) > 1 else {}
    if failed.any():
        styler = df.style.format(_cell).apply(
            lambda row: [FAIL_STYLE if failed[row.name] else "" for _cell_value in row], axis=1)
        st.dataframe(styler, hide_index=True, key=key, height=h, column_config=pin, row_height=ROW)
        return
    df = df.infer_objects()
    config = {c: st.column_config.NumberColumn(c, format="localized", pinned=c in pin or None) for c in df.columns
              if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])}
    st.dataframe(df, hide_index=True, column_config=pin | config, key=key, height=h, row_height=ROW)


def translated_headers(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with its column names in the run's language: a library table's headers are marked there (N_) and
    translated here, where they are shown; a name no catalogue has stays as it is."""
    names = [_(c) if isinstance(c, str) else c for c in df.columns]
    if names == list(df.columns) or len(set(names)) != len(names):
        return df
    return df.set_axis(names, axis=1)


def _cell(v) -> str:
    """One cell as the browser's "localized" number format shows it: 10,192 · 784 · 10.5 · "—" for a blank."""
    import numbers
    if v is None or (isinstance(v, float) and v != v):
        return "—"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, numbers.Integral):
        return format(int(v), ",")
    if isinstance(v, numbers.Real):
        return f"{float(v):,.3f}".rstrip("0").rstrip(".")
    return str(v)


# ---- the graph, drawn on the server when Graphviz is installed ------------------------------------

@st.cache_data(max_entries=64, show_spinner=False)
def _svg(dot: str) -> str | None:
    try:
        svg = render(dot, "svg").decode("utf-8")
    except RenderUnavailable:
        return None
    return svg[svg.index("<svg"):]  # no XML prolog or doctype inside the page


def graph_view(dot: str, key: str, zoom: float = 1.0, max_height: str = "78vh", fit: bool = False) -> None:
    """Draw `dot`. With Graphviz's `dot` installed the SVG is made here and shown whole, as an image in a
    scrollable frame (zoom scales it, the scrollbars pan it): every change of the DOT is a fresh, complete
    drawing, so no node can lose its box.

    Without `dot` it falls back to st.graphviz_chart, whose browser-side redraw (d3-graphviz) joins the new
    drawing to the old one by node id ("n7"), and when a node's shape changes kind (a ⊕ circle where a box
    was) keeps only the label: the ids are made unique per DOT there, so that nothing is joined.

    `fit`: the drawing is shown whole, never wider than its column nor taller than the screen (a small
    diagram such as Learn's block), scaled down (keeping its shape) rather than cut."""
    svg = _svg(dot)
    if svg is None:
        import hashlib
        import re
        tag = hashlib.sha1(dot.encode()).hexdigest()[:8]
        st.graphviz_chart(re.sub(r"(?m)(^\s*|-> )n(\d+)\b", rf"\g<1>g{tag}_\2", dot), width="content")
        return
    import base64
    import re
    size = re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg)
    width = f"{float(size.group(1)) * zoom:.0f}pt" if size else f"{zoom * 100:.0f}%"
    data = base64.b64encode(svg.encode()).decode()
    fitted = "object-fit:contain;object-position:left top" if fit else "max-width:none"  # i18n: not shown (CSS)
    frame = "" if fit else f"overflow:auto;max-height:{max_height};"  # i18n: not shown (CSS); nothing to scroll
    import html
    alt = html.escape(graph_alt(dot), quote=True)
    # the frame scrolls: it takes the keyboard's focus (tab, then the arrow keys pan it) and names what it holds
    focus = '' if fit else f' tabindex="0" role="region" aria-label="{alt}"'
    st.html(f'<div class="rx-graph{" rx-graph-fit" if fit else ""}"{focus} style="{frame}'
            f'border:1px solid #e3e6ea;border-radius:6px;padding:6px;background:#fff"><img alt="{alt}" '
            f'src="data:image/svg+xml;base64,{data}" style="width:{width};height:auto;{fitted}"></div>',
            width="stretch")


def graph_alt(dot: str) -> str:
    """The text alternative of a drawn graph, read off its DOT: what it is, how many boxes, additions and skip
    connections it draws (the layer-by-layer numbers are in the Shape trace's table)."""
    import re
    name = re.match(r'\s*digraph\s+"?([^"{]*?)"?\s*\{', dot)
    nodes = len(re.findall(r'(?m)^\s*\w+ \[label=', dot))
    adds = len(re.findall(r'label="(?:\+|⊕)"', dot))
    return _("Computation graph of {name}: {nodes} boxes from input to output and {adds} residual additions, each "
             "fed by a skip connection drawn dashed. The Shape trace page lists every layer with its shapes.",
             name=name.group(1).strip() if name else _("the network"), nodes=nodes, adds=adds)


def file_stem(spec: ArchSpec) -> str:
    """A safe file name for downloads of `spec`: 'resnet18 (edited)' → 'resnet18-edited'."""
    import re
    stem = re.sub(r"[^A-Za-z0-9._]+", "-", spec.name).strip("-.")
    return stem[:80] or "network"


# ---- files made on demand (download buttons call these only when clicked) -----------------------

# the trace CSV's columns as a spreadsheet shows them: the library's names in English, translated in Chinese
CSV_HEADERS = {c: c for c in CSV_COLUMNS} | {
    "index": N_("index"), "name": N_("name"), "module": N_("module"), "type": N_("type"), "stage": N_("stage"),
    "block": N_("block"), "part": N_("part"), "input_shape": N_("input_shape"), "output_shape": N_("output_shape"),
    "shortcut_shape": N_("shortcut_shape"), "kernel": N_("kernel"), "stride": N_("stride"),
    "padding": N_("padding"), "groups": N_("groups"), "params": N_("params"), "mult_adds": N_("mult_adds"),
    "elementwise": N_("elementwise"), "receptive_field": N_("receptive_field"),
    "effective_stride": N_("effective_stride"), "activation_bytes": N_("activation_bytes"), "failed": N_("failed")}


def trace_csv(t: Trace, lang: str) -> str:
    """The trace as CSV, its header row in `lang` (the rows are numbers, shapes and layer names: as they are).
    English is the library's CSV byte for byte (the command line's)."""
    import csv
    import io
    with i18n.use(lang):  # a download is made on its click, outside the page's run: the language is passed in
        text = to_csv(t)
        if lang == i18n.DEFAULT:
            return text
        first, _newline, rest = text.partition("\n")
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow([_(CSV_HEADERS.get(c, c)) for c in first.split(",")])
        return buf.getvalue() + rest


def graph_image(dot: str, fmt: str):
    """A deferred SVG/PNG of `dot` for st.download_button: `dot` runs only on a click, never per rerun."""
    def make() -> bytes:
        try:
            return render(dot, fmt)
        except RenderUnavailable as e:  # installed but failing: the file says why instead of being empty
            return render_message(str(e), fmt)
    return make


def render_message(text: str, fmt: str) -> bytes:
    if fmt == "svg":
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="900" height="40"><text y="24">{text}</text></svg>'.encode()
    from PIL import Image, ImageDraw
    img = Image.new("RGB", (900, 40), "white")
    ImageDraw.Draw(img).text((8, 12), text, fill="black")
    return png_bytes(np.asarray(img))


# ---- images for display ------------------------------------------------------------------------

_DIVERGING = np.array([[33, 102, 172], [146, 197, 222], [247, 247, 247], [244, 165, 130], [178, 24, 43]], float)


def upscale(img: np.ndarray, target: int = 200) -> np.ndarray:
    """Nearest-neighbour enlargement so small maps stay crisp on a projector (no browser blur)."""
    h = img.shape[0]
    s = max(1, target // max(h, 1))
    return img.repeat(s, axis=0).repeat(s, axis=1) if s > 1 else img


def heatmap(a: np.ndarray, limit: float | None = None) -> np.ndarray:
    """(H, W) values → (H, W, 3) uint8 on a blue–white–red scale centred on 0, ±`limit` at the ends."""
    a = np.nan_to_num(np.asarray(a, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    m = limit if limit else float(np.abs(a).max()) or 1.0
    t = np.clip((a / m + 1) / 2, 0, 1) * (len(_DIVERGING) - 1)
    i = np.minimum(t.astype(int), len(_DIVERGING) - 2)
    f = (t - i)[..., None]
    return (_DIVERGING[i] * (1 - f) + _DIVERGING[i + 1] * f).astype(np.uint8)


def png_bytes(img: np.ndarray) -> bytes:
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def figure_row(figures: list[tuple[np.ndarray, str, str]], alt: str) -> None:
    """Small images side by side, each with a two-line caption (bold title, then detail), as ONE element.

    Each image goes inline, at its own resolution, as a PNG data URI that the browser enlarges without
    blur (`image-rendering: pixelated`): no media file to register, fetch and lay out per image (a Live lab
    view had seven), and one delta instead of a row of columns, images and captions. Titles and details
    are escaped: only this function's tags reach the page."""
    import base64
    import html
    cells = []
    for img, title, detail in figures:
        data = base64.b64encode(png_bytes(img)).decode()
        cells.append(
            f'<figure style="flex:1 1 0;min-width:0;margin:0"><img alt="{html.escape(alt)}: {html.escape(title)}" '
            f'src="data:image/png;base64,{data}" style="width:100%;height:auto;image-rendering:pixelated;'
            f'display:block"><figcaption style="margin-top:0.35rem;line-height:1.4"><b>{html.escape(title)}</b>'
            f"<br>{html.escape(detail)}</figcaption></figure>")
    st.html(f'<div class="rx-figures" style="display:flex;gap:1rem;align-items:flex-start">{"".join(cells)}</div>',
            width="stretch")


def svg_chart(chart, key: str) -> None:
    """A chart drawn on the server (app/charts/svg.py) as one element: its markup inline, nothing for the
    browser to compile. `key` names the element's class (rx-chart-<key>) for the tests. Markdown, not
    st.html: st.html's sanitiser removes SVG; the markup is this app's own, every text in it escaped."""
    from app.charts import svg
    # in projector mode the chart has the page's width (one column): its text is drawn larger with it (CSS caps
    # the width at 1300 px: 14 px text shows at 19–27 px on a 1024- to 1920-px screen)
    markup = svg.render(chart)
    st.markdown(f'<div class="rx-chart rx-chart-{key}">{markup}</div>', unsafe_allow_html=True)


# ---- readable from the back of the room ----------------------------------------------------------

ZOOMS = [50, 75, 100, 125, 150, 200, 300]


def presenting() -> bool:
    """Whether projector mode is on (app/projector.py)."""
    return projector.on()


def default_zoom() -> int:
    return 150 if presenting() else 100


_STYLE = """
<style>
/* WCAG AA contrast: captions and help text at 4.5:1 or more on white and on the sidebar's grey (Streamlit's faded
   caption grey measured 4.25-4.37:1); a visible focus ring on everything the keyboard reaches */
[data-testid="stCaptionContainer"], [data-testid="stCaptionContainer"] p,
[data-testid="stWidgetLabel"] [data-testid="stCaptionContainer"] { color: #4a4f57 !important; opacity: 1 !important; }
:focus-visible { outline: 3px solid #0072B2 !important; outline-offset: 2px; }
/* quotations (the papers' claims) and their links: dark enough to read (the theme's faded grey is 4.37:1) */
blockquote, blockquote p, blockquote strong { color: #3d4249 !important; opacity: 1 !important; }
blockquote a { color: #0b5394 !important; }
/* headline metrics and their labels wrap instead of being cut to "11.6…" */
[data-testid="stMetricValue"] > div, [data-testid="stMetricLabel"] p { white-space: normal !important;
  overflow: visible !important; text-overflow: clip !important; }
[data-testid="stMetricValue"] { font-size: clamp(1.6rem, 2.5vw, 2.25rem); }
.st-key-ui-metrics [data-testid="stMetric"] { padding-right: 0.75rem; }
/* buttons wrap their label between words rather than ending it in "…" */
[data-testid="stBaseButton-secondary"] p, [data-testid="stBaseButton-primary"] p { white-space: normal;
  word-break: normal; overflow-wrap: normal; }
/* segmented controls wrap their options onto a second line instead of hiding the last behind a scroll */
[data-testid="stButtonGroup"] > div { flex-wrap: wrap; overflow-x: visible; }
/* less empty space above the title: more of each page fits on a projector */
[data-testid="stMainBlockContainer"] { padding-top: 3.5rem; }
/* on a narrow screen (a 1024×768 projector beside the sidebar): small side margins, and the navigation's
   titles without their icons, so that every page is in the top bar (no "N more") */
@media (max-width: 1400px) {
  [data-testid="stMainBlockContainer"] { padding-left: 1.5rem; padding-right: 1.5rem; }
  [data-testid="stTopNavLink"] > span:has([data-testid="stIconMaterial"]) { display: none; }
  [data-testid="stTopNavLink"] { padding-left: 0.45rem !important; padding-right: 0.45rem !important; }
  [data-testid="stTopNavLink"] p { font-size: 0.92rem !important; }
}
/* wide formulas scroll inside their box instead of being clipped */
[data-testid="stMarkdownContainer"] .katex-display { overflow-x: auto; overflow-y: hidden; padding: 2px 0; }
/* a server-drawn graph shown whole (Learn's block): as large as it is, no larger than its column or the screen */
.rx-graph-fit img { max-width: 100% !important; max-height: 75vh; }
/* the placeholder of a page being drawn stays still: its pulse redrew the whole window sixty times a
   second while the page waited (in software on a machine without a GPU; benchmarks/RESULTS.md) */
[data-testid="stSkeleton"] { animation: none !important; }
</style>
"""


def apply_style() -> None:
    """The house CSS on every page; projector mode's on top of it."""
    st.html(_STYLE + (projector.CSS if presenting() else ""))
