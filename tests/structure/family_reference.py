"""timm's and torchvision's own models as test references for the family since 2016 (never at run time).

Both install with `pip install --no-deps` (requirements-refs.txt); torchvision's compiled ops do not match this
CPU torch, so its two registration modules are stubbed as empty modules before either is imported. Nothing is
downloaded: every model is built with random weights.
"""

from __future__ import annotations

import sys
import types

for _name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
    sys.modules.setdefault(_name, types.ModuleType(_name))

import timm  # noqa: E402
import torch  # noqa: E402
import torchvision.models as tvm  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402


def reference(name: str) -> nn.Module:
    """The third-party model of a preset: torchvision's for ConvNeXt, timm's for the rest."""
    if name.startswith("convnext"):
        return tvm.get_model_builder(name)()
    return timm.create_model(name, pretrained=False)


def on_meta(name: str) -> nn.Module:
    with torch.device("meta"):
        return reference(name).eval()


def flop_counter_mult_adds(model: nn.Module, size: int = 224) -> int:
    """PyTorch's own count over one forward on the meta device: FlopCounterMode's FLOPs ÷ 2."""
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.empty(1, 3, size, size, device="meta"))
    return counter.get_total_flops() // 2


def randomise_norms(model: nn.Module) -> None:
    """Non-trivial norm statistics and affine parameters, so that eval mode really uses them, and a layer scale
    of order 1 (ConvNeXt's 1e-6 would hide the residual branch in the output)."""
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
        if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
        if hasattr(m, "layer_scale") and isinstance(m.layer_scale, nn.Parameter):
            m.layer_scale.data.uniform_(0.5, 1.0)
