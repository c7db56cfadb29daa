"""After one backward pass every parameter of every CIFAR preset has a gradient: no layer is cut off from the loss.

The reference is the module itself: the set of parameters that `named_parameters()` lists must equal the set
whose `.grad` was written by autograd. A layer built but never called (or called outside the graph) fails.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import resnet_core as rc

CIFAR = [n for n in rc.list_presets() if rc.preset_info(n).family == "cifar"]


@pytest.mark.parametrize("name", CIFAR)
def test_every_parameter_receives_a_gradient(name):
    spec = rc.get_preset(name).replace(input_size=(8, 8))  # 8→4→2 maps: which layers the loss reaches is size-free
    model = rc.build_model(spec, seed=0).train()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, spec.in_channels, *spec.input_size, generator=g)
    y = torch.tensor([1, 7])
    F.cross_entropy(model(x), y).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"{name}: {len(missing)} parameters got no gradient, e.g. {missing[:3]}"
    depth = 2 * sum(stage.blocks for stage in spec.stages) + 2  # 6n + 2 for the CIFAR family
    if depth <= 110:  # the gradients are finite too (deeper plain nets with BN may overflow: that is the lesson)
        bad = [n for n, p in model.named_parameters() if not math.isfinite(float(p.grad.norm()))]
        assert not bad, f"{name}: non-finite gradients in {bad[:3]}"


def test_a_parameter_outside_the_graph_is_caught():
    """The check above can fail: a layer that is built but never used has no gradient."""
    spec = rc.get_preset("resnet20").replace(input_size=(8, 8))
    model = rc.build_model(spec, seed=0)
    model.unused = torch.nn.Linear(3, 3)
    x = torch.randn(2, 3, 8, 8)
    F.cross_entropy(model(x), torch.tensor([0, 1])).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == ["unused.weight", "unused.bias"]
