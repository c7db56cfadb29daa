"""The live lab: run the network for real: feature maps, the residual block's x, F(x), F(x)+x, activation
statistics, predictions; and gradient flow with and without skip connections on the same weights."""

import altair as alt
import pandas as pd
import streamlit as st

import resnet_core as rc
from app import live_session, ui
from resnet_core.device import BusyError, DeviceError, MemoryGuardError, describe, pick_device
from resnet_core.lab import gradients, hooks, images, weights
from resnet_core.structure import spec as rspec
from resnet_core.structure.build import BuildError
from resnet_core.structure.plan import shape_str

spec = ui.current_spec()
t = ui.cached_trace(spec)
device = pick_device("auto")

st.title("Live lab")
st.caption(f"Runs **{spec.name}** for real on **{describe(device)}**. "
           "The network is the one in the builder (sidebar); everything here uses your own copy of it.")
if not t.ok:
    ui.error_panel(t)
    st.info("Fix the network in the builder to run it.", icon=":material/build:")
    st.stop()

forward_tab, backward_tab = st.tabs(["Forward: what the network sees", "Backward: gradient flow with and without skips"],
                                    key="live.tab")

# =============================================================================================
with forward_tab:
    controls, view = st.columns([1, 3])
    with controls:
        st.markdown("**Weights**")
        sources = live_session.weight_sources(spec)
        source = st.selectbox("Weights", list(sources), format_func=sources.get, key="live.weights",
                              label_visibility="collapsed")
        seed = st.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key="live.seed", value=0,
                               help="Random initialisation with the builder's scheme "
                                    f"({spec.init.replace('_', ' ')}); the same seed gives the same weights.")
        upload = None
        if source == "checkpoint":
            upload = st.file_uploader("torchvision-format checkpoint (.pth / .pt)", type=["pth", "pt", "bin"],
                                      key="live.ckpt", help="Loaded with torch.load(weights_only=True); "
                                      "keys and shapes that do not match are listed by name.")
        st.markdown("**Input**")
        inputs = live_session.input_sources(spec, source)
        input_kind = st.selectbox("Input", list(inputs), format_func=inputs.get, key="live.input",
                                  label_visibility="collapsed")
        image_upload, sample, example, noise_seed = None, None, 0, 0
        if input_kind == "sample":
            sample = st.selectbox("Sample image", images.list_samples(), key="live.sample")
        elif input_kind == "upload":
            image_upload = st.file_uploader("Image (PNG, JPEG or WebP)", type=["png", "jpg", "jpeg", "webp"],
                                            key="live.image")
        elif input_kind == "example":
            example = st.number_input("Held-out example", 0, 15, 0, key="live.example")
        elif input_kind == "noise":
            noise_seed = st.number_input("Noise seed", 0, 2**31 - 1, 0, key="live.noise_seed")

    try:
        model, report, trained = live_session.model_for(spec, source, int(seed), upload)
    except MemoryGuardError as e:
        with view:
            st.error(f"This network is too large to run here: {e}", icon=":material/memory:")
        st.stop()
    except (weights.CheckpointError, weights.WeightsUnavailable, ValueError) as e:
        with view:
            st.error(f"These weights could not be used: {e}", icon=":material/dangerous:")
        st.stop()
    try:
        x_in = live_session.input_for(spec, input_kind, sample=sample, upload=image_upload, example=int(example),
                                      noise_seed=int(noise_seed), source=source)
    except images.ImageInputError as e:
        with view:
            st.error(f"This image cannot be used: {e}", icon=":material/dangerous:")
        st.stop()

    with controls:
        st.image(ui.upscale(x_in.display, 160), caption=x_in.source, width=160)
        if report is not None:
            for line in report.lines(6):
                st.caption(line)
        default_mode = "eval" if trained else "train"
        mode = st.segmented_control(
            "Batch norm statistics", ["train", "eval"], default=default_mode, key=f"live.mode.{default_mode}",
            required=True, format_func={"train": "of the batch", "eval": "running"}.get,
            help="Random weights have no running statistics yet, so by default BN normalises with the batch's own "
                 "(train mode); trained weights use their running statistics (eval mode).")

    with view:
        plan = t.plan
        spatial = [lay for lay in plan.layers if lay.out_shape is not None and len(lay.out_shape) == 3]
        c1, c2, c3 = st.columns([3, 2, 1])
        default_layer = next((lay.index for lay in spatial if lay.stage == 0 and lay.op == "add"), spatial[0].index)
        layer_index = c1.selectbox(
            "Feature maps of", [lay.index for lay in spatial], key="live.layer",
            index=[lay.index for lay in spatial].index(default_layer),
            format_func=lambda i: f"{plan.layers[i].name} · {plan.layers[i].type} · {shape_str(plan.layers[i].out_shape)}")
        block_names = [b.name for b in plan.blocks]
        block = c2.selectbox("Residual block", block_names, key="live.block") if block_names else None
        top_k = c3.number_input("Top-k", 1, 64, 16, key="live.topk")
        try:
            fv = live_session.forward(model, x_in.tensor, plan, layer_index, block, int(top_k), mode == "train",
                                      key=(live_session.model_key(spec, source, int(seed), upload),
                                           live_session.input_key(input_kind, sample, image_upload, int(example),
                                                                  int(noise_seed), source)))
        except (MemoryGuardError, BusyError, hooks.ProbeError, DeviceError) as e:
            st.error(str(e), icon=":material/dangerous:")
            st.stop()

        if trained:
            preds = weights.top_predictions(fv.logits, live_session.class_names(spec, source), k=5)
            st.markdown("**Top predictions** — " + " · ".join(
                f"{p.name} **{p.probability:.1%}**" for p in preds))
        fm = fv.feature_maps
        st.subheader(f"Feature maps: {fm.layer} ({fm.shape[0]} channels, {fm.shape[1]}×{fm.shape[2]})")
        grid = fm.grid(cols=min(8, len(fm.channels)))
        st.image(ui.upscale(grid, 480), width="stretch" if grid.shape[1] > 120 else "content")
        st.caption(f"The {len(fm.channels)} channels with the most energy (mean square activation), strongest first: "
                   f"{', '.join(map(str, fm.channels[:16]))}{'…' if len(fm.channels) > 16 else ''}. {fm.scaling}")
        d1, d2 = st.columns(2)
        d1.download_button("⬇ Feature maps (PNG)", ui.png_bytes(grid), f"{fm.layer}_feature_maps.png", "image/png",
                           key="live.dl_fm")
        with st.expander("Channel energies and ranges"):
            st.dataframe(pd.DataFrame(fm.rows()), hide_index=True)

        if fv.anatomy is not None:
            a = fv.anatomy
            st.subheader(f"Inside {a.block}: x, F(x) and F(x) + x")
            shortcut_text = {"identity": "identity (x itself)", "projection": "1×1 projection of x",
                             "pad": "x subsampled and zero-padded (option A)",
                             "none": "none (skip off)"}[a.shortcut]
            m = st.columns(4)
            m[0].metric("‖x‖", f"{a.x.norm:.3g}")
            m[1].metric("‖F(x)‖", f"{a.fx.norm:.3g}")
            m[2].metric("‖F(x)‖ / ‖x‖", "—" if a.ratio is None else f"{a.ratio:.3g}",
                        help="How much the block changes its input: small means the block is close to the identity.")
            m[3].metric("Shortcut", a.shortcut, help=shortcut_text)
            views = a.tensors()
            limit = max(float(abs(v.mean_map).max()) for v in views) or 1.0  # one scale for every panel
            cols = st.columns(len(views))
            for col, v in zip(cols, views):
                col.image(ui.upscale(ui.heatmap(v.mean_map, limit=limit), 200), width="stretch")
                col.markdown(f"**{v.name}** · {shape_str(v.shape)}  \n‖·‖ = {v.sample_norm:.3g}")
            st.caption("Each panel is the mean over channels for this image, on one shared colour scale: blue "
                       "negative, white zero, red positive. With the identity shortcut, F(x)+x is x plus a correction; "
                       "the block's output is that sum after the ReLU (pre-activation blocks have none).")

        stats = [s for s in fv.stats if s.ran and s.std is not None]
        if stats:
            st.subheader("Activations through the depth")
            kinds = {"conv": "conv output", "norm": "norm output", "act": "activation output", "add": "F(x) + x"}
            df = pd.DataFrame([{"depth": s.index, "layer": s.name, "kind": kinds[s.op], "mean": s.mean,
                                "std": s.std, "fraction of zeros": s.zeros} for s in stats if s.op in kinds])
            base = alt.Chart(df).encode(
                x=alt.X("depth:Q", title="layer (plan order)"),
                color=alt.Color("kind:N", legend=alt.Legend(orient="right", title=None)),
                tooltip=["layer", "kind", alt.Tooltip("mean:Q", format=".3g"), alt.Tooltip("std:Q", format=".3g"),
                         alt.Tooltip("fraction of zeros:Q", format=".0%")])
            st.altair_chart(base.mark_line(point=True, strokeWidth=1.5).encode(
                y=alt.Y("std:Q", scale=alt.Scale(type="log"), title="std (log)")
            ).properties(height=280, title="spread of the activations, by kind of layer"), width="stretch")
            st.altair_chart(base.mark_line(point=True, strokeWidth=1.5).encode(
                y=alt.Y("fraction of zeros:Q", axis=alt.Axis(format="%"), title="fraction of zeros")
            ).properties(height=240, title="exact zeros (ReLU outputs that are off)"), width="stretch")
            with st.expander("The numbers"):
                st.dataframe(df, hide_index=True)

# =============================================================================================
with backward_tab:
    st.markdown(
        "One click runs a forward and a backward pass **twice on the same weights and the same batch**: with every "
        "skip connection on, then with them off (the plain net). It plots, layer by layer, the size of the "
        "gradient that reaches each weight and each block's input. Without skips, the gradient reaching the "
        "first layers vanishes (no batch norm) or explodes (with batch norm) as the network gets deeper.")
    depths = {"builder": f"the builder's network ({spec.name})", **{
        n: f"CIFAR {n}" for n in ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110")}}
    c = st.columns([3, 2, 2, 2])
    which = c[0].selectbox("Network (depth)", list(depths), format_func=depths.get, key="live.gf_net",
                           persist_state="session")
    base = spec if which == "builder" else rc.get_preset(which)
    norm = c[1].segmented_control("Batch norm", ["batch", "none"], default=base.norm, key=f"live.gf_norm.{which}",
                                  required=True, format_func={"batch": "on", "none": "off"}.get)
    init = c[2].selectbox("Initialisation", rspec.INITS, index=rspec.INITS.index(base.init),
                          key=f"live.gf_init.{which}", format_func=lambda s: s.replace("_", " "))
    shortcut = c[3].segmented_control("Shortcut option", ["A", "B", "C"],
                                      default=base.shortcut if base.shortcut in "ABC" else "B",
                                      key=f"live.gf_sc.{which}", required=True)
    c2 = st.columns([1, 1, 4])
    batch = c2[0].number_input("Batch", 2, 256, 8, key="live.gf_batch")
    gf_seed = c2[1].number_input("Seed", 0, 2**31 - 1, 0, key="live.gf_seed",
                                 help="The seed of the weights and of the batch of noise images and labels.")
    gf_spec = base.replace(norm=norm, init=init, shortcut=shortcut, name=base.name)
    request = (rspec.spec_key(gf_spec), int(batch), int(gf_seed))
    run = c2[2].button("Run forward + backward, with and without skips", type="primary", key="live.gf_run",
                       icon=":material/play_arrow:")
    if run:
        with st.spinner(f"Two forward + backward passes of {gf_spec.name} on {int(batch)} images…"):
            try:
                flow = gradients.gradient_flow(gf_spec, seed=int(gf_seed), batch=int(batch), device="auto")
                st.session_state["live.gf_result"] = (request, flow)
            except (BuildError, MemoryGuardError, BusyError, hooks.ProbeError, DeviceError) as e:
                st.error(str(e), icon=":material/dangerous:")
    stored = st.session_state.get("live.gf_result")
    if stored is None:
        st.info("Choose the settings and click **Run**. Try CIFAR resnet56 with batch norm off and "
                "PyTorch-default initialisation, then with batch norm on.", icon=":material/touch_app:")
    else:
        req, flow = stored
        if req != request:
            st.caption("The settings changed since this run: click **Run** to update.")
        live_session.show_gradient_flow(flow)
