"""`resnet-explorer prepare`: trains once for the server and says so; `--list`; and `train`'s defaults are the
Training lab's, so README's example reproduces the app's run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from resnet_core import calibration as cal
from resnet_core.cli.main import main
from resnet_core.training import prepared

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def state_dir(fresh_state):
    return fresh_state  # tests/conftest.py: this test's own state folder


def call(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out, out.err


@pytest.mark.slow
def test_prepare_training_then_list(capsys, state_dir):
    code, out, err = call(capsys, "prepare", "--training", "--steps", "2", "--device", "cpu")
    assert code == 0, err
    assert out.startswith("prepared the Training lab's default run in ") and str(state_dir) in out
    assert "the Training lab's default run: about" in err and "on this server" in err  # the estimate, first
    assert "evaluating resnet56 (4 of 4)" in err
    settings = prepared.lab_settings("cpu", steps=2)
    assert prepared.load_training(settings) is not None  # what the app looks up for these settings
    code, out, _ = call(capsys, "prepare", "--list")
    assert code == 0 and out.count("\n") == 1
    assert "Training lab: degradation" in out and "steps 2" in out and "by the command line (prepare)" in out


@pytest.mark.slow
def test_prepare_experiments_keeps_each_pair_once(capsys):
    code, out, err = call(capsys, "prepare", "--experiments", "--class-length", "--steps", "2", "--quiet")
    assert code == 0, err
    assert err == ""  # --quiet
    # four asked for (each experiment's default and class-length pair); at 2 steps each they are two distinct pairs
    kinds = [e["settings"]["residual"] for e in prepared.listing()]
    assert sorted(kinds) == ["resnet20", "resnet56"]


@pytest.mark.slow
def test_prepare_in_a_new_process_is_listed_by_another(state_dir):
    env = {"PATH": "/usr/bin:/bin", cal.STATE_ENV: str(state_dir), "PYTHONPATH": str(ROOT)}
    ran = subprocess.run([sys.executable, "-m", "resnet_core", "prepare", "--training", "--steps", "1", "--quiet"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    listed = subprocess.run([sys.executable, "-m", "resnet_core", "prepare", "--list"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and "Training lab: degradation" in listed.stdout


def test_readmes_train_line_is_the_apps_default_run(capsys):
    """README: `train --nets degradation --data digits` trains the same weights as the app's Start button (the
    app calls make_run with its widgets' defaults: defaults_for(cpu) and the experiment's settings)."""
    from resnet_core.training.config import CPU_DEFAULTS, EXPERIMENTS
    from resnet_core.training.run import make_run
    readme = (ROOT / "README.md").read_text()
    assert "python -m resnet_core train --nets degradation --data digits " in readme
    code, out, err = call(capsys, "train", "--nets", "degradation", "--data", "digits", "--steps", "3",
                          "--device", "cpu", "--format", "json")
    assert code == 0, err
    d = json.loads(out)
    exp_lr = dict(EXPERIMENTS["degradation"].config).get("lr")
    app = make_run("degradation", "digits", steps=3, batch_size=CPU_DEFAULTS.batch_size,
                   input_size=CPU_DEFAULTS.input_size[0], seed=0, lr=float(exp_lr or CPU_DEFAULTS.lr),
                   schedule="cosine", device="cpu")
    result = app.run()
    assert d["config"]["lr"] == CPU_DEFAULTS.lr == 0.05
    assert [n["net"] for n in d["nets"]] == [r.net for r in result.nets]
    assert [n["final_loss"] for n in d["nets"]] == pytest.approx([r.final_loss for r in result.nets], rel=1e-5)
