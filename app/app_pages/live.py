"""The live lab: run the network for real: feature maps, the residual block's x, F(x), F(x)+x and the
branch's share through the depth, activation statistics, predictions; and gradient flow with and without
skip connections on the same weights. One forward pass feeds every forward view (changing the layer,
the block or top-k runs nothing); the gradient flow runs in the background with progress and a Stop."""

import json
import re

import pandas as pd
import streamlit as st

import resnet_core as rc
from app import classroom_session, delivery, handoff, lang, live_session, model_views, ui
from app.charts import live as charts
from resnet_core.device import (
    BusyError,
    DeviceError,
    MemoryGuardError,
    OutOfMemoryError,
    WorkLimitError,
    describe,
    pick_device,
)
from resnet_core.i18n import N_, _, ngettext
from resnet_core.lab import ProbeError, gradients, images, weights
from resnet_core.lab import views as lab_views
from resnet_core.lab.explain import activation_story, anatomy_story, gradient_story
from resnet_core.lab.flow import GradientFlow
from resnet_core.structure import spec as rspec
from resnet_core.structure.build import BuildError
from resnet_core.structure.records import shape_str
from resnet_core.text import md

if model_views.showing_model():  # a server started with --model, the sidebar's Explore on the model
    model_views.header(_("{name}: live lab"))
    st.caption(_("Runs your model from code for real on the CPU, with random weights. Its residual additions, found "
                 "in its graph, are rewritten to keep only their branch for the comparison without skips: the "
                 "same weights, the same batch."))
    forward_tab, flow_tab = st.tabs([_("Forward views"), _("Gradient flow, with and without skips")])
    with forward_tab:
        model_views.forward_views()
    with flow_tab:
        model_views.gradient_flow()
    st.stop()

guide = handoff.arrive("live")  # a Learn step's link: its settings go into this page's widgets, once
spec = ui.current_spec()
t = ui.cached_trace(spec)
device = pick_device("auto")

st.title(_("Live lab"))
st.caption(_("Runs **{name}** for real on **{device}**. The network is the one in the builder (sidebar); everything "
             "here uses your own copy of it.", name=md(spec.name),
             device=describe(device) if device.type == "cuda" else _("the CPU")))
if (guided_note := handoff.note("live")) is not None:
    st.info(guided_note, icon=":material/route:")
if not t.ok:
    ui.error_panel(t)
    st.info(_("Fix the network in the builder to run it."), icon=":material/build:")
    st.stop()

# only the open tab runs (and is sent to the browser): a first view draws the forward views alone
forward_tab, backward_tab = st.tabs(list(live_session.tab_labels()), key=live_session.TAB_KEY, on_change="rerun")
has_bn = spec.norm == "batch"
NORM_TEXT = {"batch": N_("batch norm"), "layer": N_("layer norm"), "none": N_("no norm")}  # shown as _(...)
TENSOR_NAME = {"output": N_("output"), "shortcut(x)": N_("shortcut(x)")}  # the block's tensors; x, F(x) stay
MODE_TEXT = {"eval": N_("running statistics (eval mode)"), "train": N_("statistics of the batch (train mode)")}


def forward_page() -> None:
    if ui.presenting():  # for the room: the views on the first screen, the settings folded above them
        controls, view = st.expander(_("Weights and input"), icon=":material/tune:"), st.container()
    else:
        controls, view = st.columns([1, 3])
    with controls:
        st.markdown(_("**Weights**"))
        sources = live_session.weight_sources(spec)
        source = st.selectbox(_("Weights"), list(sources), format_func=sources.get, key="live.weights",
                              label_visibility="collapsed")
        weights_note = st.empty()  # right under the choice: what is really used when it differs
        seed = st.number_input(_("Seed"), min_value=0, max_value=2**31 - 1, step=1, key="live.seed", value=0,
                               help=_("Random initialisation with the builder's scheme ({init}); the same seed "
                                      "gives the same weights.", init=live_session.init_text(spec.init)))
        upload = None
        if source == "checkpoint":
            upload = st.file_uploader(_("torchvision-format checkpoint (.pth / .pt)"), type=["pth", "pt", "bin"],
                                      key="live.ckpt", help=_("Loaded with `torch.load(weights_only=True)`; "
                                                              "keys and shapes that do not match are listed by name."))
        st.markdown(_("**Input**"))
        inputs = live_session.input_sources(source)
        input_kind = st.selectbox(_("Input"), list(inputs), format_func=inputs.get, key="live.input",
                                  label_visibility="collapsed")
        image_upload, sample, example, noise_seed = None, None, 0, 0
        if input_kind == "sample":
            sample = st.selectbox(_("Sample image"), images.list_samples(), key="live.sample")
        elif input_kind == "upload":
            image_upload = st.file_uploader(_("Image (PNG, JPEG or WebP)"), type=["png", "jpg", "jpeg", "webp"],
                                            key="live.image")
        elif input_kind == "example":
            example = st.number_input(_("Held-out example"), 0, 15, 0, key="live.example")
        elif input_kind == "noise":
            noise_seed = st.number_input(_("Noise seed"), 0, 2**31 - 1, 0, key="live.noise_seed")

    try:
        with view, delivery.spinner(_("Building {name}…", name=md(spec.name)),
                                    needed=not live_session.model_ready(spec, source, int(seed), upload)):
            w = live_session.model_for(t, source, int(seed), upload)
    except MemoryGuardError as e:
        with view:
            if e.booked:  # other sessions' networks and passes hold part of the memory now
                st.error(_("Not now: other sessions' networks and passes hold part of the server's memory: {why}. "
                           "Try again in a moment.", why=md(e)), icon=":material/memory:")
            else:
                st.error(_("This network is too large to run here: {why}", why=md(e)), icon=":material/memory:")
        return
    except (weights.CheckpointError, weights.WeightsUnavailable, ValueError) as e:
        with view:
            st.error(_("These weights could not be used: {why}", why=md(e)), icon=":material/dangerous:")
        return
    if w.problem:
        with weights_note.container():
            st.warning(w.problem, icon=":material/cloud_off:")
            if w.problem_detail:
                with st.expander(_("Why, and what to do")):
                    st.caption(w.problem_detail)
    try:
        x_in, input_note = live_session.input_for(spec, input_kind, sample=sample, upload=image_upload,
                                                  example=int(example), noise_seed=int(noise_seed), source=source)
    except images.ImageInputError as e:
        with view:
            st.error(_("This image cannot be used: {why}", why=md(e)), icon=":material/dangerous:")
        return

    with controls:
        if input_note:
            st.info(input_note, icon=":material/upload:")
        source_text = images.source_text(x_in.source)
        st.image(ui.upscale(x_in.display, 160), caption=source_text, width="stretch",  # never wider than its column
                 alt=_("The input image: {source}", source=source_text))
        if w.report is not None:
            for line in w.report.lines(6):
                st.caption(line)
        mode = "eval"
        if has_bn:
            mode_labels = {"train": _("of a batch of {n}", n=live_session.BATCH_STATS_IMAGES), "eval": _("running")}
            mode = st.segmented_control(
                _("Batch norm statistics"), ["eval", "train"], default="eval", key="live.mode", required=True,
                format_func=mode_labels.get,
                help=_("Running statistics (eval mode, the default): each image is normalised by the statistics "
                       "stored in the weights, so the numbers depend on the weights. Batch statistics (train "
                       "mode): batch norm normalises over a batch of {n} images (yours first).",
                       n=live_session.BATCH_STATS_IMAGES))
    x, batch_text = live_session.batch_for(x_in, spec, mode == "train", source)

    with view:
        plan = t.plan
        # (C, H, W) maps; a ConvNeXt block's layers between its permutes are (H, W, C) and are left out
        spatial = [lay for lay in plan.layers if lay.out_shape is not None and len(lay.out_shape) == 3
                   and not lay.channels_last]
        c1, c2, c3 = st.columns([3, 2, 1])
        default_layer = next((lay.index for lay in spatial if lay.stage == 0 and lay.op == "add"), spatial[0].index)
        layer_index = c1.selectbox(
            _("Feature maps of"), [lay.index for lay in spatial], key="live.layer",
            index=[lay.index for lay in spatial].index(default_layer),
            format_func=lambda i: f"{plan.layers[i].label} · {plan.layers[i].type} · {shape_str(plan.layers[i].out_shape)}")
        block_names = [b.name for b in plan.blocks]
        block = c2.selectbox(_("Residual block"), block_names, key="live.block") if block_names else None
        top_k = c3.number_input(_("Top-k"), 1, lab_views.MAX_TOP_K, 16, key="live.topk")
        key = (live_session.model_key(spec, source, int(seed), upload),
               live_session.input_key(input_kind, sample, image_upload, int(example), int(noise_seed), source))
        try:
            # a view change runs nothing and shows no spinner; a new pass: the page so far and a spinner first
            with delivery.spinner(_("Running the network…"), needed=not live_session.record_ready(key, x, mode == "train")):
                rec = live_session.record_for(w.model, x, plan, mode == "train", key=key)
            fm = rec.feature_maps(layer_index, int(top_k))
        except (MemoryGuardError, WorkLimitError, OutOfMemoryError, BusyError, ProbeError, DeviceError) as e:
            st.error(str(e), icon=":material/dangerous:")
            return

        bn_text = _("batch norm: {mode}", mode=_(MODE_TEXT[rec.mode])) if has_bn else _(NORM_TEXT[spec.norm])
        st.markdown(_("**Views of {weights}**", weights=md(w.used)) + f" · {bn_text} · {batch_text} · "
                    f"{live_session.device_text(rec.device)}")
        if w.trained:
            preds = weights.top_predictions(rec.logits[:1], w.classes, k=5)
            st.markdown(_("**Top predictions** — ") + " · ".join(
                f"{md(p.name)} **{p.probability:.1%}**" for p in preds))

        st.subheader(_("Feature maps: {layer} ({c} channels, {h}×{w})", layer=fm.label, c=fm.shape[0], h=fm.shape[1],
                       w=fm.shape[2]))
        # four tiles a row when presenting: each map about twice as wide, readable from the back of the room
        grid = fm.grid(cols=min(4 if ui.presenting() else 8, len(fm.channels)))
        st.image(ui.upscale(grid, 480), width="stretch" if grid.shape[1] > 120 else "content",
                 alt=_("Feature maps of {layer}: {k} channels of {h}×{w} in a grid, dark for low activation and "
                       "light for high; the table below gives each channel's numbers", layer=fm.label,
                       k=len(fm.channels), h=fm.shape[1], w=fm.shape[2]))
        kept = "" if int(top_k) <= rec.max_k else _(" (this network keeps the top {k} per layer)", k=rec.max_k)
        strongest = _("The {k} channels with the most energy (mean square activation), strongest first{kept}: "
                      "{channels}.", k=len(fm.channels), kept=kept,
                      channels=", ".join(map(str, fm.channels[:16])) + ("…" if len(fm.channels) > 16 else ""))
        st.caption(live_session.sentences(strongest, _(fm.scaling)))
        st.download_button(_("⬇ Feature maps (PNG)"), ui.png_bytes(grid), f"{fm.layer}_feature_maps.png", "image/png",
                           key="live.dl_fm")
        with st.expander(_("Channel energies and ranges")):
            ui.dataframe(live_session.shown_columns(pd.DataFrame(fm.rows())), key="live.fm_table")

        if block is not None:
            anatomy(rec, block, w)

        df = charts.stats_frame(rec.stats)
        if len(df):
            st.subheader(_("Activations through the depth"))
            spread, zeros = charts.activation_charts(df)
            ui.svg_chart(spread, "spread")
            ui.svg_chart(zeros, "zeros")
            story = activation_story(rec.stats, has_bn, rec.mode == "train", w.trained)
            if story is not None:
                st.markdown(md(live_session.sentences(story.shows, *story.detail)))
                if story.try_next:
                    st.caption(":material/lightbulb: " + md(story.try_next))
            with st.expander(_("The numbers")):
                ui.dataframe(charts.shown_stats(df), key="live.stats_table")


def anatomy(rec, block: str, w) -> None:
    a = rec.anatomy(block)
    st.subheader(_("Inside {block}: x, F(x) and F(x) + x", block=a.block))
    shortcut_text = {"identity": _("identity (x itself)"), "projection": _("1×1 projection of x"),
                     "pad": _("x subsampled and zero-padded (option A)"), "none": _("none (skip off)")}[a.shortcut]
    m = st.columns(4)
    m[0].metric("‖x‖", f"{a.x.norm:.3g}")
    m[1].metric("‖F(x)‖", f"{a.fx.norm:.3g}")
    m[2].metric("‖F(x)‖ / ‖x‖", "—" if a.ratio is None else f"{a.ratio:.3g}",
                help=_("How much the block changes its input: small means the block is close to the identity."))
    m[3].metric(_("Shortcut"), _(charts.SHORTCUT_NAME.get(a.shortcut, a.shortcut)), help=shortcut_text)
    views = a.tensors()
    limit = max(float(abs(v.mean_map).max()) for v in views) or 1.0  # one scale for every panel
    ui.figure_row([(ui.heatmap(v.mean_map, limit=limit), f"{_(TENSOR_NAME.get(v.name, v.name))} · {shape_str(v.shape)}",
                    f"‖·‖ = {v.sample_norm:.3g}") for v in views], alt=_("mean over channels in {block}", block=a.block))
    if not has_bn:
        meaning = _("This network has no batch norm: the norms come straight from the weights.")
    elif rec.mode == "eval" and w.trained:
        meaning = _("Batch norm uses the running statistics the training stored, as at test time.")
    elif rec.mode == "eval":
        meaning = _("Batch norm uses its running statistics; random weights still have the initial ones (mean 0, "
                    "variance 1), so batch norm passes values through and the norms show what the weights do.")
    else:
        meaning = _("Batch norm normalises each channel over this batch of {n}: after the branch's last batch norm "
                    "every channel has unit variance over the batch, so ‖F(x)‖ over the batch is about "
                    "√(batch·C·H·W) whatever the weights; switch to running statistics to see the weights.",
                    n=rec.batch)
    panels = _("Each panel is the mean over channels for this image, on one shared colour scale: blue negative, "
               "white zero, red positive. The norms ‖x‖, ‖F(x)‖ are over the whole batch, ‖·‖ under a panel is for "
               "this image.")
    st.caption(live_session.sentences(panels, meaning))

    rows = rec.block_ratios()
    trend = lab_views.ratio_trend(rows)
    if trend is not None:
        st.subheader(_("‖F(x)‖ / ‖x‖ of every block through the depth"))
        ui.svg_chart(charts.block_ratio_chart(rows, current=block), "ratios")
        st.caption(_("For {weights}, {mode}: the ratio {trend}. Below 1 the block adds a correction smaller than its "
                     "input (close to the identity).", weights=md(w.used),
                     mode=_(MODE_TEXT[rec.mode] if has_bn else NORM_TEXT[spec.norm]), trend=md(trend)))
        story = anatomy_story(rows, has_bn, rec.mode == "train", w.trained)
        if story is not None:
            st.markdown(md(live_session.sentences(story.shows, *story.detail)))
            if story.try_next:
                st.caption(":material/lightbulb: " + md(story.try_next))


# =============================================================================================
def backward_page() -> None:
    st.markdown(_(
        "One click runs a forward and a backward pass **twice on the same weights and the same batch**: with every "
        "skip connection on, then with them off (the plain net). It plots, layer by layer, the size of the "
        "gradient that reaches each weight and each block's input. In a deep enough plain net the gradient reaching "
        "the first layers can vanish or explode; the sentence under the result says what this run shows."))
    depths = {"builder": _("the builder's network ({name})", name=md(spec.name)), **{
        n: f"CIFAR {n}" for n in ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110")}}
    job = live_session.current_job()
    busy = job is not None and job.running
    c = st.columns([3, 2, 2, 2])
    # the default shows the effect: CIFAR resnet56 (the builder's ResNet-18 is too shallow for it with batch norm)
    which = c[0].selectbox(_("Network (depth)"), list(depths), format_func=depths.get, key="live.gf_net",
                           index=list(depths).index("resnet56"), disabled=busy)
    base = spec if which == "builder" else rc.get_preset(which)
    norm_labels = {"batch": _("batch norm"), "layer": _("layer norm"), "none": _("off")}
    norm = c[1].segmented_control(_("Normalisation"), list(rspec.NORMS), default=base.norm, key=f"live.gf_norm.{which}",
                                  required=True, disabled=busy, format_func=lambda v: norm_labels.get(v, v))
    init = c[2].selectbox(_("Initialisation"), rspec.INITS, index=rspec.INITS.index(base.init),
                          key=f"live.gf_init.{which}", format_func=live_session.init_text, disabled=busy)
    shortcut = c[3].segmented_control(_("Shortcut option"), ["A", "B", "C", "D"],
                                      default=base.shortcut if base.shortcut in ("A", "B", "C", "D") else "B",
                                      key=f"live.gf_sc.{which}", required=True, disabled=busy)
    c2 = st.columns([1, 1, 3, 1])
    batch = c2[0].number_input(_("Batch"), 2, 256, 8, key="live.gf_batch", disabled=busy)
    gf_seed = c2[1].number_input(_("Seed"), 0, 2**31 - 1, 0, key="live.gf_seed", disabled=busy,
                                 help=_("The seed of the weights and of the batch of noise images and labels."))
    gf_spec = base.replace(norm=norm, init=init, shortcut=shortcut, name=base.name)
    request = (rspec.spec_key(gf_spec), int(batch), int(gf_seed))
    too_large = None
    try:
        gradients.check_gradient_flow(gf_spec, int(batch), device)
    except (MemoryGuardError, WorkLimitError) as e:
        too_large = str(e)
    except BuildError as e:
        too_large = "; ".join(str(err) for err in e.plan.errors)
    run = c2[2].button(_("Run forward + backward, with and without skips"), type="primary", key="live.gf_run",
                       icon=":material/play_arrow:", disabled=busy or too_large is not None)
    stop = c2[3].button(_("Stop"), key="live.gf_stop", icon=":material/stop:", disabled=not busy)
    if too_large is not None:
        st.error(_("This gradient flow cannot run here: {why}", why=too_large), icon=":material/memory:")
    if stop and job is not None:
        job.stop()
        job.wait(30)
        st.rerun()
    if (run or (guide is not None and guide.run and not busy)) and too_large is None:
        live_session.start_job(gf_spec, int(gf_seed), int(batch), request)
        st.rerun()  # redraw the controls as busy: Stop enabled, settings locked
    progress_view(busy)
    job = live_session.current_job()
    if job is None:
        st.info(_("Choose the settings and click **Run**; the sentence under the result says what it shows and what "
                  "to try next. Then compare batch norm on and off (with PyTorch-default initialisation)."),
                icon=":material/touch_app:")
    elif job.finished:
        if job.error:
            st.error(job.error, icon=":material/dangerous:")
        elif job.result is not None:
            if job.request != request:
                st.caption(_("The settings changed since this run: click **Run** to update."))
            show_gradient_flow(job.result)


def progress_view(busy: bool) -> None:
    """Progress of the running gradient flow, redrawn twice a second while it runs (and only then); the
    whole page once it ends."""
    @st.fragment(run_every=0.5 if busy else None)
    def progress() -> None:
        lang.apply()  # a fragment's own run does not run the app's first lines, which set the language
        job = live_session.current_job()
        if job is None:
            return
        if job.running:
            p = job.progress
            st.progress(0.0 if p is None else p.fraction,
                        text=_("waiting for its turn on the device (sessions are served in the order they "
                               "asked)…") if p is None else p.text())
        elif busy:
            st.rerun()  # it ended since the page was drawn: the whole page, with the result below

    progress()


def show_gradient_flow(flow: GradientFlow) -> None:
    """Summary, the log-scale chart of both variants, and the numbers."""
    fmt = live_session.fmt
    labels = [v.label for v in flow.variants]  # keys in the data; shown as _(label)
    shown = [_(lab) for lab in labels]
    if flow.stopped:
        done = _(", ").join(shown) if shown else _("none")
        st.warning(_("Stopped: {n} of {asked} variants finished ({done}).", n=len(labels), asked=len(flow.asked),
                     done=done), icon=":material/stop_circle:")
    if not flow.variants:
        return
    w_rows = flow.weight_rows()
    first = w_rows[0]
    classroom_session.offer_gradient_flow(flow)  # in a class: each variant's ‖∂L/∂W₁‖ goes to the teacher
    m = st.columns(3)
    status = live_session.status_text
    m[0].metric(_("First conv ‖∂L/∂W‖, {variant}", variant=shown[0]), fmt(first["norms"][0]),
                help=status(first["statuses"][0]))
    if len(labels) > 1:
        m[1].metric(_("First conv ‖∂L/∂W‖, {variant}", variant=shown[1]), fmt(first["norms"][1]),
                    help=status(first["statuses"][1]))
        ratio = first["ratio"]
        m[2].metric(_("Ratio, with / without"), "∞" if ratio is not None and ratio == float("inf") else fmt(ratio),
                    help=_("∞: the gradient without skips is exactly zero"))
    story = gradient_story(flow)
    if story is not None:
        st.markdown(live_session.sentences(_("**What this run shows.**"),
                                           md(live_session.sentences(story.shows, *story.detail))))
        if story.try_next:
            st.caption(":material/lightbulb: " + md(story.try_next))
    for v in flow.variants:
        label, rest = re.split(r": |：", v.summary(), maxsplit=1)
        st.markdown(_("**{label}**: {counts}", label=label, counts=rest))
    yes_no = {True: _("yes"), False: _("NO")}
    st.caption(" · ".join([
        md(flow.spec.name), _(NORM_TEXT[flow.spec.norm]),
        _("{init} init", init=live_session.init_text(flow.spec.init)),
        _("{n} seeded noise images", n=flow.batch), _("train mode") if flow.train else _("eval mode"),
        live_session.device_text(flow.device), _("same weights: {answer}", answer=yes_no[flow.same_weights]),
        _("same batch: {answer}", answer=yes_no[flow.same_batch])]))
    made = charts.gradient_charts(flow.chart_rows(), labels, flow.vanished_below, flow.exploded_above)
    for col, (_quantity, chart) in zip(st.columns(2), made, strict=False):
        col.altair_chart(chart, width="stretch")
    st.caption(_("Points below the dashed 'vanished' line mean the layer effectively stops learning; above the "
                 "'exploded' line one SGD step would wreck its weights. Exact zeros are drawn at the floor and "
                 "NaN/Inf at the ceiling of the chart (triangles)."))
    w_table, i_table = live_session.gradient_tables(flow)
    with st.expander(_("The numbers: every layer's weight gradient")):
        ui.dataframe(pd.DataFrame(w_table), key="live.gf_weights")
    with st.expander(_("The numbers: every block's input gradient ‖∂L/∂x‖")):
        ui.dataframe(pd.DataFrame(i_table), key="live.gf_inputs")
    st.download_button(_("⬇ Gradient flow (JSON)"), json.dumps(flow.to_dict(), indent=1),
                       f"gradflow_{ui.file_stem(flow.spec)}.json", "application/json", key="live.gf_dl")


with forward_tab:
    if forward_tab.open:
        line = st.empty()
        waited = []

        def in_line(n: int) -> None:
            waited.append(n)
            delivery.send_now(lambda: line.caption(ngettext(
                "In line behind {n} other session's views: a moment…",
                "In line behind {n} other sessions' views: a moment…", n, n=n)))
        try:
            with live_session.view_turn(in_line):
                if waited:  # this session's turn: the note goes at once, not with the views
                    delivery.send_now(line.empty)
                forward_page()
        except BusyError as e:
            line.error(str(e), icon=":material/hourglass_top:")
with backward_tab:
    if backward_tab.open:
        backward_page()
