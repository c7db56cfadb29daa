"""Projector mode: each page laid out for a room (`?present=1`, or the sidebar's switch).

The sidebar is collapsed to a one-line network chip (click it to open the builder), every row of columns
becomes one column, text is larger, charts are redrawn larger (app/charts: `charts.scale()`), tables are
drawn as HTML in a large font with their first column pinned, and the navigation uses short titles so that
every page is one click away at 1024×768. The CSS is here; which parts of a page are "wide" (a chart, a
graph, a table, an image) is decided by what the column holds, so no page needs its own rule.
"""

from __future__ import annotations

import html

import streamlit as st

from resnet_core.i18n import N_, _

KEY = "ui.present"  # session_state: projector mode on/off (the builder's switch has this key)
BUILDER = "ui.builder_open"  # session_state: the builder (sidebar) was opened from the chip
MAX_ROWS = 400  # rows an HTML table draws; beyond them a line says how many more there are

# the navigation's titles in projector mode: short, so that every page fits in the top bar (in Chinese too:
# two characters each, ten pages in one bar at 1024 px)
SHORT_TITLES = {"model": N_("Model"), "": N_("Trace"), "trace": N_("Trace"), "graph": N_("Graph"),
                "compare": N_("Compare"), "export": N_("Share"), "learn": N_("Learn"), "roadmap": "ConvNeXt",
                "live": N_("Live"), "train": N_("Train"), "why": N_("Why"), "classroom": N_("Class")}


def on() -> bool:
    """Whether projector mode is on for this session."""
    try:
        return bool(st.session_state.get(KEY, False))
    except Exception:  # noqa: BLE001 - outside a Streamlit run (a chart made in a test)
        return False


def shorten(pages: list) -> None:
    """In projector mode, give the navigation's pages (st.Page) their short titles. (st.Page has no setter: the
    title is its `_title`; doing it here keeps the entry's list of pages as it is.)"""
    if not on():
        return
    for p in pages:
        short = SHORT_TITLES.get(p.url_path)
        if short:
            p._title = _(short)  # noqa: SLF001


def sidebar_state(presenting: bool) -> str:
    """`initial_sidebar_state` for this run: collapsed in projector mode unless the chip opened the builder.
    (Streamlit applies a changed value: the switch collapses the sidebar at once.)"""
    if not presenting:
        return "expanded"
    return "expanded" if st.session_state.get(BUILDER, False) else "collapsed"


def _toggle_builder() -> None:
    st.session_state[BUILDER] = not st.session_state.get(BUILDER, False)


def _leave() -> None:
    st.session_state[KEY] = False
    st.session_state[BUILDER] = False


def chip(spec, t) -> None:
    """The one-line network chip at the top of every page: the network's name and its key numbers; a click
    opens (or closes) the builder in the sidebar. Beside it, the way out of projector mode."""
    from resnet_core.formatting import fmt_count
    from resnet_core.structure.records import shape_str
    from resnet_core.text import md

    numbers = (_("depth {depth} · {params} parameters · {mult_adds} mult-adds · output {shape}", depth=t.depth,
                 params=fmt_count(t.total_params), mult_adds=fmt_count(t.mult_adds), shape=shape_str(t.output_shape))
               if t.ok else _("breaks: see the trace"))
    name = md(spec.name.replace("[", "(").replace("]", ")"))  # a name from a link is text in a button label
    opened = st.session_state.get(BUILDER, False)
    with st.container(horizontal=True, gap="small", vertical_alignment="center", key="ui-chiprow"):
        st.button(f"**{name}** · {numbers}", key="ui.chip", on_click=_toggle_builder,  # no tooltip over the top bar
                  icon=":material/close:" if opened else ":material/tune:")
        st.button(_("Leave projector mode"), key="ui.present_off", on_click=_leave, icon=":material/fullscreen_exit:",
                  type="tertiary")


# ---- tables ---------------------------------------------------------------------------------------

def table(df, cell, failed=None, height: int | None = None) -> None:
    """`df` as an HTML table in the page's (large) font: the header and the first column stay in place while it
    scrolls, numbers right-aligned, failing rows in red, every cell escaped. At most MAX_ROWS rows are drawn."""
    import numbers
    shown = df.iloc[:MAX_ROWS]
    numeric = [all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in df[c] if v is not None
                   and v == v) for c in df.columns]
    head = "".join(f"<th{' class=num' if n else ''}>{html.escape(str(c))}</th>" for c, n in zip(df.columns, numeric,
                                                                                                 strict=True))
    body = []
    for i, (_index, row) in enumerate(shown.iterrows()):
        cls = ' class="fail"' if failed is not None and bool(failed.iloc[i]) else ""
        cells = "".join(f"<td{' class=num' if n else ''}>{html.escape(cell(v))}</td>" for v, n in zip(row, numeric,
                                                                                                       strict=True))
        body.append(f"<tr{cls}>{cells}</tr>")
    more = ('<p class="rx-table-more">' + html.escape(_(
        "The first {shown} of {n} rows are shown; leave projector mode for the whole table.", shown=format(MAX_ROWS, ","),
        n=format(len(df), ","))) + "</p>" if len(df) > MAX_ROWS else "")
    style = f"max-height:{height}px" if height else "max-height:70vh"  # i18n: not shown (CSS)
    name = html.escape(_("table, scrolls"))
    st.html(f'<div class="rx-table" tabindex="0" role="region" aria-label="{name}" '
            f'style="{style}"><table><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>{more}', width="stretch")


# ---- the CSS ---------------------------------------------------------------------------------------

WIDE = ('.vega-embed, .rx-chart, .rx-graph, .rx-figures, .rx-table, [data-testid="stDataFrame"], '
        '[data-testid="stGraphVizChart"], [data-testid="stImageContainer"]:only-child')

CSS = """
<style>
html { font-size: 20px !important; }
/* the whole width: no sidebar minimum, small side margins */
[data-testid="stMainBlockContainer"] { padding: 3.6rem 1.2rem 4rem !important; max-width: none !important; }
[data-testid="stMain"] h1 { font-size: 2rem !important; padding-top: 0.4rem; }
[data-testid="stMain"] h2 { font-size: 1.55rem !important; }
[data-testid="stMain"] h3 { font-size: 1.3rem !important; }
[data-testid="stMetricValue"] { font-size: 1.9rem !important; }
[data-testid="stCaptionContainer"], [data-testid="stCaptionContainer"] p { font-size: 0.9rem !important; }
/* one column: a row of columns wraps; a column that holds a chart, graph, table or image takes the whole row */
[data-testid="stHorizontalBlock"] { flex-wrap: wrap !important; }
[data-testid="stHorizontalBlock"] > [data-testid="stColumn"] { min-width: min(100%, 12rem) !important; }
[data-testid="stHorizontalBlock"] > [data-testid="stColumn"]:has(WIDE) {
  flex: 1 1 100% !important; min-width: 100% !important; width: 100% !important; }
/* a column of controls left alone on its row (beside a chart that moved under it) lays its controls out in a
   grid, several to a row, rather than stretching each across the screen; its headings and text take a row */
[data-testid="stHorizontalBlock"] > [data-testid="stColumn"]:not(:has(WIDE)) > [data-testid="stVerticalBlock"] {
  flex-direction: row !important; flex-wrap: wrap !important; align-items: flex-end; column-gap: 1rem; }
[data-testid="stColumn"]:not(:has(WIDE)) > [data-testid="stVerticalBlock"] > [data-testid="stElementContainer"] {
  flex: 1 1 14rem !important; min-width: 0; }
[data-testid="stColumn"]:not(:has(WIDE)) > [data-testid="stVerticalBlock"] > :is([data-testid="stElementContainer"],
  [data-testid="stLayoutWrapper"]):has([data-testid="stMarkdown"], [data-testid="stHeading"],
  [data-testid="stCaptionContainer"], [data-testid="stAlert"], [data-testid="stExpander"]) { flex: 1 1 100% !important; }
/* the navigation: short titles, no icons, every page in one row */
[data-testid="stTopNavLink"] > span:has([data-testid="stIconMaterial"]) { display: none; }
[data-testid="stTopNavLink"] { padding-left: 0.5rem !important; padding-right: 0.5rem !important; }
[data-testid="stTopNavLink"] p { font-size: 0.9rem !important; }
/* the network chip */
.st-key-ui-chiprow { flex-wrap: wrap; }
.st-key-ui-chiprow button p { font-size: 0.9rem; text-align: left; }
.st-key-ui-chip button { background: #f3f5f8; border-color: #c9ced6; }
/* a captioned image (the Live lab's input) no taller than a third of the screen; an image without a caption (a
   grid of feature maps) is wide: it takes the page's width, so each tile is large */
[data-testid="stImage"]:has([data-testid="stImageCaption"]) img { max-height: 34vh; width: auto !important;
  max-width: 100%; object-fit: contain; }
/* a fitted graph (Learn's block) as tall as the screen under the top bar: its labels at 16 px at 768 px */
.rx-graph-fit img { max-height: calc(100vh - 4rem) !important; }
/* server-drawn charts: wide enough to read, never taller than the screen */
.rx-chart svg { max-width: min(100%, 1300px); max-height: 85vh; }
/* HTML tables in the page's font */
.rx-table { overflow: auto; border: 1px solid #e3e6ea; border-radius: 6px; }
.rx-table table { border-collapse: separate; border-spacing: 0; font-size: 0.9rem; width: max-content;
  min-width: 100%; }
.rx-table th, .rx-table td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #e3e6ea; white-space: nowrap;
  text-align: left; }
.rx-table th { position: sticky; top: 0; background: #f3f5f8; z-index: 2; }
.rx-table th:first-child, .rx-table td:first-child { position: sticky; left: 0; background: #fff; z-index: 1;
  border-right: 1px solid #e3e6ea; }
.rx-table th:first-child { background: #f3f5f8; z-index: 3; }
.rx-table .num { text-align: right; font-variant-numeric: tabular-nums; }
.rx-table tr.fail td { background: #fde0e0; color: #b00020; font-weight: 600; }
.rx-table tbody tr:last-child td { border-bottom: none; }
</style>
""".replace("WIDE", WIDE)
