"""The builder's parts of the residual family since 2016 (issue 21): norm, channel attention, the ConvNeXt
block's options, separate downsampling, the deep and patchify stems' numbers and each stage's kernel.

`app/state.py` reads and writes the builder's older fields; the newer ones live under their own keys (`net.…`,
so `state.keep_alive` keeps them) and reach the spec here: `sync_loaded` writes a newly loaded spec's values
into them (whoever loaded it: a preset, a link, an imported file, a lesson), and `overlay` puts them back
into the spec the builder returns. Each widget's help is the part's reason (resnet_core.structure.parts).
"""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from app import state
from app.state import P, stage_key
from resnet_core.i18n import N_, _
from resnet_core.structure.parts import REASONS
from resnet_core.structure.spec import ATTENTIONS, DOWNSAMPLINGS, HOW_MANY, NORMS, ArchSpec, Stem

SYNCED = "ui.family.synced"  # the loaded spec whose values the keys below hold
KERNELS = ["auto", 1, 3, 5, 7, 9, 11]
NORM_LABELS = {"batch": N_("batch norm"), "layer": N_("LayerNorm (channels)"), "none": N_("none")}
ATTENTION_LABELS = {"none": N_("none"), "se": N_("squeeze-and-excitation (SE)"), "eca": "ECA"}
HOW_MANY_LABELS = {"every": N_("after every conv"), "one": N_("just one (ConvNeXt)")}
DOWNSAMPLING_LABELS = {"in_block": N_("in the first block (ResNet)"), "separate": N_("separate layers (ConvNeXt)")}
POOL_LABELS = {"max": N_("max pooling"), "avg": N_("average pooling"), "none": N_("none"), "conv": N_("strided conv")}


def label_of(labels: dict):
    """A widget's `format_func`: an option's label in the run's language (the option value stays English)."""
    from app.ui import labelled
    return labelled(labels)


AUTO = {"auto": N_("auto")}  # a choice of numbers with "auto" among them


def _help(*keys: str) -> str:
    return "\n\n".join(_(REASONS[k]) for k in keys)


def sync_loaded(force: bool = False) -> None:
    """Write the loaded spec's newer fields into their keys, once per load (before any widget is drawn)."""
    ss = st.session_state
    loaded: ArchSpec | None = ss.get(P + "loaded")
    if loaded is None or (ss.get(SYNCED) is loaded and not force):
        return
    ss[P + "norm"] = loaded.norm if loaded.norm in NORMS else "batch"
    ss[P + "attention"] = loaded.attention if loaded.attention in ATTENTIONS else "none"
    ss[P + "se_ratio"] = float(loaded.se_ratio)
    ss[P + "eca_kernel"] = int(loaded.eca_kernel)
    ss[P + "layer_scale"] = float(loaded.layer_scale)
    ss[P + "downsampling"] = loaded.downsampling if loaded.downsampling in DOWNSAMPLINGS else "in_block"
    ss[P + "block_norms"] = loaded.block_norms if loaded.block_norms in HOW_MANY else "every"
    ss[P + "block_activations"] = loaded.block_activations if loaded.block_activations in HOW_MANY else "every"
    ss[P + "stem_w1"], ss[P + "stem_w2"] = loaded.stem.widths
    for i, s in enumerate(loaded.stages):
        ss[stage_key(i, "kernel")] = "auto" if s.kernel is None or s.kernel not in KERNELS else s.kernel
        ss[stage_key(i, "depthwise")] = bool(s.depthwise)
    ss[SYNCED] = loaded


def overlay(spec: ArchSpec) -> ArchSpec:
    """`spec` (state.read_spec's, the older fields) with the newer fields as the builder's keys hold them."""
    ss = st.session_state
    stem = spec.stem
    if stem.type == "deep":
        stem = Stem(type="deep", channels=stem.channels, widths=(int(ss[P + "stem_w1"]), int(ss[P + "stem_w2"])),
                    pool=ss[P + "stem_pool"], pool_kernel=int(ss[P + "stem_pool_kernel"]),
                    pool_stride=int(ss[P + "stem_pool_stride"]))
    elif stem.type == "patchify":
        stem = Stem(type="patchify", channels=stem.channels, kernel=int(ss[P + "stem_kernel"]))
    stages = []
    for i, s in enumerate(spec.stages):
        k = ss.get(stage_key(i, "kernel"), "auto")
        stages.append(replace(s, kernel=None if k == "auto" else int(k),
                              depthwise=bool(ss.get(stage_key(i, "depthwise"), False))))
    return spec.replace(
        stem=stem, stages=tuple(stages), norm=ss[P + "norm"], attention=ss[P + "attention"],
        se_ratio=float(ss[P + "se_ratio"]), eca_kernel=int(ss[P + "eca_kernel"]),
        layer_scale=float(ss[P + "layer_scale"]), downsampling=ss[P + "downsampling"],
        block_norms=ss[P + "block_norms"], block_activations=ss[P + "block_activations"])


def _on_norm() -> None:  # the older "Batch norm" toggle follows the normalisation chosen here
    st.session_state[P + "batch_norm"] = st.session_state[P + "norm"] == "batch"


def on_batch_norm() -> None:  # … and this one follows the toggle
    st.session_state[P + "norm"] = "batch" if st.session_state[P + "batch_norm"] else "none"


# ---- the stage list's edits (state.add/remove/move_stage) carry each stage's newer fields with it ----

_STAGE_FIELDS = ("kernel", "depthwise")


def _stage_values(n: int) -> list[dict[str, object]]:
    ss = st.session_state
    return [{f: ss.get(stage_key(i, f), "auto" if f == "kernel" else False) for f in _STAGE_FIELDS} for i in range(n)]


def _write_stage_values(values: list[dict[str, object]]) -> None:
    for i, v in enumerate(values):
        for f in _STAGE_FIELDS:
            st.session_state[stage_key(i, f)] = v[f]


def add_stage() -> None:
    values = _stage_values(st.session_state[P + "n_stages"])
    state.add_stage()
    _write_stage_values(values + [values[-1] if values else {"kernel": "auto", "depthwise": False}])


def remove_stage(i: int) -> None:
    values = _stage_values(st.session_state[P + "n_stages"])
    state.remove_stage(i)
    _write_stage_values(values[:i] + values[i + 1:])


def move_stage(i: int, delta: int) -> None:
    values = _stage_values(st.session_state[P + "n_stages"])
    state.move_stage(i, delta)
    j = i + delta
    if 0 <= j < len(values):
        values[i], values[j] = values[j], values[i]
        _write_stage_values(values)


def norm_select(off: bool = False) -> None:
    st.selectbox(_("Normalisation"), NORMS, key=P + "norm", format_func=label_of(NORM_LABELS), on_change=_on_norm,
                 disabled=off,
                 help=_("Batch norm after every conv, before the activation (Ioffe & Szegedy 2015).") + "\n\n"
                      + _help("norm.layer", "norm.none"))


def stem_fields(stem_type: str, off: bool = False) -> None:
    """The deep stem's widths and pool, or the patchify stem's patch (`off`: drawn disabled, a locked builder)."""
    from app.builder import number_input  # the builder's bounded number widget
    if stem_type == "deep":
        st.caption(_(REASONS["stem.deep"]))
        c1, c2 = st.columns(2)
        _w = dict(min_value=1, max_value=4096, step=1, disabled=off)
        c1.number_input(_("1st 3×3 width"), key=P + "stem_w1", **_w)
        c2.number_input(_("2nd 3×3 width"), key=P + "stem_w2", **_w)
        c1, c2 = st.columns(2)
        with c1:
            st.selectbox(_("Pool"), ["max", "avg", "none", "conv"], key=P + "stem_pool", disabled=off,
                         format_func=label_of(POOL_LABELS), help=_help("stem.pool_conv"))
            number_input(_("Pool kernel"), P + "stem_pool_kernel", "stem_pool_kernel", disabled=off)
        with c2:
            number_input(_("Pool stride"), P + "stem_pool_stride", "stem_pool_stride", disabled=off)
    elif stem_type == "patchify":
        st.caption(_(REASONS["stem.patchify"]))
        number_input(_("Patch (kernel = stride)"), P + "stem_kernel", "stem_kernel", disabled=off)


def stage_kernel(i: int, off: bool = False) -> None:
    st.selectbox(_("Kernel"), KERNELS, key=stage_key(i, "kernel"), disabled=off,
                 format_func=label_of(AUTO),
                 help=_("The block's spatial conv: auto is 3×3, or 7×7 for ConvNeXt blocks (Liu et al. 2022 found "
                        "7×7 depthwise the best trade-off). Odd sizes keep the map's size."))
    st.toggle(_("Depthwise k×k"), key=stage_key(i, "depthwise"), help=_(REASONS["depthwise"]), disabled=off)


def modern_parts(spec: ArchSpec, off: bool = False) -> None:
    """The section 'Since 2016': attention, the ConvNeXt block's options, downsampling."""
    ss = st.session_state
    norm_select(off)
    st.selectbox(_("Channel attention"), ATTENTIONS, key=P + "attention", format_func=label_of(ATTENTION_LABELS),
                 help=_help("attention.se", "attention.eca"), disabled=off)
    c1, c2 = st.columns(2)
    c1.number_input(_("SE ratio"), min_value=0.001, max_value=1.0, step=0.0625, format="%.4f", key=P + "se_ratio",
                    disabled=off or ss[P + "attention"] != "se", help=_("Hu et al.: 1/16; ResNet-RS: 1/4."))
    c2.number_input(_("ECA kernel (0: auto)"), min_value=0, max_value=31, step=1, key=P + "eca_kernel",
                    disabled=off or ss[P + "attention"] != "eca",
                    help=_("0 picks it from the channels (Wang et al.): 5 for 256 channels, 7 for 2048."))
    convnext = any(s.block == "convnext" for s in spec.stages)
    st.number_input(_("Layer scale (ConvNeXt blocks; 0: none)"), min_value=0.0, max_value=1.0, format="%.0e",
                    key=P + "layer_scale", disabled=off or (not convnext and ss[P + "layer_scale"] == 0),
                    help=_help("layer_scale"))
    c1, c2 = st.columns(2)
    c1.selectbox(_("Norms per block"), HOW_MANY, key=P + "block_norms", format_func=label_of(HOW_MANY_LABELS),
                 help=_help("block_norms.one"), disabled=off)
    c2.selectbox(_("Activations per block"), HOW_MANY, key=P + "block_activations",
                 format_func=label_of(HOW_MANY_LABELS), help=_help("block_activations.one"), disabled=off)
    st.selectbox(_("Downsampling between stages"), DOWNSAMPLINGS, key=P + "downsampling", disabled=off,
                 format_func=label_of(DOWNSAMPLING_LABELS), help=_help("downsampling.separate"))
    if not convnext:
        st.caption(_("Layer scale and the norms/activations per block apply to ConvNeXt blocks."))
