"""The network builder in the sidebar: a preset to start from, the global options, the stages."""

from __future__ import annotations

import streamlit as st

import resnet_core as rc
from app import builder_family as family
from app import state
from app.state import BOUNDS, EXPANSIONS, P, stage_key
from resnet_core.i18n import N_, _
from resnet_core.structure.parts import REASONS
from resnet_core.structure.presets import preset_info
from resnet_core.structure.spec import (
    ACTIVATIONS,
    BLOCK_TYPES,
    INITS,
    POOL_TYPES,
    SHORTCUT_HELP,
    SHORTCUTS,
    STEM_TYPES,
    ArchSpec,
)
from resnet_core.text import md

BLOCK_LABELS = {"basic": N_("basic (3×3, 3×3)"), "bottleneck": N_("bottleneck (1×1, 3×3, 1×1)"),
                "preact_basic": N_("pre-activation basic"), "preact_bottleneck": N_("pre-activation bottleneck"),
                "convnext": N_("ConvNeXt (dw k×k, 1×1 ×4, 1×1)")}
INIT_LABELS = {"kaiming_fan_out": N_("Kaiming, fan-out (torchvision)"), "kaiming_fan_in": N_("Kaiming, fan-in"),
               "xavier": N_("Xavier/Glorot"), "pytorch_default": N_("PyTorch default")}
STEM_LABELS = {"imagenet": N_("ImageNet: 7×7/2 conv + 3×3/2 max-pool"), "cifar": N_("CIFAR: 3×3/1 conv, no pool"),
               "custom": N_("custom"), "deep": N_("deep: three 3×3 convs (ResNet-C)"),
               "patchify": N_("patchify: k×k/k conv + norm")}


def locked() -> bool:
    """Whether the teacher has locked this session's builder (a follower in a class: app/classroom_session.py).
    Then every builder widget is drawn disabled: the network is the teacher's until the lock is lifted."""
    from app import classroom_session
    return classroom_session.locked_spec() is not None


def _on_preset() -> None:
    name = st.session_state["ui.preset"]
    if name is not None:
        state.apply_spec_to_widgets(rc.get_preset(name), source=name)
        family.sync_loaded(force=True)


def _on_reset() -> None:
    ss = st.session_state
    loaded = ss.get(P + "loaded")
    if loaded is not None:
        state.apply_spec_to_widgets(loaded, source=ss.get(P + "source"))
        family.sync_loaded(force=True)


def _on_all_blocks(key: str) -> None:
    if st.session_state.get(key):
        state.set_all_blocks(st.session_state[key])


def _remember(key: str) -> None:
    st.session_state[key + ".open"] = bool(st.session_state[key])


def section(label: str, key: str):
    """A collapsible section of the builder whose widgets are drawn only while it is open (`.open`): a
    collapsed section costs the browser nothing on each rerun and page change (the four stage editors' forty
    widgets were most of the browser's work on a page change). Whether it is open is remembered under
    `<key>.open`, so it stays open when its label changes (a stage's summary does, as you edit it). The
    values of widgets not drawn are kept by `state.keep_alive`."""
    return st.expander(label, expanded=bool(st.session_state.get(key + ".open", False)), key=key,
                       on_change=_remember, args=(key,))


def number_input(label: str, key: str, bound: str, help: str | None = None, disabled: bool = False) -> None:
    b = BOUNDS[bound]
    st.number_input(label, min_value=b.lo, max_value=b.hi, step=1, key=key, help=help, disabled=disabled)


def _presets_select(off: bool) -> None:
    names = rc.list_presets()
    ss = st.session_state
    loaded = ss.get(P + "loaded")
    st.selectbox(_("Start from a preset"), names, key="ui.preset", on_change=_on_preset, disabled=off,
                 placeholder=_("custom: {name}", name=loaded.name) if loaded is not None else _("choose a preset"),
                 help=_("Exact torchvision ResNets, the CIFAR family of He et al. (2015), pre-activation ResNets, "
                        "timm's ResNet-B/C/D, SE, ECA and ResNet-RS, torchvision's ConvNeXt, and a plain twin (same "
                        "layers, no shortcuts) of each."))
    name = ss.get("ui.preset")
    if name is not None:
        st.caption(preset_info(name).shown_summary)
    else:
        st.caption(_("A custom network, loaded from {source}.", source=md(ss.get(P + "source", _("elsewhere")))))


def _stage_editor(i: int, n: int, spec: ArchSpec, off: bool) -> None:
    s = spec.stages[i]
    label = (_("Stage {i} · {block} × {n} · width {width}", i=i + 1, block=s.block, n=s.blocks, width=s.width)
             + (f" · /{s.stride}" if s.stride > 1 else ""))
    exp = section(label, f"ui.stage_exp.{i}")
    if not exp.open:
        return
    with exp:
        st.selectbox(_("Block"), BLOCK_TYPES, key=stage_key(i, "block"), format_func=family.label_of(BLOCK_LABELS),
                     help=_(REASONS["block.convnext"]), disabled=off)
        c1, c2 = st.columns(2)
        with c1:
            number_input(_("Blocks"), stage_key(i, "blocks"), "blocks", disabled=off)
            number_input(_("Stride (1st block)"), stage_key(i, "stride"), "stride", disabled=off)
            number_input(_("Groups"), stage_key(i, "groups"), "groups", disabled=off,
                         help=_("Grouped 3×3 convolutions (ResNeXt cardinality)."))
        with c2:
            number_input(_("Width"), stage_key(i, "width"), "width", disabled=off,
                         help=_("The block's base width ('planes'); its output has width × expansion channels."))
            number_input(_("Width / group"), stage_key(i, "width_per_group"), "width_per_group", disabled=off,
                         help=_("Branch width = int(width · width_per_group / 64) · groups (torchvision's rule; "
                                "64 = plain ResNet, 128 = Wide ResNet-2)."))
            st.selectbox(_("Expansion"), EXPANSIONS, key=stage_key(i, "expansion"), format_func=family.label_of(family.AUTO),
                         disabled=off,
                         help=_("Output channels = width × expansion; auto: 1 for basic, 4 for bottleneck. "
                                "ConvNeXt: the inverted bottleneck's hidden width = width × expansion (auto 4)."))
            family.stage_kernel(i, off)
        with st.container(horizontal=True, gap="small"):  # content-wide buttons that wrap: no label is cut
            st.button(_("Up"), icon=":material/arrow_upward:", key=f"ui.up.{i}", on_click=family.move_stage,
                      args=(i, -1), disabled=off or i == 0, help=_("Move stage {i} up", i=i + 1))
            st.button(_("Down"), icon=":material/arrow_downward:", key=f"ui.down.{i}", on_click=family.move_stage,
                      args=(i, 1), disabled=off or i == n - 1, help=_("Move stage {i} down", i=i + 1))
            st.button(_("Remove"), icon=":material/close:", key=f"ui.rm.{i}", on_click=family.remove_stage, args=(i,),
                      disabled=off, help=_("Remove stage {i}", i=i + 1))


def _input_and_head(spec: ArchSpec, off: bool) -> None:
    c1, c2 = st.columns(2)
    with c1:
        number_input(_("Height"), P + "input_h", "input_h", disabled=off)
        number_input(_("Channels"), P + "in_channels", "in_channels", disabled=off)
    with c2:
        number_input(_("Width"), P + "input_w", "input_w", disabled=off)
        number_input(_("Classes"), P + "num_classes", "num_classes", disabled=off)


def _stem(spec: ArchSpec, off: bool) -> None:
    ss = st.session_state
    st.selectbox(_("Stem"), STEM_TYPES, key=P + "stem_type", format_func=family.label_of(STEM_LABELS), disabled=off)
    number_input(_("Stem channels"), P + "stem_channels", "stem_channels", disabled=off)
    if ss[P + "stem_type"] == "custom":
        c1, c2 = st.columns(2)
        with c1:
            number_input(_("Kernel"), P + "stem_kernel", "stem_kernel", disabled=off)
            number_input(_("Padding"), P + "stem_padding", "stem_padding", disabled=off)
            number_input(_("Pool kernel"), P + "stem_pool_kernel", "stem_pool_kernel", disabled=off)
        with c2:
            number_input(_("Stride"), P + "stem_stride", "stem_stride", disabled=off)
            st.selectbox(_("Pool"), POOL_TYPES, key=P + "stem_pool", format_func=family.label_of(family.POOL_LABELS),
                         help=_(REASONS["stem.pool_conv"]), disabled=off)
            number_input(_("Pool stride"), P + "stem_pool_stride", "stem_pool_stride", disabled=off)
    family.stem_fields(ss[P + "stem_type"], off)


def _blocks_and_init(spec: ArchSpec, off: bool) -> None:
    ss = st.session_state
    blocks = {s.block for s in spec.stages}
    current = blocks.pop() if len(blocks) == 1 else None
    key = f"ui.all_blocks.{current}"  # a fresh widget whenever the stages' types change
    st.selectbox(_("Block type (all stages)"), BLOCK_TYPES, index=BLOCK_TYPES.index(current) if current else None,
                 placeholder=_("mixed"), format_func=family.label_of(BLOCK_LABELS), key=key, on_change=_on_all_blocks,
                 args=(key,), disabled=off)
    st.selectbox(_("Activation"), ACTIVATIONS, key=P + "activation", disabled=off,
                 help=_("ReLU (Nair & Hinton 2010), the ResNet's.") + "\n\n" + _(REASONS["activation.gelu"])
                      + "\n\n" + _(REASONS["activation.silu"]))
    st.selectbox(_("Initialisation"), INITS, key=P + "init", format_func=family.label_of(INIT_LABELS), disabled=off)
    st.toggle(_("Zero-init residual"), key=P + "zero_init", disabled=off,
              help=_("Each residual branch's last norm γ (or last conv) starts at 0: every block starts "
                     "as its shortcut (Goyal et al. 2017)."))
    st.toggle(_("Stride on the first 1×1 (paper's v1)"), key=P + "stride_in_1x1", disabled=off,
              help=_("Bottlenecks: torchvision ('v1.5') strides the 3×3; He et al.'s v1 strides the first 1×1.")
                   + "\n\n" + _(REASONS["stride.B"]))
    # disabled, not hidden, without batch norm: the values come back with it
    c1, c2 = st.columns(2)
    no_bn = not ss[P + "batch_norm"]
    c1.number_input(_("BN momentum"), min_value=0.0, max_value=1.0, step=0.01, key=P + "bn_momentum",
                    format="%.3f", disabled=off or no_bn)
    c2.number_input(_("BN eps"), min_value=1e-8, max_value=1.0, key=P + "bn_eps", format="%.0e",
                    disabled=off or no_bn)


def sidebar() -> ArchSpec:
    """Draw the builder; return the network it describes now."""
    ss = st.session_state
    off = locked()  # the teacher has locked the builder: every widget below is drawn disabled
    with st.sidebar:
        st.markdown(_("## :material/account_tree: ResNet Explorer"))
        st.toggle(_("Projector mode"), key="ui.present",
                  help=_("For a projector: the sidebar collapsed to a network chip, one column, large charts and "
                         "tables. Share links carry it (?present=1)."))
        if off:
            st.caption(_(":material/lock: The teacher has locked the builder: it shows the teacher's network, and "
                         "its settings cannot be changed until the teacher unlocks it."))
        _presets_select(off)
        # widgets and callbacks have settled every value before this run started: one read is the network
        family.sync_loaded()  # a spec loaded by anyone (a link, a file, a lesson): its newer fields too
        ss[P + "batch_norm"] = ss[P + "norm"] == "batch"  # state.read_spec's older field, overlaid below
        spec = state.settle_name(family.overlay(state.read_spec()))
        st.text_input(_("Network name"), key=P + "name", max_chars=80, disabled=off,
                      help=_("Names the network on every page, in downloads and in shared links. An edited preset "
                             "is called '… (edited)' until you name it."))
        name_note = ss.pop(state.NAME_NOTE, None)
        if name_note:
            st.caption(f":material/edit_off: {md(name_note)}")
        loaded = ss.get(P + "loaded")
        if loaded is not None and spec != loaded:
            st.caption(_("✎ edited from **{source}**", source=md(ss.get(P + "source"))))  # a name from a file: text

        st.toggle(_("Skip connections"), key=P + "skip", disabled=off,
                  help=_("Off: the paper's plain net — the same layers with no shortcut at all."))
        st.toggle(_("Batch norm"), key=P + "batch_norm", on_change=family.on_batch_norm,
                  disabled=off or ss[P + "norm"] == "layer",
                  help=_("BatchNorm after every conv (before the ReLU). Off: no normalisation; convs get a bias. "
                         "LayerNorm: under 'Since 2016'."))
        if ss[P + "norm"] == "layer":
            st.caption(_("Normalisation: LayerNorm (set under 'Since 2016')."))
        skips = bool(ss[P + "skip"])
        shortcut_labels = {k: _(k) if k == "identity" else k for k in SHORTCUTS}  # A–D are the paper's letters
        st.segmented_control(_("Shortcut option"), SHORTCUTS, key=P + "shortcut", required=True,
                             format_func=shortcut_labels.get, disabled=off or not skips,
                             help="\n\n".join(f"**{k}**: {_(v)}" for k, v in SHORTCUT_HELP.items()))
        if not skips:
            st.caption(_("Shortcut option: not in use while the skip connections are off."))

        for label, key, draw in ((N_("Input & head"), "ui.exp.input", _input_and_head),
                                 (N_("Stem"), "ui.exp.stem", _stem),
                                 (N_("Blocks, activation, initialisation"), "ui.exp.blocks", _blocks_and_init),
                                 (N_("Since 2016: attention, ConvNeXt"), "ui.exp.family", family.modern_parts)):
            exp = section(_(label), key)
            if exp.open:
                with exp:
                    draw(spec, off)

        n = ss[P + "n_stages"]
        st.markdown(_("**Stages ({n})**", n=n))
        for i in range(n):
            _stage_editor(i, n, spec, off)
        st.button(_("Add stage"), icon=":material/add:", key="ui.add_stage", on_click=family.add_stage,
                  width="stretch", disabled=off)
        st.button(_("Undo all edits"), icon=":material/restart_alt:", key="ui.reset", on_click=_on_reset,
                  width="stretch", disabled=off,
                  help=_("Go back to the network as it was loaded (the preset, the link, the imported file)."))
    return spec
