"""The network builder in the sidebar: a preset to start from, the global options, the stages."""

from __future__ import annotations

import streamlit as st

import resnet_core as rc
from app import builder_family as family
from app import state
from app.state import BOUNDS, EXPANSIONS, P, stage_key
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

BLOCK_LABELS = {"basic": "basic (3×3, 3×3)", "bottleneck": "bottleneck (1×1, 3×3, 1×1)",
                "preact_basic": "pre-activation basic", "preact_bottleneck": "pre-activation bottleneck",
                "convnext": "ConvNeXt (dw k×k, 1×1 ×4, 1×1)"}
INIT_LABELS = {"kaiming_fan_out": "Kaiming, fan-out (torchvision)", "kaiming_fan_in": "Kaiming, fan-in",
               "xavier": "Xavier/Glorot", "pytorch_default": "PyTorch default"}
STEM_LABELS = {"imagenet": "ImageNet: 7×7/2 conv + 3×3/2 max-pool", "cifar": "CIFAR: 3×3/1 conv, no pool",
               "custom": "custom", "deep": "deep: three 3×3 convs (ResNet-C)", "patchify": "patchify: k×k/k conv + norm"}


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


def number_input(label: str, key: str, bound: str, help: str | None = None) -> None:
    b = BOUNDS[bound]
    st.number_input(label, min_value=b.lo, max_value=b.hi, step=1, key=key, help=help)


def _presets_select() -> None:
    names = rc.list_presets()
    ss = st.session_state
    loaded = ss.get(P + "loaded")
    st.selectbox("Start from a preset", names, key="ui.preset", on_change=_on_preset,
                 placeholder=f"custom: {loaded.name}" if loaded is not None else "choose a preset",
                 help="Exact torchvision ResNets, the CIFAR family of He et al. (2015), pre-activation ResNets, "
                      "timm's ResNet-B/C/D, SE, ECA and ResNet-RS, torchvision's ConvNeXt, and a plain twin (same "
                      "layers, no shortcuts) of each.")
    name = ss.get("ui.preset")
    if name is not None:
        st.caption(preset_info(name).summary)
    else:
        st.caption(f"A custom network, loaded from {md(ss.get(P + 'source', 'elsewhere'))}.")


def _stage_editor(i: int, n: int, spec: ArchSpec) -> None:
    s = spec.stages[i]
    label = f"Stage {i + 1} · {s.block} × {s.blocks} · width {s.width}" + (f" · /{s.stride}" if s.stride > 1 else "")
    exp = section(label, f"ui.stage_exp.{i}")
    if not exp.open:
        return
    with exp:
        st.selectbox("Block", BLOCK_TYPES, key=stage_key(i, "block"), format_func=BLOCK_LABELS.get,
                     help=REASONS["block.convnext"])
        c1, c2 = st.columns(2)
        with c1:
            number_input("Blocks", stage_key(i, "blocks"), "blocks")
            number_input("Stride (1st block)", stage_key(i, "stride"), "stride")
            number_input("Groups", stage_key(i, "groups"), "groups", help="Grouped 3×3 convolutions (ResNeXt cardinality).")
        with c2:
            number_input("Width", stage_key(i, "width"), "width", help="The block's base width ('planes'); "
                 "its output has width × expansion channels.")
            number_input("Width / group", stage_key(i, "width_per_group"), "width_per_group",
                 help="Branch width = int(width · width_per_group / 64) · groups (torchvision's rule; "
                      "64 = plain ResNet, 128 = Wide ResNet-2).")
            st.selectbox("Expansion", EXPANSIONS, key=stage_key(i, "expansion"),
                         help="Output channels = width × expansion; auto: 1 for basic, 4 for bottleneck. "
                              "ConvNeXt: the inverted bottleneck's hidden width = width × expansion (auto 4).")
            family.stage_kernel(i)
        with st.container(horizontal=True, gap="small"):  # content-wide buttons that wrap: no label is cut
            st.button("Up", icon=":material/arrow_upward:", key=f"ui.up.{i}", on_click=family.move_stage,
                      args=(i, -1), disabled=i == 0, help=f"Move stage {i + 1} up")
            st.button("Down", icon=":material/arrow_downward:", key=f"ui.down.{i}", on_click=family.move_stage,
                      args=(i, 1), disabled=i == n - 1, help=f"Move stage {i + 1} down")
            st.button("Remove", icon=":material/close:", key=f"ui.rm.{i}", on_click=family.remove_stage, args=(i,),
                      help=f"Remove stage {i + 1}")


def _input_and_head(spec: ArchSpec) -> None:
    c1, c2 = st.columns(2)
    with c1:
        number_input("Height", P + "input_h", "input_h")
        number_input("Channels", P + "in_channels", "in_channels")
    with c2:
        number_input("Width", P + "input_w", "input_w")
        number_input("Classes", P + "num_classes", "num_classes")


def _stem(spec: ArchSpec) -> None:
    ss = st.session_state
    st.selectbox("Stem", STEM_TYPES, key=P + "stem_type", format_func=STEM_LABELS.get)
    number_input("Stem channels", P + "stem_channels", "stem_channels")
    if ss[P + "stem_type"] == "custom":
        c1, c2 = st.columns(2)
        with c1:
            number_input("Kernel", P + "stem_kernel", "stem_kernel")
            number_input("Padding", P + "stem_padding", "stem_padding")
            number_input("Pool kernel", P + "stem_pool_kernel", "stem_pool_kernel")
        with c2:
            number_input("Stride", P + "stem_stride", "stem_stride")
            st.selectbox("Pool", POOL_TYPES, key=P + "stem_pool", help=REASONS["stem.pool_conv"])
            number_input("Pool stride", P + "stem_pool_stride", "stem_pool_stride")
    family.stem_fields(ss[P + "stem_type"])


def _blocks_and_init(spec: ArchSpec) -> None:
    ss = st.session_state
    blocks = {s.block for s in spec.stages}
    current = blocks.pop() if len(blocks) == 1 else None
    key = f"ui.all_blocks.{current}"  # a fresh widget whenever the stages' types change
    st.selectbox("Block type (all stages)", BLOCK_TYPES, index=BLOCK_TYPES.index(current) if current else None,
                 placeholder="mixed", format_func=BLOCK_LABELS.get, key=key, on_change=_on_all_blocks, args=(key,))
    st.selectbox("Activation", ACTIVATIONS, key=P + "activation",
                 help="ReLU (Nair & Hinton 2010), the ResNet's.\n\n" + REASONS["activation.gelu"] + "\n\n"
                      + REASONS["activation.silu"])
    st.selectbox("Initialisation", INITS, key=P + "init", format_func=INIT_LABELS.get)
    st.toggle("Zero-init residual", key=P + "zero_init",
              help="Each residual branch's last norm γ (or last conv) starts at 0: every block starts "
                   "as its shortcut (Goyal et al. 2017).")
    st.toggle("Stride on the first 1×1 (paper's v1)", key=P + "stride_in_1x1",
              help="Bottlenecks: torchvision ('v1.5') strides the 3×3; He et al.'s v1 strides the first 1×1.\n\n"
                   + REASONS["stride.B"])
    # disabled, not hidden, without batch norm: the values come back with it
    c1, c2 = st.columns(2)
    off = not ss[P + "batch_norm"]
    c1.number_input("BN momentum", min_value=0.0, max_value=1.0, step=0.01, key=P + "bn_momentum",
                    format="%.3f", disabled=off)
    c2.number_input("BN eps", min_value=1e-8, max_value=1.0, key=P + "bn_eps", format="%.0e", disabled=off)


def sidebar() -> ArchSpec:
    """Draw the builder; return the network it describes now."""
    ss = st.session_state
    with st.sidebar:
        st.markdown("## :material/account_tree: ResNet Explorer")
        st.toggle("Projector mode", key="ui.present",
                  help="For a projector: the sidebar collapsed to a network chip, one column, large charts and "
                       "tables. Share links carry it (?present=1).")
        _presets_select()
        # widgets and callbacks have settled every value before this run started: one read is the network
        family.sync_loaded()  # a spec loaded by anyone (a link, a file, a lesson): its newer fields too
        ss[P + "batch_norm"] = ss[P + "norm"] == "batch"  # state.read_spec's older field, overlaid below
        spec = state.settle_name(family.overlay(state.read_spec()))
        st.text_input("Network name", key=P + "name", max_chars=80,
                      help="Names the network on every page, in downloads and in shared links. An edited preset "
                           "is called '… (edited)' until you name it.")
        name_note = ss.pop(state.NAME_NOTE, None)
        if name_note:
            st.caption(f":material/edit_off: {md(name_note)}")
        loaded = ss.get(P + "loaded")
        if loaded is not None and spec != loaded:
            st.caption(f"✎ edited from **{md(ss.get(P + 'source'))}**")  # a name from a file: text

        st.toggle("Skip connections", key=P + "skip",
                  help="Off: the paper's plain net — the same layers with no shortcut at all.")
        st.toggle("Batch norm", key=P + "batch_norm", on_change=family.on_batch_norm,
                  disabled=ss[P + "norm"] == "layer",
                  help="BatchNorm after every conv (before the ReLU). Off: no normalisation; convs get a bias. "
                       "LayerNorm: under 'Since 2016'.")
        if ss[P + "norm"] == "layer":
            st.caption("Normalisation: LayerNorm (set under 'Since 2016').")
        skips = bool(ss[P + "skip"])
        st.segmented_control("Shortcut option", SHORTCUTS, key=P + "shortcut", required=True,
                             disabled=not skips, help="\n\n".join(f"**{k}**: {v}" for k, v in SHORTCUT_HELP.items()))
        if not skips:
            st.caption("Shortcut option: not in use while the skip connections are off.")

        for label, key, draw in (("Input & head", "ui.exp.input", _input_and_head),
                                 ("Stem", "ui.exp.stem", _stem),
                                 ("Blocks, activation, initialisation", "ui.exp.blocks", _blocks_and_init),
                                 ("Since 2016: attention, ConvNeXt", "ui.exp.family", family.modern_parts)):
            exp = section(label, key)
            if exp.open:
                with exp:
                    draw(spec)

        n = ss[P + "n_stages"]
        st.markdown(f"**Stages ({n})**")
        for i in range(n):
            _stage_editor(i, n, spec)
        st.button("Add stage", icon=":material/add:", key="ui.add_stage", on_click=family.add_stage, width="stretch")
        st.button("Undo all edits", icon=":material/restart_alt:", key="ui.reset", on_click=_on_reset, width="stretch",
                  help="Go back to the network as it was loaded (the preset, the link, the imported file).")
    return spec
