"""The plan's records: a located problem, a layer, a block, a stage, the whole plan; and shape helpers.

Plain data with no torch, made by plan.py's planner and read by every view (trace, graph, build, codegen,
the labs). A located problem is a record the plan carries, not an exception: a broken network is a
normal state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from resnet_core.i18n import N_, _
from resnet_core.structure.spec import ArchSpec, BlockType, Stage

Shape = tuple[int, ...]  # (C, H, W) for feature maps, (F,) after flatten

# The plan's vocabularies (see spec.py for the spec's): each a Literal type and the tuple of its words.
LayerOp = Literal["conv", "norm", "act", "maxpool", "avgpool", "gap", "pad", "add", "flatten", "linear",
                  "conv1d", "permute", "scale"]
# where in the network a layer sits: attention is a block's SE/ECA side branch; downsample a layer between stages
LayerPart = Literal["stem", "main", "shortcut", "add", "post", "head", "attention", "downsample"]
BlockShortcut = Literal["identity", "projection", "avg_projection", "pad", "none"]  # what one block's shortcut is, as planned
ProblemCode = Literal["shape_mismatch", "channels_decrease", "spatial_underflow", "groups", "non_positive",
                      "unknown_value", "out_of_range"]
Detail = Literal["stage", "block", "layer"]  # how finely a network is shown: tables' depth, graphs' detail
LAYER_OPS: tuple[LayerOp, ...] = get_args(LayerOp)
LAYER_PARTS: tuple[LayerPart, ...] = get_args(LayerPart)
BLOCK_SHORTCUTS: tuple[BlockShortcut, ...] = get_args(BlockShortcut)
PROBLEM_CODES: tuple[ProblemCode, ...] = get_args(ProblemCode)
DETAILS: tuple[Detail, ...] = get_args(Detail)

ACT_TYPES = {"relu": "ReLU", "leaky_relu": "LeakyReLU", "gelu": "GELU", "silu": "SiLU"}


def act_attr(activation: str) -> str:
    """Module attribute of the activation: torchvision's `relu` for ReLU, `act` for the others."""
    return "relu" if activation == "relu" else "act"


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------

# The words a location's part is made of (joined with " · "), for the catalogue; a layer's name is kept as it is.
PART_WORDS = (N_("input"), N_("stem"), N_("options"), N_("stages"), N_("head"), N_("blocks"), N_("width"),
              N_("stride"), N_("groups"), N_("width per group"), N_("expansion"), N_("kernel"), N_("output width"),
              N_("branch width"), N_("block type"), N_("shortcut option"), N_("normalisation"), N_("activation"),
              N_("initialisation"), N_("attention"), N_("SE ratio"), N_("ECA kernel"), N_("layer scale"),
              N_("block norms"), N_("block activations"), N_("downsampling"), N_("shortcut"), N_("1×1 projection"),
              N_("average pool"), N_("pool"), N_("deep conv"), N_("pool conv"), N_("depthwise conv"),
              N_("downsampling layer"))


@dataclass(frozen=True)
class Location:
    stage: int | None = None  # 0-based stage index (shown 1-based: stage 1 is torchvision's layer1)
    block: int | None = None  # 0-based block index within the stage (as in "layer2.0")
    part: str | None = None  # "stem", "shortcut", "conv1", "head", "block type", ...

    def __str__(self) -> str:
        bits = []
        if self.stage is not None:
            bits.append(_("stage {n}", n=self.stage + 1))
        if self.block is not None:
            bits.append(_("block {n}", n=self.block))
        if self.part:  # a field or a labelled place (marked where it is made), or a layer's name (kept)
            bits.append(" · ".join(_(bit) for bit in self.part.split(" · ")))
        return " · ".join(bits) or _("network")


@dataclass(frozen=True)
class PlanProblem:
    code: ProblemCode
    where: Location
    message: str  # what is wrong, with the numbers
    fix: str  # what to change
    shapes: tuple[Shape, Shape] | None = None  # the two shapes that disagree, when there are two
    layer: int | None = None  # index in plan.layers of the failing layer, when there is one

    def __str__(self) -> str:
        return _("{where}: {message}. Fix: {fix}", where=self.where, message=self.message, fix=self.fix)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "where": str(self.where), "message": self.message, "fix": self.fix,
                "shapes": [list(s) for s in self.shapes] if self.shapes else None, "layer": self.layer}


@dataclass(slots=True)
class Layer:
    index: int
    name: str  # qualified module name, "layer2.0.conv1"
    op: LayerOp
    type: str  # the module's class: Conv2d, BatchNorm2d, ReLU, ..., Add, PadShortcut
    in_shape: Shape
    out_shape: Shape | None  # None only on a failed layer
    stage: int | None  # 0-based stage, None in the stem and head
    block: int | None
    part: LayerPart
    kernel: int = 0
    stride: int = 1
    padding: int = 0
    groups: int = 1
    bias: bool = False
    other_shape: Shape | None = None  # add: the shortcut operand (in_shape is F(x))
    failed: bool = False
    in_depth: bool = True  # False: a conv the paper's depth leaves out (a deep stem's 2nd and 3rd, ResNet-RS's pool conv)
    channels_last: bool = False  # shapes are (H, W, C): a ConvNeXt block between its two permutes
    call: int = 0  # which use of the module this is: torchvision's BasicBlock calls one `relu` twice (0, 1)
    uses: int = 1  # how many times the plan uses this module

    @property
    def label(self) -> str:
        """The name to list this layer under: "layer3.1.relu (1)" / "(2)" when one module is used twice."""
        return self.name if self.uses == 1 else f"{self.name} ({self.call + 1})"


@dataclass(slots=True)
class BlockPlan:
    stage: int
    index: int
    name: str  # "layer2.0"
    kind: BlockType
    in_shape: Shape
    out_shape: Shape | None
    stride: int
    in_channels: int
    inner_width: int  # the branch's inner width D (torchvision's `width`); not the stage's `width` (planes)
    out_channels: int
    groups: int
    shortcut: BlockShortcut
    first: int  # plan.layers[first:end] are this block's layers
    end: int = -1
    kernel: int = 3  # the block's spatial conv (3×3; ConvNeXt's depthwise 7×7)


@dataclass(slots=True)
class StagePlan:
    index: int
    name: str  # "layer1"
    stage: Stage
    in_shape: Shape
    out_shape: Shape | None = None
    blocks: list[BlockPlan] = field(default_factory=list)


@dataclass
class Plan:
    spec: ArchSpec
    input_shape: Shape
    layers: list[Layer]
    stages: list[StagePlan]
    errors: list[PlanProblem]
    warnings: list[str]
    output_shape: Shape | None
    final_norm: bool  # pre-activation nets end with norm + activation before the pool

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def blocks(self) -> list[BlockPlan]:
        return [b for s in self.stages for b in s.blocks]

    @property
    def failed_layer(self) -> Layer | None:
        for e in self.errors:
            if e.layer is not None:
                return self.layers[e.layer]
        return None


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def ceil_pool_out(size: int, kernel: int, stride: int) -> int:
    """A pool's output side with ceil_mode=True and no padding (PyTorch's rule): ResNet-D's 2×2 average pool."""
    out = (size - kernel + stride - 1) // stride + 1
    return out - 1 if (out - 1) * stride >= size else out


def channels(lay: Layer) -> int:
    """The layer's input channels (the last axis of a channels-last or flattened shape, else the first)."""
    return lay.in_shape[-1] if lay.channels_last or len(lay.in_shape) == 1 else lay.in_shape[0]


def shape_str(shape: Shape | None) -> str:
    if shape is None:
        return "?"
    return "×".join(str(v) for v in shape)
