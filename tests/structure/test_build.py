"""The built module agrees with the plan (real shapes, via torchinfo) and with torchvision."""

import math

import pytest
import torch
from torch import nn
from torchinfo import summary

import resnet_core as rc
from resnet_core.structure.build import BuildError, build_model, set_skip
from resnet_core.structure.plan import plan
from resnet_core.structure.trace import Trace

from .small import small_input
from .torchvision_reference import TORCHVISION, torchvision_model


def torchinfo_calls(model: nn.Module, input_shape):
    """Every leaf-module call torchinfo saw, in order: (qualified name, output shape without batch)."""
    names = {id(m): n for n, m in model.named_modules()}
    stats = summary(model, input_size=(1, *input_shape), verbose=0, depth=100, device="cpu")
    calls = [(names[id(info.module)], tuple(info.output_size[1:]))
             for info in stats.summary_list
             if info.is_leaf_layer and not isinstance(info.module, nn.Identity)]
    return stats, calls


def check_plan_against_the_built_module(spec):
    p = plan(spec)
    model = build_model(p, seed=0)
    stats, calls = torchinfo_calls(model, p.input_shape)
    assert calls == [(lay.name, lay.out_shape) for lay in p.layers]
    t = Trace(p)
    assert t.total_params == stats.total_params == sum(q.numel() for q in model.parameters())
    if not any(lay.channels_last and lay.op == "linear" for lay in p.layers):
        assert t.mult_adds == stats.total_mult_adds
    else:  # torchinfo counts a Linear once, not at each position: the trace counts it as the 1×1 conv it is
        linears = [lay for lay in p.layers if lay.channels_last and lay.op == "linear"]
        per_position = sum(r.params * (math.prod(r.layer.out_shape[:-1]) - 1) for r in t.layers if r.layer in linears)
        assert t.mult_adds == stats.total_mult_adds + per_position


@pytest.mark.parametrize("name", rc.list_presets())
def test_plan_equals_built_module_and_torchinfo(name):
    """Every preset at a small input (small.py): the same modules, shapes, parameters and mult-adds as planned."""
    spec = rc.get_preset(name)
    small = small_input(spec)
    assert Trace(plan(small)).total_params == Trace(plan(spec)).total_params  # the size changes no parameter
    check_plan_against_the_built_module(small)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_plan_equals_built_module_and_torchinfo_at_224(name):
    """The same at the presets' own 224×224, where torchinfo's mult-adds are the published ones."""
    check_plan_against_the_built_module(rc.get_preset(name))


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_checkpoint_loads_strictly_and_computes_the_same(name):
    ours = build_model(rc.get_preset(name), seed=0)
    torch.manual_seed(1)
    ref = torchvision_model(name)
    for m in ref.modules():  # non-trivial BN statistics so that eval mode really uses them
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    ref_sd = ref.state_dict()
    ours_sd = ours.state_dict()
    assert list(ours_sd) == list(ref_sd)
    assert {k: tuple(v.shape) for k, v in ours_sd.items()} == {k: tuple(v.shape) for k, v in ref_sd.items()}
    ours.load_state_dict(ref_sd, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(ours.eval()(x), ref.eval()(x), atol=1e-5, rtol=1e-4)


def test_same_seed_same_weights_and_global_rng_untouched():
    spec = rc.get_preset("resnet20")
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_model(spec, seed=7)
    after = torch.rand(1)
    assert torch.equal(before, after)  # building with a seed leaves the caller's RNG alone
    b = build_model(spec, seed=7)
    c = build_model(spec, seed=8)
    for (ka, va), (kb, vb), (_, _vc) in zip(a.state_dict().items(), b.state_dict().items(), c.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


def test_invalid_spec_refuses_to_build_with_the_located_error():
    spec = rc.get_preset("resnet18").replace(shortcut="identity")
    with pytest.raises(BuildError, match=r"stage 2 · block 0 · shortcut"):
        build_model(spec)


def test_option_a_shortcut_is_subsampled_zero_padded_identity():
    spec = rc.get_preset("resnet20")
    model = build_model(spec, seed=0).eval()
    block = model.layer2[0]
    x = torch.randn(2, 16, 32, 32)
    sc = block.downsample(x)
    assert sc.shape == (2, 32, 16, 16)
    assert torch.equal(sc[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(sc[:, 16:]) == 0
    assert sum(p.numel() for p in block.downsample.parameters()) == 0


def test_zero_init_residual_makes_every_block_start_as_its_shortcut():
    spec = rc.get_preset("resnet50").replace(zero_init_residual=True, input_size=(64, 64))
    model = build_model(spec, seed=0).eval()
    block = model.layer1[1]  # identity shortcut
    assert torch.count_nonzero(block.bn3.weight) == 0
    x = torch.randn(1, 256, 16, 16).relu()
    with torch.no_grad():
        assert torch.allclose(block(x), x)


def test_set_skip_runs_the_plain_net_on_the_same_weights():
    spec = rc.get_preset("resnet20")
    model = build_model(spec, seed=0).eval()
    plain = build_model(spec.replace(skip=False), seed=0).eval()
    # the plain twin has the same parameters (option A) and, built from the same seed, the same values
    for (k1, v1), (k2, v2) in zip(model.state_dict().items(), plain.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(v1, v2)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        with_skips = model(x)
        changed = set_skip(model, False)
        without = model(x)
        set_skip(model, True)
        again = model(x)
        reference_plain = plain(x)
    assert len(changed) == 9
    assert torch.allclose(without, reference_plain)
    assert not torch.allclose(with_skips, without)
    assert torch.equal(with_skips, again)


@pytest.mark.parametrize("norm,activation", [("none", "relu"), ("batch", "gelu"), ("none", "silu")])
def test_variants_build_with_the_planned_shapes(norm, activation):
    spec = rc.get_preset("resnet18").replace(norm=norm, activation=activation, input_size=(64, 64))
    p = plan(spec)
    model = build_model(p, seed=0)
    _, calls = torchinfo_calls(model, p.input_shape)
    assert calls == [(lay.name, lay.out_shape) for lay in p.layers]
    has_bias = all(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))
    assert has_bias == (norm == "none")


@pytest.mark.parametrize("block", ["preact_basic", "preact_bottleneck", "basic"])
def test_block_adds_the_unchanged_input_without_norm(block):
    """Regression: an in-place activation after an absent norm once overwrote x before x was added back."""
    spec = rc.ArchSpec(input_size=(16, 16), stem=rc.Stem(type="cifar", channels=16), norm="none",
                       stages=(rc.Stage(block=block, width=4 if "bottleneck" in block else 16, blocks=1),), num_classes=2)
    model = build_model(spec, seed=0).eval()
    blk = model.layer1[0]
    x = torch.randn(2, 16, 16, 16)
    x_before = x.clone()
    captured = {}
    h = blk.add.register_forward_hook(lambda mod, inp, out: captured.update(fx=inp[0].clone(), sc=inp[1].clone()))
    try:
        with torch.no_grad():
            blk(x)
    finally:
        h.remove()
    assert torch.equal(x, x_before)
    assert torch.equal(captured["sc"], x_before)
