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
from typing import Any

from resnet_core.formatting import did_you_mean, fmt_int
from resnet_core.structure.limits import (
    MAX_BLOCKS,
    MAX_CHANNELS,
    MAX_CLASSES,
    MAX_KERNEL,
    MAX_SPATIAL,
    MAX_STAGES,
    planned_work,
)
from resnet_core.structure.records import (
    ACT_TYPES,
    BlockPlan,
    BlockShortcut,
    Layer,
    LayerPart,
    Location,
    Plan,
    PlanProblem,
    Shape,
    StagePlan,
    act_attr,
    conv_out,
    shape_str,
)
from resnet_core.structure.spec import (
    ACTIVATIONS,
    BLOCK_TYPES,
    INITS,
    NORMS,
    POOL_TYPES,
    SHORTCUTS,
    STEM_TYPES,
    ArchSpec,
    PoolType,
    Stage,
)


def inner_width(stage: Stage) -> int:
    """torchvision's branch width int(planes · width_per_group / 64) · groups, in exact integer arithmetic."""
    return (stage.width * stage.width_per_group // 64) * stage.groups


def _choice_error(where: Location, what: str, value: str, choices: tuple[str, ...]) -> PlanProblem:
    close = did_you_mean(value, choices)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return PlanProblem("unknown_value", where, f"unknown {what} '{value}'",
                     f"{hint}choose one of {', '.join(choices)}")


def _positive(where: Location, what: str, value: int, minimum: int = 1) -> PlanProblem | None:
    if value < minimum:
        return PlanProblem("non_positive", where, f"{what} is {value}; it must be at least {minimum}",
                         f"set {what} to {minimum} or more")
    return None


def _a(n: int) -> str:
    """'a' or 'an' before a number read aloud: an 8, an 11, an 18, an 80; a 7, a 110."""
    d = str(n)
    return "an" if d[0] == "8" or (len(d) % 3 == 2 and d[:2] in ("11", "18")) else "a"


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, int(math.isqrt(n)) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def _some(values: list[int], most: int = 8) -> str:
    shown = ", ".join(map(str, values[:most]))
    return "{" + shown + (", …" if len(values) > most else "") + "}"


def _at_most(where: Location, what: str, value: int, limit: int) -> PlanProblem | None:
    if value > limit:
        return PlanProblem("out_of_range", where, f"{what} is {fmt_int(value)}; the explorer plans at most {limit:,}",
                         f"set {what} to {limit:,} or less")
    return None


def _work_problems(spec: ArchSpec) -> list[PlanProblem]:
    """The planner's total work, bounded before any stage is planned: every stage's block count (located
    at the stage), then the blocks of all stages together. Each stage under its own limit is not enough:
    64 stages of 10,000 blocks would plan 7.7 million layers."""
    over = [_at_most(Location(i, None, "blocks"), "blocks", st.blocks, MAX_BLOCKS)
            for i, st in enumerate(spec.stages[:MAX_STAGES])]
    found = [e for e in over if e is not None]
    if found:
        return found
    blocks, layers = planned_work(spec)
    if blocks > MAX_BLOCKS:
        return [PlanProblem(
            "out_of_range", Location(part="stages"),
            f"the stages hold {blocks:,} blocks in all (up to {layers:,} layers to plan); the explorer plans "
            f"at most {MAX_BLOCKS:,} blocks in a network",
            f"use fewer blocks per stage, or fewer stages ({MAX_BLOCKS:,} blocks or less in all)")]
    return []


class _Stop(Exception):
    """Raised inside the planner at the first failure; the plan so far is kept."""


# --------------------------------------------------------------------------------------------
# The planner
# --------------------------------------------------------------------------------------------

class _Planner:
    def __init__(self, spec: ArchSpec, input_shape: Shape):
        self.spec = spec
        self.layers: list[Layer] = []
        self.stages: list[StagePlan] = []
        self.errors: list[PlanProblem] = []
        self.warnings: list[str] = []
        self.shape: Shape = input_shape
        self.batch_norm = spec.norm == "batch"
        self.act = act_attr(spec.activation)
        self.act_type = ACT_TYPES.get(spec.activation, "ReLU")
        self.stage: int | None = None
        self.block: int | None = None

    # ---- errors ---------------------------------------------------------------------------
    def fail(self, err: PlanProblem) -> None:
        self.errors.append(err)
        raise _Stop

    def loc(self, part: str | None) -> Location:
        return Location(self.stage, self.block, part)

    # ---- layer emitters: each returns the output shape --------------------------------------
    def _add(self, **kw: Any) -> Layer:
        layer = Layer(index=len(self.layers), stage=self.stage, block=self.block, **kw)
        self.layers.append(layer)
        return layer

    def conv(self, name: str, x: Shape, out_c: int, k: int, s: int, p: int, part: LayerPart, groups: int = 1,
             label: str | None = None) -> Shape:
        c, h, w = x
        bias = not self.batch_norm
        oh, ow = conv_out(h, k, s, p), conv_out(w, k, s, p)
        out = (out_c, oh, ow)
        where = self.loc(label or name.rsplit(".", 1)[-1])
        if c % groups or out_c % groups:
            self._add(name=name, op="conv", type="Conv2d", in_shape=x, out_shape=None, part=part, kernel=k,
                      stride=s, padding=p, groups=groups, bias=bias, failed=True)
            bad = " and ".join(f"{v}" for v in (c, out_c) if v % groups)
            common = math.gcd(c, out_c)
            self.fail(PlanProblem(
                "groups", where,
                f"groups={groups} must divide the conv's input and output channels ({c} → {out_c}); {bad} "
                f"{'is' if ' and ' not in bad else 'are'} not a multiple of {groups}",
                f"use groups in {_some(_divisors(common))}, or change the widths",
                layer=len(self.layers) - 1))
        if oh < 1 or ow < 1:
            self._add(name=name, op="conv", type="Conv2d", in_shape=x, out_shape=None, part=part, kernel=k,
                      stride=s, padding=p, groups=groups, bias=bias, failed=True)
            self.fail(PlanProblem(
                "spatial_underflow", where,
                f"{_a(k)} {k}×{k} conv (stride {s}, padding {p}) needs a map of at least {k - 2 * p}×{k - 2 * p}, "
                f"and this one is {h}×{w}: no output position is left (the spatial size would shrink below 1)",
                f"use a larger input, more padding (padding {k // 2} keeps it ≥ 1), or fewer stride steps before here",
                layer=len(self.layers) - 1))
        self._add(name=name, op="conv", type="Conv2d", in_shape=x, out_shape=out, part=part, kernel=k,
                  stride=s, padding=p, groups=groups, bias=bias)
        return out

    def norm(self, name: str, x: Shape, part: LayerPart) -> Shape:
        if self.batch_norm:
            self._add(name=name, op="norm", type="BatchNorm2d", in_shape=x, out_shape=x, part=part)
        return x

    def activation(self, name: str, x: Shape, part: LayerPart) -> Shape:
        self._add(name=name, op="act", type=self.act_type, in_shape=x, out_shape=x, part=part)
        return x

    def pool(self, name: str, x: Shape, kind: PoolType, k: int, s: int, p: int, part: LayerPart) -> Shape:
        c, h, w = x
        oh, ow = conv_out(h, k, s, p), conv_out(w, k, s, p)
        op, typ = ("maxpool", "MaxPool2d") if kind == "max" else ("avgpool", "AvgPool2d")
        if oh < 1 or ow < 1:
            self._add(name=name, op=op, type=typ, in_shape=x, out_shape=None, part=part, kernel=k, stride=s,
                      padding=p, failed=True)
            self.fail(PlanProblem(
                "spatial_underflow", Location(None, None, "stem · pool"),
                f"{_a(k)} {k}×{k} pool (stride {s}, padding {p}) needs a map of at least {k - 2 * p}×{k - 2 * p}, and "
                f"this one is {h}×{w}: no output position is left (the spatial size would shrink below 1)",
                "use a larger input, or no stem pool", layer=len(self.layers) - 1))
        out = (c, oh, ow)
        self._add(name=name, op=op, type=typ, in_shape=x, out_shape=out, part=part, kernel=k, stride=s, padding=p)
        return out

    # ---- network pieces ---------------------------------------------------------------------
    def check_globals(self) -> None:
        spec = self.spec
        errs: list[PlanProblem | None] = []
        inp = Location(part="input")
        errs.append(_positive(inp, "input channels", spec.in_channels))
        errs.append(_positive(inp, "input height", spec.input_size[0]))
        errs.append(_positive(inp, "input width", spec.input_size[1]))
        stem = spec.stem
        sl = Location(part="stem")
        if stem.type not in STEM_TYPES:
            errs.append(_choice_error(sl, "stem type", stem.type, STEM_TYPES))
        errs.append(_positive(sl, "stem channels", stem.channels))
        if stem.type == "custom":
            errs.append(_positive(sl, "stem kernel", stem.kernel))
            errs.append(_positive(sl, "stem stride", stem.stride))
            if stem.padding is not None:
                errs.append(_positive(sl, "stem padding", stem.padding, 0))
            if stem.pool not in POOL_TYPES:
                errs.append(_choice_error(sl, "stem pool", stem.pool, POOL_TYPES))
            elif stem.pool != "none":
                errs.append(_positive(sl, "stem pool kernel", stem.pool_kernel))
                errs.append(_positive(sl, "stem pool stride", stem.pool_stride))
        net = Location(part="options")
        if spec.shortcut not in SHORTCUTS:
            errs.append(_choice_error(Location(part="shortcut option"), "shortcut option", spec.shortcut, SHORTCUTS))
        if spec.norm not in NORMS:
            errs.append(_choice_error(Location(part="normalisation"), "normalisation", spec.norm, NORMS))
        if spec.activation not in ACTIVATIONS:
            errs.append(_choice_error(Location(part="activation"), "activation", spec.activation, ACTIVATIONS))
        if spec.init not in INITS:
            errs.append(_choice_error(Location(part="initialisation"), "initialisation", spec.init, INITS))
        if spec.norm == "batch":
            if not spec.bn_eps > 0:
                errs.append(PlanProblem("out_of_range", net, f"batch-norm eps is {spec.bn_eps}; it must be > 0",
                                      "use 1e-5 (PyTorch's default)"))
            if not 0.0 <= spec.bn_momentum <= 1.0:
                errs.append(PlanProblem("out_of_range", net, f"batch-norm momentum is {spec.bn_momentum}; "
                                      "it must lie in [0, 1]", "use 0.1 (PyTorch's default)"))
        errs.append(_positive(Location(part="head · fc"), "number of classes", spec.num_classes))
        limits = [(inp, "input channels", spec.in_channels, MAX_CHANNELS),
                  (inp, "input height", spec.input_size[0], MAX_SPATIAL),
                  (inp, "input width", spec.input_size[1], MAX_SPATIAL),
                  (sl, "stem channels", stem.channels, MAX_CHANNELS),
                  (Location(part="head · fc"), "number of classes", spec.num_classes, MAX_CLASSES),
                  (Location(part="stages"), "the number of stages", len(spec.stages), MAX_STAGES)]
        errs += _work_problems(spec)
        if stem.type == "custom":
            limits += [(sl, "stem kernel", stem.kernel, MAX_KERNEL), (sl, "stem stride", stem.stride, MAX_KERNEL),
                       (sl, "stem padding", stem.padding or 0, MAX_KERNEL),
                       (sl, "stem pool kernel", stem.pool_kernel, MAX_KERNEL),
                       (sl, "stem pool stride", stem.pool_stride, MAX_KERNEL)]
        errs += [_at_most(*args) for args in limits]
        self.errors.extend(e for e in errs if e is not None)
        if self.errors:
            raise _Stop

    def stem(self) -> None:
        r = self.spec.stem.resolved()
        x = self.conv("conv1", self.shape, r["channels"], r["kernel"], r["stride"], r["padding"], "stem",
                      label="stem · conv1")
        x = self.norm("bn1", x, "stem")
        x = self.activation(self.act, x, "stem")
        if r["pool"] != "none":
            x = self.pool("maxpool" if r["pool"] == "max" else "pool", x, r["pool"], r["pool_kernel"],
                          r["pool_stride"], r["pool_padding"], "stem")
        self.shape = x

    def check_stage(self, i: int, st: Stage) -> None:
        where = lambda part: Location(i, None, part)  # noqa: E731
        if st.block not in BLOCK_TYPES:
            self.fail(_choice_error(where("block type"), "block type", st.block, BLOCK_TYPES))
        for what, value, limit in (("blocks", st.blocks, MAX_BLOCKS), ("width", st.width, MAX_CHANNELS),
                                   ("stride", st.stride, MAX_KERNEL), ("groups", st.groups, MAX_CHANNELS),
                                   ("width per group", st.width_per_group, MAX_CHANNELS),
                                   ("expansion", st.expansion_or_default, MAX_CHANNELS)):
            err = _positive(where(what), what, value) or _at_most(where(what), what, value, limit)
            if err:
                self.fail(err)
        for what, value in (("output width (width × expansion)", st.width * st.expansion_or_default),
                            ("branch width", inner_width(st))):
            err = _at_most(where(what.split(" (")[0]), what, value, MAX_CHANNELS)
            if err:
                self.fail(err)
        d = inner_width(st)
        if d < 1:
            self.fail(PlanProblem(
                "non_positive", where("width per group"),
                f"the branch width int({st.width} · {st.width_per_group}/64) · {st.groups} is {d}",
                f"raise width or width per group so that width · width_per_group ≥ 64 (e.g. width_per_group "
                f"{math.ceil(64 / st.width)})"))

    def block_plan(self, i: int, j: int, st: Stage, x: Shape) -> BlockPlan:
        spec = self.spec
        stride = st.stride if j == 0 else 1
        c_in = x[0]
        d = inner_width(st)
        c_out = st.width * st.expansion_or_default
        changes = stride != 1 or c_in != c_out
        shortcut: BlockShortcut
        if not spec.skip:
            shortcut = "none"
        elif spec.shortcut == "C" or (spec.shortcut == "B" and changes):
            shortcut = "projection"
        elif spec.shortcut == "A" and changes:
            shortcut = "pad"
        else:
            shortcut = "identity"
        return BlockPlan(stage=i, index=j, name=f"layer{i + 1}.{j}", kind=st.block, in_shape=x, out_shape=None,
                         stride=stride, in_channels=c_in, inner_width=d, out_channels=c_out, groups=st.groups,
                         shortcut=shortcut, first=len(self.layers))

    def emit_block(self, b: BlockPlan) -> Shape:
        n = b.name
        x = b.in_shape
        g = b.groups
        s = b.stride
        act = f"{n}.{self.act}"
        preact = b.kind.startswith("preact")
        sc_in = x  # what the shortcut sees
        if b.kind == "basic":
            y = self.conv(f"{n}.conv1", x, b.inner_width, 3, s, 1, "main", g)
            y = self.norm(f"{n}.bn1", y, "main")
            y = self.activation(act, y, "main")
            y = self.conv(f"{n}.conv2", y, b.out_channels, 3, 1, 1, "main", g)
            y = self.norm(f"{n}.bn2", y, "main")
        elif b.kind == "bottleneck":
            s1, s3 = (s, 1) if self.spec.stride_in_1x1 else (1, s)
            y = self.conv(f"{n}.conv1", x, b.inner_width, 1, s1, 0, "main")
            y = self.norm(f"{n}.bn1", y, "main")
            y = self.activation(act, y, "main")
            y = self.conv(f"{n}.conv2", y, b.inner_width, 3, s3, 1, "main", g)
            y = self.norm(f"{n}.bn2", y, "main")
            y = self.activation(act, y, "main")
            y = self.conv(f"{n}.conv3", y, b.out_channels, 1, 1, 0, "main")
            y = self.norm(f"{n}.bn3", y, "main")
        elif b.kind == "preact_basic":
            y = self.norm(f"{n}.bn1", x, "main")
            y = self.activation(act, y, "main")
            sc_in = y
            y = self.conv(f"{n}.conv1", y, b.inner_width, 3, s, 1, "main", g)
            y = self.norm(f"{n}.bn2", y, "main")
            y = self.activation(act, y, "main")
            y = self.conv(f"{n}.conv2", y, b.out_channels, 3, 1, 1, "main", g)
        else:  # preact_bottleneck
            y = self.norm(f"{n}.bn1", x, "main")
            y = self.activation(act, y, "main")
            sc_in = y
            s1, s3 = (s, 1) if self.spec.stride_in_1x1 else (1, s)
            y = self.conv(f"{n}.conv1", y, b.inner_width, 1, s1, 0, "main")
            y = self.norm(f"{n}.bn2", y, "main")
            y = self.activation(act, y, "main")
            y = self.conv(f"{n}.conv2", y, b.inner_width, 3, s3, 1, "main", g)
            y = self.norm(f"{n}.bn3", y, "main")
            y = self.activation(act, y, "main")
            y = self.conv(f"{n}.conv3", y, b.out_channels, 1, 1, 0, "main")

        if b.shortcut == "none":
            out = y
        else:
            if b.shortcut == "projection":
                sc = self.conv(f"{n}.downsample.0", sc_in, b.out_channels, 1, s, 0, "shortcut",
                               label="shortcut · 1×1 projection")
                sc = self.norm(f"{n}.downsample.1", sc, "shortcut")
            elif b.shortcut == "pad":
                sc = self.pad_shortcut(f"{n}.downsample", x, b.out_channels, s)
            else:
                sc = x
            if sc != y:
                self._add(name=f"{n}.add", op="add", type="Add", in_shape=y, out_shape=None, part="add",
                          other_shape=sc, failed=True)
                self.fail(self.mismatch(b, y, sc))
            self._add(name=f"{n}.add", op="add", type="Add", in_shape=y, out_shape=y, part="add", other_shape=sc)
            out = y
        if not preact:
            out = self.activation(act, out, "post")
        return out

    def pad_shortcut(self, name: str, x: Shape, out_c: int, stride: int) -> Shape:
        c, h, w = x
        out = (out_c, conv_out(h, 1, stride, 0), conv_out(w, 1, stride, 0))
        if out_c < c:
            self._add(name=name, op="pad", type="PadShortcut", in_shape=x, out_shape=None, part="shortcut",
                      stride=stride, failed=True)
            self.fail(PlanProblem(
                "channels_decrease", self.loc("shortcut"),
                f"option A pads x with zero channels, but this block goes from {c} to {out_c} channels: "
                "zero-padding cannot remove channels",
                f"use shortcut option B or C (a 1×1 projection), or make this stage at least {c} channels wide",
                shapes=(x, out), layer=len(self.layers) - 1))
        self._add(name=name, op="pad", type="PadShortcut", in_shape=x, out_shape=out, part="shortcut",
                  kernel=1, stride=stride)
        return out

    def mismatch(self, b: BlockPlan, fx: Shape, sc: Shape) -> PlanProblem:
        fixes = ["use a 1×1 projection shortcut (option B)"]
        if fx[0] >= sc[0]:  # option A can subsample and add zero channels, never remove channels
            if fx[1:] != sc[1:] and fx[0] == sc[0]:
                fixes.append(f"or stride {b.stride} in the shortcut (option A subsamples x)")
            elif fx[1:] != sc[1:]:
                fixes.append(f"or a zero-padded identity with stride {b.stride} (option A)")
            else:
                fixes.append("or a zero-padded identity (option A)")
        return PlanProblem(
            "shape_mismatch", self.loc("shortcut"),
            f"F(x) is {shape_str(fx)} but the identity shortcut x is {shape_str(sc)}: they cannot be added",
            " ".join(fixes), shapes=(fx, sc), layer=len(self.layers) - 1)

    def head(self, final_norm: bool) -> None:
        self.stage = self.block = None
        x = self.shape
        if final_norm:
            x = self.norm("final_bn", x, "head")
            x = self.activation(self.act, x, "head")
        c, h, w = x
        self._add(name="avgpool", op="gap", type="AdaptiveAvgPool2d", in_shape=x, out_shape=(c, 1, 1),
                  part="head", kernel=h)
        self._add(name="flatten", op="flatten", type="Flatten", in_shape=(c, 1, 1), out_shape=(c,), part="head")
        self._add(name="fc", op="linear", type="Linear", in_shape=(c,), out_shape=(self.spec.num_classes,),
                  part="head", bias=True)
        self.shape = (self.spec.num_classes,)

    def run(self) -> bool:
        spec = self.spec
        self.check_globals()
        self.stem()
        for i, st in enumerate(spec.stages):
            self.stage, self.block = i, None
            sp = StagePlan(index=i, name=f"layer{i + 1}", stage=st, in_shape=self.shape)
            self.stages.append(sp)
            self.check_stage(i, st)
            for j in range(st.blocks):
                self.block = j
                b = self.block_plan(i, j, st, self.shape)
                sp.blocks.append(b)
                try:
                    self.shape = self.emit_block(b)
                finally:
                    b.end = len(self.layers)
                b.out_shape = self.shape
            sp.out_shape = self.shape
            if spec.stages[i].blocks and self.shape[1] == 1 and self.shape[2] == 1:
                self.warnings.append(
                    f"stage {i + 1} runs on 1×1 maps: its 3×3 convs see mostly zero padding "
                    "(use a larger input or fewer stride-2 steps)")
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
        warnings.append("zero-init residual on a plain net (no skips) zeroes every block's output at initialisation")
    if not spec.stages:
        warnings.append("the network has no stages: only the stem and the head")
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
