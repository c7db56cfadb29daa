"""The small tensor operations a training run is made of: evaluation, augmentation, threads, autocast."""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512, amp: bool = False,
             channels_last: bool = False) -> tuple[float, float]:
    """Mean loss and accuracy in eval mode; the model's mode is restored."""
    total_loss, correct = evaluate_sums(model, x, y, batch, amp, channels_last)
    n = max(1, len(y))
    return total_loss / n, correct / n


@torch.no_grad()
def evaluate_sums(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512, amp: bool = False,
                  channels_last: bool = False) -> tuple[float, int]:
    """Summed loss and the number correct in eval mode (to add up over shards); the mode is restored."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    try:
        for i in range(0, len(y), batch):
            xb, yb = x[i:i + batch], y[i:i + batch]
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with autocast_context(xb.device, amp):
                out = model(xb)
            total_loss += float(F.cross_entropy(out.float(), yb, reduction="sum"))
            correct += int((out.argmax(1) == yb).sum())
    finally:
        model.train(was_training)
    return total_loss, correct


def augment_batch(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """He et al.'s CIFAR augmentation: zero-pad by `pad`, crop back to H×W at a random place, flip half.

    (B, C, H, W) → (B, C, H, W); one draw of `gen` per image (on the CPU, so every device crops alike).
    """
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))  # (B, C, H+2p, W+2p)
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(x.device)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(x.device)
    flip = (torch.rand(b, generator=gen) < 0.5).to(x.device)
    rows = oy.view(b, 1) + torch.arange(h, device=x.device).view(1, h)  # (B, H)
    cols = ox.view(b, 1) + torch.arange(w, device=x.device).view(1, w)  # (B, W)
    cols = torch.where(flip.view(b, 1), cols.flip(1), cols)
    bi = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    ci = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[bi, ci, rows.view(b, 1, h, 1), cols.view(b, 1, 1, w)]  # (B, C, H, W)


def autocast_context(device: torch.device, amp: bool):
    if amp:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


class EpochOrder:
    """Which images each step trains on, DistributedSampler-style: one seeded permutation of the train split
    per epoch, the same on every rank; each step takes the next `per_rank × world` images of it (the last
    partial batch of an epoch dropped) and rank r trains on the r-th slice of `per_rank`."""

    def __init__(self, n: int, per_rank: int, seed: int, world_size: int = 1, rank: int = 0):
        self.n, self.per_rank, self.world_size, self.rank = n, per_rank, world_size, rank
        self.gen = torch.Generator().manual_seed(seed)
        self.order = torch.empty(0, dtype=torch.long)
        self.pos = 0
        self.epoch = 0

    def next_global(self) -> torch.Tensor:
        """The next step's indices over every worker."""
        b = self.per_rank * self.world_size
        if self.pos + b > len(self.order):
            self.order = torch.randperm(self.n, generator=self.gen)
            self.pos = 0
            self.epoch += 1
        idx = self.order[self.pos:self.pos + b]
        self.pos += b
        return idx

    def next(self) -> torch.Tensor:
        """This worker's part of the next step."""
        b = self.per_rank
        return self.next_global()[self.rank * b:(self.rank + 1) * b]
