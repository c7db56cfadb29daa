"""The probe toolbox: hooks on a built model, the checks a probe makes before it runs, and the promise
that a probe leaves no trace on the model.

What every probe (lab/forward.py, lab/gradients.py) guarantees, also when it raises:
- hooks live for one pass only and are removed in a `finally`;
- the train/eval mode of every module, every block's skip switch, the BatchNorm running statistics a
  train-mode pass would update, and every parameter's `.grad` are put back as they were. The weights
  are never changed.
Still, pass a model of your own: a model shared with other sessions (st.cache_resource) must not be
run here while another session may use it. The app builds a model per run, or deep-copies one, and
caches nothing mutable.

Tensors are reduced on the model's device and only the reduced values are copied to the CPU. The
entry points check an estimate of the pass's memory against the device's free memory
(`device.check_fits`) and hold the device's slot (`device.device_slot`) while they run.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from resnet_core.errors import ExplorerError
from resnet_core.structure.build import ResidualBlock
from resnet_core.structure.records import BlockPlan, Plan

__all__ = ["HookSet", "ProbeError", "block_plans", "blocks_of", "check_batch_norm", "check_input", "hooks",
           "model_device", "model_fingerprint", "preserved", "safe_ratio", "submodule", "tensor_fingerprint"]


class ProbeError(ExplorerError):
    """A probe that cannot run as asked (unknown layer, mismatched plan, a batch-norm batch of one...)."""


# --------------------------------------------------------------------------------------------
# state keeping: hooks, modes, skips, buffers, grads
# --------------------------------------------------------------------------------------------

class HookSet:
    """Handles of hooks registered for one pass; `remove()` removes every one (idempotent)."""

    def __init__(self) -> None:
        self._handles: list[Any] = []

    def add(self, handle: Any) -> Any:
        self._handles.append(handle)
        return handle

    def remove(self) -> None:
        while self._handles:
            self._handles.pop().remove()

    def __len__(self) -> int:
        return len(self._handles)


@contextmanager
def hooks() -> Iterator[HookSet]:
    """A HookSet whose hooks are removed on exit, whatever happens inside."""
    hs = HookSet()
    try:
        yield hs
    finally:
        hs.remove()


def blocks_of(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every residual block of a built model with its module name, in forward order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, ResidualBlock)]


@contextmanager
def preserved(model: nn.Module, buffers: bool = True, grads: bool = True) -> Iterator[nn.Module]:
    """Restore on exit: every module's train/eval mode, every block's skip switch, the buffers (BatchNorm
    running statistics) and the parameters' .grad."""
    modes = [(m, m.training) for m in model.modules()]
    skips = [(m, m.skip) for _, m in blocks_of(model)]
    saved_buffers = [(b, b.detach().clone()) for b in model.buffers()] if buffers else []
    saved_grads = [(p, p.grad) for p in model.parameters()] if grads else []
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training
        for m, skip in skips:
            m.skip = skip
        with torch.no_grad():
            for b, value in saved_buffers:
                b.copy_(value)
        for p, g in saved_grads:
            p.grad = g


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU for a model without either."""
    for t in model.parameters():
        return t.device
    for buf in model.buffers():
        return buf.device
    return torch.device("cpu")


def submodule(model: nn.Module, name: str) -> nn.Module:
    """model.get_submodule(name), or ProbeError saying that the plan and the model do not match."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise ProbeError(f"the model has no module '{name}': the plan and the model do not match "
                         "(build the model from the same spec as the plan)") from None


def check_input(x: torch.Tensor, p: Plan | None) -> None:
    """ProbeError unless x is a (B, C, H, W) batch of the images plan `p` was made for."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ProbeError(f"the input must be a batch of images (B, C, H, W), got {shape}")
    if p is not None and tuple(x.shape[1:]) != tuple(p.input_shape):
        got = "×".join(map(str, x.shape[1:]))
        want = "×".join(map(str, p.input_shape))
        raise ProbeError(f"the batch holds {got} images but the network was planned for {want}")


def check_batch_norm(p: Plan, batch: int, train: bool) -> None:
    """Batch norm in training mode cannot normalise a single value per channel: say so before running."""
    if not train or p.spec.norm != "batch":
        return
    for lay in p.layers:
        if lay.op == "norm" and len(lay.in_shape) == 3 and batch * lay.in_shape[1] * lay.in_shape[2] <= 1:
            h, w = lay.in_shape[1:]
            raise ProbeError(
                f"batch norm in training mode needs more than one value per channel, but {lay.name} sees a "
                f"{h}×{w} map on a batch of {batch}: use a batch of 2 or more, a larger input, or eval mode")


def block_plans(p: Plan) -> dict[str, BlockPlan]:
    """The plan's blocks by name."""
    return {b.name: b for b in p.blocks}


def model_fingerprint(model: nn.Module) -> str:
    """A digest of every parameter's bytes: equal digests, equal weights."""
    h = hashlib.blake2b(digest_size=8)
    for name, t in model.named_parameters():
        h.update(name.encode())
        h.update(t.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def tensor_fingerprint(*tensors: torch.Tensor) -> str:
    h = hashlib.blake2b(digest_size=8)
    for t in tensors:
        h.update(t.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def safe_ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None where either is missing or NaN; ∞ for a positive a over 0."""
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return None
    if b == 0:
        return math.inf if a > 0 else None
    return a / b
