"""Building a session's network is admitted like a pass (issue 25, item 5): sessions asking at once cannot
together build past RESNET_EXPLORER_MEMORY_BUDGET, and a network kept by a session stays booked while it is
kept, released when it is replaced or dropped."""

import gc
import threading
import time
from types import SimpleNamespace

import pytest

import resnet_core as rc
from app import handoff, live_session
from resnet_core import device
from resnet_core.device import MemoryGuardError
from resnet_core.structure.plan import plan as make_plan
from resnet_core.structure.trace import Trace


def trace_of(name: str = "resnet20") -> Trace:
    return Trace(make_plan(rc.get_preset(name).replace(input_size=(16, 16))))


def build_bytes(t: Trace) -> int:
    """What one build asks for, written out from the design (weights + one image's activations, at least
    64 MiB of workspace), not read from the code under test."""
    one = t.param_bytes + t.activation_bytes
    return one + max(64 << 20, one // 10)


def test_concurrent_builds_cannot_pass_the_budget(monkeypatch):
    t = trace_of()
    need = build_bytes(t)
    base = device.reserved("cpu")
    monkeypatch.setenv("RESNET_EXPLORER_MEMORY_BUDGET", str(base + int(2.5 * need)))  # room for two builds at once
    real_build = live_session.build_model

    def slow_build(*a, **k):
        time.sleep(0.6)  # every admitted build is still running when the last session asks
        return real_build(*a, **k)

    monkeypatch.setattr(live_session, "build_model", slow_build)
    n = 6
    go = threading.Barrier(n)
    built, refused, other = [], [], []

    def session(i):
        go.wait()
        try:
            built.append(live_session.build_network(t, seed=i))
        except MemoryGuardError as e:
            refused.append(str(e))
        except BaseException as e:  # noqa: BLE001
            other.append(repr(e))

    threads = [threading.Thread(target=session, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    try:
        assert not other, other
        assert 1 <= len(built) <= 2, (len(built), refused)  # never all admitted
        assert len(refused) == n - len(built)
        assert all("needs about" in m and "booked" in m and "resnet20" in m for m in refused), refused
        # the kept networks' weights stay booked after their builds
        assert device.reserved("cpu") == base + len(built) * t.param_bytes
    finally:
        for _model, booking in built:
            booking.release()
    assert device.reserved("cpu") == base


def test_a_kept_network_is_released_when_replaced_or_dropped(monkeypatch):
    state = {}
    fake = SimpleNamespace(session_state=state)
    monkeypatch.setattr(live_session, "st", fake)
    monkeypatch.setattr(handoff, "st", fake)
    t = trace_of()
    base = device.reserved("cpu")
    w0 = live_session.model_for(t, "random", 0, None)
    assert device.reserved("cpu") == base + t.param_bytes
    w1 = live_session.model_for(t, "random", 1, None)  # a new seed: the network is replaced
    assert w1 is not w0 and w0.booking.released and device.reserved("cpu") == base + t.param_bytes
    del w0, w1
    state.clear()  # the session ends: its state goes
    gc.collect()
    assert device.reserved("cpu") == base


def test_a_gone_sessions_network_is_released_at_the_next_admission(monkeypatch):
    """Streamlit may keep a closed session's state a while: the liveness rule releases its booking anyway."""
    from app import jobs
    here = {"alive": True}
    monkeypatch.setattr(jobs, "session_alive", lambda grace_s=jobs.GRACE_S: lambda: here["alive"])
    fake = SimpleNamespace(session_state={})
    monkeypatch.setattr(live_session, "st", fake)
    monkeypatch.setattr(handoff, "st", fake)
    t = trace_of()
    base = device.reserved("cpu")
    kept = live_session.model_for(t, "random", 0, None)  # still referenced: no collection can release it
    assert device.reserved("cpu") == base + t.param_bytes
    here["alive"] = False  # the tab closes
    model, booking = live_session.build_network(t, seed=1)  # another session's admission
    assert kept.booking.released and device.reserved("cpu") == base + t.param_bytes
    booking.release()
    assert device.reserved("cpu") == base


def test_a_network_larger_than_the_budget_is_refused_with_the_numbers(monkeypatch):
    t = trace_of("resnet50")
    base = device.reserved("cpu")
    monkeypatch.setenv("RESNET_EXPLORER_MEMORY_BUDGET", str(base + build_bytes(t) // 2))
    with pytest.raises(MemoryGuardError, match=r"building resnet50 .* needs about"):
        live_session.build_network(t, seed=0)
    assert device.reserved("cpu") == base
