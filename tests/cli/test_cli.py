"""`python -m resnet_core`: output formats, and one clear message (exit 2) per kind of bad input."""

import csv
import io
import json
import subprocess
import sys

import pytest
import yaml

import resnet_core as rc
from resnet_core.cli.main import main


def run(*args, cwd=None):
    """The real command, in a subprocess: exit status, stdout, stderr."""
    p = subprocess.run([sys.executable, "-m", "resnet_core", *args], capture_output=True, text=True, timeout=120,
                       cwd=cwd)
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, p.stdout, p.stderr


def call(capsys, *args):
    """cli.main in-process (faster): exit status, stdout, stderr."""
    code = main(list(args))
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out, out.err


def test_presets_lists_every_preset_with_its_count(capsys):
    code, out, _ = call(capsys, "presets", "--format", "json")
    rows = json.loads(out)
    assert code == 0 and [r["name"] for r in rows] == rc.list_presets()
    assert {r["name"]: r["params"] for r in rows}["resnet50"] == 25_557_032


def test_trace_table_reads_the_staircase():
    code, out, err = run("trace", "resnet18")
    assert code == 0 and err == ""
    for line in ("conv1 ", "64×112×112", "64×56×56", "128×28×28", "256×14×14", "512×7×7", "512×1×1"):
        assert line in out
    assert "Total params:       11,689,512" in out


def test_trace_json_fields(capsys):
    code, out, _ = call(capsys, "trace", "resnet18", "--format", "json")
    d = json.loads(out)
    assert code == 0
    assert d["total_params"] == 11_689_512 and d["output_shape"] == [1000] and d["errors"] == []
    assert {"name", "type", "input_shape", "output_shape", "params", "mult_adds", "receptive_field"} <= set(d["layers"][0])


def test_trace_csv_and_input_override(capsys):
    code, out, _ = call(capsys, "trace", "resnet18", "--format", "csv", "--input", "1,64,64")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and rows[0]["name"] == "conv1" and rows[0]["input_shape"] == "1×64×64"
    assert rows[0]["output_shape"] == "64×32×32"
    assert sum(int(r["params"]) for r in rows) == 11_689_512 - 2 * 64 * 7 * 7  # two fewer input channels


def test_trace_of_a_spec_file(tmp_path, capsys):
    f = tmp_path / "net.yaml"
    f.write_text(rc.get_preset("resnet20").to_yaml())
    code, out, _ = call(capsys, "trace", str(f), "--format", "json")
    assert code == 0 and json.loads(out)["total_params"] == 269_722


def test_invalid_network_exits_2_with_one_line_per_error(tmp_path):
    f = tmp_path / "broken.json"
    f.write_text(rc.get_preset("resnet18").replace(shortcut="identity").to_json())
    code, out, err = run("trace", str(f))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: stage 2 · block 0 · shortcut: F(x) is 128×28×28")
    assert "Fix: use a 1×1 projection shortcut" in lines[0]
    assert "layer2.0.bn2" in out  # the trace up to the failure is still printed


@pytest.mark.parametrize("content,expected", [
    ("{bad json", "not valid JSON"),
    ("stages: [\n", "not valid YAML"),
    ('{"stages": [{"blocks": "two"}]}', "stages[0].blocks: expected an integer, got 'two'"),
    ('{"stages": [{"widht": 3}]}', "stages[0].widht: unknown key 'widht'; did you mean 'width'?"),
    ("[1, 2]", "a spec is a mapping"),
])
def test_files_that_are_not_specs_exit_2_with_the_reason(tmp_path, capsys, content, expected):
    f = tmp_path / "spec.json"
    f.write_text(content)
    code, out, err = call(capsys, "trace", str(f))
    assert code == 2 and expected in err and out == ""


def test_missing_file_and_unknown_preset(capsys):
    code, _, err = call(capsys, "trace", "/nonexistent/net.json")
    assert code == 2 and "no such file: /nonexistent/net.json" in err
    code, _, err = call(capsys, "trace", "resnet_18")
    assert code == 2 and "neither a preset nor a file" in err and "resnet18" in err


def test_bad_arguments_exit_2_with_usage():
    code, _, err = run("trace", "resnet18", "--input", "3,224")
    assert code == 2 and "expected C,H,W" in err
    code, _, err = run("export", "resnet18", "--to", "pdf")
    assert code == 2 and "invalid choice" in err


@pytest.mark.parametrize("fmt,loader", [("json", json.loads), ("yaml", yaml.safe_load)])
def test_export_round_trips(capsys, fmt, loader):
    code, out, _ = call(capsys, "export", "resnext50_32x4d", "--to", fmt)
    assert code == 0 and rc.load_spec(loader(out)) == rc.get_preset("resnext50_32x4d")


def test_export_code_to_a_file_runs(tmp_path):
    f = tmp_path / "net.py"
    code, _, err = run("export", "resnet20", "--to", "code", "-o", str(f))
    assert code == 0 and f"wrote {f}" in err
    p = subprocess.run([sys.executable, str(f)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "269,722 parameters" in p.stdout


def test_export_code_of_a_broken_network_exits_2(capsys):
    spec = rc.get_preset("resnet20").with_stage(1, width=8)
    code = main(["export", spec.to_json(), "--to", "code"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot generate code" in err and "stage 2 · block 0 · shortcut" in err


def test_export_dot_and_write_errors(tmp_path, capsys):
    code, out, _ = call(capsys, "export", "resnet152", "--to", "dot", "--detail", "block", "--expand", "3")
    assert code == 0 and out.startswith("digraph") and "layer3.0" in out and "bottleneck × 8" in out
    code, _, err = call(capsys, "export", "resnet18", "--to", "json", "-o", str(tmp_path / "no" / "dir" / "x.json"))
    assert code == 2 and "does not exist" in err


# One spec per kind of located error: the command exits 2 with exactly one "error: <where>: …" line.
ERROR_KINDS = {
    "shape_mismatch": (rc.get_preset("resnet18").replace(shortcut="identity"), "stage 2 · block 0 · shortcut"),
    "channels_decrease": (rc.get_preset("resnet20").with_stage(2, width=16), "stage 3 · block 0 · shortcut"),
    "spatial_underflow": (rc.ArchSpec(input_size=(5, 5), stem=rc.Stem(type="custom", kernel=7, padding=0, pool="none"),
                                      stages=(rc.Stage(),)), "stem · conv1"),
    "groups": (rc.get_preset("resnet18").with_stage(0, groups=3), "stage 1 · block 0 · conv1"),
    "non_positive": (rc.get_preset("resnet18").with_stage(1, blocks=0), "stage 2 · blocks"),
    "unknown_value": (rc.get_preset("resnet18").with_stage(3, block="basik"), "stage 4 · block type"),
    "out_of_range": (rc.get_preset("resnet18").with_stage(0, blocks=10**6), "stage 1 · blocks"),
}


@pytest.mark.parametrize("kind", sorted(ERROR_KINDS))
def test_each_kind_of_located_error_exits_2_with_one_line(tmp_path, capsys, kind):
    spec, where = ERROR_KINDS[kind]
    assert rc.plan(spec).errors[0].code == kind
    f = tmp_path / "net.json"
    f.write_text(spec.to_json())
    code, _, err = call(capsys, "trace", str(f), "--format", "json")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {where}: ") and "Fix: " in lines[0]


def test_huge_numbers_in_a_file_are_located_not_a_crash(tmp_path, capsys):
    f = tmp_path / "net.yaml"
    f.write_text("stages:\n  - {width: " + "9" * 400 + "}\n  - {blocks: 1.0e+300}\n")
    code, _, err = call(capsys, "trace", str(f))
    # refused from the text, before Python converts it: located by line and column, with the limit
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "a number written with 400 characters at line 2, column 13" in err and "at most 40" in err
    f.write_text("stages:\n  - {width: " + "9" * 30 + "}\n  - {blocks: 1.0e+300}\n")
    code, _, err = call(capsys, "trace", str(f))
    assert code == 2 and "stages[0].width" in err and "out of range" in err and "stages[1].blocks" in err


def test_expand_must_name_an_existing_stage(capsys):
    for bad in ("0", "5", "-3"):
        code, _, err = call(capsys, "export", "resnet18", "--to", "dot", "--expand", bad)
        assert code == 2 and "--expand" in err and "1 to 4" in err


@pytest.mark.parametrize("argv", [["trace", "resnet18", "--format", "xml"], ["nosuch"], [],
                                  ["export", "resnet18"], ["gradflow", "resnet20", "--batch", "abc"]])
def test_a_bad_option_is_one_line_with_exit_2(argv):
    r = subprocess.run([sys.executable, "-m", "resnet_core", *argv], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "usage:" not in r.stderr, r.stderr
