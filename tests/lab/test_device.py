"""Device choice, memory guard, and the fair slots that bound concurrent work across sessions."""

import threading

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


def test_fair_slots_serve_a_waiter_between_two_holds_of_a_busy_thread():
    slots = FairSlots(1)
    stop = threading.Event()
    holds = []

    def busy():  # takes and gives back the slot as fast as it can, like a training loop step by step
        while not stop.is_set():
            assert slots.acquire(timeout=5)
            holds.append(1)
            slots.release()

    t = threading.Thread(target=busy)
    t.start()
    try:
        while len(holds) < 100:
            pass
        got = slots.acquire(timeout=5)  # FIFO: served after the current hold, not after the loop ends
        assert got
        slots.release()
    finally:
        stop.set()
        t.join()


def test_a_training_run_lets_another_session_use_the_device_between_steps():
    run = rc.make_run(["resnet20"], "digits", steps=100_000, input_size=8, batch_size=16, device="cpu")
    stop = threading.Event()
    steps_seen = []

    def train():
        for update in run.iter(should_stop=stop):
            steps_seen.append(update.step)

    t = threading.Thread(target=train)
    t.start()
    try:
        while len(steps_seen) < 3:
            pass
        with device_slot("cpu", timeout=10):  # would time out if the run held the slot for all its steps
            during = run.step
        assert 3 <= during < 100_000 and not run.done
    finally:
        stop.set()
        t.join()
    assert run.stopped
