"""What a training run is asked to do: its settings, the device defaults, the schedule, the named experiments."""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from resnet_core.device import CPU_THREADS
from resnet_core.errors import ExplorerError
from resnet_core.i18n import N_, _
from resnet_core.limits import MAX_BATCH, MAX_LR, MAX_NETS, MAX_STEPS, SEED_MAX, max_threads  # noqa: F401 (re-exported)
from resnet_core.structure.loading import load_spec
from resnet_core.structure.plan import plan as make_plan
from resnet_core.structure.presets import get_preset, is_preset
from resnet_core.structure.spec import ArchSpec
from resnet_core.structure.spec_text import SpecError
from resnet_core.training.rates import BATCHNORM_LR, CPU_LR, GPU_LR

SCHEDULES = ("cosine", "step", "constant")
WARMUP_MODES = ("error80", "linear")


class TrainError(ExplorerError):
    """A run that cannot start: too many nets, a network that cannot be built, a bad setting."""


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainConfig:
    steps: int = 600  # optimiser steps; every net takes each one on the same batch
    batch_size: int = 64  # images per step (the paper: 128)
    lr: float = 0.1  # peak learning rate (the paper: 0.1)
    momentum: float = 0.9  # SGD momentum (the paper: 0.9)
    weight_decay: float = 1e-4  # L2 on every weight (the paper: 1e-4)
    schedule: str = "cosine"  # cosine: to zero after warm-up | step: ÷10 at 50% and 75% (the paper) | constant
    warmup_mode: str = "error80"  # error80: lr/10 until the net's training error is below 80 % (He et al. §4.2,
    # measured on the last 10 batches), then the schedule's rate | linear: from lr/10 over `warmup_steps`
    warmup_steps: int | None = None  # linear mode: steps of the ramp (None: 5% of the steps)
    warmup_depth: int = 44  # nets with at least this many weighted layers warm up (the paper warmed up ResNet-110)
    milestones: tuple[int, ...] = ()  # step schedule: divide by 10 at these steps (empty: at 50% and 75%)
    augment: bool = False  # 4-pixel zero padding + random crop + horizontal flip per image (the paper's CIFAR aug.)
    sync_bn: bool = False  # several processes on CUDA: SyncBatchNorm (batch statistics over every worker's shard)
    seed: int = 0  # weights, data order: the same seed, the same curves
    eval_every: int = 0  # held-out loss/accuracy every k steps (0: only in the final result)
    report_every: int | None = None  # steps per Update (None: 1 on CPU, 10 on CUDA to avoid a sync each step)
    amp: bool | None = None  # bf16 autocast (None: on CUDA only)
    channels_last: bool | None = None  # channels_last memory format (None: on CUDA only)
    eval_batch: int = 512  # images per forward pass when evaluating
    eval_limit: int | None = 10_000  # evaluate train accuracy on at most this many images (seeded subset)
    threads: int | None = None  # CPU: torch intra-op threads during the run (None: leave torch's setting).
    # Process-wide while the run iterates, restored after. 1 is slower on an idle 2-core machine
    # (about 1.3×) but far steadier when other processes compete for the cores.

    def validate(self) -> None:
        problems = []
        if not 1 <= self.steps <= MAX_STEPS:
            problems.append(f"steps must be between 1 and {MAX_STEPS:,}, got {self.steps}")
        if not 1 <= self.batch_size <= MAX_BATCH:
            problems.append(f"batch size must be between 1 and {MAX_BATCH:,}, got {self.batch_size}")
        if not (math.isfinite(self.lr) and 0 < self.lr <= MAX_LR):
            problems.append(f"learning rate must be a number in (0, {MAX_LR:g}], got {self.lr}")
        if not (math.isfinite(self.momentum) and 0 <= self.momentum < 1):
            problems.append(f"momentum must be in [0, 1), got {self.momentum}")
        if not (math.isfinite(self.weight_decay) and 0 <= self.weight_decay <= 1):
            problems.append(f"weight decay must be in [0, 1], got {self.weight_decay}")
        if self.schedule not in SCHEDULES:
            problems.append(f"unknown schedule {self.schedule!r}; use one of {', '.join(SCHEDULES)}")
        if self.warmup_mode not in WARMUP_MODES:
            problems.append(f"unknown warm-up {self.warmup_mode!r}; use one of {', '.join(WARMUP_MODES)}")
        if self.warmup_steps is not None and not 0 <= self.warmup_steps <= MAX_STEPS:
            problems.append(f"warm-up steps must be between 0 and {MAX_STEPS:,}, got {self.warmup_steps}")
        if any(not 1 <= m <= MAX_STEPS for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            problems.append(f"milestones must be increasing steps, got {list(self.milestones)}")
        if not 0 <= self.seed <= SEED_MAX:
            problems.append(f"seed must be between 0 and 2**64-1, got {self.seed}")
        if self.threads is not None and not 1 <= self.threads <= max_threads():
            problems.append(f"threads must be between 1 and {max_threads()} (this machine's cores), got {self.threads}")
        if self.eval_every < 0:
            problems.append(f"eval_every must be at least 0, got {self.eval_every}")
        if problems:
            raise TrainError("; ".join(problems))

    @property
    def warmup(self) -> int:
        return round(0.05 * self.steps) if self.warmup_steps is None else self.warmup_steps


def offset_seed(seed: int, k: int) -> int:
    """seed + k, wrapped into 0…2**64-1 (a seed near the top still gives a valid, different seed)."""
    return (int(seed) + k) % (SEED_MAX + 1)


@dataclass(frozen=True)
class Defaults:
    """What a run on this kind of device uses when the caller does not say."""

    input_size: tuple[int, int]  # CPU: smaller maps so four nets train in minutes; GPU: the paper's 32×32
    steps: int
    batch_size: int
    lr: float
    threads: int | None  # CPU intra-op threads during the run (None: torch's setting)
    note: str

    def text(self) -> str:
        """`note` in the language of the run that shows it."""
        h, w = self.input_size
        if self.threads is None and h >= 32:
            return _("GPU: full-size {size} inputs, batch {batch}, {steps} steps, bf16 autocast, channels_last",
                     size=f"{h}×{w}", batch=self.batch_size, steps=f"{self.steps:,}")
        return _("CPU: {size} inputs, batch {batch}, lr {lr}, {steps} steps", size=f"{h}×{w}", batch=self.batch_size,
                 lr=f"{self.lr:g}", steps=self.steps)


# Half the cores on a CPU: the tiny CIFAR nets gain little from more threads, and two threads that
# compete with another process for two cores can run ten times slower (OpenMP waits on the straggler).

# Measured on a 2-core CPU (benchmarks/RESULTS.md, "Training lab"): the four default nets at 16×16,
# batch 32, 800 steps, one thread: plain56's training loss ends far above plain20's. How long it takes depends
# on the server and its load: the app estimates it from this server's measured step times (training/estimate.py).
# lr 0.05 for batch 32 (the paper's 0.1 is for batch 128): at 0.1 ResNet-56 blew up between steps ~20 and ~100
# (loss above 4, the worst of the four) even with the paper's warm-up, which told a class the opposite story.
CPU_DEFAULTS = Defaults((16, 16), 800, 32, CPU_LR, CPU_THREADS, f"CPU: 16×16 inputs, batch 32, lr {CPU_LR:g}, 800 steps")
CUDA_DEFAULTS = Defaults((32, 32), 3000, 128, GPU_LR, None,
                         "GPU: full-size 32×32 inputs, batch 128, 3,000 steps, bf16 autocast, channels_last")


# The class-length version of the default run (issue 22: ≤ 3 minutes on this 2-core server, the effect still
# shown), measured here on 2026-12-07 at load 7.1–8.4 (four other jobs on the two cores): the four nets at 8×8
# (the digits' own resolution), 400 steps: 157 s from the start to the results; plain56's training loss 1.34 is
# 102× plain20's 0.0131 and resnet56's 0.0658 is 20× lower than plain56's. (At 8×8 and 800 steps: 225 s at
# load 4.7–6.8, 453× and 227×.)
CLASS_LENGTH: dict[str, Any] = {"input_size": 8, "steps": 400}
CLASS_LENGTH_SECONDS, CLASS_LENGTH_LOAD = 157, "7.1–8.4"  # as above
CLASS_LENGTH_MEASURED = f"{CLASS_LENGTH_SECONDS} s at load {CLASS_LENGTH_LOAD}"


def class_length_measured() -> str:
    """CLASS_LENGTH_MEASURED in the language of the run that shows it."""
    return _("{seconds} s at load {load}", seconds=CLASS_LENGTH_SECONDS, load=CLASS_LENGTH_LOAD)


def defaults_for(device: torch.device | str) -> Defaults:
    return CUDA_DEFAULTS if torch.device(device).type == "cuda" else CPU_DEFAULTS


def lr_at(step: int, config: TrainConfig, warmup: bool, warming: bool = True) -> float:
    """The learning rate for 0-based `step`: warm-up (if this net warms up), then the schedule.

    error80 warm-up: lr/10 times the schedule while `warming` (the caller says when the net's training
    error fell below 80 %); linear: from lr/10 to lr over the first `config.warmup` steps.
    """
    total, base = config.steps, config.lr
    linear = config.warmup_mode == "linear"
    w = config.warmup if (warmup and linear) else 0
    if w and step < w:
        return base * (0.1 + 0.9 * step / w)
    factor = 0.1 if (warmup and not linear and warming) else 1.0
    if config.schedule == "constant":
        return base * factor
    if config.schedule == "step":
        marks = config.milestones or (total // 2, (3 * total) // 4)
        return base * factor * 0.1 ** sum(1 for m in marks if step >= m)
    t = (step - w) / max(1, total - w)
    return base * factor * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def weighted_depth(spec: ArchSpec) -> int:
    """Conv and fully connected layers on the main path: 20 for resnet20/plain20, as in the paper's names."""
    from resnet_core.structure.trace import depth  # the one count of depth
    return depth(make_plan(spec))


# --------------------------------------------------------------------------------------------
# the experiments
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Experiment:
    name: str  # "degradation", "batchnorm"
    title: str
    nets: tuple[tuple[str, str], ...]  # (label, "preset" or "preset-nobn")
    what_to_see: str  # the sentence the page shows under the curves
    config: tuple[tuple[str, Any], ...] = ()  # TrainConfig fields this experiment sets unless the caller does


EXPERIMENTS: dict[str, Experiment] = {
    "degradation": Experiment(
        "degradation", N_("Degradation: deeper plain nets train worse, residual nets do not"),
        (("plain20", "plain20"), ("plain56", "plain56"), ("resnet20", "resnet20"), ("resnet56", "resnet56")),
        "plain56's training loss stays far above plain20's, although plain56 could copy plain20 and set its "
        "extra layers to the identity: the deeper plain net is harder to optimise. With shortcuts, resnet56 — "
        "just as deep — trains almost as well as resnet20 (in these short runs it is a little behind; in the "
        "paper's 64,000 iterations it ends ahead)."),
    "batchnorm": Experiment(
        "batchnorm", N_("Batch normalisation on and off"),
        (("resnet20", "resnet20"), ("resnet20 no BN", "resnet20-nobn"),
         ("plain20", "plain20"), ("plain20 no BN", "plain20-nobn")),
        f"The same nets from the same seed on the same batches, with and without batch norm, at lr {BATCHNORM_LR:g}. "
        "plain20 without batch norm learns more slowly than with it. resnet20 without batch norm diverges "
        "within a few steps: each block adds F(x) to x, so without normalisation the activations roughly "
        "double block after block (at lr 0.1, plain20 without it does not "
        "learn at all).",
        config=(("lr", BATCHNORM_LR),)),
}


def experiment_specs(name: str = "degradation") -> list[tuple[str, ArchSpec]]:
    """(label, spec) for each net of a named experiment."""
    try:
        exp = EXPERIMENTS[name]
    except KeyError:
        raise TrainError(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}") from None
    return [(label, resolve_net(net)) for label, net in exp.nets]


def resolve_net(net: str | ArchSpec, no_bn: bool = False) -> ArchSpec:
    """A spec from a preset name (with an optional '-nobn' suffix), a spec file or text, or a spec."""
    if isinstance(net, ArchSpec):
        spec = net
    else:
        text = net.strip()
        if text.endswith("-nobn") and is_preset(text[:-5]):
            spec, no_bn = get_preset(text[:-5]), True
        else:
            try:
                spec = load_spec(text)
            except SpecError as e:
                raise TrainError(str(e)) from None
    if no_bn and spec.norm != "none":
        spec = spec.replace(norm="none", name=spec.name + "-nobn")
    return spec


def unique_labels(labels: Sequence[str]) -> list[str]:
    seen: collections.Counter = collections.Counter()
    out = []
    for lab in labels:
        seen[lab] += 1
        out.append(lab if seen[lab] == 1 else f"{lab} #{seen[lab]}")
    return out
