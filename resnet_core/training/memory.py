"""A training run's memory: estimated from its nets' traces, booked (device.reserve) before it allocates.

`RESNET_EXPLORER_MEMORY_BUDGET` caps training runs like every pass: a run that does not fit is refused with
the numbers and the largest batch that would fit. A run on several workers is booked once, for all of them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from resnet_core import device as dev


def train_bytes(traces, batch: int, amp: bool, data_bytes: int) -> int:
    """Bytes one process needs to train these nets (weights, gradients, momentum, activations) at `batch`."""
    return data_bytes + sum(dev.estimate_pass(t.param_bytes, t.activation_bytes, batch, backward=True,
                                              dtype_bytes=2 if amp else 4, optimizer=True).total for t in traces)


def book_training(traces, batch: int, amp: bool, data_bytes: int, device: torch.device, world=None,
                  copies: int = 1) -> contextlib.ExitStack:
    """Book `copies` × the run's memory on `device` (device.reserve): an ExitStack whose close() releases it.

    A child of a process that booked for it (our launcher's workers, a pair's trainers: lifecycle.BOOKED_ENV)
    books nothing; a worker under a plain
    torchrun books what every worker on this machine needs on the CPU (they share its memory), its own on a GPU.
    MemoryGuardError with the numbers and the largest batch that would fit."""
    from resnet_core.training.lifecycle import BOOKED_ENV, PARENT_ENV
    traces = list(traces)
    hold = contextlib.ExitStack()
    if os.environ.get(BOOKED_ENV) and os.environ.get(PARENT_ENV) == str(os.getppid()):
        return hold  # the process that started this one booked it (the launcher, the pair's parent)
    if world is not None and device.type == "cpu":
        copies = max(copies, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    need = copies * train_bytes(traces, batch, amp, data_bytes)
    what = f"training {len(traces)} nets at batch {batch}" + (
        f" on {copies} workers" if copies > 1 else "")
    try:
        hold.enter_context(dev.reserve(need, device, what=what))
    except dev.MemoryGuardError as e:
        cap = dev.memory_budget()
        room = min(int(0.8 * e.free), cap if cap is not None else e.free) - e.booked
        fits = next((b for b in _smaller(batch) if copies * train_bytes(traces, b, amp, data_bytes) <= room), None)
        hint = (f"; batch {fits} would fit" if fits else "; even batch 1 does not fit: train fewer or smaller nets, "
                "or use a smaller input")
        budget = f" (RESNET_EXPLORER_MEMORY_BUDGET caps runs at {_fmt_bytes(cap)})" if cap is not None else ""
        e.args = (f"{e}{budget}{hint}",)
        raise
    return hold


def _smaller(batch: int) -> Iterator[int]:
    b = batch
    while b > 1:
        b //= 2
        yield max(1, b)


def _fmt_bytes(n: int) -> str:
    from resnet_core.formatting import fmt_bytes
    return fmt_bytes(n)


