"""The rows the app's tables and charts are drawn from, and the CSV."""

import csv
import io

import pytest

import resnet_core as rc
from resnet_core.structure.report import (
    compare_rows,
    stage_chart_rows,
    staircase_rows,
    staircase_summary,
    table_rows,
    to_csv,
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
    assert rows[-1]["Output"] == "✗ 128×28×28 ≠ 64×56×56"
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
