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
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from resnet_core.errors import ExplorerError
from resnet_core.i18n import N_, _

THIS_RUN = N_("this run")  # what a refused run is called when its caller does not say


class DeviceError(ExplorerError):
    """A device was asked for that this machine does not have."""


class MemoryGuardError(ExplorerError):
    """A run was refused because its estimate does not fit in the device's free memory (or the budget)."""

    def __init__(self, needed: int, free: int, device: str, what: str = THIS_RUN, booked: int = 0,
                 hint: str = "", budget: int | None = None):
        from resnet_core.formatting import fmt_bytes
        self.needed, self.free, self.device, self.booked, self.hint, self.budget = needed, free, device, booked, hint, budget
        others = _(", {booked} of it booked by passes running now", booked=fmt_bytes(booked)) if booked else ""
        where = (_("the memory budget (RESNET_EXPLORER_MEMORY_BUDGET) is {budget}", budget=fmt_bytes(budget))
                 if budget is not None else _("{device} has {free} free", device=device, free=fmt_bytes(free)))
        super().__init__(_("{what} needs about {needed} but {where}{others}: {hint}", what=_(what),
                           needed=fmt_bytes(needed), where=where, others=others,
                           hint=hint or _("use a smaller batch or input, or a smaller network")))


class WorkLimitError(ExplorerError):
    """A run was refused because its work (multiply-adds in all) is above the limit for one run."""

    def __init__(self, work: int, limit: int, what: str = THIS_RUN, hint: str = ""):
        self.work, self.limit, self.hint = work, limit, hint
        super().__init__(_("{what} takes about {work} multiply-adds, above the limit of {limit} for one run "
                           "(RESNET_EXPLORER_WORK_LIMIT): {hint}", what=_(what), work=fmt_work(work),
                           limit=fmt_work(limit), hint=hint or _("use a smaller batch or input, or a smaller network")))


class OutOfMemoryError(ExplorerError):
    """An allocation failed while a run was under way (the estimate was short, or another process took the
    memory): the run ended, and says so in one line."""


# CPU intra-op threads for a long job (an experiment, a training run): half the cores (two threads that
# compete with another process for two cores can run many times slower)
CPU_THREADS = max(1, (os.cpu_count() or 2) // 2)

# The most work one run may do: multiply-adds in all (forward ≈ 1, forward + backward ≈ 3 per mult-add of
# the trace). 5·10¹² is ~5 min on this project's 2-core CPU at the ~15 G mult-adds/s its experiments reach;
# the default experiments need at most ~1.4·10¹². RESNET_EXPLORER_WORK_LIMIT overrides it (a number,
# K/M/G/T suffixes); on a GPU the limit is 50 times larger.
WORK_LIMIT = 5 * 10**12
GPU_WORK_FACTOR = 50


def fmt_work(n: int | float) -> str:
    """12.3 G, 4.56 T: a count of multiply-adds, short."""
    n = float(n)
    for unit, size in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f}"


def _parse_amount(raw: str, units: dict[str, int]) -> int | None:
    raw = raw.strip()
    if not raw:
        return None
    mult = units.get(raw[-1].upper(), 1)
    try:
        value = float(raw[:-1] if raw[-1].upper() in units else raw) * mult
    except ValueError:
        return None
    return int(value) if value > 0 and value < 1e30 else None


def work_limit(device: torch.device | str = "cpu") -> int:
    """The most multiply-adds one run may do on `device` (see WORK_LIMIT)."""
    raw = _parse_amount(os.environ.get("RESNET_EXPLORER_WORK_LIMIT", ""),
                        {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12})
    limit = raw if raw is not None else WORK_LIMIT
    return limit * GPU_WORK_FACTOR if torch.device(device).type == "cuda" else limit


def check_work(work: int, device: torch.device | str = "cpu", what: str = THIS_RUN, hint: str = "") -> None:
    """Raise WorkLimitError when `work` multiply-adds are above `work_limit(device)`."""
    limit = work_limit(device)
    if work > limit:
        raise WorkLimitError(int(work), limit, what, hint)


_OOM_WORDS = ("out of memory", "can't allocate", "cannot allocate", "failed to allocate", "not enough memory")


def is_allocation_failure(e: BaseException) -> bool:
    """An exception that says an allocation failed (torch's CPU and CUDA allocators, Python's MemoryError)."""
    if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError":
        return True
    return isinstance(e, RuntimeError) and any(w in str(e).lower() for w in _OOM_WORDS)


@contextmanager
def allocation_guard(what: str = THIS_RUN, device: torch.device | str = "cpu") -> Iterator[None]:
    """Turn an allocation failure inside into OutOfMemoryError: one line naming the run, never a traceback."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - re-raised unless it is an allocation failure
        if not is_allocation_failure(e) or isinstance(e, ExplorerError):
            raise
        if torch.device(device).type == "cuda":
            torch.cuda.empty_cache()
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise OutOfMemoryError(_("{what} ran out of memory ({first}): use a smaller setting, or run it when the "
                                 "machine is less busy", what=_(what), first=first)) from None


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


def describe_text(described: str) -> str:
    """A `describe` line in this run's language (what passes keep is English: the command line prints it)."""
    cpu = re.fullmatch(r"CPU · (\d+) threads?", described)
    if cpu:
        return _("CPU · {n} threads", n=cpu.group(1))
    cuda = re.fullmatch(r"CUDA · (.*) \((.+) free\)", described)
    if cuda:
        return _("CUDA · {name} ({free} free)", name=cuda.group(1), free=cuda.group(2))
    return described


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


def estimate_forward(param_bytes: int, largest_activation_bytes: int, batch: int, live: int = 8) -> PassEstimate:
    """Memory for a forward pass without autograd (torch.no_grad): a layer's output is freed once the next
    layers have used it, so about `live` of the largest layer output (per image, float32) exist at once,
    for the whole batch, beside the weights (and what hooks copy out of them)."""
    params = int(param_bytes)
    acts = int(largest_activation_bytes) * max(1, batch) * live
    return PassEstimate(params, 0, acts, 0, workspace=max(64 << 20, (params + acts) // 10))


def check_fits(estimate: PassEstimate | int, device: torch.device | str, what: str = THIS_RUN,
               headroom: float = 0.8, hint: str = "") -> None:
    """Raise MemoryGuardError when `estimate` could not run even alone: more than `headroom` × the device's
    free memory, or more than the memory budget. (What other runs booked is `reserve`'s to check: a run
    waiting for its turn is refused here only when no turn would ever let it run.)"""
    needed = estimate.total if isinstance(estimate, PassEstimate) else int(estimate)
    free = free_memory(device)
    cap = memory_budget()
    if cap is not None and needed > cap and cap < headroom * free:
        raise MemoryGuardError(needed, free, describe(device).split(" (")[0], what, hint=hint, budget=cap)
    if needed > headroom * free:
        raise MemoryGuardError(needed, free, describe(device).split(" (")[0], what, hint=hint)


def memory_budget() -> int | None:
    """RESNET_EXPLORER_MEMORY_BUDGET in bytes (K/M/G suffixes), or None when it is unset or unreadable."""
    return _parse_amount(os.environ.get("RESNET_EXPLORER_MEMORY_BUDGET", ""), {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30})


def memory_room(device: torch.device | str, headroom: float = 0.8) -> int:
    """Bytes a new run could book on `device` now: `headroom` × free memory, capped by the budget, less what
    the running passes booked (advisory: `reserve` is the atomic check)."""
    kind = torch.device(device).type
    with _RESERVE_LOCK:
        booked = _RESERVED[kind]
    room = int(headroom * free_memory(device)) - booked
    cap = memory_budget()
    return min(room, cap - booked) if cap is not None else room


_RESERVED: dict[str, int] = collections.defaultdict(int)  # device type → bytes booked by running passes
_RESERVE_LOCK = threading.Lock()


def reserved(device: torch.device | str) -> int:
    """Bytes booked on `device` by the passes admitted and still running."""
    with _RESERVE_LOCK:
        return _RESERVED[torch.device(device).type]


@contextmanager
def reserve(estimate: PassEstimate | int, device: torch.device | str, what: str = THIS_RUN,
            headroom: float = 0.8, hint: str = "") -> Iterator[None]:
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
        cap = memory_budget()
        if cap is not None and cap - booked < room:
            room = cap - booked
        else:
            cap = None  # the free memory is the tighter bound: say that one
        if needed > room:
            raise MemoryGuardError(needed, free, describe(device).split(" (")[0], what, booked=booked, hint=hint,
                                   budget=cap)
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
            raise BusyError(_("the wait for the {device} was abandoned (the session stopped it)",
                              device=device.type.upper()))
        raise BusyError(_("the {device} is busy with another session's run; try again in a moment",
                          device=device.type.upper()))
    try:
        yield
    finally:
        sem.release()
