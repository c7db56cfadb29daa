"""From ResNet to ConvNeXt: the paper's Figure 2, one step at a time (resnet_core/structure/roadmap.py)."""

import re

import streamlit as st

from app import state, ui
from resnet_core.i18n import N_, _
from resnet_core.structure.roadmap import PAPER, counted, diff
from resnet_core.text import md

# words of the structural diff (resnet_core.structure.roadmap.diff), shown through _()
TERMS = (N_("network"), N_("stem"), N_("head"), N_("as Linear"), N_("max pool"), N_("avg pool"), N_("depthwise"),
         N_("blocks"), N_("out"))


@st.cache_resource(show_spinner=False)
def _steps():
    return counted()  # every step's plan and counts: pure arithmetic, the same for every session (English titles)


def _open(spec) -> None:  # a button callback: it runs before the builder's widgets are drawn
    state.apply_spec_to_widgets(spec, source=spec.name)


def _diff_text(text: str) -> str:
    """A diff's part or entry in this run's language: its words translated, names and numbers as they are."""
    if (m := re.fullmatch(r"stage (\d+)", text)) is not None:
        return _("stage {n}", n=m.group(1))
    for term in TERMS:
        text = re.sub(rf"(?<![\w_]){re.escape(term)}(?![\w_])", _(term), text)
    return text


steps = _steps()
st.title(_("From ResNet to ConvNeXt"))
st.caption(_("Liu et al. (2022) start from a ResNet-50 and change it one published step at a time until it is "
             "ConvNeXt-T ({paper}). Each step below is a network this explorer plans and builds: its parameters "
             "and mult-adds are **computed here**; GFLOPs and ImageNet top-1 are **reported** by the paper "
             "(nothing here was trained on ImageNet).", paper=PAPER))

gaps = [abs(c.gflops_gap) for c in steps]
worst = max(range(len(steps)), key=lambda i: gaps[i])
st.markdown(_("The computed mult-adds go from **{first}** (ResNet-50) to **{last}** (ConvNeXt-T); at every step they "
              "are within **{gap} G** of the paper's GFLOPs (largest gap: {step}).", first=f"{steps[0].mult_adds:,}",
              last=f"{steps[-1].mult_adds:,}", gap=f"{gaps[worst]:.2f}", step=md(_(steps[worst].step.title))))
rows = [{_("Step"): f"{i} · {_(c.step.title)}", _("parameters (computed)"): c.params,
         _("mult-adds, G (computed)"): round(c.mult_adds / 1e9, 3), _("GFLOPs (reported)"): c.step.reported_gflops,
         _("top-1 % (reported)"): c.step.reported_top1} for i, c in enumerate(steps)]
ui.dataframe(rows, key="roadmap.table")

titles = [f"{i} · {c.step.title}" for i, c in enumerate(steps)]  # the options (kept in links): English
choice = st.radio(_("Step"), titles, key="roadmap.step", horizontal=True,
                  format_func=lambda t: f"{titles.index(t)} · {_(steps[titles.index(t)].step.title)}")
i = titles.index(choice)
c = steps[i]
st.subheader(_("Step {i}: {title}", i=i, title=md(_(c.step.title))))
st.markdown(md(_(c.step.idea)))
m = st.columns(4)
m[0].metric(_("Parameters (computed)"), f"{c.params:,}",
            delta=f"{c.params - steps[i - 1].params:+,}" if i else None, delta_color="off")
m[1].metric(_("Mult-adds (computed)"), f"{c.mult_adds / 1e9:.3f} G",
            delta=f"{(c.mult_adds - steps[i - 1].mult_adds) / 1e9:+.3f} G" if i else None, delta_color="off")
m[2].metric(_("GFLOPs (reported)"), f"{c.step.reported_gflops:.1f} G")
m[3].metric(_("ImageNet top-1 (reported)"), f"{c.step.reported_top1:.1f} %",
            delta=_("{d} points", d=f"{c.step.reported_top1 - steps[i - 1].step.reported_top1:+.1f}") if i else None,
            delta_color="off")
gap = c.gflops_gap
if abs(gap) > 0.1:
    st.warning(_("Computed {computed} G differs from the reported {reported} G by {gap} G: {why}",
                 computed=f"{c.mult_adds / 1e9:.2f}", reported=c.step.reported_gflops, gap=f"{gap:+.2f}",
                 why=md(_(c.step.why_flops_differ))), icon=":material/info:")
else:
    st.caption(_("Computed {computed} G against the reported {reported} G: a gap of {gap} G, within 0.1 G (the paper "
                 "gives GFLOPs to 0.1 G).", computed=f"{c.mult_adds / 1e9:.3f}", reported=c.step.reported_gflops,
                 gap=f"{gap:+.3f}"))
st.button(_("Open this step in the builder"), icon=":material/edit:", key=f"roadmap.open.{i}", on_click=_open,
          args=(c.step.spec,), help=_("Loads this step's network into the sidebar: every page then shows it."))

if i:
    st.markdown(_("**What changed from step {i}** ({title})", i=i - 1, title=md(_(steps[i - 1].step.title))))
    changes = diff(steps[i - 1].plan, c.plan)
    table = [{_("where"): _diff_text(ch.where), _("added"): "; ".join(map(_diff_text, ch.added)),
              _("removed"): "; ".join(map(_diff_text, ch.removed)),
              _("changed"): "; ".join(map(_diff_text, ch.changed))} for ch in changes]
    ui.dataframe(table, key=f"roadmap.diff.{i}")
else:
    st.caption(_("The starting point: torchvision's ResNet-50, exactly."))
