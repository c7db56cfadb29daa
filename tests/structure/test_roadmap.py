"""The road from ResNet-50 to ConvNeXt-T (structure/roadmap.py): every step plans and builds, the two ends are
exact, and the middle steps' counts equal a hand calculation."""

from __future__ import annotations

import pytest
import torch

import resnet_core as rc
from resnet_core.structure.build import build_model
from resnet_core.structure.roadmap import STEPS, counted, diff
from resnet_core.structure.trace import trace

from .test_build import check_plan_against_the_built_module

COUNTED = counted()
BY_KEY = {c.step.key: c for c in COUNTED}
# ConvNeXt's Figure 2, as published (GFLOPs, top-1 %): written out here, not read from the code
FIGURE_2 = [(4.1, 78.8), (4.5, 79.4), (4.4, 79.5), (2.4, 78.3), (5.3, 80.5), (4.6, 80.6), (4.1, 79.9), (4.2, 80.6),
            (4.2, 80.6), (4.2, 81.3), (4.2, 81.4), (4.2, 81.5), (4.5, 82.0)]
STAGES = ((3, 64), (3, 128), (9, 256), (3, 512))  # the 3-3-9-3 ResNet's blocks and widths


def test_the_steps_are_figure_2():
    assert [(s.reported_gflops, s.reported_top1) for s in STEPS] == FIGURE_2
    assert len({s.spec.name for s in STEPS}) == len(STEPS)


def test_the_two_ends_are_exact():
    assert COUNTED[0].mult_adds == 4_089_184_256 and COUNTED[0].params == 25_557_032  # DESIGN.md: resnet50
    assert COUNTED[-1].mult_adds == 4_455_531_264 and COUNTED[-1].params == 28_589_128  # issue 21: convnext_tiny
    assert COUNTED[0].step.spec == rc.get_preset("resnet50")
    assert COUNTED[-1].step.spec == rc.get_preset("convnext_tiny")


def test_every_step_plans_and_stays_near_the_papers_gflops_or_says_why():
    for c in COUNTED:
        assert c.plan.ok, (c.step.title, c.plan.errors)
        assert abs(c.gflops_gap) <= 0.1 or c.step.why_flops_differ, c.step.title


def test_stage_ratio_by_hand():
    """3-4-6-3 → 3-3-9-3: one identity bottleneck fewer at width 128, three more at 256 (1×1, 3×3, 1×1, three BNs)."""
    def bottleneck(w: int) -> int:
        return 4 * w * w + 9 * w * w + 4 * w * w + 2 * (w + w + 4 * w)
    assert BY_KEY["stage_ratio"].params - BY_KEY["resnet50"].params == 3 * bottleneck(256) - bottleneck(128)


def test_patchify_stem_by_hand():
    """7×7×3×64 → 4×4×3×64 weights; mult-adds at 112×112 and 56×56 respectively (the max pool counts none)."""
    before, after = BY_KEY["stage_ratio"], BY_KEY["patchify"]
    assert before.params - after.params == (49 - 16) * 3 * 64
    assert before.mult_adds - after.mult_adds == 49 * 3 * 64 * 112 * 112 - 16 * 3 * 64 * 56 * 56


def test_depthwise_by_hand():
    """Each block's 3×3 conv on w channels keeps 9 weights a channel instead of 9·w; at H×W its mult-adds too."""
    before, after = BY_KEY["patchify"], BY_KEY["depthwise"]
    sides = (56, 28, 14, 7)
    assert before.params - after.params == sum(n * 9 * (w * w - w) for n, w in STAGES)
    assert before.mult_adds - after.mult_adds == sum(n * 9 * (w * w - w) * s * s
                                                     for (n, w), s in zip(STAGES, sides, strict=True))


def test_inverted_bottleneck_block_by_hand():
    """An identity inverted bottleneck at width 96: 1×1 96→384, 3×3 depthwise on 384, 1×1 384→96, and BNs."""
    p = BY_KEY["inverted"].plan
    block = next(b for b in p.blocks if b.name == "layer1.1")
    t = trace(p.spec)
    params = sum(r.params for r in t.layers[block.first:block.end])
    assert params == 96 * 384 + 9 * 384 + 384 * 96 + 2 * (384 + 384 + 96)


def test_diff_names_what_each_step_changes():
    stem = {ch.where: ch for ch in diff(BY_KEY["stage_ratio"].plan, BY_KEY["patchify"].plan)}["stem"]
    assert "1 × conv 4×4" in stem.added and "1 × conv 7×7" in stem.removed and "1 × 3×3 max pool" in stem.removed
    acts = diff(BY_KEY["gelu"].plan, BY_KEY["fewer_acts"].plan)
    assert {ch.where: ch.removed for ch in acts}["stage 3"] == ["18 × GELU"]  # 9 blocks: 3 GELUs → 1
    last = {ch.where: ch for ch in diff(BY_KEY["layer_norm"].plan, BY_KEY["separate"].plan)}
    assert "1 × conv 2×2" in last["stage 2"].added and "1 × LayerNorm2d" in last["head"].added


@pytest.mark.parametrize("key", [pytest.param(s.key, marks=pytest.mark.slow) if i % 4 else s.key
                                 for i, s in enumerate(STEPS)])
def test_every_step_builds_as_planned(key):
    spec = BY_KEY[key].step.spec.replace(input_size=(64, 64))
    check_plan_against_the_built_module(spec)
    with torch.no_grad():
        assert build_model(spec, seed=0)(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_every_step_fits_the_builder():
    from app.state import check_bounds  # the builder's widgets can show each step ("Open in the builder")
    assert all(check_bounds(s.spec) == [] for s in STEPS)
