"""Times measured on this server: the calibration store (moving average, range, persistence across a restart)
and the Training lab's estimate (timed at the run's own thread count, kept from real runs)."""

import json

import pytest
import torch

from resnet_core import calibration as cal
from resnet_core.training import estimate as te
from resnet_core.training.config import TrainConfig
from resnet_core.training.data import load_digits
from resnet_core.training.run import TrainingRun


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(cal.STATE_ENV, str(tmp_path))
    cal.forget()
    yield tmp_path
    cal.forget()


def test_the_moving_average_and_range_follow_the_measurements(state_dir):
    store = cal.store()
    for v in (1.0, 2.0, 4.0):
        store.record("k", v, load=0.5)
    m = store.get("k")
    assert m.mean == pytest.approx(0.7 * (0.7 * 1.0 + 0.3 * 2.0) + 0.3 * 4.0)  # EMA with α = 0.3, by hand
    assert (m.low, m.high, m.n, m.load) == (1.0, 4.0, 3, 0.5)
    assert store.record("k", float("nan")) is None and store.get("k").n == 3  # a non-measurement is ignored


def test_the_figures_survive_a_restart(state_dir):
    cal.store().record("step|x", 0.25, load=1.8)
    cal.forget()  # as a new process would: read the file again
    m = cal.store().get("step|x")
    assert m.mean == 0.25 and m.load == 1.8 and m.when > 0
    saved = json.loads((state_dir / cal.FILE).read_text())
    assert saved["measured"]["step|x"]["mean"] == 0.25


def test_a_probe_is_replaced_by_the_first_real_run():
    store = cal.store()
    store.record("k", 3.0, probe=True)
    store.record("k", 1.0)
    m = store.get("k")
    assert (m.mean, m.recent, m.probe) == (1.0, [1.0], False)


def test_a_busier_machine_widens_the_top_of_the_range(monkeypatch):
    monkeypatch.setattr(cal, "cores", lambda: 2)
    m = cal.Measured(1.0, [1.0, 1.0, 1.0], 3, 0.0, load=1.0)
    assert m.span(10).low == 10 and m.span(10).high == 10
    busy = m.span(10, load=5.0)  # (5 + 1) / 2 = 3× the share of a core it had at load 1 (fits the cores: 1×)
    assert busy.low == 10 and busy.high == pytest.approx(30)


@pytest.mark.parametrize(("low", "high", "text"), [(40, 55, "about 40–55 s"), (130, 190, "about 2–3 min"),
                                                   (100, 100, "about 1.7 min"), (2.2, 2.9, "about 2.2–2.9 s")])
def test_span_text(low, high, text):
    assert cal.Span(low, high).text() == text


def tiny_run(steps=6, threads=1):
    data = load_digits(input_size=8, in_channels=3)
    return TrainingRun(["resnet20", "plain20"], data, TrainConfig(steps=steps, batch_size=16, threads=threads), "cpu")


def test_a_step_is_timed_at_the_thread_count_the_run_trains_with(monkeypatch):
    """The cause of the 5× error: the step was timed at torch's default (every core) while the run trains on
    CPU_THREADS; under load two threads wait on each other. The probe must run at the run's setting."""
    seen = []
    real = te.time_step

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append(out)
        return out
    monkeypatch.setattr(te, "time_step", spy)
    monkeypatch.setattr(torch.nn.Module, "__call__", _counting_call(torch.nn.Module.__call__))
    run = tiny_run(threads=1)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _THREADS.clear()
        est = te.estimate_run(run)
    finally:
        torch.set_num_threads(before)
    assert len(seen) == 2 and set(_THREADS) == {1}  # every timed pass ran on the run's one thread
    assert est.nets[0].measured_now and est.nets[0].step.probe
    assert run.step == 0  # the run itself untouched


_THREADS: list[int] = []


def _counting_call(call):
    def wrapped(self, *args, **kwargs):
        if self.__class__.__name__ == "ResNet":
            _THREADS.append(torch.get_num_threads())
        return call(self, *args, **kwargs)
    return wrapped


def test_a_finished_run_keeps_its_measured_step_and_evaluation_times():
    run = tiny_run(steps=6)
    for _ in run.iter():
        pass
    run.result()
    store = cal.store()
    for label, spec in run.specs.items():
        m = store.get(te.step_key(spec, 16, run.device, 1))
        assert m is not None and not m.probe
        assert m.mean == pytest.approx(run.net_time[label] / run.net_steps[label])
        assert store.get(te.eval_key(spec, run.device, 1)) is not None
    est = te.estimate_run(run, measure=False)  # from the run's own figures: nothing timed now
    assert est is not None and not any(n.measured_now for n in est.nets)
    per_step = sum(run.net_time.values()) / 6
    assert est.training.low <= per_step * 6 <= est.training.high


def test_without_figures_and_without_measuring_there_is_no_estimate():
    assert te.estimate_run(tiny_run(), measure=False) is None


def test_two_processes_keep_each_others_figures(state_dir):
    """A second process (another server, `prepare`, a pair's trainer) writing the same file keeps what the first
    measured, and the newer figure of a key both measured wins."""
    first = cal.Calibration(state_dir / cal.FILE)
    second = cal.Calibration(state_dir / cal.FILE)
    first.record("a", 1.0)
    second.record("b", 2.0)  # read before "a" was written: it must not drop it
    second.record("a", 5.0)  # second took first's "a" when it saved "b": this one averages in (α = 0.3)
    first.record("c", 3.0)  # first's older "a" does not overwrite second's newer one
    again = cal.Calibration(state_dir / cal.FILE)
    assert {k: again.get(k).mean for k in again.names()} == pytest.approx({"a": 0.7 * 1.0 + 0.3 * 5.0, "b": 2.0,
                                                                          "c": 3.0})
