"""The residual family since 2016 (issue 21): every new preset against its published parameter count, against
timm's / torchvision's own model (parameters, PyTorch's FlopCounterMode, a strict state-dict load and the same
outputs), and the new parts under random specs (the plan equals the built module)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import resnet_core as rc
from resnet_core.structure.build import build_model
from resnet_core.structure.plan import plan
from resnet_core.structure.spec import ArchSpec, Stage, Stem, from_url_token, parse_spec_text, to_url_token
from resnet_core.structure.trace import trace

from .family_reference import flop_counter_mult_adds, on_meta, randomise_norms, reference
from .test_build import check_plan_against_the_built_module

# Published parameter counts: issue 21 and DESIGN.md (timm's model cards); ConvNeXt-S/B: torchvision's docs.
PARAMS = {
    "resnet18d": 11_708_744, "resnet26": 15_995_176, "resnet26d": 16_014_408, "resnet26t": 16_011_872,
    "resnet50c": 25_576_264, "resnet50d": 25_576_264, "resnet50s": 25_680_808, "resnet101d": 44_568_392,
    "resnet152d": 60_212_040, "resnet200d": 64_693_064, "seresnet50": 28_088_024, "ecaresnet50d": 25_576_350,
    "resnetrs50": 35_691_912, "convnext_tiny": 28_589_128, "convnext_small": 50_223_688,
    "convnext_base": 88_591_464,
}
# Published mult-adds (issue 21; torchvision's "GFLOPS" for ConvNeXt-T is 4.456): conv and linear weights.
MULT_ADDS = {"resnet50d": 4_328_824_832, "convnext_tiny": 4_455_531_264, "resnet50": 4_089_184_256}
HEAVY = {"resnet101d", "resnet152d", "resnet200d", "convnext_small", "convnext_base"}


def _lane(names):
    return [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in sorted(names)]


def test_the_family_is_listed():
    assert set(PARAMS) <= set(rc.list_presets())
    assert set(rc.list_presets("convnext")) == {"convnext_tiny", "convnext_small", "convnext_base",
                                                "plain_convnext_tiny", "plain_convnext_small", "plain_convnext_base"}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_count_matches_published(name):
    assert trace(rc.get_preset(name)).total_params == PARAMS[name]


@pytest.mark.parametrize("name", sorted(MULT_ADDS))
def test_mult_adds_match_published(name):
    assert trace(rc.get_preset(name)).weight_mult_adds == MULT_ADDS[name]


@pytest.mark.parametrize("name", _lane(PARAMS))
def test_parameters_and_mult_adds_equal_the_reference_model(name):
    """timm's / torchvision's model on the meta device: its parameter count, and PyTorch's own FlopCounterMode."""
    ref = on_meta(name)
    t = trace(rc.get_preset(name))
    assert t.total_params == sum(p.numel() for p in ref.parameters())
    assert t.weight_mult_adds == flop_counter_mult_adds(ref)


def _small(name: str) -> ArchSpec:
    return rc.get_preset(name).replace(input_size=(64, 64))


@pytest.mark.parametrize("name", _lane(PARAMS))
def test_reference_state_dict_loads_strictly_and_computes_the_same(name):
    torch.manual_seed(0)
    ref = reference(name)
    randomise_norms(ref)
    ours = build_model(_small(name), seed=0)
    ref_sd = ref.state_dict()
    assert set(ours.state_dict()) == set(ref_sd)
    ours.load_state_dict(ref_sd, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want, got = ref.eval()(x), ours.eval()(x)
    assert ((got - want).norm() / want.norm()).item() <= 1e-5


@pytest.mark.parametrize("name", sorted(set(PARAMS) - HEAVY))
def test_spec_round_trips_through_json_and_yaml(name):
    spec = rc.get_preset(name)
    assert parse_spec_text(spec.to_json()) == spec
    assert parse_spec_text(spec.to_yaml()) == spec
    assert from_url_token(to_url_token(spec)) == spec


def test_older_specs_write_exactly_as_before():
    """The new fields are written only when set: a ResNet-50's JSON has none of them."""
    d = rc.get_preset("resnet50").to_dict()
    for key in ("attention", "se_ratio", "eca_kernel", "layer_scale", "downsampling", "block_norms",
                "block_activations"):
        assert key not in d
    assert all("kernel" not in s for s in d["stages"])


def test_resnet_d_shortcut_averages_then_projects():
    p = plan(rc.get_preset("resnet50d"))
    names = [lay.name for lay in p.layers if lay.name.startswith("layer2.0.downsample")]
    assert names == ["layer2.0.downsample.0", "layer2.0.downsample.1", "layer2.0.downsample.2"]
    pool, conv, _ = (lay for lay in p.layers if lay.name in names)
    assert (pool.type, pool.kernel, pool.stride, conv.kernel, conv.stride) == ("AvgPool2d", 2, 2, 1, 1)
    # stage 1 changes channels but not size: no pool (timm's Identity at downsample.0)
    assert [lay.name for lay in p.layers if lay.name.startswith("layer1.0.downsample")] == [
        "layer1.0.downsample.1", "layer1.0.downsample.2"]


def test_se_and_eca_widths_follow_timm():
    p = plan(rc.get_preset("seresnet50"))
    fc1 = next(lay for lay in p.layers if lay.name == "layer4.2.se.fc1")
    assert fc1.out_shape == (128, 1, 1)  # 2048 / 16
    p = plan(rc.get_preset("ecaresnet50d"))
    ks = {lay.name.split(".")[0]: lay.kernel for lay in p.layers if lay.op == "conv1d"}
    assert ks == {"layer1": 5, "layer2": 5, "layer3": 5, "layer4": 7}  # |log2 C + 1| / 2, made odd


def test_convnext_names_are_torchvisions():
    p = plan(rc.get_preset("convnext_tiny"))
    assert [sp.name for sp in p.stages] == ["features.1", "features.3", "features.5", "features.7"]
    assert [lay.name for lay in p.layers[:2]] == ["features.0.0", "features.0.1"]
    assert [lay.name for lay in p.layers[-3:]] == ["classifier.0", "classifier.1", "classifier.2"]


# ---- invalid combinations: one located error each, with a fix ---------------------------------------

@pytest.mark.parametrize("changes,stage,where,fix", [
    (dict(attention="se", se_ratio=0.0), None, "attention · SE ratio", "0.0625"),
    (dict(attention="eca", eca_kernel=4), None, "attention · ECA kernel", "odd"),
    (dict(layer_scale=1e-6), None, "layer scale", "convnext"),
    (dict(block_norms="one"), None, "block norms", "convnext"),
    (dict(attention="eac"), None, "attention", "did you mean 'eca'"),
    (dict(downsampling="apart"), None, "downsampling", "separate"),
])
def test_invalid_combination_is_a_located_error(changes, stage, where, fix):
    (e,) = plan(rc.get_preset("resnet18").replace(**changes)).errors
    assert str(e.where) == where and fix in e.fix


def test_attention_in_a_convnext_stage_is_located():
    (e,) = plan(rc.get_preset("convnext_tiny").replace(attention="se")).errors
    assert str(e.where) == "stage 1 · attention" and "none" in e.fix


def test_even_kernel_is_located():
    (e,) = plan(rc.get_preset("convnext_tiny").with_stage(2, kernel=6)).errors
    assert str(e.where) == "stage 3 · kernel" and "5 or 7" in e.fix


def test_deep_stem_widths_only_for_a_deep_stem():
    with pytest.raises(rc.SpecError, match=r"stem.widths: only for stem type 'deep'"):
        rc.load_spec('{"stem": {"type": "imagenet", "widths": [32, 32]}}')


# ---- random specs over the new parts: the plan is the built module --------------------------------------

@st.composite
def family_specs(draw):
    convnext = draw(st.booleans())
    stem_type = draw(st.sampled_from(["deep", "patchify", "imagenet", "cifar"]))
    stem = Stem(type=stem_type, channels=draw(st.sampled_from([8, 16])),
                widths=(draw(st.sampled_from([4, 8])), draw(st.sampled_from([4, 8]))),
                pool=draw(st.sampled_from(["max", "conv", "none"])), kernel=draw(st.sampled_from([2, 4])))
    n = draw(st.integers(1, 3))
    block = "convnext" if convnext else draw(st.sampled_from(["basic", "bottleneck", "preact_basic"]))
    stages = tuple(Stage(block=block, blocks=draw(st.integers(1, 2)), width=8 * 2 ** i,
                         stride=1 if i == 0 else 2, kernel=draw(st.sampled_from([None, 3, 5])))
                   for i in range(n))
    norm = draw(st.sampled_from(["batch", "layer", "none"]))
    return ArchSpec(
        input_size=(32, 32), stem=stem, stages=stages, num_classes=5, norm=norm,
        activation=draw(st.sampled_from(["relu", "gelu", "silu"])),
        shortcut=draw(st.sampled_from(["B", "C", "D"])), skip=draw(st.booleans()),
        attention="none" if convnext else draw(st.sampled_from(["none", "se", "eca"])),
        se_ratio=draw(st.sampled_from([0.0625, 0.25])), eca_kernel=draw(st.sampled_from([0, 3])),
        layer_scale=draw(st.sampled_from([0.0, 1e-6])) if convnext else 0.0,
        downsampling=draw(st.sampled_from(["in_block", "separate"])),
        block_norms=draw(st.sampled_from(["every", "one"])) if convnext else "every",
        block_activations=draw(st.sampled_from(["every", "one"])) if convnext else "every")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(family_specs())
def test_random_family_specs_plan_what_is_built(spec):
    p = plan(spec)
    if p.errors:  # a spec that cannot meet (a map shrunk below 1): a located error and nothing else
        assert all(e.where is not None and e.fix for e in p.errors)
        return
    check_plan_against_the_built_module(spec)
    assert parse_spec_text(spec.to_json()) == spec


@pytest.mark.parametrize("name,extra", [
    # option D adds, where the shape changes (16→32, 32→64), a 1×1 conv and its BN (the avg pool has none)
    ("resnet20d", (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)),
    # SE in each of the 3 blocks per stage: fc1 C→8 and fc2 8→C with biases (timm rounds C/16 up to 8)
    ("seresnet20", 3 * sum(c * 8 + 8 + 8 * c + c for c in (16, 32, 64))),
    # ECA in each of the 9 blocks: a 1-D conv of kernel 3 without bias (Wang et al.'s rule gives 3 for 16-64)
    ("ecaresnet20", 9 * 3),
])
def test_the_cifar_sized_family_adds_to_resnet20_what_a_hand_count_says(name, extra):
    """The Training lab's CIFAR-size variants: ResNet-20 (269,722, He et al. 2015) plus the part's weights."""
    assert rc.trace(rc.get_preset(name)).total_params == 269_722 + extra
