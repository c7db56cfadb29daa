"""Outputs against golden files, as torchinfo keeps its expected outputs: `trace resnet18`'s table, the DOT of
resnet18 and resnet50 at block and layer detail, and the key sets of `gradflow`/`train`/`experiment --format json`.

A change to a layout, a number or a JSON key fails here. When the change is meant, regenerate with
`UPDATE_GOLDEN=1 python -m pytest tests/cli/test_golden.py` (RESNET_EXPLORER_UPDATE_GOLDEN=1 also works) and
read the diff before committing it. Each golden file is also checked against figures from outside the code
(second test of each kind), so a regenerated file cannot drift silently:

- trace: 11,689,512 parameters (torchvision's published count), 1,814,083,944 mult-adds (torchinfo's), the
  224 → 112 → 56 → 28 → 14 → 7 → 1 staircase of He et al.'s Table 1, 18 weight layers.
- DOT: He et al.'s Table 1 block counts (resnet18 [2,2,2,2] = 8 blocks, resnet50 [3,4,6,3] = 16), one
  projection shortcut per stage whose width or stride changes (3 and 4), and at layer detail every
  convolution (resnet18: 17 + 3 projections = 20; resnet50: 49 + 4 = 53).
- JSON keys: only the key paths are kept (values change with seeds, machines and versions; the names
  the app, scripts and notebooks read must not).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import resnet_core as rc
from resnet_core.cli.main import main
from resnet_core.structure.graph import to_dot
from resnet_core.structure.plan import plan

ROOT = Path(__file__).resolve().parents[2]
GOLDEN_DIR = Path(__file__).parent / "golden"
GOLDEN = GOLDEN_DIR / "trace_resnet18.txt"
UPDATE = bool(os.environ.get("UPDATE_GOLDEN") or os.environ.get("RESNET_EXPLORER_UPDATE_GOLDEN"))


def check_golden(name: str, text: str) -> str:
    """Compare `text` with golden/`name` (write it first when UPDATE_GOLDEN is set); returns the golden text."""
    path = GOLDEN_DIR / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1 to write it, then read it before committing"
    expected = path.read_text(encoding="utf-8")
    assert text.splitlines() == expected.splitlines(), f"{name} differs from its golden file (UPDATE_GOLDEN=1 if meant)"
    return expected


# --- trace ---------------------------------------------------------------------------------------------------

def test_trace_resnet18_table_matches_the_golden_file():
    out = subprocess.run([sys.executable, "-m", "resnet_core", "trace", "resnet18"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    check_golden(GOLDEN.name, out)


def test_the_golden_file_holds_the_published_figures():
    """The golden file itself agrees with the references it was checked against (it can't drift silently)."""
    text = GOLDEN.read_text(encoding="utf-8")
    assert "Total params:       11,689,512" in text
    assert "Total mult-adds:    1,814,083,944" in text
    assert "Depth:              18 weight layers" in text
    outputs = [line.split()[3] for line in text.splitlines() if line.startswith(("conv1 ", "maxpool ", "layer1.1.add",
                                                                               "layer2.1.add", "layer3.1.add",
                                                                               "layer4.1.add", "avgpool "))]
    assert outputs == ["64×112×112", "64×56×56", "64×56×56", "128×28×28", "256×14×14", "512×7×7", "512×1×1"]


# --- DOT -----------------------------------------------------------------------------------------------------

DOTS = [(net, detail) for net in ("resnet18", "resnet50") for detail in ("block", "layer")]
# (blocks, projection shortcuts, convolutions) from He et al. 2015, Table 1 and §3.3 (option B)
TABLE_1 = {"resnet18": (8, 3, 20), "resnet50": (16, 4, 53)}


@pytest.mark.parametrize("net,detail", DOTS)
def test_dot_matches_the_golden_file(net, detail):
    check_golden(f"dot_{net}_{detail}.dot", to_dot(plan(rc.get_preset(net)), detail=detail))


@pytest.mark.parametrize("net,detail", DOTS)
def test_the_dot_golden_files_hold_table_1(net, detail):
    text = (GOLDEN_DIR / f"dot_{net}_{detail}.dot").read_text(encoding="utf-8")
    blocks, projections, convs = TABLE_1[net]
    assert text.startswith(f"digraph {net} {{")
    assert len(re.findall(r'subgraph "cluster_layer\d\.\d+"', text)) == blocks
    assert text.count('label="+"') == blocks  # one addition per residual block
    if detail == "block":
        assert text.count("1×1 projection/2") == projections - (net == "resnet50")  # resnet50's layer1.0: stride 1
        assert text.count("1×1 projection") == projections
    else:
        assert text.count(': Conv2d"') == convs
        assert text.count(': Add"') == blocks
    assert "3×224×224" in text and ("512×7×7" if net == "resnet18" else "2048×7×7") in text


# --- JSON key sets -------------------------------------------------------------------------------------------

def key_paths(value, path: str = "") -> set[str]:
    """Every key path in a JSON value: `a.b`, `a.list[].c`; an empty dict or list ends in {} or []."""
    if isinstance(value, dict):
        if not value:
            return {path + "{}"}
        return set().union(*(key_paths(v, f"{path}.{k}") for k, v in value.items()))
    if isinstance(value, list):
        if not value:
            return {path + "[]"}
        return set().union(*(key_paths(v, path + "[]") for v in value))
    return {path}


def test_key_paths_walks_nested_dicts_and_every_list_item():
    assert key_paths({"a": 1, "b": {"c": [{"d": 1}, {"e": None}], "f": []}, "g": {}}) == {
        ".a", ".b.c[].d", ".b.c[].e", ".b.f[]", ".g{}"}


# cheap runs: what is compared is the key set, which does not depend on the size of the run
JSON_RUNS = {
    "gradflow": ["gradflow", "resnet20", "--compare-skip", "--batch", "2", "--input", "3,8,8", "--format", "json"],
    "train": ["train", "--nets", "resnet20,plain20", "--steps", "3", "--batch", "4", "--input-size", "8",
              "--data", "synthetic", "--threads", "1", "--format", "json", "--quiet"],
    "experiment_signal": ["experiment", "signal", "resnet20", "--batch", "4", "--format", "json", "--quiet"],
    "experiment_erf": ["experiment", "erf", "--depths", "2,4", "--channels", "2", "--samples", "1", "--seeds", "1",
                       "--format", "json", "--quiet"],
    "experiment_shatter": ["experiment", "shatter", "--width", "8", "--depths", "2,4", "--seeds", "1", "--points",
                           "16", "--format", "json", "--quiet"],
}


@pytest.mark.parametrize("name", sorted(JSON_RUNS))
def test_json_key_set_matches_the_golden_file(name, capsys):
    import torch
    threads = torch.get_num_threads()
    try:
        code = main(JSON_RUNS[name])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert code in (0, None)
    keys = key_paths(json.loads(out))
    golden = check_golden(f"keys_{name}.txt", "\n".join(sorted(keys)) + "\n")
    # the keys every consumer of that output reads (from the docs of each command, not from the golden file)
    expected = {"gradflow": {".spec", ".variants[].weights[].norm", ".variants[].inputs[].norm", ".weight_rows[].ratio"},
                "train": {".nets[].net", ".nets[].final_loss", ".nets[].params", ".config.lr", ".steps"},
                }.get(name, {".experiment", ".settings.seed", ".verdict.reproduced", ".verdict.claim", ".paper.citation"})
    assert expected <= set(golden.splitlines())
