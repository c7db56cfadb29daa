"""spec → layer plan: the ordered, shape-annotated list of every layer, shortcut and addition.

THE single source of truth. `build.py` makes modules from it, `trace.py` counts it, `graph.py`
draws it and `codegen.py` writes it out, so none of them can disagree about a shape.

Planning is arithmetic alone (no torch). A network whose shapes cannot meet is planned up to
the first layer that fails; that layer is kept (marked `failed`) and the failure becomes a
located `PlanProblem`: where ("stage 2 · block 0 · shortcut"), the shapes that disagree, and a fix.

Layer names are the built module's qualified names (torchvision's: "layer2.0.downsample.0"), and
the layers are listed in the order the built module calls them, a reused module (the block's
`relu`) once per call.
"""

from __future__ import annotations

import contextlib
import math

from resnet_core.i18n import N_, _
from resnet_core.structure.limits import (
    MAX_BLOCKS,
    MAX_CHANNELS,
    MAX_CLASSES,
    MAX_KERNEL,
    MAX_SPATIAL,
    MAX_STAGES,
    planned_work,
)
from resnet_core.structure.plan_blocks import BlockEmitter, inner_width
from resnet_core.structure.plan_checks import check_options, check_stage_options
from resnet_core.structure.plan_layers import Stop as _Stop
from resnet_core.structure.plan_layers import at_most as _at_most
from resnet_core.structure.plan_layers import choice_error as _choice_error
from resnet_core.structure.plan_layers import positive as _positive
from resnet_core.structure.records import Layer, Location, Plan, PlanProblem, Shape, StagePlan
from resnet_core.structure.spec import (
    ACTIVATIONS,
    BLOCK_TYPES,
    INITS,
    NORMS,
    POOL_TYPES,
    SHORTCUTS,
    STEM_TYPES,
    ArchSpec,
    Stage,
)

__all__ = ["inner_width", "plan"]


def _work_problems(spec: ArchSpec) -> list[PlanProblem]:
    """The planner's total work, bounded before any stage is planned: every stage's block count (located
    at the stage), then the blocks of all stages together. Each stage under its own limit is not enough:
    64 stages of 10,000 blocks would plan 7.7 million layers."""
    over = [_at_most(Location(i, None, "blocks"), N_("blocks"), st.blocks, MAX_BLOCKS)
            for i, st in enumerate(spec.stages[:MAX_STAGES])]
    found = [e for e in over if e is not None]
    if found:
        return found
    blocks, layers = planned_work(spec)
    if blocks > MAX_BLOCKS:
        return [PlanProblem(
            "out_of_range", Location(part="stages"),
            _("the stages hold {blocks:,} blocks in all (up to {layers:,} layers to plan); the explorer plans "
              "at most {limit:,} blocks in a network", blocks=blocks, layers=layers, limit=MAX_BLOCKS),
            _("use fewer blocks per stage, or fewer stages ({limit:,} blocks or less in all)", limit=MAX_BLOCKS))]
    return []


# --------------------------------------------------------------------------------------------
# The planner
# --------------------------------------------------------------------------------------------

class _Planner(BlockEmitter):
    # ---- network pieces ---------------------------------------------------------------------
    def check_globals(self) -> None:
        spec = self.spec
        errs: list[PlanProblem | None] = []
        inp = Location(part="input")
        errs.append(_positive(inp, N_("input channels"), spec.in_channels))
        errs.append(_positive(inp, N_("input height"), spec.input_size[0]))
        errs.append(_positive(inp, N_("input width"), spec.input_size[1]))
        stem = spec.stem
        sl = Location(part="stem")
        if stem.type not in STEM_TYPES:
            errs.append(_choice_error(sl, N_("stem type"), stem.type, STEM_TYPES))
        errs.append(_positive(sl, N_("stem channels"), stem.channels))
        if stem.type in ("custom", "deep", "patchify"):
            errs.append(_positive(sl, N_("stem kernel"), stem.kernel))
            errs.append(_positive(sl, N_("stem stride"), stem.stride))
            if stem.padding is not None:
                errs.append(_positive(sl, N_("stem padding"), stem.padding, 0))
            if stem.pool not in POOL_TYPES:
                errs.append(_choice_error(sl, N_("stem pool"), stem.pool, POOL_TYPES))
            elif stem.pool != "none":
                errs.append(_positive(sl, N_("stem pool kernel"), stem.pool_kernel))
                errs.append(_positive(sl, N_("stem pool stride"), stem.pool_stride))
        net = Location(part="options")
        if spec.shortcut not in SHORTCUTS:
            errs.append(_choice_error(Location(part="shortcut option"), N_("shortcut option"), spec.shortcut, SHORTCUTS))
        if spec.norm not in NORMS:
            errs.append(_choice_error(Location(part="normalisation"), N_("normalisation"), spec.norm, NORMS))
        if spec.activation not in ACTIVATIONS:
            errs.append(_choice_error(Location(part="activation"), N_("activation"), spec.activation, ACTIVATIONS))
        if spec.init not in INITS:
            errs.append(_choice_error(Location(part="initialisation"), N_("initialisation"), spec.init, INITS))
        errs += check_options(spec)
        if spec.norm == "batch":
            if not spec.bn_eps > 0:
                errs.append(PlanProblem("out_of_range", net,
                                        _("batch-norm eps is {eps}; it must be > 0", eps=spec.bn_eps),
                                        _("use 1e-5 (PyTorch's default)")))
            if not 0.0 <= spec.bn_momentum <= 1.0:
                errs.append(PlanProblem("out_of_range", net,
                                        _("batch-norm momentum is {momentum}; it must lie in [0, 1]",
                                          momentum=spec.bn_momentum),
                                        _("use 0.1 (PyTorch's default)")))
        errs.append(_positive(Location(part="head · fc"), N_("number of classes"), spec.num_classes))
        limits = [(inp, N_("input channels"), spec.in_channels, MAX_CHANNELS),
                  (inp, N_("input height"), spec.input_size[0], MAX_SPATIAL),
                  (inp, N_("input width"), spec.input_size[1], MAX_SPATIAL),
                  (sl, N_("stem channels"), stem.channels, MAX_CHANNELS),
                  (Location(part="head · fc"), N_("number of classes"), spec.num_classes, MAX_CLASSES),
                  (Location(part="stages"), N_("the number of stages"), len(spec.stages), MAX_STAGES)]
        errs += _work_problems(spec)
        if stem.type in ("custom", "deep", "patchify"):
            limits += [(sl, N_("stem kernel"), stem.kernel, MAX_KERNEL), (sl, N_("stem stride"), stem.stride, MAX_KERNEL),
                       (sl, N_("stem padding"), stem.padding or 0, MAX_KERNEL),
                       (sl, N_("stem pool kernel"), stem.pool_kernel, MAX_KERNEL),
                       (sl, N_("stem pool stride"), stem.pool_stride, MAX_KERNEL)]
        errs += [_at_most(*args) for args in limits]
        self.errors.extend(e for e in errs if e is not None)
        if self.errors:
            raise _Stop

    def stem(self) -> None:
        """The stem, in torchvision's names (conv1, bn1, relu, maxpool), timm's for the deep stem (conv1.0-6) and
        ResNet-RS's pool conv (maxpool.0-2), or torchvision ConvNeXt's (features.0.N) with separate downsampling."""
        spec, stem = self.spec, self.spec.stem
        r = stem.resolved()
        seq = iter(range(100))
        features = spec.downsampling == "separate"
        name = (lambda default: f"features.0.{next(seq)}") if features else (lambda default: default)
        x = self.shape
        if stem.type == "deep":
            w1, w2 = stem.widths
            for i, (width, s) in enumerate(((w1, 2), (w2, 1))):
                x = self.conv(name(f"conv1.{3 * i}"), x, width, 3, s, 1, "stem", label="stem · deep conv",
                              in_depth=i == 0)
                x = self.norm(name(f"conv1.{3 * i + 1}"), x, "stem")
                x = self.activation(name(f"conv1.{3 * i + 2}"), x, "stem")
            x = self.conv(name("conv1.6"), x, r["channels"], 3, 1, 1, "stem", label="stem · deep conv",
                          in_depth=False)
        else:
            x = self.conv(name("conv1"), x, r["channels"], r["kernel"], r["stride"], r["padding"], "stem",
                          label="stem · conv1")
        x = self.norm(name("bn1"), x, "stem")
        if stem.type != "patchify":  # ConvNeXt's patchify stem: conv and norm, no activation
            x = self.activation(name(self.act), x, "stem")
        if r["pool"] == "conv":  # ResNet-RS: a 3×3 stride-2 conv + norm + act where the max pool was
            x = self.conv(name("maxpool.0"), x, r["channels"], r["pool_kernel"], r["pool_stride"],
                          r["pool_padding"], "stem", label="stem · pool conv", in_depth=False)
            x = self.norm(name("maxpool.1"), x, "stem")
            x = self.activation(name("maxpool.2"), x, "stem")
        elif r["pool"] != "none":
            x = self.pool(name("maxpool" if r["pool"] == "max" else "pool"), x, r["pool"], r["pool_kernel"],
                          r["pool_stride"], r["pool_padding"], "stem")
        self.shape = x

    def check_stage(self, i: int, st: Stage) -> None:
        where = lambda part: Location(i, None, part)  # noqa: E731
        if st.block not in BLOCK_TYPES:
            self.fail(_choice_error(where("block type"), N_("block type"), st.block, BLOCK_TYPES))
        for what, value, limit in ((N_("blocks"), st.blocks, MAX_BLOCKS), (N_("width"), st.width, MAX_CHANNELS),
                                   (N_("stride"), st.stride, MAX_KERNEL), (N_("groups"), st.groups, MAX_CHANNELS),
                                   (N_("width per group"), st.width_per_group, MAX_CHANNELS),
                                   (N_("expansion"), st.expansion_or_default, MAX_CHANNELS),
                                   (N_("kernel"), st.kernel_or_default, MAX_KERNEL)):
            err = _positive(where(what), what, value) or _at_most(where(what), what, value, limit)
            if err:
                self.fail(err)
        for what, value in ((N_("output width (width × expansion)"), st.width * st.expansion_or_default),
                            (N_("branch width"), inner_width(st))):
            err = _at_most(where(what.split(" (")[0]), what, value, MAX_CHANNELS)
            if err:
                self.fail(err)
        if st.kernel_or_default % 2 == 0:
            k = st.kernel_or_default
            self.fail(PlanProblem(
                "out_of_range", where("kernel"),
                _("kernel {k} is even: a {k}×{k} conv with padding {half} makes the map one pixel larger, "
                  "and F(x) could not be added to x", k=k, half=k // 2),
                _("use an odd kernel ({below} or {above})", below=k - 1, above=k + 1)))
        for problem in check_stage_options(self.spec, i):
            self.fail(problem)
        if st.block == "convnext":
            return
        d = inner_width(st)
        if d < 1:
            self.fail(PlanProblem(
                "non_positive", where("width per group"),
                _("the branch width int({width} · {wpg}/64) · {groups} is {d}", width=st.width,
                  wpg=st.width_per_group, groups=st.groups, d=d),
                _("raise width or width per group so that width · width_per_group ≥ 64 (e.g. width_per_group "
                  "{wpg})", wpg=math.ceil(64 / st.width))))

    def head(self, final_norm: bool) -> None:
        self.stage = self.block = None
        x = self.shape
        features = self.spec.downsampling == "separate"
        if final_norm:
            x = self.norm("final_bn", x, "head")
            x = self.activation(self.act, x, "head")
        c, h, w = x
        self._add(name="avgpool", op="gap", type="AdaptiveAvgPool2d", in_shape=x, out_shape=(c, 1, 1),
                  part="head", kernel=h)
        if features:  # ConvNeXt: a norm after the pool, then the classifier
            self.norm("classifier.0", (c, 1, 1), "head")
        self._add(name="classifier.1" if features else "flatten", op="flatten", type="Flatten", in_shape=(c, 1, 1),
                  out_shape=(c,), part="head")
        self._add(name="classifier.2" if features else "fc", op="linear", type="Linear", in_shape=(c,),
                  out_shape=(self.spec.num_classes,), part="head", bias=True)
        self.shape = (self.spec.num_classes,)

    def run(self) -> bool:
        spec = self.spec
        self.check_globals()
        self.stem()
        features = spec.downsampling == "separate"
        k = 1  # torchvision ConvNeXt's features.k: the stem is 0, then stages and downsampling layers in turn
        for i, st in enumerate(spec.stages):
            self.stage, self.block = i, None
            self.check_stage(i, st)
            out_c = st.width if st.block == "convnext" else st.width * st.expansion_or_default
            ds = features and (st.stride != 1 or self.shape[0] != out_c)
            name = f"features.{k + ds}" if features else f"layer{i + 1}"
            sp = StagePlan(index=i, name=name, stage=st, in_shape=self.shape)
            self.stages.append(sp)
            if ds:
                self.shape = self.downsample_layer(f"features.{k}", self.shape, out_c, st.stride)
            k += 1 + ds
            for j in range(st.blocks):
                self.block = j
                b = self.block_plan(i, j, st, self.shape, f"{name}.{j}")
                sp.blocks.append(b)
                try:
                    self.shape = self.emit_block(b)
                finally:
                    b.end = len(self.layers)
                b.out_shape = self.shape
            sp.out_shape = self.shape
            if spec.stages[i].blocks and self.shape[1] == 1 and self.shape[2] == 1:
                self.warnings.append(
                    _("stage {n} runs on 1×1 maps: its {k}×{k} convs see mostly zero padding (use a larger input "
                      "or fewer stride-2 steps)", n=i + 1, k=st.kernel_or_default))
        self.head(final_norm=self.final_norm)
        return True

    @property
    def final_norm(self) -> bool:
        return bool(self.spec.stages) and self.spec.stages[-1].block.startswith("preact")


def plan(spec: ArchSpec, input_shape: Shape | None = None) -> Plan:
    """Plan every layer of `spec` on an input of `input_shape` (C, H, W; default: the spec's)."""
    shape = tuple(input_shape) if input_shape is not None else spec.input_shape
    if input_shape is not None and (len(shape) != 3 or any(not isinstance(v, int) for v in shape)):
        raise ValueError(f"input_shape must be three integers (C, H, W), got {input_shape!r}")
    if input_shape is not None:
        spec = spec.replace(in_channels=shape[0], input_size=(shape[1], shape[2]))
    p = _Planner(spec, shape)
    ok = False
    with contextlib.suppress(_Stop):
        ok = p.run()
    warnings = list(p.warnings)
    if spec.zero_init_residual and not spec.skip:
        warnings.append(_("zero-init residual on a plain net (no skips) zeroes every block's output at "
                          "initialisation"))
    if not spec.stages:
        warnings.append(_("the network has no stages: only the stem and the head"))
    _number_uses(p.layers)
    return Plan(spec=spec, input_shape=shape, layers=p.layers, stages=p.stages, errors=p.errors,
                warnings=warnings, output_shape=p.shape if ok else None, final_norm=p.final_norm)


def _number_uses(layers: list[Layer]) -> None:
    """Number each use of a module that the plan calls more than once (a block's shared `relu`)."""
    seen: dict[str, list[Layer]] = {}
    for lay in layers:
        seen.setdefault(lay.name, []).append(lay)
    for uses in seen.values():
        for k, lay in enumerate(uses):
            lay.call, lay.uses = k, len(uses)
