"""Checks of the options added with the residual family since 2016 (stems, SE/ECA, ConvNeXt's block and
downsampling), each a located problem with a fix, found before anything is planned."""

from __future__ import annotations

import math

from resnet_core.i18n import N_, _
from resnet_core.structure.limits import MAX_CHANNELS, MAX_KERNEL
from resnet_core.structure.plan_layers import at_most, choice_error, positive
from resnet_core.structure.records import Location, PlanProblem
from resnet_core.structure.spec import ATTENTIONS, BLOCK_TYPES, DOWNSAMPLINGS, HOW_MANY, ArchSpec


def check_options(spec: ArchSpec) -> list[PlanProblem | None]:
    errs: list[PlanProblem | None] = []
    for part, what, value, choices in (("attention", N_("attention"), spec.attention, ATTENTIONS),
                                       ("downsampling", N_("downsampling"), spec.downsampling, DOWNSAMPLINGS),
                                       ("block norms", N_("block norms"), spec.block_norms, HOW_MANY),
                                       ("block activations", N_("block activations"), spec.block_activations,
                                        HOW_MANY)):
        if value not in choices:
            errs.append(choice_error(Location(part=part), what, value, choices))
    if spec.stem.type == "deep":
        sl = Location(part="stem")
        errs += [positive(sl, N_("deep stem width"), w) or at_most(sl, N_("deep stem width"), w, MAX_CHANNELS)
                 for w in spec.stem.widths]
    return errs


def check_stage_options(spec: ArchSpec, i: int) -> list[PlanProblem]:
    """The options' problems located at stage `i` (its index is where they first act), so that the stem and the
    stages before it are still planned and drawn. Network-wide settings are checked at the first stage."""
    errs: list[PlanProblem | None] = []
    st = spec.stages[i]
    if spec.attention in ("se", "eca") and st.block == "convnext":
        errs.append(PlanProblem(
            "unknown_value", Location(i, None, "attention"),
            _("{attention} sits inside basic and bottleneck blocks; stage {n} has ConvNeXt blocks, which have no "
              "channel attention", attention=spec.attention.upper(), n=i + 1),
            _("set attention to none, or use basic or bottleneck blocks in this stage")))
    if i == 0:
        if spec.attention == "se" and not (math.isfinite(spec.se_ratio) and 0 < spec.se_ratio <= 1):
            errs.append(PlanProblem("out_of_range", Location(part="attention · SE ratio"),
                                    _("the SE ratio is {ratio}; it must lie in (0, 1]", ratio=spec.se_ratio),
                                    _("use 0.0625 (1/16, Hu et al. 2018) or 0.25 (ResNet-RS)")))
        k = spec.eca_kernel
        if spec.attention == "eca" and (k < 0 or (k and k % 2 == 0) or k > MAX_KERNEL):
            errs.append(PlanProblem("out_of_range", Location(part="attention · ECA kernel"),
                                    _("the ECA kernel is {k}; it must be odd (the 1-D conv keeps the channel "
                                      "count), at most {limit:,}, or 0 to pick it from the channels", k=k,
                                      limit=MAX_KERNEL),
                                    _("use 0 (Wang et al.'s rule: 5 for 256 channels, 7 for 2048) or an odd "
                                      "number")))
        if not (math.isfinite(spec.layer_scale) and spec.layer_scale >= 0):
            errs.append(PlanProblem("out_of_range", Location(part="layer scale"),
                                    _("the layer scale is {scale}; it must be a number ≥ 0", scale=spec.layer_scale),
                                    _("use 1e-6 (ConvNeXt's initial value), or 0 for none")))
        convnext = [j for j, s in enumerate(spec.stages) if s.block == "convnext"]
        others = [j for j, s in enumerate(spec.stages) if s.block != "convnext" and s.block in BLOCK_TYPES]
        if not convnext:
            options: tuple[tuple[str, object, object, str], ...] = (
                    ("layer scale", spec.layer_scale, 0.0, N_("set layer scale to 0")),
                    ("block norms", spec.block_norms, "every", N_("set block norms to every")),
                    ("block activations", spec.block_activations, "every", N_("set block activations to every")))
            for part, setting, default, fix in options:
                if setting != default and others:
                    errs.append(PlanProblem(
                        "unknown_value", Location(part=part),
                        _("{part} ({setting}) applies to ConvNeXt blocks, and no stage has them", part=_(part),
                          setting=setting),
                        _("{fix}, or choose block convnext for a stage", fix=_(fix))))
    return [e for e in errs if e is not None]
