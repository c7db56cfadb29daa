"""Device and dtype choice, memory estimates and guards, and bounding concurrent GPU work.

GPU when there is one, CPU otherwise, and always say which (`describe`). Before a live pass or a
training run, `check_fits` compares an estimate of the memory it needs with what the device has
free, and refuses with the numbers instead of letting the process die of out-of-memory.
"""

from __future__ import annotations

import collections
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch

from resnet_core.errors import ExplorerError


class DeviceError(ExplorerError):
    """A device was asked for that this machine does not have."""


class MemoryGuardError(ExplorerError):
    """A run was refused because its estimate does not fit in the device's free memory."""

    def __init__(self, needed: int, free: int, device: str, what: str = "this run"):
        from resnet_core.structure.report import fmt_bytes
        self.needed, self.free, self.device = needed, free, device
        super().__init__(
            f"{what} needs about {fmt_bytes(needed)} but {device} has {fmt_bytes(free)} free: "
            "use a smaller batch or input, or a smaller network")


def cuda_available() -> bool:
    return torch.cuda.is_available()


def pick_device(preference: str = "auto") -> torch.device:
    """'auto' → CUDA when available, else CPU; 'cuda' without a GPU raises DeviceError."""
    if preference == "auto":
        return torch.device("cuda" if cuda_available() else "cpu")
    if preference == "cpu":
        return torch.device("cpu")
    if preference == "cuda":
        if not cuda_available():
            raise DeviceError("CUDA was asked for, but this machine has no usable GPU (torch.cuda.is_available() "
                              "is False); use --device cpu or auto")
        return torch.device("cuda")
    raise DeviceError(f"unknown device {preference!r}; use auto, cpu or cuda")


def describe(device: torch.device | str) -> str:
    """'CUDA · NVIDIA H100 (79.1 GiB free)' or 'CPU · 2 threads'."""
    from resnet_core.structure.report import fmt_bytes
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        free = free_memory(device)
        return f"CUDA · {name} ({fmt_bytes(free)} free)"
    n = torch.get_num_threads()
    return f"CPU · {n} thread{'s' if n != 1 else ''}"


def free_memory(device: torch.device | str) -> int:
    """Bytes free now: the GPU's free memory, or the machine's available RAM."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    pages, size = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    return int(pages * size)


@dataclass(frozen=True)
class PassEstimate:
    params: int  # bytes of the weights
    grads: int  # bytes of their gradients (0 without backward)
    activations: int  # bytes of the layer outputs kept for backward, for the whole batch
    optimizer: int  # bytes of optimiser state (SGD momentum: one buffer per weight)
    workspace: int  # slack for temporaries and the allocator

    @property
    def total(self) -> int:
        return self.params + self.grads + self.activations + self.optimizer + self.workspace


def estimate_pass(param_bytes: int, activation_bytes: int, batch: int, backward: bool = True,
                  dtype_bytes: int = 4, optimizer: bool = False, variants: int = 1) -> PassEstimate:
    """Memory for a forward (and backward) pass on `batch` images of a network whose weights take
    `param_bytes` and whose layer outputs take `activation_bytes` per image at float32 (a Trace's
    `param_bytes` and `activation_bytes`).

    Activations: every layer's output for the batch (per-image bytes × batch, scaled to `dtype_bytes`),
    `variants` times over when several models are alive at once.
    """
    params = int(param_bytes)
    acts = int(activation_bytes) * batch * dtype_bytes // 4
    if backward:
        acts *= 2  # the gradient of each saved output exists at the same time at its peak
    grads = params if backward else 0
    opt = params if optimizer else 0
    one = params + grads + acts + opt
    return PassEstimate(params * variants, grads * variants, acts * variants, opt * variants,
                        workspace=max(64 << 20, one // 10))


def check_fits(estimate: PassEstimate | int, device: torch.device | str, what: str = "this run",
               headroom: float = 0.8) -> None:
    """Raise MemoryGuardError when `estimate` exceeds `headroom` × the device's free memory."""
    needed = estimate.total if isinstance(estimate, PassEstimate) else int(estimate)
    free = free_memory(device)
    if needed > headroom * free:
        raise MemoryGuardError(needed, free, describe(device).split(" (")[0], what)


class FairSlots:
    """At most `n` holders at once, granted in the order asked (FIFO). A training run takes a slot per
    step, so a session that asks between two steps is served next rather than after the whole run."""

    def __init__(self, n: int):
        self.n = n
        self._busy = 0
        self._queue: collections.deque = collections.deque()
        self._cond = threading.Condition()

    def acquire(self, timeout: float | None = None) -> bool:
        me = object()
        with self._cond:
            self._queue.append(me)
            ok = self._cond.wait_for(lambda: self._queue[0] is me and self._busy < self.n, timeout)
            self._queue.remove(me)
            if ok:
                self._busy += 1
            self._cond.notify_all()
            return ok

    def release(self) -> None:
        with self._cond:
            self._busy -= 1
            self._cond.notify_all()


# One heavy job on a GPU at a time per process: several browser sessions share one server process.
_GPU_SLOTS = FairSlots(1)
# torch already spreads one pass over every core: two at once on the CPU only thrash each other
_CPU_SLOTS = FairSlots(max(1, int(os.environ.get("RESNET_EXPLORER_CPU_JOBS", "1"))))


class BusyError(ExplorerError):
    """The device is busy with another session's job and the wait timed out."""


@contextmanager
def device_slot(device: torch.device | str, timeout: float = 120.0) -> Iterator[None]:
    """Hold the device's slot for a pass or a training run; waits up to `timeout` seconds."""
    device = torch.device(device)
    sem = _GPU_SLOTS if device.type == "cuda" else _CPU_SLOTS
    if not sem.acquire(timeout=timeout):
        raise BusyError(f"the {device.type.upper()} is busy with another session's run; try again in a moment")
    try:
        yield
    finally:
        sem.release()
