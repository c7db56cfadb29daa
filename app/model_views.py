"""The views of a model from code (`resnet-explorer app --model`), shared by the Your model page and by the
Shape trace, Graph and Live lab pages when the visitor explores that model: header, trace table, residual
blocks, graph, forward views, gradient flow. Layout only; the numbers come from resnet_core.modules."""

from __future__ import annotations

import time

import altair as alt
import pandas as pd
import streamlit as st

from app import model_session, state, ui
from resnet_core.i18n import N_, _
from resnet_core.text import md

EXPLORE = "model.explore"  # which network the Shape trace, Graph and Live lab pages show
MODEL, BUILDER = N_("your model (from code)"), N_("the builder's network")  # option values: shown through _()


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
    t, _factory, name, load_error = model_session.traced(conf.source, conf.input_shape)
    with st.sidebar:
        st.markdown(_("**Your model came from code:** {source} · input {shape}", source=md(conf.source),
                      shape="×".join(map(str, conf.input_shape))))
        st.segmented_control(_("Explore"), [MODEL, BUILDER], default=MODEL, key=EXPLORE, required=True,
                             format_func=ui.labelled({MODEL: MODEL, BUILDER: BUILDER}),
                             help=_("Shape trace, Graph and Live lab show your model from code, or the network "
                                    "assembled in the builder below."))
        if t is not None and load_error is None:
            preset = model_session.closest_preset(t.total_params, len(t.residual_adds))
            st.caption(_("The builder works on specs: a model from code has none. Its closest preset is **{preset}** "
                         "({blocks} residual blocks, {params} parameters in yours).", preset=preset,
                         blocks=len(t.residual_adds), params=format(t.total_params, ",")))
            st.button(_("Start the builder from {preset}", preset=preset), key="model.to_preset", width="stretch",
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
        st.info(_("This server was started without a model from code (`resnet-explorer app --model FILE.py:NAME`)."))
        st.stop()
    t, _factory, name, load_error = model_session.traced(conf.source, conf.input_shape)
    if load_error is not None:
        st.error(_("The model could not be loaded: {error}", error=md(load_error)), icon=":material/error:")
        st.stop()
    return conf, t, name


def header(title: str) -> None:
    """The title ("{name}" in it is the model's name), what was traced and how, the notes, and every located
    error."""
    conf, t, name = loaded()
    st.title(title.replace("{name}", md(name)))
    shape = "×".join(map(str, conf.input_shape))
    st.caption(_("Your model from {source} · input {shape} · traced by {method} on the meta device (nothing "
                 "allocated) · {params} parameters · {buffers} buffer elements apart from them · {mult_adds} "
                 "mult-adds · {adds} residual additions", source=md(conf.source), shape=shape, method=t.method,
                 params=format(t.total_params, ","), buffers=format(t.buffers, ","), mult_adds=format(t.mult_adds, ","),
                 adds=len(t.residual_adds)))
    for note in t.notes:
        st.caption(md(note))
    for e in t.errors:
        st.error(f"**{md(e.where)}** ({md(e.op)}): {md(e.message)}  \n"
                 + _(" and ").join(_("{shape} from {source}", shape=md("×".join(map(str, s[1:]))), source=md(p))
                                   for s, p in zip(e.shapes, e.produced_by, strict=True))
                 + ("  \n" + _("**Fix:** {fix}", fix=md(e.fix)) if e.fix else ""), icon=":material/error:")


def trace_table(key: str = "model.table") -> None:
    _conf, t, _name = loaded()
    def shape(s: tuple[int, ...] | None) -> str:  # without the batch dimension, as the preset trace writes it
        return "—" if s is None else "×".join(map(str, s[1:]))

    rows = [{"#": r.index, N_("path"): ("✗ " if r.failed else "") + r.path, N_("type"): r.type,
             N_("input"): " + ".join(shape(s) for s in r.in_shapes), N_("output"): shape(r.out_shape),
             N_("params"): r.params, N_("mult-adds"): r.mult_adds, N_("element-wise"): r.elementwise,
             N_("memory (KiB)"): round(r.act_bytes / 1024, 1), N_("receptive field"): r.rf} for r in t.rows]
    ui.dataframe(rows, key=key)


def residual_blocks(key: str = "model.blocks") -> None:
    _conf, t, _name = loaded()
    if not t.residual_adds:
        st.info(_("No residual addition was found: no add in this model takes two tensors that come from one "
                  "earlier tensor through different paths.") if t.method == "fx" else
                _("Traced with forward hooks, which see modules only: additions are not visible."))
        return
    st.caption(_("Each residual addition found in the model's graph: its block (the module holding it), its input "
                 "x, the branch F(x) (the path with the weights) and the shortcut (empty: the identity)."))
    ui.dataframe([{N_("block"): b.block or _("(top level)"), N_("input x from"): b.input,
                   N_("branch F(x)"): len(b.branch), N_("shortcut"): ", ".join(b.shortcut) or _("identity"),
                   N_("addition"): b.add} for b in t.residual_adds], key=key)


def graph(key: str = "model.graph") -> str:
    """The graph with its controls (detail, the one stage in detail, zoom); returns the DOT drawn."""
    conf, t, _name = loaded()
    from resnet_core.modules.graph import block_stages
    stages = block_stages(t)
    with st.container(horizontal=True, gap="medium", vertical_alignment="bottom", key=f"{key}.controls"):
        detail = st.segmented_control(_("Detail"), ["stage", "block", "layer"], default="block", key=f"{key}.detail",
                                      required=True, format_func=ui.depth_labels())
        expand = st.selectbox(_("Show in detail"), [None, *stages], key=f"{key}.expand", width=260,
                              format_func=ui.labelled({None: _("all stages")} | {
                                  s: _("{stage} only", stage=s or _("(top level)")) for s in stages}),
                              disabled=detail == "stage" or not stages,
                              help=_("Collapse every other stage of residual blocks to one node."))
        zoom = st.select_slider(_("Zoom"), ui.ZOOMS, key=f"{key}.zoom", value=ui.default_zoom(), width=260,
                                format_func=lambda z: f"{z} %", help=_("Scroll inside the frame to pan."))
    st.caption(_("Solid: main path · **blue dashed: skip connections** · orange: projection shortcuts · ⊕: the "
                 "addition · labels: tensor shapes"))
    dot = model_session.dot(conf.source, conf.input_shape, detail, None if detail == "stage" else expand)
    ui.graph_view(dot, key=key, zoom=zoom / 100)
    return dot


def forward_views() -> None:
    conf, t, _name = loaded()
    from resnet_core.lab import images as lab_images
    conv_layers = [r.path for r in t.rows if r.kind == "module" and r.type.startswith("Conv") and
                   r.out_shape is not None and len(r.out_shape) == 4]
    if len(conf.input_shape) != 3 or not t.ok or t.method != "fx" or not conv_layers:
        st.info(_("The forward views need an image input (C,H,W), a model whose shapes meet, and torch.fx's graph."))
        return
    c = st.columns(3)
    kinds = (lab_images.list_samples() if conf.input_shape[0] == 3 else []) + ["noise"]
    kind = c[0].selectbox(_("Input"), kinds, key="model.input", format_func=ui.labelled({"noise": N_("noise")}))
    fseed = c[1].number_input(_("Noise seed"), 0, 2**31 - 1, 0, key="model.fseed", disabled=kind != "noise")
    layer = c[2].selectbox(_("Feature maps of"), conv_layers, index=min(len(conv_layers) - 1, len(conv_layers) // 2),
                           key="model.layer")
    views, x = model_session.forward_views(conf, kind, int(fseed), layer)
    st.caption(_("One forward pass in eval mode on {source} (random weights, seed {seed}): the model's own graph, its "
                 "residual additions found as in the Residual blocks table.", source=md(x.source), seed=int(fseed)))
    if views.blocks:
        names = [b.block or _("(top level)") for b in views.blocks]
        pick = st.selectbox(_("Residual block"), range(len(names)), format_func=lambda i: names[i], key="model.block")
        b = views.blocks[pick]
        cols = st.columns(4)
        shortcut = _("shortcut")
        for col, (label, tensor) in zip(cols, (("x", b.x), ("F(x)", b.branch), (shortcut, b.shortcut),
                                               (f"F(x) + {shortcut}", b.out)), strict=True):
            col.image(model_session.as_picture(tensor), caption=f"{label} · {'×'.join(map(str, tensor.shape))}",
                      width="stretch", alt=_("{label} of {block}: the channel mean as a grey picture", label=label,
                                             block=names[pick]))
        ratio = f"‖F(x)‖ / ‖{shortcut}‖"
        ratios = pd.DataFrame({"block": names, "ratio": [v.ratio for v in views.blocks], "order": range(len(names))})
        biggest = max(range(len(names)), key=lambda i: views.blocks[i].ratio)
        st.markdown(_("**‖F(x)‖ / ‖shortcut‖** is {ratio} in {block}; across the blocks it runs from {low} to {high} "
                      "(in {biggest}). Below 1 the block adds a correction to what flows through it; above 1 its "
                      "branch outweighs the shortcut.", ratio=format(b.ratio, ".3g"), block=md(names[pick]),
                      low=format(min(v.ratio for v in views.blocks), ".3g"), high=format(views.blocks[biggest].ratio, ".3g"),
                      biggest=md(names[biggest])))
        st.altair_chart(alt.Chart(ratios).mark_bar().encode(
            x=alt.X("block:N", sort=list(names), title=_("block")), y=alt.Y("ratio:Q", title=ratio),
            tooltip=[alt.Tooltip("block:N", title=_("block")), alt.Tooltip("ratio:Q", title=ratio)]),
            width="stretch")
    stats = pd.DataFrame([{"layer": r.path, "depth": i + 1, "std": r.std, "zeros": r.zeros}
                          for i, r in enumerate(views.stats)])
    st.markdown(_("**Activation spread through the depth** (standard deviation of each layer's output)"))
    st.altair_chart(alt.Chart(stats).mark_line(point=True).encode(
        x=alt.X("depth:Q", title=_("layer (depth)")), y=alt.Y("std:Q", title=_("std"), scale=alt.Scale(type="log")),
        tooltip=[alt.Tooltip("layer", title=_("layer")), alt.Tooltip("std", title=_("std")),
                 alt.Tooltip("zeros", title=_("zeros"))]), width="stretch")
    st.markdown(_("**Feature maps of {layer}**: the 8 channels with the largest mean activation", layer=md(layer)))
    tops = views.top_channels(layer, 8)
    grid = st.columns(4)
    for i, (channel, fmap) in enumerate(tops):
        grid[i % 4].image(model_session.as_picture(fmap), caption=_("channel {n}", n=channel), width="stretch",
                          alt=_("Feature map of channel {n} of {layer}, dark low and light high", n=channel,
                                layer=layer))


def gradient_flow() -> None:
    conf, t, _name = loaded()
    job = model_session.current_job()
    busy = job is not None and job.running
    c = st.columns([1, 1, 2, 1])
    batch = c[0].number_input(_("Batch"), 2, 256, 8, key="model.batch", disabled=busy)
    seed = c[1].number_input(_("Seed"), 0, 2**31 - 1, 0, key="model.seed", disabled=busy)
    run = c[2].button(_("Run forward + backward, with and without skips"), type="primary", key="model.run",
                      disabled=busy or not t.ok or not t.residual_adds)
    stop = c[3].button(_("Stop"), key="model.stop", disabled=not busy)
    if stop and job is not None:
        job.stop()
    if run:
        job = model_session.start_flow(conf, int(batch), int(seed))
    if job is not None and job.running:
        st.info(md(_(job.progress) if job.progress else _("starting…")), icon=":material/hourglass_top:")
        time.sleep(0.5)
        st.rerun()
    elif job is not None and job.error:
        st.error(_("The gradient flow stopped: {error}", error=md(job.error)), icon=":material/error:")
    elif job is not None and job.result is not None:
        flow = job.result
        rows = flow.rows()
        first = rows[0]
        st.markdown(_("**First layer** ({layer}): ‖∂L/∂W‖ = {with_skips} with skips, {without_skips} without — ",
                      layer=md(first["layer"]), with_skips=format(first['with_skips'], ".3g"),
                      without_skips=format(first['without_skips'], ".3g"))
                    + (_("the gradient that reaches it is larger with the skips.")
                       if first["with_skips"] > first["without_skips"] else
                       _("here the gradient that reaches it is not larger with the skips; try a deeper model, "
                         "or the same model without batch norm.")))
        variants = {"with_skips": _("with skips"), "without_skips": _("without skips")}
        long = pd.DataFrame([{"depth": r["depth"], "layer": r["layer"], "grad": r[k], "variant": name}
                             for r in rows for k, name in variants.items() if r[k] and r[k] > 0])
        chart = alt.Chart(long).mark_line(point=True).encode(
            x=alt.X("depth:Q", title=_("layer (depth)")),
            y=alt.Y("grad:Q", title="‖∂L/∂W‖", scale=alt.Scale(type="log")),
            color=alt.Color("variant:N", title=_("variant")), strokeDash=alt.StrokeDash("variant:N", title=_("variant")),
            tooltip=[alt.Tooltip("layer", title=_("layer")), alt.Tooltip("grad", title="‖∂L/∂W‖"),
                     alt.Tooltip("variant", title=_("variant"))])
        st.altair_chart(chart, width="stretch")
        ui.dataframe(rows, key="model.flow_table")
