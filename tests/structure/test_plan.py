"""Located errors for each way a network can break, and property tests over random specs."""

from dataclasses import replace

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import resnet_core as rc
from resnet_core.structure.build import BuildError, build_model
from resnet_core.structure.plan import plan
from resnet_core.structure.records import PlanProblem
from resnet_core.structure.spec import ArchSpec, Stage, Stem
from resnet_core.structure.trace import Trace


def only_error(spec: ArchSpec) -> PlanProblem:
    p = plan(spec)
    assert len(p.errors) == 1, p.errors
    return p.errors[0]


def test_identity_shortcut_where_the_shape_changes():
    p = plan(rc.get_preset("resnet18").replace(shortcut="identity"))
    (e,) = p.errors
    assert e.code == "shape_mismatch"
    assert str(e.where) == "stage 2 · block 0 · shortcut"
    assert e.shapes == ((128, 28, 28), (64, 56, 56))
    assert "1×1 projection" in e.fix and "stride 2" in e.fix
    # planned up to the failure: stem, stage 1, and stage 2's main path; the failing add is last and marked
    assert p.layers[-1].failed and p.layers[-1].name == "layer2.0.add"
    assert all(not lay.failed and lay.out_shape is not None for lay in p.layers[:-1])
    assert [lay.name for lay in p.layers[:4]] == ["conv1", "bn1", "relu", "maxpool"]
    assert p.output_shape is None and not p.ok


def test_option_a_cannot_remove_channels():
    spec = rc.get_preset("resnet20")
    spec = spec.with_stage(1, width=8)  # 16 → 8 channels
    e = only_error(spec)
    assert e.code == "channels_decrease"
    assert str(e.where) == "stage 2 · block 0 · shortcut"
    assert "option B" in e.fix
    assert e.shapes == ((16, 32, 32), (8, 16, 16))


def test_spatial_size_below_one():
    spec = ArchSpec(input_size=(5, 5), stem=Stem(type="custom", channels=8, kernel=7, stride=2, padding=0, pool="none"),
                    stages=(Stage(width=8),), num_classes=3)
    e = only_error(spec)
    assert e.code == "spatial_underflow"
    assert str(e.where) == "stem · conv1"
    assert "5×5" in e.message and "below 1" in e.message


def test_groups_must_divide_the_widths():
    spec = rc.get_preset("resnet18").with_stage(0, groups=3)
    e = only_error(spec)
    assert e.code == "groups"
    assert str(e.where) == "stage 1 · block 0 · conv1"
    assert "64" in e.message and "{1, 2, 4, 8, 16, 32, 64}" in e.fix


@pytest.mark.parametrize("field,value,where", [
    ("blocks", 0, "stage 3 · blocks"), ("width", -4, "stage 3 · width"), ("stride", 0, "stage 3 · stride"),
    ("groups", 0, "stage 3 · groups"), ("expansion", 0, "stage 3 · expansion"),
])
def test_non_positive_stage_fields(field, value, where):
    p = plan(rc.get_preset("resnet34").with_stage(2, **{field: value}))
    (e,) = p.errors
    assert e.code == "non_positive" and str(e.where) == where
    # stages 1 and 2 were planned in full
    assert {lay.stage for lay in p.layers if lay.stage is not None} == {0, 1}


def test_unknown_block_type_suggests_the_closest():
    e = only_error(rc.get_preset("resnet50").with_stage(2, block="bottlenek"))
    assert e.code == "unknown_value" and str(e.where) == "stage 3 · block type"
    assert "did you mean 'bottleneck'" in e.fix


@pytest.mark.parametrize("changes,where", [
    (dict(in_channels=0), "input"), (dict(input_size=(0, 32)), "input"), (dict(num_classes=0), "head · fc"),
    (dict(shortcut="E"), "shortcut option"), (dict(norm="group"), "normalisation"),
    (dict(activation="tanh"), "activation"), (dict(bn_eps=0.0), "options"),
])
def test_global_fields_are_located(changes, where):
    e = only_error(rc.get_preset("resnet18").replace(**changes))
    assert str(e.where) == where


def test_branch_width_of_zero():
    e = only_error(rc.get_preset("resnext50_32x4d").with_stage(0, width=8))  # int(8·4/64)·32 = 0
    assert e.code == "non_positive" and "width per group" in str(e.where)


def test_warnings_for_tiny_maps_and_zero_init_plain():
    p = plan(rc.get_preset("resnet18").replace(input_size=(32, 32)))
    assert p.ok and any("stage 4 runs on 1×1 maps" in w for w in p.warnings)
    p = plan(rc.get_preset("plain20").replace(zero_init_residual=True))
    assert any("plain net" in w for w in p.warnings)


# ---------------------------------------------------------------------------------------------
# Properties over random specs
# ---------------------------------------------------------------------------------------------

stages = st.builds(
    Stage,
    block=st.sampled_from(["basic", "bottleneck", "preact_basic", "preact_bottleneck"]),
    blocks=st.integers(0, 2),
    width=st.sampled_from([-1, 4, 6, 8, 12, 16]),
    stride=st.sampled_from([1, 1, 2, 3]),
    groups=st.sampled_from([1, 1, 2, 3, 4]),
    width_per_group=st.sampled_from([16, 32, 64, 128]),
    expansion=st.sampled_from([None, 1, 2]),
)
stems = st.one_of(
    st.builds(Stem, type=st.sampled_from(["imagenet", "cifar"]), channels=st.sampled_from([4, 8, 12])),
    st.builds(Stem, type=st.just("custom"), channels=st.sampled_from([4, 8]), kernel=st.integers(1, 7),
              stride=st.integers(1, 3), padding=st.one_of(st.none(), st.integers(0, 3)),
              pool=st.sampled_from(["max", "avg", "none"]), pool_kernel=st.sampled_from([2, 3]),
              pool_stride=st.sampled_from([1, 2])),
)
specs = st.builds(
    ArchSpec,
    in_channels=st.sampled_from([1, 3]),
    input_size=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    stem=stems,
    stages=st.lists(stages, min_size=0, max_size=3).map(tuple),
    shortcut=st.sampled_from(["A", "B", "C", "identity"]),
    skip=st.booleans(),
    norm=st.sampled_from(["batch", "none"]),
    activation=st.sampled_from(["relu", "gelu"]),
    stride_in_1x1=st.booleans(),
    zero_init_residual=st.booleans(),
    num_classes=st.integers(1, 12),
)


def hook_shapes(model: nn.Module, x: torch.Tensor):
    seen, handles = [], []
    for name, m in model.named_modules():
        if not list(m.children()) and not isinstance(m, nn.Identity):
            handles.append(m.register_forward_hook(
                lambda mod, inp, out, name=name: seen.append((name, tuple(out.shape[1:])))))
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return seen


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs)
def test_random_specs_either_run_with_the_planned_shapes_or_fail_located(spec):
    p = plan(spec)  # never raises
    t = Trace(p)
    if p.ok:
        model = build_model(p, seed=0).eval()
        x = torch.randn(1, *p.input_shape)
        with torch.no_grad():
            seen = hook_shapes(model, x)
        assert seen == [(lay.name, lay.out_shape) for lay in p.layers]
        assert t.total_params == sum(q.numel() for q in model.parameters())
        assert p.output_shape == (spec.num_classes,)
    else:
        assert all(isinstance(e, PlanProblem) and str(e.where) and e.message and e.fix for e in p.errors)
        with pytest.raises(BuildError):
            build_model(p)
        failed = [lay for lay in p.layers if lay.failed]
        assert len(failed) <= 1
        if failed:  # the failing layer is the last one planned, and it is the error's layer
            assert failed[0] is p.layers[-1] and p.errors[0].layer == failed[0].index
        assert all(lay.out_shape is not None for lay in p.layers if not lay.failed)


def test_plan_input_shape_override():
    p = plan(rc.get_preset("resnet18"), (1, 64, 48))
    assert p.input_shape == (1, 64, 48)
    assert p.layers[0].in_shape == (1, 64, 48)
    assert p.layers[0].out_shape == (64, 32, 24)
    with pytest.raises(ValueError, match="three integers"):
        plan(rc.get_preset("resnet18"), (3, 64))


def test_with_stage_edits_one_stage():
    spec = rc.get_preset("resnet18")
    edited = spec.with_stage(1, blocks=5)
    assert edited.stages[1] == replace(spec.stages[1], blocks=5) and edited.stages[0] == spec.stages[0]


# ---------------------------------------------------------------------------------------------
# Absurd sizes are located errors, planned at once (no hang, no overflow, no huge allocation)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("changes,where", [
    (dict(blocks=10**6), "stage 1 · blocks"),
    (dict(width=10**400), "stage 1 · width"),
    (dict(width_per_group=2**40), "stage 1 · width per group"),
    (dict(expansion=2**21), "stage 1 · expansion"),
    (dict(width=2**19, expansion=4), "stage 1 · output width"),
])
def test_absurd_stage_sizes_are_out_of_range(changes, where):
    e = only_error(rc.get_preset("resnet50").with_stage(0, **changes))
    assert e.code == "out_of_range" and str(e.where) == where
    assert "at most" in e.message


def test_too_many_blocks_in_all_and_huge_inputs():
    spec = rc.get_preset("resnet20")
    many = spec.replace(stages=tuple(replace(s, blocks=4000) for s in spec.stages))
    assert str(only_error(many).where) == "stages"
    assert only_error(spec.replace(input_size=(10**6, 32))).code == "out_of_range"
    assert only_error(spec.replace(num_classes=10**12)).code == "out_of_range"


def test_group_advice_stays_short_for_huge_widths():
    # 720,720 stem channels into a branch of 765,765 with 17 groups: gcd 45,045 has 48 divisors
    spec = rc.get_preset("resnet18").replace(stem=Stem(type="imagenet", channels=720_720)).with_stage(
        0, width=720_720, width_per_group=4, groups=17)
    e = only_error(spec)
    assert e.code == "groups" and "…" in e.fix and len(e.fix) < 120


def test_option_a_is_not_suggested_when_channels_shrink():
    spec = rc.get_preset("resnet18").replace(shortcut="identity").with_stage(1, width=32)  # 64 → 32, stride 2
    e = only_error(spec)
    assert e.code == "shape_mismatch" and "option B" in e.fix and "option A" not in e.fix
