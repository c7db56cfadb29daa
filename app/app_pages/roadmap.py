"""From ResNet to ConvNeXt: the paper's Figure 2, one step at a time (resnet_core/structure/roadmap.py)."""

import streamlit as st

from app import state, ui
from resnet_core.structure.roadmap import PAPER, counted, diff
from resnet_core.text import md


@st.cache_resource(show_spinner=False)
def _steps():
    return counted()  # every step's plan and counts: pure arithmetic, the same for every session


def _open(spec) -> None:  # a button callback: it runs before the builder's widgets are drawn
    state.apply_spec_to_widgets(spec, source=spec.name)


steps = _steps()
st.title("From ResNet to ConvNeXt")
st.caption(f"Liu et al. (2022) start from a ResNet-50 and change it one published step at a time until it is "
           f"ConvNeXt-T ({PAPER}). Each step below is a network this explorer plans and builds: its parameters "
           "and mult-adds are **computed here**; GFLOPs and ImageNet top-1 are **reported** by the paper "
           "(nothing here was trained on ImageNet).")

gaps = [abs(c.gflops_gap) for c in steps]
worst = max(range(len(steps)), key=lambda i: gaps[i])
st.markdown(f"The computed mult-adds go from **{steps[0].mult_adds:,}** (ResNet-50) to **{steps[-1].mult_adds:,}** "
            f"(ConvNeXt-T); at every step they are within **{gaps[worst]:.2f} G** of the paper's GFLOPs "
            f"(largest gap: {md(steps[worst].step.title)}).")
rows = [{"step": f"{i} · {c.step.title}", "parameters (computed)": c.params,
         "mult-adds, G (computed)": round(c.mult_adds / 1e9, 3), "GFLOPs (reported)": c.step.reported_gflops,
         "top-1 % (reported)": c.step.reported_top1} for i, c in enumerate(steps)]
ui.dataframe(rows, key="roadmap.table")

titles = [f"{i} · {c.step.title}" for i, c in enumerate(steps)]
choice = st.radio("Step", titles, key="roadmap.step", horizontal=True)
i = titles.index(choice)
c = steps[i]
st.subheader(f"Step {i}: {md(c.step.title)}")
st.markdown(md(c.step.idea))
m = st.columns(4)
m[0].metric("Parameters (computed)", f"{c.params:,}",
            delta=f"{c.params - steps[i - 1].params:+,}" if i else None, delta_color="off")
m[1].metric("Mult-adds (computed)", f"{c.mult_adds / 1e9:.3f} G",
            delta=f"{(c.mult_adds - steps[i - 1].mult_adds) / 1e9:+.3f} G" if i else None, delta_color="off")
m[2].metric("GFLOPs (reported)", f"{c.step.reported_gflops:.1f} G")
m[3].metric("ImageNet top-1 (reported)", f"{c.step.reported_top1:.1f} %",
            delta=f"{c.step.reported_top1 - steps[i - 1].step.reported_top1:+.1f} points" if i else None,
            delta_color="off")
gap = c.gflops_gap
if abs(gap) > 0.1:
    st.warning(f"Computed {c.mult_adds / 1e9:.2f} G differs from the reported {c.step.reported_gflops} G by "
               f"{gap:+.2f} G: {md(c.step.why_flops_differ)}", icon=":material/info:")
else:
    st.caption(f"Computed {c.mult_adds / 1e9:.3f} G against the reported {c.step.reported_gflops} G: a gap of "
               f"{gap:+.3f} G, within 0.1 G (the paper gives GFLOPs to 0.1 G).")
st.button("Open this step in the builder", icon=":material/edit:", key=f"roadmap.open.{i}", on_click=_open,
          args=(c.step.spec,), help="Loads this step's network into the sidebar: every page then shows it.")

if i:
    st.markdown(f"**What changed from step {i - 1}** ({md(steps[i - 1].step.title)})")
    changes = diff(steps[i - 1].plan, c.plan)
    table = [{"where": ch.where, "added": "; ".join(ch.added), "removed": "; ".join(ch.removed),
              "changed": "; ".join(ch.changed)} for ch in changes]
    ui.dataframe(table, key=f"roadmap.diff.{i}")
else:
    st.caption("The starting point: torchvision's ResNet-50, exactly.")
