"""A class of sessions through the Live lab's waiting line (issue 25, "no student is left waiting").

Fourteen sessions at once, each a thread calling what the page calls: its forward views in its turn
(`live_session.view_turn` around `live_session.record_for`), then, once every session has its views, all
at once a gradient flow (`live_session.start_job`), every pass going through the library's real admission (`device.reserve`) and
device line (`device.device_slot`). The passes are simulated (a sleep of PASS_S holding the device), and
every wait of the device line runs SCALE times faster than the clock: one simulated pass stands for a
pass SCALE times longer, so that the class needs as long, relative to the waits, as a real class of slow
passes does. Some sessions close their tab while they wait, some are asked for again while queued (a
click: Streamlit replaces the run). Every session still there must get its views and its gradient flow;
every other one must leave the line at once with a reason, and hold nothing afterwards.
"""

import threading
import time
from types import SimpleNamespace

import pytest

import resnet_core as rc
from app import jobs, live_session
from resnet_core import device
from resnet_core.device import BusyError
from resnet_core.lab import forward as lab_forward
from resnet_core.lab import gradients, images
from resnet_core.structure.plan import plan as make_plan

SESSIONS = 14
PASS_S = 0.25  # one simulated gradient pass (forward views: a third of it)
SCALE = 100.0  # every device-line wait runs this many times faster than the clock


class PerThreadState:
    """st.session_state for sessions that are threads: one dict per thread."""

    def __init__(self):
        self._local = threading.local()

    def _d(self) -> dict:
        if not hasattr(self._local, "d"):
            self._local.d = {}
        return self._local.d

    def get(self, key, default=None):
        return self._d().get(key, default)

    def __getitem__(self, key):
        return self._d()[key]

    def __setitem__(self, key, value):
        self._d()[key] = value

    def __contains__(self, key):
        return key in self._d()

    def pop(self, key, *default):
        return self._d().pop(key, *default)


@pytest.fixture
def classroom(monkeypatch):
    flags = threading.local()  # per session: closed (tab gone), replaced (its run asked for again)

    def session_alive(grace_s=jobs.GRACE_S):
        mine = flags.__dict__.setdefault("state", {"closed": False, "replaced": False})
        return lambda: not mine["closed"]

    def run_alive():
        mine = flags.__dict__.setdefault("state", {"closed": False, "replaced": False})
        return lambda: not mine["closed"] and not mine["replaced"]

    monkeypatch.setattr(jobs, "session_alive", session_alive)
    monkeypatch.setattr(jobs, "run_alive", run_alive)
    monkeypatch.setattr(live_session, "st", SimpleNamespace(session_state=PerThreadState()))

    real_slot = device.device_slot

    def scaled_slot(dev, timeout=120.0, should_stop=None):
        return real_slot(dev, timeout=timeout / SCALE, should_stop=should_stop)

    monkeypatch.setattr(gradients, "device_slot", scaled_slot)
    monkeypatch.setattr(lab_forward, "device_slot", scaled_slot)
    real_record = lab_forward._record

    def slow_record(*a, **k):
        time.sleep(PASS_S / 3)
        return real_record(*a, **k)

    def slow_pass(model, x, labels, plan, skips=(True, False), *a, should_stop=None, **k):
        time.sleep(PASS_S)
        if should_stop is not None and should_stop():
            raise gradients.Stopped()

    monkeypatch.setattr(lab_forward, "_record", slow_record)
    monkeypatch.setattr(gradients, "compare_skips", slow_pass)
    return flags


def test_a_class_of_sessions_each_finishes_in_its_turn_or_is_told_why(classroom):
    spec = rc.get_preset("resnet20").replace(input_size=(8, 8))
    p = make_plan(spec)
    model = rc.build_model(p, seed=0)
    x = images.noise_input(p.input_shape, 0).tensor
    closes = {3, 9}  # these close their tab while waiting for their gradient flow
    replaced = {5, 11}  # these are asked for again (a click) while queued for their views
    outcome: dict[int, str] = {}
    notes: dict[int, list] = {i: [] for i in range(SESSIONS)}
    start, views_done = threading.Barrier(SESSIONS), threading.Barrier(SESSIONS, timeout=120)

    def session(i: int) -> None:
        state = classroom.__dict__.setdefault("state", {"closed": False, "replaced": False})
        try:
            start.wait()
            if i in replaced:  # asks a little after the others, and is asked for again while it waits
                time.sleep(0.1)
                timer = threading.Timer(0.05, lambda: state.update(replaced=True))
                timer.start()
                try:
                    with live_session.view_turn(notes[i].append):
                        live_session.record_for(model, x, p, False, key=("first", i))
                except BusyError as e:
                    notes[i].append(str(e))
                state["replaced"] = False  # the new run asks again
            with live_session.view_turn(notes[i].append):
                rec = live_session.record_for(model, x, p, False, key=i)
            assert rec.anatomy("layer1.0") is not None
            views_done.wait()  # as in a lesson: every page is open, then the whole class clicks Run
            job = live_session.start_job(spec, seed=i, batch=2, request=(i,))
            if i in closes:
                time.sleep(0.05)
                state["closed"] = True
            if not job.wait(120):
                outcome[i] = "never finished"
                return
            if job.error:
                outcome[i] = f"error: {job.error}"
            elif job.result is None:
                outcome[i] = "no result"
            else:
                outcome[i] = "stopped" if job.result.stopped else "done"
        except BaseException as e:  # noqa: BLE001 - reported below, per session
            outcome[i] = f"{type(e).__name__}: {e}"

    threads = [threading.Thread(target=session, args=(i,), daemon=True) for i in range(SESSIONS)]
    booked_before = device.reserved("cpu"), device.reserved("cuda")
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    took = time.monotonic() - t0
    assert not any(t.is_alive() for t in threads), "a session is still waiting"
    expected = {i: ("stopped" if i in closes else "done") for i in range(SESSIONS)}
    # a closed tab's job may have had its turn before the close was noticed
    got = {i: ("stopped" if i in closes and outcome.get(i) == "done" else outcome.get(i)) for i in range(SESSIONS)}
    assert got == expected, {i: outcome.get(i) for i in range(SESSIONS) if got[i] != expected[i]}
    # the class really queued: the class's work took far longer than one scaled wait of the old 120 s
    assert took > 120.0 / SCALE, took
    assert sum(1 for i in range(SESSIONS) if any(isinstance(n, int) for n in notes[i])) >= SESSIONS // 2, notes
    for i in replaced:  # a replaced run left the line (views or device) with a reason, not keeping its place
        assert any(isinstance(n, str) for n in notes[i]), notes[i]
    # nothing is left held: no device slot, no view slot, no booking
    assert (device.reserved("cpu"), device.reserved("cuda")) == booked_before
    with device.device_slot("cpu", timeout=1.0):
        pass
    assert live_session._VIEW_LINE.waiting == 0 and not live_session._VIEW_LINE.full
