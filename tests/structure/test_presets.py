"""Preset counts against published figures (DESIGN.md's table, torchvision's docs, He et al.)."""

import math

import pytest

import resnet_core as rc
from resnet_core.structure.trace import trace

from .torchvision_reference import TORCHVISION, torchvision_model

# Published parameter counts: DESIGN.md (torchvision / He et al. 2015 §4.2); the three extra
# torchvision models from torchvision's model documentation.
PARAMS = {
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032, "resnet101": 44_549_160,
    "resnet152": 60_192_808, "resnext50_32x4d": 25_028_904, "wide_resnet50_2": 68_883_240,
    "resnext101_32x8d": 88_791_336, "resnext101_64x4d": 83_455_272, "wide_resnet101_2": 126_886_696,
    "resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586, "resnet56": 853_018,
    "resnet110": 1_727_962, "resnet1202": 19_421_274,
}
# Published mult-adds in G, at the precision published (DESIGN.md; torchvision docs' "GFLOPS").
MULT_ADDS_G = {
    "resnet18": "1.814", "resnet34": "3.664", "resnet50": "4.089", "resnet101": "7.801", "resnet152": "11.514",
    "resnext50_32x4d": "4.23", "wide_resnet50_2": "11.398", "resnext101_32x8d": "16.41",
    "resnext101_64x4d": "15.46", "wide_resnet101_2": "22.75",
}
# The paper's v1 bottleneck (stride on the first 1×1): DESIGN.md.
V1_MULT_ADDS_G = {"resnet50": "3.86", "resnet101": "7.57", "resnet152": "11.28"}


def matches_published(value: float, published: str) -> bool:
    """True when `value` shows as `published` at its precision, rounded or truncated."""
    digits = len(published.split(".")[1])
    scale = 10 ** digits
    return published in (f"{value:.{digits}f}", f"{math.floor(value * scale) / scale:.{digits}f}")


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_count_matches_published(name):
    assert trace(rc.get_preset(name)).total_params == PARAMS[name]


@pytest.mark.parametrize("name", sorted(MULT_ADDS_G))
def test_mult_adds_match_published(name):
    assert matches_published(trace(rc.get_preset(name)).mult_adds / 1e9, MULT_ADDS_G[name])


@pytest.mark.parametrize("name", sorted(V1_MULT_ADDS_G))
def test_paper_v1_bottleneck_mult_adds(name):
    spec = rc.get_preset(name).replace(stride_in_1x1=True)
    assert matches_published(trace(spec).mult_adds / 1e9, V1_MULT_ADDS_G[name])
    # and the stride really moved: the same parameters, fewer mult-adds
    assert trace(spec).total_params == PARAMS[name]


@pytest.mark.parametrize("name", ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet1202"])
def test_cifar_plain_twins_have_the_same_counts(name):
    """Option A shortcuts have no parameters, so the plain twin counts the same (He et al. §4.2)."""
    n = int(name[6:])
    twin = rc.get_preset(f"plain{n}")
    assert not twin.skip
    assert trace(twin).total_params == PARAMS[name]
    # 6n+2 weighted layers: 6n+1 convs and one fc
    convs = [lay for lay in rc.plan(twin).layers if lay.op == "conv"]
    assert len(convs) + 1 == n


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_plain_twin_drops_exactly_the_projections(name):
    """plain = residual − the downsample (1×1 conv + BN) parameters of torchvision's model."""
    ref = torchvision_model(name)
    projection = sum(p.numel() for n, p in ref.named_parameters() if ".downsample." in n)
    twin = next(n for n in rc.list_presets() if rc.preset_info(n).plain_of == name)
    assert trace(rc.get_preset(twin)).total_params == PARAMS[name] - projection


def test_preact_resnet164_matches_he_2016():
    """Identity Mappings (He et al. 2016), CIFAR ResNet-164 (bottleneck, n=18): 1.7M parameters."""
    p164 = trace(rc.get_preset("preact_resnet164")).total_params
    assert round(p164 / 1e6, 1) == 1.7


def test_every_preset_plans_without_errors_and_has_a_twin():
    names = rc.list_presets()
    assert len(names) == len(set(names))
    for name in names:
        info = rc.preset_info(name)
        t = trace(info.spec)
        assert t.ok, (name, t.errors)
        assert info.spec.name == name
        if info.plain_of:
            assert info.plain_of in names and not info.spec.skip
            residual = rc.get_preset(info.plain_of)
            assert info.spec.replace(skip=True, name=residual.name) == residual


def test_unknown_preset_suggests_close_names():
    with pytest.raises(KeyError, match="resnet18"):
        rc.get_preset("resnet-18")


def test_resnet18_walkthrough():
    """DESIGN.md's walk-through: 224×224×3 → 112×112×64 → 56×56×64 → stages → 7×7×512 → 1×1×512 → 512 → FC."""
    t = trace(rc.get_preset("resnet18").replace(num_classes=10))
    by_name = {r.name: r for r in t.layers}
    assert by_name["conv1"].out_shape == (64, 112, 112)
    assert by_name["maxpool"].out_shape == (64, 56, 56)
    stage_outs = [g.out_shape for g in t.groups() if g.name.startswith("layer")]
    assert stage_outs == [(64, 56, 56), (128, 28, 28), (256, 14, 14), (512, 7, 7)]
    assert by_name["avgpool"].out_shape == (512, 1, 1)
    assert by_name["flatten"].out_shape == (512,)
    assert by_name["fc"].out_shape == (10,)
