"""plan → torch.nn.Module, with torchvision's module names and state_dict keys (timm's for the ResNet-B/C/D,
SE/ECA and ResNet-RS family; torchvision's ConvNeXt's).

The modules live in `blocks.py`, self-contained so that `codegen.py` can copy their source verbatim; every
number they use comes from the plan, passed in as a plain-data *blueprint* (`blueprint(plan)`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from resnet_core.errors import ExplorerError
from resnet_core.i18n import _
from resnet_core.structure.blocks import (  # noqa: F401 - re-exported: the labs import the blocks from here
    BLOCKS,
    Add,
    BasicBlock,
    Bottleneck,
    ConvNeXtBlock,
    EfficientChannelAttention,
    LayerNorm2d,
    Mul,
    PadShortcut,
    Permute,
    PreActBasicBlock,
    PreActBottleneck,
    ResidualBlock,
    ResNet,
    SqueezeExcite,
    act_name,
    init_weights,
    make_act,
    make_attention,
    make_layer,
    make_norm,
    make_shortcut,
    new_model,
    place,
)
from resnet_core.structure.plan import plan as make_plan
from resnet_core.structure.records import BlockPlan, Layer, Plan
from resnet_core.structure.spec import ArchSpec

STANDALONE: list[str | type | Callable[..., Any]] = [
    LayerNorm2d, Permute, make_norm, make_act, act_name, Add, Mul, SqueezeExcite,
    EfficientChannelAttention, make_attention, PadShortcut, make_shortcut, ResidualBlock, BasicBlock, Bottleneck,
    PreActBasicBlock, PreActBottleneck, ConvNeXtBlock, "BLOCKS", make_layer, place, ResNet, init_weights, new_model]


_SEEDED_BUILD = threading.Lock()


class BuildError(ExplorerError):
    """A spec whose plan has errors cannot be built; the message lists the located errors."""

    def __init__(self, plan: Plan):
        self.plan = plan
        super().__init__(_("cannot build this network:") + "\n" + "\n".join(f"  {e}" for e in plan.errors))


def _layer_data(lay: Layer) -> dict:
    d: dict[str, Any] = {"name": lay.name, "op": lay.op}
    if lay.op == "conv":
        assert lay.out_shape is not None
        d["args"] = [lay.in_shape[0], lay.out_shape[0], lay.kernel, lay.stride, lay.padding, lay.groups, lay.bias]
    elif lay.op == "norm":
        d["channels"] = lay.in_shape[0]
    elif lay.op in ("maxpool", "avgpool"):
        d["args"] = [lay.kernel, lay.stride, lay.padding]
    elif lay.op == "linear":
        assert lay.out_shape is not None
        d["args"] = [lay.in_shape[-1], lay.out_shape[-1]]
    return d


def _block_config(plan: Plan, b: BlockPlan) -> dict[str, Any]:
    spec = plan.spec
    cfg: dict[str, Any] = dict(kind=b.kind, in_channels=b.in_channels, width=b.inner_width,
                               out_channels=b.out_channels, stride=b.stride, groups=b.groups, shortcut=b.shortcut)
    if b.kind.endswith("bottleneck") and spec.stride_in_1x1:
        cfg["stride_in_1x1"] = True
    if b.kernel != 3 or b.kind == "convnext":
        cfg["kernel"] = b.kernel
    if b.kind == "convnext":
        cfg.update(layer_scale=spec.layer_scale, block_norms=spec.block_norms,
                   block_activations=spec.block_activations)
    else:
        attention = [lay for lay in plan.layers[b.first:b.end] if lay.op in ("conv", "conv1d")
                     and lay.part == "attention"]
        if attention and attention[0].op == "conv1d":
            cfg["attention"] = {"kind": "eca", "kernel": attention[0].kernel}
        elif attention:
            assert attention[0].out_shape is not None
            cfg["attention"] = {"kind": "se", "width": attention[0].out_shape[0]}
    return cfg


def blueprint(plan: Plan) -> dict:
    """The plain data the modules are built from, read off the plan: the stem, downsampling and head layers as
    they are called, and each stage's blocks as runs of identical block configurations."""
    if plan.errors:
        raise BuildError(plan)
    spec = plan.spec
    stem = [_layer_data(lay) for lay in plan.layers if lay.part == "stem"]
    head = [_layer_data(lay) for lay in plan.layers if lay.part == "head"]
    stages = []
    for sp in plan.stages:
        runs: list[list] = []
        for b in sp.blocks:
            cfg = _block_config(plan, b)
            if runs and runs[-1][1] == cfg:
                runs[-1][0] += 1
            else:
                runs.append([1, cfg])
        ds = [_layer_data(lay) for lay in plan.layers if lay.part == "downsample" and lay.stage == sp.index]
        stages.append({"name": sp.name, "downsampling": ds, "runs": runs})
    return {
        "in_channels": plan.input_shape[0],
        "norm": spec.norm, "bn_eps": spec.bn_eps, "bn_momentum": spec.bn_momentum,
        "activation": spec.activation,
        "stem": stem,
        "stages": stages,
        "head": head,
        "num_classes": spec.num_classes,
    }


def build_model(spec: ArchSpec | Plan, seed: int | None = None) -> ResNet:
    """Build the module for `spec` (or an already made plan), initialised by the spec's scheme.

    With `seed`, the weights depend on the seed alone (the global RNG is left as it was).
    Raises BuildError (a ValueError) listing the located errors when the plan has any.
    """
    p = spec if isinstance(spec, Plan) else make_plan(spec)
    bp = blueprint(p)

    def make() -> ResNet:
        return new_model(bp, p.spec.init, p.spec.zero_init_residual)

    if seed is None:
        return make()
    # the seed goes through torch's global RNG (modules initialise from it): builds take turns, so that
    # two sessions building at once each get exactly their seed's weights
    with _SEEDED_BUILD, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


def set_skip(model: nn.Module, enabled: bool) -> list[ResidualBlock]:
    """Switch every residual block's shortcut on or off in place; returns the blocks changed.

    With `enabled=False` the blocks run as the plain net on the same main-path weights.
    """
    changed: list[ResidualBlock] = []
    for m in model.modules():
        if isinstance(m, ResidualBlock) and m.add is not None and m.skip != enabled:
            m.skip = enabled
            changed.append(m)
    return changed
