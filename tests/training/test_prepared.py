"""Prepared runs: trained once, kept under the server's state folder, read back the same after a restart
(in this process after forgetting, and in a new process), shared by reference and copied before use."""

import subprocess
import sys

import pytest
import torch

from resnet_core import calibration as cal
from resnet_core.experiments.pair import PairSettings
from resnet_core.experiments.trained import private_copy
from resnet_core.paths import ROOT
from resnet_core.training import prepared
from resnet_core.training.config import TrainError

SETTINGS = prepared.lab_settings("cpu", steps=3, input_size=8)


@pytest.fixture(autouse=True)
def state_dir(fresh_state):
    return fresh_state  # tests/conftest.py: this test's own state folder


def test_the_lab_settings_are_the_training_labs_defaults():
    from resnet_core.training.config import CPU_DEFAULTS
    s = prepared.lab_settings("cpu")
    assert (s["nets"], s["steps"], s["batch"], s["lr"], s["input_size"]) == \
        ("degradation", CPU_DEFAULTS.steps, CPU_DEFAULTS.batch_size, CPU_DEFAULTS.lr, CPU_DEFAULTS.input_size[0])
    assert prepared.lab_settings("cpu", nets="batchnorm")["lr"] == 0.02  # the experiment's own rate


@pytest.mark.slow
def test_a_prepared_run_is_kept_listed_and_read_back_after_a_restart(state_dir):
    result, place = prepared.prepare_training(SETTINGS, "a test")
    assert place is not None and place.is_relative_to(state_dir / "prepared" / "training")
    assert prepared.load_training(SETTINGS) is prepared.load_training(SETTINGS)  # one copy for every session
    prepared.forget()  # a restarted process reads the folder again
    again = prepared.load_training(SETTINGS)
    assert again is not None and again is not result
    assert [r.net for r in again.nets] == [r.net for r in result.nets]
    assert [r.final_loss for r in again.nets] == pytest.approx([r.final_loss for r in result.nets])
    for label in result.models:
        a, b = result.state_dict(label), again.state_dict(label)
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert len(again.records) == len(result.records) == 3 * 4
    (entry,) = prepared.listing()
    assert entry["kind"] == "training" and entry["settings"] == SETTINGS and entry["how"] == "a test"
    assert entry["wall_s"] == pytest.approx(result.wall_s) and "CPU" in entry["device"]
    assert "steps 3" in prepared.describe(entry) and "by a test" in prepared.describe(entry)
    assert prepared.load_training({**SETTINGS, "seed": 1}) is None  # other settings: not prepared


@pytest.mark.slow
def test_a_new_process_reads_the_prepared_run(state_dir):
    result, _ = prepared.prepare_training(SETTINGS, "a test")
    code = ("from resnet_core.training import prepared; "
            f"r = prepared.load_training({SETTINGS!r}); print(r.prepared['how'], [round(n.final_loss, 6) for n in r.nets])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", cal.STATE_ENV: str(state_dir), "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"a test {[round(n.final_loss, 6) for n in result.nets]}"


def test_a_prepared_pair_round_trips_and_each_user_gets_a_private_copy():
    ps = PairSettings(steps=3, input_size=8)
    pair, place = prepared.prepare_pair(ps, "a test")
    assert place is not None
    prepared.forget()
    again = prepared.load_pair(ps)
    assert again is not None and (again.residual_label, again.plain_label) == ("resnet20", "plain20")
    assert again.source.startswith("prepared for the class") and again.info["prepared"]["how"] == "a test"
    for label in pair.models:
        a, b = pair.models[label].state_dict(), again.models[label].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    mine = private_copy(again)
    next(mine.models["resnet20"].parameters()).data.zero_()  # a run changing its copy leaves the shared one
    assert next(again.models["resnet20"].parameters()).abs().sum() > 0
    assert prepared.load_pair(PairSettings(steps=4, input_size=8)) is None
    assert prepared.load_pair(ps.__class__(steps=3, input_size=8, processes=2)) is again  # same weights either way


def test_a_stopped_run_is_not_kept():
    result, place = prepared.prepare_training(SETTINGS, "a test", should_stop=lambda: True)
    assert result.stopped and place is None and prepared.listing() == []


def test_the_server_keeps_a_bounded_number(monkeypatch):
    monkeypatch.setattr(prepared, "MAX_PER_KIND", 1)
    result, _ = prepared.prepare_training(SETTINGS, "a test")
    prepared.save_training(result, SETTINGS, "again")  # the same settings: replaced, not added
    with pytest.raises(TrainError, match="at most 1 prepared training runs"):
        prepared.save_training(result, {**SETTINGS, "seed": 5}, "a test")
    assert [e["how"] for e in prepared.listing()] == ["again"]
