"""The rows the app's tables and charts are drawn from, and the CSV."""

import csv
import io

import pytest

import resnet_core as rc
from resnet_core.structure.lessons import EXERCISES
from resnet_core.structure.report import (
    compare_rows,
    compare_totals,
    problem_sides,
    stage_chart_rows,
    staircase_rows,
    staircase_summary,
    table_rows,
    to_csv,
    to_table,
)
from resnet_core.structure.trace import trace

# He et al. 2015, Table 1: output size per stage (conv1, conv2_x … conv5_x) and the stage widths.
PAPER_TABLE_1 = {
    "resnet18": ("224 → 112 → 56 → 28 → 14 → 7 → 1", "3 → 64 → 128 → 256 → 512 → 1000"),
    "resnet34": ("224 → 112 → 56 → 28 → 14 → 7 → 1", "3 → 64 → 128 → 256 → 512 → 1000"),
    "resnet50": ("224 → 112 → 56 → 28 → 14 → 7 → 1", "3 → 64 → 256 → 512 → 1024 → 2048 → 1000"),
    "resnet152": ("224 → 112 → 56 → 28 → 14 → 7 → 1", "3 → 64 → 256 → 512 → 1024 → 2048 → 1000"),
    # §4.2: 32×32 input, maps of 32, 16, 8 with 16, 32, 64 filters, then 10-way fc
    "resnet56": ("32 → 16 → 8 → 1", "3 → 16 → 32 → 64 → 10"),
}


@pytest.mark.parametrize("name", sorted(PAPER_TABLE_1))
def test_staircase_matches_the_papers_table(name):
    assert staircase_summary(trace(rc.get_preset(name))) == PAPER_TABLE_1[name]


def test_staircase_stops_at_the_failure():
    t = trace(rc.get_preset("resnet18").replace(shortcut="identity"))
    assert staircase_summary(t) == ("224 → 112 → 56", "3 → 64")
    depths = [r["depth"] for r in staircase_rows(t)]
    assert depths == sorted(depths)


@pytest.mark.parametrize("depth", ["stage", "block", "layer"])
def test_table_rows_add_up_at_every_depth(depth):
    t = trace(rc.get_preset("resnext50_32x4d"))
    rows = table_rows(t, depth)
    assert sum(r["Params"] for r in rows) == t.total_params
    assert sum(r["Mult-adds"] for r in rows) == t.mult_adds
    expected = {"stage": 6, "block": 2 + 16, "layer": len(t.layers)}[depth]
    assert len(rows) == expected


def test_table_rows_mark_the_failure():
    rows = table_rows(trace(rc.get_preset("resnet18").replace(shortcut="identity")), "layer")
    assert rows[-1]["Output"] == "✗ F(x) 128×28×28 ≠ shortcut 64×56×56"
    assert rows[-1]["Where"] == "stage 2 · block 0"
    with pytest.raises(ValueError):
        table_rows(trace(rc.get_preset("resnet18")), "blocks")


def test_stage_chart_and_compare_rows():
    a, b = trace(rc.get_preset("resnet34")), trace(rc.get_preset("plain34"))
    chart = stage_chart_rows(a)
    assert sum(r["value"] for r in chart if r["measure"] == "parameters") == a.total_params
    rows = compare_rows(a, b)
    assert sum(r["Δ params"] for r in rows) == b.total_params - a.total_params
    assert [r["Part"] for r in rows][0] == "stem" and rows[-1]["Part"] == "head"


def test_csv_parses_and_adds_up():
    t = trace(rc.get_preset("resnet50"))
    rows = list(csv.DictReader(io.StringIO(to_csv(t))))
    assert len(rows) == len(t.layers)
    assert sum(int(r["params"]) for r in rows) == 25_557_032
    assert rows[0]["output_shape"] == "64×112×112" and rows[-1]["output_shape"] == "1000"


def test_compare_sorts_stages_by_number():
    stages = tuple(rc.get_preset("resnet20").stages[:1]) * 12  # twelve 16-wide stages: layer1 … layer12
    t = trace(rc.get_preset("resnet20").replace(stages=stages))
    parts = [r["Part"] for r in compare_rows(t, t)]
    assert parts == ["stem"] + [f"stage {i} (layer{i})" for i in range(1, 13)] + ["head"]


def test_compare_totals_are_partial_for_a_broken_network():
    ok, broken = trace(rc.get_preset("resnet18")), trace(rc.get_preset("resnet18").replace(shortcut="identity"))
    rows = {m: (a, b, d) for m, a, b, d in compare_totals(broken, ok)}
    a, b, d = rows["Parameters"]
    assert a.endswith("(partial)") and not b.endswith("(partial)")
    assert "%" not in d and d == f"{ok.total_params - broken.total_params:+,}"
    assert rows["Depth (weight layers)"][:2] == ("7 (partial)", "18")
    # two complete networks: the relative change, and the same depth for a net and its plain twin
    rows = {m: (a, b, d) for m, a, b, d in compare_totals(trace(rc.get_preset("resnet34")), trace(rc.get_preset("plain34")))}
    assert rows["Depth (weight layers)"] == ("34", "34", "+0")
    plain = trace(rc.get_preset("plain34")).total_params  # resnet34 (published: 21,797,672) less its projections
    assert rows["Parameters"][2] == f"{plain - 21_797_672:+,} ({(plain - 21_797_672) / 21_797_672:+.1%})"


def test_a_failed_addition_names_fx_then_the_shortcut():
    """The two sides in the same order whatever the error: F(x) first (128 channels), the shortcut second."""
    mismatch = trace(rc.get_preset("resnet18").replace(shortcut="identity")).errors[0]
    assert problem_sides(mismatch) == "F(x) 128×28×28 vs shortcut 64×56×56"
    narrowing = trace(EXERCISES[1].broken).errors[0]  # option A from 32 to 16 channels
    assert narrowing.code == "channels_decrease"
    assert problem_sides(narrowing) == "F(x) 16×8×8 vs shortcut input x 32×16×16"


def test_a_failure_without_a_layer_is_a_marked_row():
    t = trace(EXERCISES[4].broken)  # stage 1's branch width is 0: planning stops before any of its layers
    assert t.plan.failed_layer is None and not t.ok
    for depth in ("stage", "block", "layer"):
        rows = table_rows(t, depth)
        assert rows[-1]["Output"] == "✗ fails here" and "stage 1" in next(iter(rows[-1].values()))
        assert sum(r["Params"] for r in rows) == t.total_params


def test_repeated_module_uses_are_listed_apart():
    """torchvision's BasicBlock calls its one `relu` twice: the table, CSV, JSON and text say which use."""
    t = trace(rc.get_preset("resnet18"))
    names = [r["Layer"] for r in table_rows(t, "layer")]
    assert len(names) == len(set(names))
    assert names.count("layer3.1.relu (1)") == 1 and names.count("layer3.1.relu (2)") == 1
    csv_rows = list(csv.DictReader(io.StringIO(to_csv(t))))
    assert [r["name"] for r in csv_rows] == names
    assert {r["module"] for r in csv_rows if r["name"].startswith("layer3.1.relu")} == {"layer3.1.relu"}
    json_names = [lay["name"] for lay in t.to_dict()["layers"]]
    assert json_names == names
    text = to_table(t)
    assert "layer3.1.relu (1)" in text and "layer3.1.relu (2)" in text
    assert "Depth:              18 weight layers (69 layers planned)" in text
