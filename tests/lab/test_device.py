"""Device choice, memory guard, and the fair slots that bound concurrent work across sessions."""

import threading
import time

import pytest
import torch

import resnet_core as rc
from resnet_core import device
from resnet_core.device import (
    DeviceError,
    FairSlots,
    MemoryGuardError,
    check_fits,
    device_slot,
    estimate_pass,
    pick_device,
)


def test_pick_device():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no usable GPU"):
            pick_device("cuda")
    with pytest.raises(DeviceError, match="unknown device"):
        pick_device("tpu")


def test_estimate_counts_weights_gradients_activations():
    t = rc.trace(rc.get_preset("resnet50"))
    fwd = estimate_pass(t.param_bytes, t.activation_bytes, 1, backward=False)
    bwd = estimate_pass(t.param_bytes, t.activation_bytes, 8, backward=True, optimizer=True)
    assert fwd.params == t.param_bytes and fwd.grads == 0 and fwd.activations == t.activation_bytes
    assert bwd.grads == t.param_bytes == bwd.optimizer
    assert bwd.activations == 2 * 8 * t.activation_bytes


def test_memory_guard_refuses_with_the_numbers(monkeypatch):
    monkeypatch.setattr(device, "free_memory", lambda dev: 100 * 2**20)
    check_fits(50 * 2**20, "cpu")
    with pytest.raises(MemoryGuardError) as e:
        t152 = rc.trace(rc.get_preset("resnet152"))
        check_fits(estimate_pass(t152.param_bytes, t152.activation_bytes, 64), "cpu", what="this pass")
    assert "this pass needs about" in str(e.value) and "100.0 MiB free" in str(e.value)


def _wait_until(cond, limit_s=30.0):
    deadline = time.monotonic() + limit_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("a thread never reached the expected state")
        time.sleep(0.001)


def test_fair_slots_serve_a_waiter_between_two_holds_of_a_busy_thread():
    """A waiter is served after the hold in progress, not after a busy thread's loop: with FIFO the busy
    thread, which asks again right after each release, queues behind the waiter. A slot that lets a
    thread barge in ahead of the line (non-FIFO) lets the loop take it over and over."""
    slots = FairSlots(1)
    stop = threading.Event()
    holds = []
    failures = []

    def busy():  # takes and gives back the slot as fast as it can, like a training loop step by step
        while not stop.is_set():
            if not slots.acquire(timeout=5):
                failures.append("the busy thread timed out")
                return
            holds.append(1)
            slots.release()

    t = threading.Thread(target=busy, daemon=True)
    t.start()
    try:
        _wait_until(lambda: len(holds) >= 100)
        marks = []

        def mark():  # acquire calls it first once this waiter is in line (under the slot's lock)
            if not marks:
                marks.append(len(holds))
            return False

        got = slots.acquire(timeout=5, should_stop=mark)
        during = len(holds) - marks[0]  # holds granted to the loop while this waiter was in line
        if got:
            slots.release()
    finally:
        stop.set()
        t.join(10)
    assert not failures and not t.is_alive()
    assert got and during <= 2, f"the busy thread was served {during} times ahead of a waiter in line"


def test_fair_slots_grant_in_the_order_asked():
    slots = FairSlots(1)
    assert slots.acquire(timeout=1)
    order = []

    def waiter(i):
        def run():
            got = slots.acquire(timeout=30)
            order.append(i if got else f"{i} timed out")
            time.sleep(0.005)  # hold it a moment: the next in line must wait for the release
            slots.release()
        return run

    threads = []
    for i in range(6):  # each asks only once the previous one is in line
        th = threading.Thread(target=waiter(i), daemon=True)
        th.start()
        threads.append(th)
        _wait_until(lambda i=i: slots.waiting == i + 1)
    slots.release()
    for th in threads:
        th.join(30)
    assert not any(th.is_alive() for th in threads)
    assert order == list(range(6))


def test_fair_slots_give_up_after_the_timeout_and_when_told_to_stop():
    slots = FairSlots(1)
    assert slots.acquire(timeout=1)
    results = {}
    stop = threading.Event()

    def timed():
        results["timed"] = slots.acquire(timeout=0.2)

    def stopped():
        results["stopped"] = slots.acquire(timeout=None, should_stop=stop.is_set)

    threads = [threading.Thread(target=f, daemon=True) for f in (timed, stopped)]
    for th in threads:
        th.start()
    threads[0].join(30)
    stop.set()
    threads[1].join(30)
    alive = [th.is_alive() for th in threads]
    slots.release()  # let anything still waiting finish
    for th in threads:
        th.join(30)
    assert alive == [False, False], "a waiter ignored its timeout or its stop"
    assert results == {"timed": False, "stopped": False}
    assert slots.waiting == 0 and slots.acquire(timeout=1)  # both left the line; the slot is free again
    slots.release()
    with pytest.raises(device.BusyError, match="abandoned"), device_slot("cpu", timeout=None, should_stop=lambda: True):
        pass


def test_memory_admission_is_atomic_across_sessions(monkeypatch):
    """Three sessions ask at the same moment for 40 MiB each with 100 MiB free (80 MiB usable): exactly two
    are admitted. Reading the free memory takes a moment here, as on a busy machine, so a check that is not
    atomic with its booking admits all three."""
    def slow_free(dev):
        time.sleep(0.05)
        return 100 * 2**20

    monkeypatch.setattr(device, "free_memory", slow_free)
    start = threading.Barrier(3)
    release = threading.Event()
    admitted, refused = [], []

    def session():
        start.wait(10)
        try:
            with device.reserve(40 * 2**20, "cpu", what="a pass"):
                admitted.append(device.reserved("cpu"))
                release.wait(30)
        except MemoryGuardError as e:
            refused.append(str(e))
            release.wait(0)

    threads = [threading.Thread(target=session, daemon=True) for _ in range(3)]
    for th in threads:
        th.start()
    _wait_until(lambda: len(admitted) + len(refused) == 3)
    release.set()
    for th in threads:
        th.join(30)
    assert not any(th.is_alive() for th in threads)
    assert len(admitted) == 2 and len(refused) == 1, (admitted, refused)
    assert "a pass needs about 40.0 MiB" in refused[0] and "80.0 MiB of it booked" in refused[0]
    assert device.reserved("cpu") == 0  # every booking released
    with device.reserve(40 * 2**20, "cpu"):  # and the memory can be had again
        assert device.reserved("cpu") == 40 * 2**20


def test_a_training_run_lets_another_session_use_the_device_between_steps():
    run = rc.make_run(["resnet20"], "digits", steps=100_000, input_size=8, batch_size=16, device="cpu")
    stop = threading.Event()
    steps_seen = []

    errors = []

    def train():
        try:
            for update in run.iter(should_stop=stop):
                steps_seen.append(update.step)
        except BaseException as e:  # noqa: BLE001 - collected for the main thread
            errors.append(e)

    t = threading.Thread(target=train, daemon=True)
    t.start()
    try:
        _wait_until(lambda: len(steps_seen) >= 3 or bool(errors), 120)
        with device_slot("cpu", timeout=10):  # would time out if the run held the slot for all its steps
            during = run.step
        assert 3 <= during < 100_000 and not run.done
    finally:
        stop.set()
        t.join(60)
    assert not errors and not t.is_alive()
    assert run.stopped
