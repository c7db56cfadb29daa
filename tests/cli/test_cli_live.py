"""`python -m resnet_core gradflow`: the table and JSON carry the library's numbers; bad input exits 2."""

import json
import math
import subprocess
import sys

import pytest

import resnet_core as rc
from resnet_core import device as devmod
from resnet_core.cli.main import main
from resnet_core.lab import gradients


def call(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out, out.err


def test_the_real_command_prints_both_variants_side_by_side():
    p = subprocess.run([sys.executable, "-m", "resnet_core", "gradflow", "resnet56", "--compare-skip", "--norm", "none",
                        "--init", "pytorch_default", "--batch", "4", "--device", "cpu"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    out = p.stdout
    assert "gradient flow · resnet56 · norm none · init pytorch_default · shortcut A" in out
    assert "batch 4 of 3×32×32" in out and "CPU" in out and "same weights: yes" in out
    head = next(line for line in out.splitlines() if line.startswith("depth"))
    assert head.split() == ["depth", "layer", "part", "with", "skips", "without", "skips", "with/without"]
    first = next(line for line in out.splitlines() if line.lstrip().startswith("1  conv1"))
    assert first.split()[4:] == ["0", "vanished", "∞"]  # the plain net's first conv underflows to 0 (test_probes)
    assert "block input gradients ‖∂L/∂x‖" in out and "layer3.8" in out
    assert "without skips: " in out and " vanished" in out


def test_json_carries_the_librarys_numbers(capsys):
    code, out, err = call(capsys, "gradflow", "resnet20", "--compare-skip", "--batch", "4", "--input", "3,16,16",
                          "--seed", "2", "--device", "cpu", "--format", "json")
    assert code == 0 and err == ""
    d = json.loads(out)
    spec = rc.get_preset("resnet20").replace(input_size=(16, 16))
    ref = gradients.gradient_flow(spec, seed=2, batch=4, device="cpu")
    assert d == json.loads(json.dumps(ref.to_dict()))
    assert [v["label"] for v in d["variants"]] == ["with skips", "without skips"] and d["same_weights"]
    assert d["mode"] == "train" and d["norm"] == "batch" and d["seed"] == 2
    assert len(d["weight_rows"]) == 20 and len(d["input_rows"]) == 9


def test_options_reach_the_spec_and_a_plain_net_runs_alone(capsys):
    code, out, _ = call(capsys, "gradflow", "plain20", "--norm", "none", "--init", "xavier", "--batch", "2",
                        "--input", "3,16,16", "--mode", "eval", "--device", "cpu", "--format", "json")
    d = json.loads(out)
    assert code == 0 and [v["label"] for v in d["variants"]] == ["without skips"]
    assert (d["norm"], d["init"], d["mode"]) == ("none", "xavier", "eval")
    assert all(r["ratio"] is None for r in d["weight_rows"])
    code, out, _ = call(capsys, "gradflow", "resnet20", "--shortcut", "B", "--zero-init-residual", "--batch", "2",
                        "--input", "3,16,16", "--device", "cpu")
    assert code == 0 and "shortcut B · zero-init residual" in out and "with skips" in out


def test_nan_is_marked_exploded_and_written_as_a_string(capsys, monkeypatch):
    real = gradients.build_seeded

    def poisoned(spec, seed):
        model = real(spec, seed)
        with __import__("torch").no_grad():
            model.conv1.weight.fill_(math.inf)
        return model
    monkeypatch.setattr(gradients, "build_seeded", poisoned)
    code, out, _ = call(capsys, "gradflow", "resnet20", "--batch", "2", "--input", "3,16,16", "--device", "cpu")
    assert code == 0 and "EXPLODED" in out and "nan" in out
    code, out, _ = call(capsys, "gradflow", "resnet20", "--batch", "2", "--input", "3,16,16", "--device", "cpu",
                        "--format", "json")
    d = json.loads(out)
    assert d["variants"][0]["loss"] == "nan" and d["weight_rows"][0]["statuses"] == ["exploded"]


@pytest.mark.parametrize("args,message", [
    (["nosuchnet"], "'nosuchnet' is neither a preset nor a file"),
    (["resnet18", "--input", "3,16,16", "--batch", "1"], "needs more than one value per channel"),
    (["resnet18", "--shortcut", "A", "--input", "3,32,32"], None),  # A is valid for resnet18: runs (checked below)
])
def test_bad_input_exits_2_with_one_clear_line(capsys, args, message):
    code, out, err = call(capsys, "gradflow", *args, "--device", "cpu")
    if message is None:
        assert code == 0
        return
    assert code == 2 and message in err and out == ""


def test_a_network_whose_shapes_do_not_meet_is_located(capsys, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text(rc.get_preset("resnet18").replace(shortcut="identity").to_json())
    code, out, err = call(capsys, "gradflow", str(path), "--compare-skip", "--device", "cpu")
    assert code == 2 and "error: stage 2 · block 0 · shortcut: F(x) is 128×28×28 but the identity shortcut" in err


def test_no_gpu_and_too_little_memory_are_clear(capsys, monkeypatch):
    monkeypatch.setattr(devmod, "cuda_available", lambda: False)
    code, _, err = call(capsys, "gradflow", "resnet20", "--device", "cuda")
    assert code == 2 and "error: CUDA was asked for, but this machine has no usable GPU" in err
    monkeypatch.setattr(devmod, "free_memory", lambda device: 1 << 20)
    code, _, err = call(capsys, "gradflow", "resnet50", "--batch", "32", "--device", "cpu")
    assert code == 2 and "error: the gradient pass of resnet50 on 32 image(s) needs about" in err and "free" in err


def test_bad_shape_argument_is_argparse_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["gradflow", "resnet20", "--input", "3,16"])
    assert e.value.code == 2 and "expected C,H,W" in capsys.readouterr().err


@pytest.mark.parametrize("args,message", [
    (["--batch", "0"], "argument --batch: must be between 1 and 4096, got 0"),
    (["--batch", "4097"], "argument --batch: must be between 1 and 4096, got 4097"),
    (["--batch", "nan"], "argument --batch: expected an integer, got 'nan'"),
    (["--seed", "-1"], "argument --seed: must be between 0 and 2**64-1, got -1"),
    (["--seed", str(2**64)], f"argument --seed: must be between 0 and 2**64-1, got {2**64}"),
    (["--seed", "inf"], "argument --seed: expected an integer, got 'inf'"),
])
def test_every_number_has_a_range(capsys, args, message):
    with pytest.raises(SystemExit) as e:
        main(["gradflow", "resnet20", *args, "--device", "cpu"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.strip().splitlines()[-1].endswith(message) and "Traceback" not in err


def test_the_largest_seed_runs(capsys):
    code, out, err = call(capsys, "gradflow", "resnet20", "--batch", "2", "--input", "3,8,8", "--seed", str(2**64 - 1),
                          "--device", "cpu", "--format", "json")
    assert code == 0 and json.loads(out)["seed"] == 2**64 - 1


def test_the_summary_counts_weight_and_block_input_gradients_apart(capsys):
    code, out, _ = call(capsys, "gradflow", "resnet20", "--compare-skip", "--norm", "none", "--init", "pytorch_default",
                        "--batch", "2", "--input", "3,16,16", "--device", "cpu", "--format", "json")
    d = json.loads(out)
    code, text, _ = call(capsys, "gradflow", "resnet20", "--compare-skip", "--norm", "none", "--init",
                         "pytorch_default", "--batch", "2", "--input", "3,16,16", "--device", "cpu")
    for v in d["variants"]:
        w = {s: sum(1 for g in v["weights"] if g["status"] == s) for s in ("ok", "vanished", "exploded")}
        i = {s: sum(1 for g in v["inputs"] if g["status"] == s) for s in ("ok", "vanished", "exploded")}
        line = (f"{v['label']}: weight gradients {w['ok']} ok, {w['vanished']} vanished, {w['exploded']} exploded; "
                f"block-input gradients {i['ok']} ok, {i['vanished']} vanished, {i['exploded']} exploded")
        assert line in text.splitlines()
        assert sum(w.values()) == 20 and sum(i.values()) == 9


def test_ctrl_c_during_gradflow_exits_130_with_interrupted(capsys, monkeypatch):
    import signal

    real = gradients.gradient_flow
    seen = []

    def interrupted_midway(*args, progress=None, **kwargs):
        def on_progress(p):
            seen.append(p)
            if len(seen) == 5:
                signal.raise_signal(signal.SIGINT)  # as if the user pressed Ctrl-C during the forward pass
        return real(*args, progress=on_progress, **kwargs)

    monkeypatch.setattr(gradients, "gradient_flow", interrupted_midway)
    before = signal.getsignal(signal.SIGINT)
    code, out, err = call(capsys, "gradflow", "resnet20", "--compare-skip", "--batch", "2", "--input", "3,16,16",
                          "--device", "cpu")
    assert code == 130 and err.strip() == "interrupted by SIGINT" and out == ""
    assert 5 <= len(seen) < 40  # it stopped at the next layer, not after both variants (2 × 2 × 20 layers)
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back
