"""A spec's total work is bounded before the planner runs, not only its per-stage counts (issue 25 item 5).

Each stage under its own limit is not enough: a stage past its limit used to be reported only when the
planner reached it, after planning every stage before it (63 stages of 10,000 blocks: 7.5 million layers,
about a minute and gigabytes). Now every stage's count and the total are checked first, and nothing is
planned when they fail. The largest real networks still plan, with their published parameter counts.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from dataclasses import replace

import pytest

import resnet_core as rc
from resnet_core.structure.limits import MAX_BLOCKS, MAX_STAGES, planned_work
from resnet_core.structure.spec import ArchSpec, Stage


def _stages(full: int, last: int, block: str = "preact_bottleneck") -> tuple[Stage, ...]:
    """`full` stages at the per-stage limit, then one stage of `last` blocks; every width and stride legal."""
    return tuple(Stage(block=block, blocks=MAX_BLOCKS, width=64) for _ in range(full)) + (
        Stage(block=block, blocks=last, width=64),)


def test_a_stage_past_its_limit_is_refused_before_the_stages_before_it_are_planned():
    spec = ArchSpec(stages=_stages(2, MAX_BLOCKS + 1), shortcut="C", input_size=(32, 32))
    p = rc.plan(spec)
    assert [str(e.where) for e in p.errors] == ["stage 3 · blocks"]
    e = p.errors[0]
    assert e.code == "out_of_range" and f"{MAX_BLOCKS + 1:,}" in e.message and f"{MAX_BLOCKS:,}" in e.message
    assert p.layers == [] and p.stages == []  # refused, not planned up to the bad stage


def test_stages_each_within_the_limit_are_refused_by_their_total_with_the_numbers():
    per_stage = MAX_BLOCKS // 2 + 1
    spec = ArchSpec(stages=tuple(Stage(blocks=per_stage, width=16) for _ in range(2)), input_size=(32, 32))
    p = rc.plan(spec)
    assert [str(e.where) for e in p.errors] == ["stages"]
    message = p.errors[0].message
    total = 2 * per_stage
    assert f"{total:,} blocks" in message and f"{MAX_BLOCKS:,}" in message
    blocks, layers = planned_work(spec)
    assert blocks == total and f"{layers:,} layers" in message
    assert p.layers == []


_WORST = """
import json, resource, sys, time
from resnet_core.structure.plan import plan
from resnet_core.structure.spec import spec_from_dict
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # a planner that plans it anyway dies here
spec = spec_from_dict(json.loads(sys.stdin.read()))
p = plan(spec)
print(json.dumps({"errors": [str(e.where) for e in p.errors], "layers": len(p.layers)}))
"""


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_AS"), reason="needs RLIMIT_AS to cap the child's memory")
def test_the_worst_spec_every_stage_allows_is_refused_at_once():
    # the most stages the planner takes, each at its block limit but the last one past it: on the code
    # before the fix this planned 63 × 10,000 blocks before saying anything (killed here by the 1 GiB cap
    # or the time-out); now it is one located error and no layer
    spec = ArchSpec(stages=_stages(MAX_STAGES - 1, MAX_BLOCKS + 1), shortcut="C", input_size=(64, 64))
    out = subprocess.run([sys.executable, "-c", _WORST], input=spec.to_json(), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result == {"errors": [f"stage {MAX_STAGES} · blocks"], "layers": 0}


def test_planned_work_bounds_what_the_planner_makes():
    # the estimate is an upper bound for every block type and shortcut, so the limit bounds the layers
    for block in ("basic", "bottleneck", "preact_basic", "preact_bottleneck"):
        for shortcut in ("A", "B", "C"):
            spec = replace(rc.get_preset("resnet18"), shortcut=shortcut, stages=tuple(
                Stage(block=block, blocks=3, width=w, stride=s) for w, s in ((64, 1), (128, 2))))
            p = rc.plan(spec)
            assert p.ok, p.errors
            blocks, layers = planned_work(spec)
            assert blocks == len(p.blocks) == 6
            assert len(p.layers) <= layers


def test_exactly_the_limit_in_all_still_plans():
    spec = ArchSpec(stages=tuple(Stage(blocks=MAX_BLOCKS // 4, width=8) for _ in range(4)), input_size=(8, 8),
                    stem=rc.Stem(type="cifar", channels=8), num_classes=10)
    p = rc.plan(spec)
    assert p.ok, p.errors[:1]
    assert len(p.blocks) == MAX_BLOCKS


# published parameter counts (DESIGN.md's reference table; He et al. 2015 for the CIFAR family)
@pytest.mark.parametrize("name,params", [
    ("resnet1202", 19_421_274), ("resnet152", 60_192_808), ("wide_resnet50_2", 68_883_240),
])
def test_the_largest_real_networks_still_plan(name, params):
    t = rc.trace(rc.get_preset(name))
    assert t.ok and t.total_params == params
    assert planned_work(t.spec)[0] == len(t.plan.blocks) <= MAX_BLOCKS


def test_wide_resnet101_2_still_plans():
    # torchvision's wide_resnet101_2: 126,886,696 parameters
    t = rc.trace(rc.get_preset("wide_resnet101_2"))
    assert t.ok and t.total_params == 126_886_696
