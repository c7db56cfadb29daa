"""The command line on a model from code (issue 20): `trace`, `export`, `gradflow` on FILE.py:NAME, timm:NAME and
torchvision:NAME, and the JSON others script against. The commands run in-process through `cli.main` (exit
status, stdout, stderr), and once as a person runs them, in a process of their own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OWN = ROOT / "tests" / "app" / "fixtures" / "own_model.py"


class Ran:
    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture()
def cli(capsys):
    """`resnet-explorer ARGS` through cli.main in this process (no new interpreter to import torch into)."""
    from resnet_core.cli.main import main

    def run(*args: str) -> Ran:
        code = main(list(args))
        out = capsys.readouterr()
        return Ran(code, out.out, out.err)
    return run


def test_a_broken_model_as_a_person_runs_it():
    """One run in a process of its own: exit 2, the JSON on stdout, one line on stderr, no traceback."""
    r = subprocess.run([sys.executable, "-m", "resnet_core", "trace", f"{OWN}:broken", "--input", "3,32,32",
                        "--format", "json"], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert r.returncode == 2 and json.loads(r.stdout)["errors"][0]["where"] == "blocks.1:add"
    assert len([x for x in r.stderr.splitlines() if x.startswith("error:")]) == 1 and "Traceback" not in r.stderr


def test_trace_json_carries_the_contract(cli):
    from tests.app.fixtures.own_model import ResNetSE
    r = cli("trace", f"{OWN}:ResNetSE", "--input", "3,32,32", "--format", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["source"] == "module" and d["method"] == "fx"
    assert d["total_params"] == sum(p.numel() for p in ResNetSE().parameters())
    assert d["output_shape"] == [10]
    assert [b["add"] for b in d["residual_blocks"]] == [f"blocks.{i}:add" for i in range(4)]
    assert all(set(b) >= {"add", "branch", "shortcut"} for b in d["residual_blocks"])
    assert d["residual_blocks"][1]["shortcut"] == ["blocks.1.down.0", "blocks.1.down.1"]
    assert d["errors"] == []


def test_a_broken_model_exits_2_with_its_located_error_in_json_and_one_line_on_stderr(cli):
    r = cli("trace", f"{OWN}:broken", "--input", "3,32,32", "--format", "json")
    assert r.returncode == 2
    d = json.loads(r.stdout)
    assert d["errors"][0]["where"] == "blocks.1:add"
    assert d["errors"][0]["shapes"] == [[1, 32, 16, 16], [1, 16, 32, 32]]
    assert "1×1 conv from 16 to 32 channels with stride 2" in d["errors"][0]["fix"]
    lines = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr


def test_the_table_and_csv_have_a_row_per_operation(cli):
    table = cli("trace", f"{OWN}:ResNetSE", "--input", "3,32,32")
    assert table.returncode == 0 and "blocks.0.se:sigmoid" in table.stdout and "4 residual additions" in table.stdout
    csv = cli("trace", f"{OWN}:ResNetSE", "--input", "3,32,32", "--format", "csv")
    rows = csv.stdout.strip().splitlines()
    assert rows[0].startswith("index,path,type") and any(",blocks.2:add,add," in row for row in rows)


def test_export_draws_the_skip_edges(cli):
    r = cli("export", f"{OWN}:ResNetSE", "--input", "3,32,32", "--to", "dot", "--detail", "layer")
    assert r.returncode == 0
    assert r.stdout.count("style=dashed") == 4 and r.stdout.count('label="+"') == 4


def test_gradflow_compares_with_and_without_skips_as_the_library_does(cli):
    from resnet_core.modules.flow import module_gradient_flow
    from tests.app.fixtures.own_model import ResNetSE
    r = cli("gradflow", f"{OWN}:ResNetSE", "--input", "3,32,32", "--compare-skip", "--format", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    ref = module_gradient_flow(ResNetSE, (3, 32, 32), batch=8, seed=0)
    assert [x["layer"] for x in d["rows"]] == ref.layers
    assert [x["with_skips"] for x in d["rows"]] == pytest.approx(ref.with_skips, rel=1e-6)
    assert [x["without_skips"] for x in d["rows"]] == pytest.approx(ref.without_skips, rel=1e-6)


@pytest.mark.parametrize("source", ["timm:resnet26t", "torchvision:resnet18"])
def test_timm_and_torchvision_models_by_name(cli, source):
    r = cli("trace", source, "--input", "3,224,224", "--format", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["output_shape"] == [1000] and len(d["residual_blocks"]) == 8


@pytest.mark.parametrize("args, says", [
    (("trace", "/nowhere/x.py:Net", "--input", "3,8,8"), "no such file"),
    (("trace", f"{OWN}:Missing", "--input", "3,8,8"), "has no 'Missing'"),
    (("trace", f"{OWN}:ResNetSE"), "needs its input shape"),
    (("trace", "timm:not_a_model", "--input", "3,8,8"), "timm has no model 'not_a_model'"),
    (("app", "--model", "not-a-source", "--input", "3,8,8"), "--model takes FILE.py:NAME"),
    (("app", "--model", f"{OWN}:ResNetSE"), "--model needs the model's input shape"),
])
def test_bad_sources_are_one_line_exit_2(cli, args, says):
    r = cli(*args)
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr


def test_a_file_that_fails_to_import_says_where(cli, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\ndef Net(:\n")
    r = cli("trace", f"{bad}:Net", "--input", "3,8,8")
    assert r.returncode == 2 and f"{bad}:2" in r.stderr and "Traceback" not in r.stderr


def test_export_collapses_stages_and_expands_the_one_asked_for(cli):
    """`--detail stage` draws each stage of torchvision's resnet18 as one node; `--expand 3` draws layer3's two
    blocks with their skip edges; a stage number the model does not have is one line, exit 2."""
    whole = cli("export", "torchvision:resnet18", "--input", "3,64,64", "--to", "dot", "--detail", "stage")
    assert whole.returncode == 0 and whole.stdout.count("2 residual blocks") == 4
    one = cli("export", "torchvision:resnet18", "--input", "3,64,64", "--to", "dot", "--expand", "3")
    assert one.returncode == 0 and one.stdout.count("style=dashed") == 2 and 'label="layer3.1\n' in one.stdout
    bad = cli("export", "torchvision:resnet18", "--input", "3,64,64", "--to", "dot", "--expand", "5")
    assert bad.returncode == 2 and "give 1 to 4" in bad.stderr and "Traceback" not in bad.stderr
