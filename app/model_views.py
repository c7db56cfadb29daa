"""The views of a model from code (`resnet-explorer app --model`), shared by the Your model page and by the
Shape trace, Graph and Live lab pages when the visitor explores that model: header, trace table, residual
blocks, graph, forward views, gradient flow. Layout only; the numbers come from resnet_core.modules."""

from __future__ import annotations

import time

import altair as alt
import pandas as pd
import streamlit as st

from app import model_session, state, ui
from resnet_core.text import md

EXPLORE = "model.explore"  # which network the Shape trace, Graph and Live lab pages show
MODEL, BUILDER = "your model (from code)", "the builder's network"


def showing_model() -> bool:
    """Whether the pages show the model from code: only on a server started with --model, and while the
    visitor has not switched to the builder's network (the sidebar's switch)."""
    return model_session.configured() is not None and st.session_state.get(EXPLORE, MODEL) == MODEL


def sidebar() -> None:
    """On a server started with --model: where the model came from, which network the pages show, and the
    builder's closest preset to start from. Nothing otherwise."""
    conf = model_session.configured()
    if conf is None:
        return
    t, _, name, load_error = model_session.traced(conf.source, conf.input_shape)
    with st.sidebar:
        st.markdown(f"**Your model came from code:** {md(conf.source)} · input "
                    f"{'×'.join(map(str, conf.input_shape))}")
        st.segmented_control("Explore", [MODEL, BUILDER], default=MODEL, key=EXPLORE, required=True,
                             help="Shape trace, Graph and Live lab show your model from code, or the network "
                                  "assembled in the builder below.")
        if t is not None and load_error is None:
            preset = model_session.closest_preset(t.total_params, len(t.residual_adds))
            st.caption(f"The builder works on specs: a model from code has none. Its closest preset is **{preset}** "
                       f"({len(t.residual_adds)} residual blocks, {t.total_params:,} parameters in yours).")
            st.button(f"Start the builder from {preset}", key="model.to_preset", width="stretch",
                      on_click=_start_from, args=(preset,))
        st.divider()


def _start_from(preset: str) -> None:  # a callback: it runs before the widgets it sets are drawn
    import resnet_core as rc
    state.apply_spec_to_widgets(rc.get_preset(preset), source=preset)
    st.session_state[EXPLORE] = BUILDER


def loaded():
    """(the configuration, its ModuleTrace, its name); stops the page with one line when the model did not
    load."""
    conf = model_session.configured()
    if conf is None:  # a page registered only with --model, visited on a server without it
        st.info("This server was started without a model from code (`resnet-explorer app --model FILE.py:NAME`).")
        st.stop()
    t, _, name, load_error = model_session.traced(conf.source, conf.input_shape)
    if load_error is not None:
        st.error(f"The model could not be loaded: {md(load_error)}", icon=":material/error:")
        st.stop()
    return conf, t, name


def header(title: str) -> None:
    """The title ("{name}" in it is the model's name), what was traced and how, the notes, and every located
    error."""
    conf, t, name = loaded()
    st.title(title.replace("{name}", md(name)))
    shape = "×".join(map(str, conf.input_shape))
    st.caption(f"Your model from {md(conf.source)} · input {shape} · traced by {t.method} on the meta device "
               f"(nothing allocated) · {t.total_params:,} parameters · {t.buffers:,} buffer elements apart from them · "
               f"{t.mult_adds:,} mult-adds · "
               f"{len(t.residual_adds)} residual additions")
    for note in t.notes:
        st.caption(md(note))
    for e in t.errors:
        st.error(f"**{md(e.where)}** ({md(e.op)}): {md(e.message)}  \n"
                 + " and ".join(f"{md('×'.join(map(str, s[1:])))} from {md(p)}"
                                for s, p in zip(e.shapes, e.produced_by, strict=True))
                 + (f"  \n**Fix:** {md(e.fix)}" if e.fix else ""), icon=":material/error:")


def trace_table(key: str = "model.table") -> None:
    _, t, _ = loaded()
    def shape(s: tuple[int, ...] | None) -> str:  # without the batch dimension, as the preset trace writes it
        return "—" if s is None else "×".join(map(str, s[1:]))

    rows = [{"#": r.index, "path": ("✗ " if r.failed else "") + r.path, "type": r.type,
             "input": " + ".join(shape(s) for s in r.in_shapes), "output": shape(r.out_shape),
             "params": r.params, "mult-adds": r.mult_adds, "element-wise": r.elementwise,
             "memory (KiB)": round(r.act_bytes / 1024, 1), "receptive field": r.rf} for r in t.rows]
    ui.dataframe(rows, key=key)


def residual_blocks(key: str = "model.blocks") -> None:
    _, t, _ = loaded()
    if not t.residual_adds:
        st.info("No residual addition was found: no add in this model takes two tensors that come from one "
                "earlier tensor through different paths." if t.method == "fx" else
                "Traced with forward hooks, which see modules only: additions are not visible.")
        return
    st.caption("Each residual addition found in the model's graph: its block (the module holding it), its input "
               "x, the branch F(x) (the path with the weights) and the shortcut (empty: the identity).")
    ui.dataframe([{"block": b.block or "(top level)", "input x from": b.input, "branch F(x)": len(b.branch),
                   "shortcut": ", ".join(b.shortcut) or "identity", "addition": b.add} for b in t.residual_adds],
                 key=key)


def graph(key: str = "model.graph") -> str:
    """The graph with its controls (detail, the one stage in detail, zoom); returns the DOT drawn."""
    conf, t, _ = loaded()
    from resnet_core.modules.graph import block_stages
    stages = block_stages(t)
    with st.container(horizontal=True, gap="medium", vertical_alignment="bottom", key=f"{key}.controls"):
        detail = st.segmented_control("Detail", ["stage", "block", "layer"], default="block", key=f"{key}.detail",
                                      required=True)
        expand = st.selectbox("Show in detail", [None, *stages], key=f"{key}.expand", width=260,
                              format_func=lambda s: "all stages" if s is None else f"{s or '(top level)'} only",
                              disabled=detail == "stage" or not stages,
                              help="Collapse every other stage of residual blocks to one node.")
        zoom = st.select_slider("Zoom", ui.ZOOMS, key=f"{key}.zoom", value=ui.default_zoom(), width=260,
                                format_func=lambda z: f"{z} %", help="Scroll inside the frame to pan.")
    st.caption("Solid: main path · **blue dashed: skip connections** · orange: projection shortcuts · ⊕: the "
               "addition · labels: tensor shapes")
    dot = model_session.dot(conf.source, conf.input_shape, detail, None if detail == "stage" else expand)
    ui.graph_view(dot, key=key, zoom=zoom / 100)
    return dot


def forward_views() -> None:
    conf, t, _ = loaded()
    from resnet_core.lab import images as lab_images
    conv_layers = [r.path for r in t.rows if r.kind == "module" and r.type.startswith("Conv") and
                   r.out_shape is not None and len(r.out_shape) == 4]
    if len(conf.input_shape) != 3 or not t.ok or t.method != "fx" or not conv_layers:
        st.info("The forward views need an image input (C,H,W), a model whose shapes meet, and torch.fx's graph.")
        return
    c = st.columns(3)
    kinds = (lab_images.list_samples() if conf.input_shape[0] == 3 else []) + ["noise"]
    kind = c[0].selectbox("Input", kinds, key="model.input")
    fseed = c[1].number_input("Noise seed", 0, 2**31 - 1, 0, key="model.fseed", disabled=kind != "noise")
    layer = c[2].selectbox("Feature maps of", conv_layers, index=min(len(conv_layers) - 1, len(conv_layers) // 2),
                           key="model.layer")
    views, x = model_session.forward_views(conf, kind, int(fseed), layer)
    st.caption(f"One forward pass in eval mode on {md(x.source)} (random weights, seed {int(fseed)}): the model's "
               "own graph, its residual additions found as in the Residual blocks table.")
    if views.blocks:
        names = [b.block or "(top level)" for b in views.blocks]
        pick = st.selectbox("Residual block", range(len(names)), format_func=lambda i: names[i], key="model.block")
        b = views.blocks[pick]
        cols = st.columns(4)
        for col, (label, tensor) in zip(cols, (("x", b.x), ("F(x)", b.branch), ("shortcut", b.shortcut),
                                               ("F(x) + shortcut", b.out)), strict=True):
            col.image(model_session.as_picture(tensor), caption=f"{label} · {'×'.join(map(str, tensor.shape))}",
                      width="stretch", alt=f"{label} of {names[pick]}: the channel mean as a grey picture")
        ratios = pd.DataFrame({"block": names, "‖F(x)‖ / ‖shortcut‖": [v.ratio for v in views.blocks],
                               "order": range(len(names))})
        biggest = max(range(len(names)), key=lambda i: views.blocks[i].ratio)
        st.markdown(f"**‖F(x)‖ / ‖shortcut‖** is {b.ratio:.3g} in {md(names[pick])}; across the blocks it runs from "
                    f"{min(v.ratio for v in views.blocks):.3g} to {views.blocks[biggest].ratio:.3g} "
                    f"(in {md(names[biggest])}). Below 1 the block adds a correction to what flows through it; "
                    "above 1 its branch outweighs the shortcut.")
        st.altair_chart(alt.Chart(ratios).mark_bar().encode(
            x=alt.X("block:N", sort=list(names)), y="‖F(x)‖ / ‖shortcut‖:Q", tooltip=list(ratios.columns)),
            width="stretch")
    stats = pd.DataFrame([{"layer": r.path, "depth": i + 1, "std": r.std, "zeros": r.zeros}
                          for i, r in enumerate(views.stats)])
    st.markdown("**Activation spread through the depth** (standard deviation of each layer's output)")
    st.altair_chart(alt.Chart(stats).mark_line(point=True).encode(
        x=alt.X("depth:Q", title="layer (depth)"), y=alt.Y("std:Q", scale=alt.Scale(type="log")),
        tooltip=["layer", "std", "zeros"]), width="stretch")
    st.markdown(f"**Feature maps of {md(layer)}**: the 8 channels with the largest mean activation")
    tops = views.top_channels(layer, 8)
    grid = st.columns(4)
    for i, (channel, fmap) in enumerate(tops):
        grid[i % 4].image(model_session.as_picture(fmap), caption=f"channel {channel}", width="stretch",
                          alt=f"Feature map of channel {channel} of {layer}, dark low and light high")


def gradient_flow() -> None:
    conf, t, _ = loaded()
    job = model_session.current_job()
    busy = job is not None and job.running
    c = st.columns([1, 1, 2, 1])
    batch = c[0].number_input("Batch", 2, 256, 8, key="model.batch", disabled=busy)
    seed = c[1].number_input("Seed", 0, 2**31 - 1, 0, key="model.seed", disabled=busy)
    run = c[2].button("Run forward + backward, with and without skips", type="primary", key="model.run",
                      disabled=busy or not t.ok or not t.residual_adds)
    stop = c[3].button("Stop", key="model.stop", disabled=not busy)
    if stop and job is not None:
        job.stop()
    if run:
        job = model_session.start_flow(conf, int(batch), int(seed))
    if job is not None and job.running:
        st.info(md(job.progress or "starting…"), icon=":material/hourglass_top:")
        time.sleep(0.5)
        st.rerun()
    elif job is not None and job.error:
        st.error(f"The gradient flow stopped: {md(job.error)}", icon=":material/error:")
    elif job is not None and job.result is not None:
        flow = job.result
        rows = flow.rows()
        first = rows[0]
        st.markdown(f"**First layer** ({md(first['layer'])}): ‖∂L/∂W‖ = {first['with_skips']:.3g} with skips, "
                    f"{first['without_skips']:.3g} without — "
                    + ("the gradient that reaches it is larger with the skips."
                       if first["with_skips"] > first["without_skips"] else
                       "here the gradient that reaches it is not larger with the skips; try a deeper model, "
                       "or the same model without batch norm."))
        long = pd.DataFrame([{"depth": r["depth"], "layer": r["layer"], "‖∂L/∂W‖": v, "variant": k}
                             for r in rows for k, v in (("with skips", r["with_skips"]),
                                                        ("without skips", r["without_skips"])) if v and v > 0])
        chart = alt.Chart(long).mark_line(point=True).encode(
            x=alt.X("depth:Q", title="layer (depth)"), y=alt.Y("‖∂L/∂W‖:Q", scale=alt.Scale(type="log")),
            color="variant:N", strokeDash="variant:N", tooltip=["layer", "‖∂L/∂W‖", "variant"])
        st.altair_chart(chart, width="stretch")
        ui.dataframe(rows, key="model.flow_table")
