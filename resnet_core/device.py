"""Device and dtype choice, memory estimates and guards, and bounding concurrent GPU work.

GPU when there is one, CPU otherwise, and always say which (`describe`). Before a live pass or a
training run, `check_fits` compares an estimate of the memory it needs with what the device has
free, and refuses with the numbers instead of letting the process die of out-of-memory.

Several browser sessions share one server process, so admission is atomic: `reserve` checks an
estimate against the free memory minus what the passes already admitted have reserved, and books it,
under one lock; the booking is released when the pass ends. Three sessions asking at the same moment
cannot all be admitted past the budget. `RESNET_EXPLORER_MEMORY_BUDGET` (bytes, or with a K/M/G
suffix) caps the total reserved at once on top of the free-memory rule.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch

from resnet_core.errors import ExplorerError


class DeviceError(ExplorerError):
    """A device was asked for that this machine does not have."""


class MemoryGuardError(ExplorerError):
    """A run was refused because its estimate does not fit in the device's free memory."""

    def __init__(self, needed: int, free: int, device: str, what: str = "this run", booked: int = 0):
        from resnet_core.formatting import fmt_bytes
        self.needed, self.free, self.device, self.booked = needed, free, device, booked
        others = f", {fmt_bytes(booked)} of it booked by passes running now" if booked else ""
        super().__init__(
            f"{what} needs about {fmt_bytes(needed)} but {device} has {fmt_bytes(free)} free{others}: "
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
    from resnet_core.formatting import fmt_bytes
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


def _env_budget() -> int | None:
    raw = os.environ.get("RESNET_EXPLORER_MEMORY_BUDGET", "").strip()
    if not raw:
        return None
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(raw[-1].upper(), 1)
    try:
        value = int(float(raw[:-1] if mult > 1 else raw) * mult)
    except ValueError:
        return None
    return value if value > 0 else None


_RESERVED: dict[str, int] = collections.defaultdict(int)  # device type → bytes booked by running passes
_RESERVE_LOCK = threading.Lock()


def reserved(device: torch.device | str) -> int:
    """Bytes booked on `device` by the passes admitted and still running."""
    with _RESERVE_LOCK:
        return _RESERVED[torch.device(device).type]


@contextmanager
def reserve(estimate: PassEstimate | int, device: torch.device | str, what: str = "this run",
            headroom: float = 0.8) -> Iterator[None]:
    """Admit a pass only when it fits next to the passes already admitted, and book its memory while it runs.

    The check and the booking happen under one lock: of several sessions asking at once, only as many
    as fit are admitted; the rest get MemoryGuardError with the numbers (free memory net of the bookings).
    """
    needed = estimate.total if isinstance(estimate, PassEstimate) else int(estimate)
    kind = torch.device(device).type
    with _RESERVE_LOCK:
        free = free_memory(device)
        booked = _RESERVED[kind]
        room = int(headroom * free) - booked
        cap = _env_budget()
        if cap is not None:
            room = min(room, cap - booked)
        if needed > room:
            raise MemoryGuardError(needed, free, describe(device).split(" (")[0], what, booked=booked)
        _RESERVED[kind] = booked + needed
    try:
        yield
    finally:
        with _RESERVE_LOCK:
            _RESERVED[kind] -= needed


class FairSlots:
    """At most `n` holders at once, granted in the order asked (FIFO). A training run takes a slot per
    step, so a session that asks between two steps is served next rather than after the whole run."""

    def __init__(self, n: int):
        self.n = n
        self._busy = 0
        self._queue: collections.deque = collections.deque()
        self._cond = threading.Condition()

    def acquire(self, timeout: float | None = None, should_stop=None) -> bool:
        """Wait in line for a slot; False after `timeout` seconds or as soon as `should_stop()` is true
        (checked every 0.2 s: a session whose tab closed leaves the line)."""
        me = object()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._queue.append(me)
            try:
                while True:
                    if should_stop is not None and should_stop():
                        return False
                    if self._queue[0] is me and self._busy < self.n:
                        self._busy += 1
                        return True
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    step = 0.2 if should_stop is not None else None
                    self._cond.wait(left if step is None else step if left is None else min(left, step))
            finally:
                self._queue.remove(me)
                self._cond.notify_all()

    @property
    def waiting(self) -> int:
        """How many are in line (not yet granted)."""
        with self._cond:
            return len(self._queue)

    @property
    def full(self) -> bool:
        """Every slot is held (a newcomer would wait)."""
        with self._cond:
            return self._busy >= self.n

    def release(self) -> None:
        with self._cond:
            self._busy -= 1
            self._cond.notify_all()


# One heavy job on a GPU at a time per process: several browser sessions share one server process.
_GPU_SLOTS = FairSlots(1)
# torch already spreads one pass over every core: two at once on the CPU only thrash each other
_CPU_SLOTS = FairSlots(max(1, int(os.environ.get("RESNET_EXPLORER_CPU_JOBS", "1"))))


# A live pass on the CPU runs on this many intra-op threads (RESNET_EXPLORER_LIVE_THREADS, default 1).
# Measured (benchmarks/RESULTS.md): on a shared 2-core machine two OpenMP threads spin-wait for each
# other whenever a core is taken by the page's own script threads or another process, and one pass got
# 3–10× slower; passes take turns through the slot anyway, so one thread per pass loses little alone
# and keeps a classroom's reruns moving.
LIVE_CPU_THREADS = max(1, int(os.environ.get("RESNET_EXPLORER_LIVE_THREADS", "1") or 1))


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to `n` inside (None: left as it is), put back afterwards. The
    setting is the process's: hold the device slot around it where other sessions may run."""
    if n is None or n == torch.get_num_threads():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def live_threads(device: torch.device | str, n: int | None = None) -> Iterator[None]:
    """Run a live pass on `n` (default LIVE_CPU_THREADS) intra-op threads on the CPU (hold the device slot
    around it); no-op on a GPU."""
    on_cpu = torch.device(device).type == "cpu"
    with torch_threads((LIVE_CPU_THREADS if n is None else max(1, int(n))) if on_cpu else None):
        yield


class BusyError(ExplorerError):
    """The device is busy with another session's job and the wait timed out."""


@contextmanager
def device_slot(device: torch.device | str, timeout: float = 120.0, should_stop=None) -> Iterator[None]:
    """Hold the device's slot for a pass or a training run; waits up to `timeout` seconds, and gives up
    early (BusyError) when `should_stop()` becomes true."""
    device = torch.device(device)
    sem = _GPU_SLOTS if device.type == "cuda" else _CPU_SLOTS
    if not sem.acquire(timeout=timeout, should_stop=should_stop):
        if should_stop is not None and should_stop():
            raise BusyError(f"the wait for the {device.type.upper()} was abandoned (the session stopped it)")
        raise BusyError(f"the {device.type.upper()} is busy with another session's run; try again in a moment")
    try:
        yield
    finally:
        sem.release()
