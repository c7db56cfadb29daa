"""Gradient flow through a model from code, with its residual additions and without them, on the same weights.

The comparison the Live lab makes for presets, for any model whose residual additions `residual.py` finds:
one seeded batch of noise images and labels, one forward + backward through the model as it is, one
through `skips_off(model)` (every residual addition replaced by its branch, the same submodules and
parameters), and the norm of every convolution's and linear layer's weight gradient in both. The run is
admitted by its memory before anything is allocated (`device.reserve`), on a copy of the caller's model:
the caller's model, its gradients and its mode are left as they were.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from resnet_core.device import check_fits, reserve
from resnet_core.errors import ExplorerError
from resnet_core.i18n import N_, _
from resnet_core.modules.residual import skips_off
from resnet_core.modules.trace import inspect_module


@dataclass
class ModuleFlow:
    name: str
    batch: int
    seed: int
    residual_adds: int  # how many additions "without skips" removed
    layers: list[str]  # conv/linear module paths, in forward order
    with_skips: list[float]  # ‖∂L/∂W‖ per layer
    without_skips: list[float] = field(default_factory=list)
    loss: str = N_("cross-entropy on seeded labels")  # a marked message: a page shows _(loss)

    def rows(self) -> list[dict]:
        out = []
        for i, layer in enumerate(self.layers):
            a = self.with_skips[i]
            b = self.without_skips[i] if self.without_skips else None
            ratio = (b / a) if b is not None and a > 0 and math.isfinite(a) and math.isfinite(b) else None
            out.append({"depth": i + 1, "layer": layer, "with_skips": a, "without_skips": b, "ratio": ratio})
        return out

    def to_dict(self) -> dict:
        return {"name": self.name, "source": "module", "batch": self.batch, "seed": self.seed, "loss": self.loss,
                "residual_adds": self.residual_adds, "rows": self.rows()}


def _weight_layers(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(name, m.weight) for name, m in model.named_modules()
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)) and isinstance(m.weight, nn.Parameter)]


def _pass(model: nn.Module, x: torch.Tensor, labels: torch.Tensor | None,
          layers: list[tuple[str, nn.Parameter]]) -> list[float]:
    model.zero_grad(set_to_none=True)
    out = model(x)
    loss = F.cross_entropy(out, labels) if labels is not None else out.float().pow(2).mean()
    loss.backward()
    return [float(p.grad.norm()) if p.grad is not None else 0.0 for _name, p in layers]


class FlowStopped(ExplorerError):
    """The gradient flow was stopped before it finished."""


def module_gradient_flow(model: nn.Module | Callable[[], nn.Module], input_shape: tuple[int, ...], batch: int = 8,
                         seed: int = 0, compare_skip: bool = True, name: str | None = None,
                         should_stop: Callable[[], bool] | None = None) -> ModuleFlow:
    """‖∂L/∂W‖ of every conv/linear weight with the residual additions and (compare_skip) without them.
    `should_stop()` is asked before each pass."""
    stop = should_stop or (lambda: False)
    if batch < 2:
        raise ExplorerError(_("the batch must hold at least 2 images (batch norm needs more than one in training)"))
    t = inspect_module(model, input_shape, name=name)
    if not t.ok:
        raise ExplorerError(_("the model does not run on {shape}: {error}",
                              shape="×".join(map(str, input_shape)), error=t.errors[0]))
    if compare_skip and not t.residual_adds:
        raise ExplorerError(_("no residual addition was found in this model: there is nothing to switch off "
                              "(traced by {method})", method=t.method))
    params_bytes = 4 * t.total_params
    needed = 3 * params_bytes + 3 * batch * t.activation_bytes  # weights, grads, optimiser-free; activations ×3
    what = f"gradient flow of {t.name} on a batch of {batch}"
    check_fits(needed, "cpu", what=what)
    with reserve(needed, "cpu", what=what):
        torch.manual_seed(seed)
        real = model() if not isinstance(model, nn.Module) else copy.deepcopy(model).cpu()
        real.train()
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn((batch, *input_shape), generator=gen)
        classes = t.output_shape[0] if t.output_shape is not None and len(t.output_shape) == 1 else None
        labels = torch.randint(0, classes, (batch,), generator=gen) if classes else None
        layers = _weight_layers(real)
        state = copy.deepcopy(real.state_dict())  # BN's running statistics move in train mode: both start alike
        if stop():
            raise FlowStopped(_("stopped before the first pass"))
        with_skips = _pass(real, x, labels, layers)
        flow = ModuleFlow(t.name, batch, seed, len(t.residual_adds), [n for n, _w in layers], with_skips)
        if labels is None:
            flow.loss = N_("mean squared output (the output is not one score per class)")
        if compare_skip:
            if stop():
                raise FlowStopped(_("stopped after the pass with skips"))
            real.load_state_dict(state)
            plain = skips_off(real)  # the same submodules and parameters
            flow.without_skips = _pass(plain, x, labels, layers)
        return flow
