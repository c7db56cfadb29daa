"""plan → per-layer rows and totals, by arithmetic alone (no torch, no forward pass).

Counting rules (all per image, batch 1):
- params: the layer's own parameters (conv weight and bias, norm γ and β, linear weight and bias).
- mult_adds: torchinfo's rule, so totals equal torchinfo's "Total mult-adds": a conv counts
  (its parameters) × H_out × W_out; a norm or linear layer counts its parameters once; every
  other layer counts 0. One exception: a Linear on a channels-last map (ConvNeXt's 1×1 layers) counts
  its parameters at every position, as the 1×1 conv it is (torchinfo counts it once).
- weight_mult_adds: the multiply-adds of the conv and linear weights alone (no bias, no norm): PyTorch's
  FlopCounterMode FLOPs ÷ 2, and the figure torchvision publishes as "GFLOPS" (4.089 G for ResNet-50).
- elementwise: the work torchinfo leaves out, one operation per element of:
  activation output (1), norm output (2: scale and shift), residual addition output (1),
  max-pool output (k²−1 comparisons), avg-pool output (k²), global average pool input (1 add);
  padding, flatten and copies count 0.
- receptive_field: the side, in input pixels, of the window one output unit sees (the shortcut and
  main paths merge at each addition by taking the larger); effective_stride: input pixels per step
  of the layer's output grid.
- activation_bytes: the layer's output tensor at float32 (4 bytes an element). Their sum bounds the
  activations a forward pass keeps for the backward pass.
- depth: as He et al. (2015) count it, the weight layers on the main path: every convolution of the
  stem and the residual branches, and the FC; shortcut projections are not counted, so ResNet-34 and
  plain-34 are both 34 deep. For the family since 2016 (see RULES["depth"]): a deep stem counts as
  the one conv it replaces, SE/ECA and ResNet-RS's pool conv are not counted, nor ConvNeXt's
  downsampling layers. `layers_planned` is every planned row (norms, activations, additions...).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Any

from resnet_core.structure.plan import plan as make_plan
from resnet_core.structure.records import Layer, Plan, PlanProblem, Shape, channels
from resnet_core.structure.spec import ArchSpec

BYTES_PER_ELEMENT = 4  # float32

RULES = {
    "mult_adds": "torchinfo's rule: conv = parameters × H_out × W_out; norm and linear = parameters; others 0",
    "elementwise": "1 op per output element of activations and additions, 2 per norm output element, "
                   "k²−1 per max-pool output, k² per avg-pool output, 1 per global-pool input element",
    "activation_bytes": "output elements × 4 bytes (float32), batch 1",
    "receptive_field": "input pixels seen by one output unit; additions take the larger of the two paths",
    "depth": "weight layers on the main path (He et al. 2015): convolutions and the FC; shortcut projections "
             "not counted. ResNet-B/C/D (He et al. 2019) keep the ResNet-50 name: a deep stem counts as the one "
             "conv it replaces, and ResNet-RS's pool conv is not counted; SE-/ECA-ResNets (Hu et al. 2018, Wang et "
             "al. 2020) keep their depth: the attention's layers are not counted; ConvNeXt (Liu et al. 2022) names "
             "its sizes T/S/B/L and counts blocks per stage (3-3-9-3), not layers: the figure shown counts each "
             "block's depthwise conv and two 1×1 layers, the stem and the FC, not the downsampling layers",
    "weight_mult_adds": "conv and linear weights only (no bias, no norm): PyTorch's FlopCounterMode FLOPs ÷ 2, "
                        "torchvision's published GFLOPS",
}


def is_depth_layer(lay: Layer) -> bool:
    """Whether `lay` counts towards the paper's depth: a conv or FC on the main path (not a shortcut)."""
    return (lay.op in ("conv", "linear") and lay.part in ("stem", "main", "head") and lay.in_depth
            and not lay.failed)


def depth(p: Plan) -> int:
    """The paper's depth of a plan: 18 for resnet18 and plain18, 50 for resnext50_32x4d, 1202 for resnet1202.
    On a broken network, the weight layers planned before the failure."""
    return sum(1 for lay in p.layers if is_depth_layer(lay))


@dataclass(slots=True)
class TraceRow:
    layer: Layer
    params: int
    mult_adds: int
    elementwise: int
    receptive_field: int
    effective_stride: int
    activation_bytes: int

    # the layer's fields, for readable code in callers
    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def type(self) -> str:
        return self.layer.type

    @property
    def in_shape(self) -> Shape:
        return self.layer.in_shape

    @property
    def out_shape(self) -> Shape | None:
        return self.layer.out_shape

    def to_dict(self) -> dict[str, Any]:
        lay = self.layer
        return {
            "index": lay.index, "name": lay.label, "module": lay.name, "type": lay.type, "op": lay.op,
            "stage": None if lay.stage is None else lay.stage + 1, "block": lay.block, "part": lay.part,
            "input_shape": list(lay.in_shape),
            "output_shape": None if lay.out_shape is None else list(lay.out_shape),
            "shortcut_shape": None if lay.other_shape is None else list(lay.other_shape),
            "kernel": lay.kernel or None, "stride": lay.stride, "padding": lay.padding, "groups": lay.groups,
            "params": self.params, "mult_adds": self.mult_adds, "elementwise": self.elementwise,
            "receptive_field": self.receptive_field, "effective_stride": self.effective_stride,
            "activation_bytes": self.activation_bytes, "failed": lay.failed,
        }


@dataclass(slots=True)
class GroupTotals:
    """Totals for the stem, one stage ("layer2") or block ("layer2.0"), or the head."""
    name: str
    label: str  # "stem", "stage 2 (layer2)", "stage 2 · block 0", "head"
    layers: int
    blocks: int
    params: int
    mult_adds: int
    elementwise: int
    activation_bytes: int
    in_shape: Shape | None
    out_shape: Shape | None
    receptive_field: int = 1  # of the group's last layer
    failed: bool = False  # the plan stops inside this group

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__slots__}
        d["in_shape"] = None if self.in_shape is None else list(self.in_shape)
        d["out_shape"] = None if self.out_shape is None else list(self.out_shape)
        return d


def layer_params(lay: Layer) -> int:
    op = lay.op
    if op == "conv":
        c_in, c_out = lay.in_shape[0], lay.out_shape[0] if lay.out_shape else 0
        return c_out * (c_in // lay.groups) * lay.kernel * lay.kernel + (c_out if lay.bias else 0)
    if op == "conv1d":  # ECA: one channel in, one out, over the C channels
        return lay.kernel
    if op == "norm":
        return 2 * channels(lay)
    if op == "linear":
        n_in, n_out = lay.in_shape[-1], lay.out_shape[-1] if lay.out_shape else 0
        return n_in * n_out + n_out
    if op == "scale" and lay.type == "LayerScale":  # ConvNeXt's per-channel γ on F(x)
        return lay.in_shape[0]
    return 0


def weight_mult_adds(lay: Layer) -> int:
    """The layer's multiply-adds of its weights alone (PyTorch's FlopCounterMode ÷ 2)."""
    out = lay.out_shape
    if out is None:
        return 0
    if lay.op == "conv":
        return out[0] * (lay.in_shape[0] // lay.groups) * lay.kernel * lay.kernel * out[1] * out[2]
    if lay.op == "conv1d":
        return lay.kernel * out[-1]
    if lay.op == "linear":
        return lay.in_shape[-1] * prod(out)
    return 0


def _elementwise(lay: Layer, out_numel: int) -> int:
    op = lay.op
    if op in ("act", "add"):
        return out_numel
    if op == "norm":
        return 2 * out_numel
    if op == "maxpool":
        return (lay.kernel * lay.kernel - 1) * out_numel
    if op == "avgpool":
        return lay.kernel * lay.kernel * out_numel
    if op == "gap":
        return prod(lay.in_shape)
    return 0


class Trace:
    """The measured plan: `.layers` (rows), totals, per-stage breakdown, errors and warnings."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.layers: list[TraceRow] = _measure(plan)
        self.total_params = sum(r.params for r in self.layers)
        self.mult_adds = sum(r.mult_adds for r in self.layers)
        self.weight_mult_adds = sum(weight_mult_adds(r.layer) for r in self.layers)
        self.elementwise = sum(r.elementwise for r in self.layers)
        self.activation_bytes = sum(r.activation_bytes for r in self.layers)
        self.param_bytes = self.total_params * BYTES_PER_ELEMENT
        self.input_bytes = prod(plan.input_shape) * BYTES_PER_ELEMENT
        self.depth = depth(plan)  # the paper's count (see the module docstring)
        self.layers_planned = len(self.layers)

    # ---- the plan's view ------------------------------------------------------------------
    @property
    def spec(self) -> ArchSpec:
        return self.plan.spec

    @property
    def errors(self) -> list[PlanProblem]:
        return self.plan.errors

    @property
    def warnings(self) -> list[str]:
        return self.plan.warnings

    @property
    def ok(self) -> bool:
        return self.plan.ok

    @property
    def output_shape(self) -> Shape | None:
        return self.plan.output_shape

    @property
    def input_shape(self) -> Shape:
        return self.plan.input_shape

    @property
    def receptive_field(self) -> int | None:
        """The receptive field of the last spatial layer (before the global pool)."""
        for r in reversed(self.layers):
            if r.layer.op != "gap" and r.layer.out_shape is not None and len(r.layer.out_shape) == 3:
                return r.receptive_field
        return None

    def groups(self) -> list[GroupTotals]:
        """Totals for the stem, each stage, and the head, in order."""
        return self._totals(by_block=False)

    def blocks(self) -> list[GroupTotals]:
        """Totals for the stem, each residual block, and the head, in order."""
        return self._totals(by_block=True)

    def _totals(self, by_block: bool) -> list[GroupTotals]:
        def key(lay: Layer) -> tuple[str, str]:
            if lay.stage is None:
                return ("stem", "stem") if lay.part == "stem" else ("head", "head")
            s = lay.stage + 1
            stage_name = self.plan.stages[lay.stage].name if lay.stage < len(self.plan.stages) else f"layer{s}"
            if by_block and lay.block is None:  # ConvNeXt's downsampling layer before the stage
                return (f"{stage_name}.downsampling", f"stage {s} · downsampling")
            return (f"{stage_name}.{lay.block}", f"stage {s} · block {lay.block}") if by_block \
                else (stage_name, f"stage {s} ({stage_name})")

        out: list[GroupTotals] = []
        n_blocks = {sp.name: len(sp.blocks) for sp in self.plan.stages}
        current: GroupTotals | None = None
        for r in self.layers:
            lay = r.layer
            name, label = key(lay)
            if current is None or current.name != name:
                current = GroupTotals(name, label, 0, n_blocks.get(name, 1 if lay.stage is not None else 0),
                                      0, 0, 0, 0, lay.in_shape, None)
                out.append(current)
            current.layers += 1
            current.params += r.params
            current.mult_adds += r.mult_adds
            current.elementwise += r.elementwise
            current.activation_bytes += r.activation_bytes
            current.receptive_field = r.receptive_field
            current.failed = current.failed or lay.failed
            if lay.out_shape is not None and lay.part != "shortcut":
                current.out_shape = lay.out_shape
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "input_shape": list(self.input_shape),
            "output_shape": None if self.output_shape is None else list(self.output_shape),
            "total_params": self.total_params,
            "mult_adds": self.mult_adds,
            "weight_mult_adds": self.weight_mult_adds,
            "elementwise": self.elementwise,
            "activation_bytes": self.activation_bytes,
            "param_bytes": self.param_bytes,
            "receptive_field": self.receptive_field,
            "depth": self.depth,
            "layers_planned": self.layers_planned,
            "layers": [r.to_dict() for r in self.layers],
            "stages": [g.to_dict() for g in self.groups()],
            "errors": [e.to_dict() for e in self.errors],
            "warnings": list(self.warnings),
            "rules": RULES,
        }


def _measure(plan: Plan) -> list[TraceRow]:
    rows: list[TraceRow] = []
    append = rows.append
    rf, jump = 1, 1  # main path
    sc = (1, 1)  # shortcut path, restarted at each block's input
    block_starts = {b.first for b in plan.blocks}
    for lay in plan.layers:
        if lay.index in block_starts:
            sc = (rf, jump)
        op = lay.op
        out = lay.out_shape
        numel = prod(out) if out is not None else 0
        params = layer_params(lay) if out is not None else 0
        if op == "conv":
            macs = params * out[1] * out[2] if out is not None else 0
        elif op == "conv1d":
            macs = params * out[-1] if out is not None else 0
        elif op == "linear" and lay.channels_last and out is not None:
            macs = params * prod(out[:-1])
        elif op in ("norm", "linear"):
            macs = params
        else:
            macs = 0
        # receptive field (SE/ECA's global gate is left out: it scales channels, it does not move windows)
        if lay.part == "attention":
            r_rf, r_jump = rf, jump
        elif lay.part == "shortcut":
            s_rf, s_jump = sc
            if op in ("conv", "pad", "avgpool"):
                s_rf, s_jump = s_rf + (lay.kernel - 1) * s_jump, s_jump * lay.stride
            sc = (s_rf, s_jump)
            r_rf, r_jump = sc
        else:
            if op in ("conv", "maxpool", "avgpool"):
                rf, jump = rf + (lay.kernel - 1) * jump, jump * lay.stride
            elif op == "gap":
                rf, jump = rf + (lay.in_shape[1] - 1) * jump, jump * lay.in_shape[1]
            elif op == "add":  # the two paths meet: one unit sees the union of both windows
                rf = max(rf, sc[0])
            r_rf, r_jump = rf, jump
        append(TraceRow(lay, params, macs, _elementwise(lay, numel) if out is not None else 0,
                        r_rf, r_jump, numel * BYTES_PER_ELEMENT))
    return rows


def trace(spec: ArchSpec, input_shape: Shape | None = None) -> Trace:
    """Trace `spec` on an input of `input_shape` (C, H, W; default: the spec's own)."""
    return Trace(make_plan(spec, input_shape))
