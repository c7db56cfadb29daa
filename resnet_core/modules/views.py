"""Forward views of a model from code: activation statistics through the depth, each residual block's x, F(x),
shortcut and F(x) + x with ‖F(x)‖/‖x‖, and the feature maps of any layer: the Live lab's views for a model
the spec cannot spell.

One forward pass in eval mode on a copy of the model (the caller's is left as it was), on the CPU, admitted by
its memory first. The graph is torch.fx's: the residual additions are the ones `residual.py` finds, and the
values of x, F(x) and the shortcut are read at those nodes. Only what the views show is kept: per-row
statistics, the four tensors of each block (one image), and the maps of the layer asked for.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn

from resnet_core.device import check_fits, reserve
from resnet_core.errors import ExplorerError
from resnet_core.i18n import _
from resnet_core.modules.residual import find_residuals
from resnet_core.modules.trace import inspect_module


@dataclass
class RowStats:
    path: str
    shape: tuple[int, ...]  # without the batch dimension
    mean: float
    std: float
    zeros: float  # fraction of exact zeros (what a ReLU switched off)


@dataclass
class BlockAnatomy:
    block: str
    x: torch.Tensor = field(repr=False)  # (C, H, W) the block's input
    branch: torch.Tensor = field(repr=False)  # F(x)
    shortcut: torch.Tensor = field(repr=False)  # x, or its projection
    out: torch.Tensor = field(repr=False)  # F(x) + shortcut

    @property
    def ratio(self) -> float:
        """‖F(x)‖ / ‖shortcut‖: how much the block changes what flows through it."""
        s = float(self.shortcut.norm())
        return float(self.branch.norm()) / s if s > 0 else math.inf


@dataclass
class ModuleForward:
    name: str
    input_shape: tuple[int, ...]
    stats: list[RowStats]
    blocks: list[BlockAnatomy]
    maps: dict[str, torch.Tensor]  # layer path → (C, H, W) its output, for the layers asked for
    logits: torch.Tensor | None = None

    def top_channels(self, layer: str, k: int = 8) -> list[tuple[int, torch.Tensor]]:
        """The k channels of `layer` with the largest mean activation, as (index, (H, W) map)."""
        t = self.maps[layer]
        if t.dim() != 3:
            raise ExplorerError(_("{layer} outputs {shape}: feature maps need (C, H, W)",
                                  layer=layer, shape=tuple(t.shape)))
        order = t.flatten(1).mean(1).argsort(descending=True)[:k]
        return [(int(i), t[i]) for i in order]


def module_forward(model: nn.Module | Callable[[], nn.Module], input_shape: tuple[int, ...],
                   x: torch.Tensor | None = None, seed: int = 0, layers: tuple[str, ...] = (),
                   name: str | None = None) -> ModuleForward:
    """One forward pass of `model` (or of what the function builds) on `x` (1, *input_shape), or on seeded
    noise, keeping the views. `layers`: module paths whose full output maps are kept."""
    t = inspect_module(model, input_shape, name=name)
    if not t.ok:
        raise ExplorerError(_("the model does not run on {shape}: {error}",
                              shape="×".join(map(str, input_shape)), error=t.errors[0]))
    if t.method != "fx":
        raise ExplorerError(_("the forward views read the model's graph, and torch.fx cannot trace this model "
                              "({how})", how=t.notes[-1] if t.notes else _("traced by hooks")))
    needed = 2 * 4 * t.total_params + 3 * t.activation_bytes
    what = f"a forward pass of {t.name}"
    check_fits(needed, "cpu", what=what)
    with reserve(needed, "cpu", what=what), torch.no_grad():
        torch.manual_seed(seed)
        real = model() if not isinstance(model, nn.Module) else copy.deepcopy(model).cpu()
        real.eval()
        if x is None:
            x = torch.randn((1, *input_shape), generator=torch.Generator().manual_seed(seed))
        if tuple(x.shape[1:]) != tuple(input_shape):
            raise ExplorerError(_("the input is {shape}, the model was traced for {traced}",
                                  shape=tuple(x.shape[1:]), traced=tuple(input_shape)))
        gm = fx.symbolic_trace(real)
        residuals = find_residuals(gm)
        keep: set[fx.Node] = set()
        for add, branch_operand, _x, _y, fork in residuals:
            keep |= {add, branch_operand, fork, *(a for a in add.args[:2] if isinstance(a, fx.Node))}
        rows = {r.path: r for r in t.rows}
        wanted = set(layers)
        values: dict[fx.Node, torch.Tensor] = {}
        stats: list[RowStats] = []
        maps: dict[str, torch.Tensor] = {}
        interp = fx.Interpreter(gm)
        out: Any = None
        for node in gm.graph.nodes:  # the same order as the trace's rows
            if node.op == "placeholder":
                value = x
            elif node.op == "output":
                out = interp.run_node(node)
                break
            else:
                value = interp.run_node(node)
            interp.env[node] = value
            if node in keep and isinstance(value, torch.Tensor):
                values[node] = value[0].detach().clone()
            if node.op == "call_module" and isinstance(value, torch.Tensor):
                path = str(node.target)
                if path in rows or any(r.startswith(path) for r in rows):
                    v = value.detach().float()
                    stats.append(RowStats(path, tuple(v.shape[1:]), float(v.mean()), float(v.std()) if v.numel() > 1
                                          else 0.0, float((v == 0).float().mean())))
                if path in wanted:
                    maps[path] = value[0].detach().clone()
        blocks = []
        for add, branch_operand, _x, _y, fork in residuals:
            operands = [a for a in add.args[:2] if isinstance(a, fx.Node)]
            shortcut_operand = operands[1] if operands[0] is branch_operand else operands[0]
            owner = next(reversed(add.meta.get("nn_module_stack", {}).values()), ("", None))[0]
            blocks.append(BlockAnatomy(owner, values[fork], values[branch_operand], values[shortcut_operand],
                                       values[add]))
        logits = out[0].detach().clone() if isinstance(out, torch.Tensor) and out.dim() == 2 else None
        return ModuleForward(t.name, tuple(input_shape), stats, blocks, maps, logits)
