"""Short training runs side by side: the degradation problem and batch normalisation, live.

Up to four networks train on the same batches in the same order from the same seed, so their curves
compare like with like. SGD with momentum and weight decay, a learning-rate schedule (warm-up, then
cosine or the paper's steps), and warm-up for very deep nets as in He et al. (2015, §4.2).

    run = make_run(["plain20", "plain56", "resnet20", "resnet56"], data="digits")
    for update in run.iter(should_stop=stop_event):   # one Update per step (every few steps on a GPU)
        update.records                               # StepRecords: step, net, loss, accuracy, lr, time_s
        update.progress                              # Progress: step/total, steps/s, seconds left
    result = run.result()                            # final table + trained models; works after a stop too

A run can be stopped at any step boundary (`run.stop()`, a threading.Event, or any callable passed as
`should_stop`); what the networks learned so far is kept and `run.result()` evaluates it. The run
takes the device's slot (`device.device_slot`) for each step, so other sessions' passes interleave, and
checks memory before it starts.
The library never prints: progress goes to the caller through the updates.
"""

from __future__ import annotations

import collections
import csv
import io
import json
import math
import os
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import device as dev
from .build import build_model
from .data import Dataset, load_data
from .plan import plan as make_plan
from .presets import get_preset, is_preset
from .spec import ArchSpec, load_spec, spec_from_dict
from .trace import trace

MAX_NETS = 4
SCHEDULES = ("cosine", "step", "constant")


class TrainError(ValueError):
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
    warmup_steps: int | None = None  # linear warm-up from lr/10 (None: 5% of the steps) ...
    warmup_depth: int = 44  # ... for nets with at least this many weighted layers (the paper warmed up ResNet-110)
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
        if self.steps < 1:
            problems.append(f"steps must be at least 1, got {self.steps}")
        if self.batch_size < 1:
            problems.append(f"batch size must be at least 1, got {self.batch_size}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            problems.append(f"learning rate must be a positive number, got {self.lr}")
        if not 0 <= self.momentum < 1:
            problems.append(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            problems.append(f"weight decay must be at least 0, got {self.weight_decay}")
        if self.schedule not in SCHEDULES:
            problems.append(f"unknown schedule {self.schedule!r}; use one of {', '.join(SCHEDULES)}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            problems.append(f"warm-up steps must be at least 0, got {self.warmup_steps}")
        if self.threads is not None and self.threads < 1:
            problems.append(f"threads must be at least 1, got {self.threads}")
        if self.eval_every < 0:
            problems.append(f"eval_every must be at least 0, got {self.eval_every}")
        if problems:
            raise TrainError("; ".join(problems))

    @property
    def warmup(self) -> int:
        return round(0.05 * self.steps) if self.warmup_steps is None else self.warmup_steps


@dataclass(frozen=True)
class Defaults:
    """What a run on this kind of device uses when the caller does not say."""

    input_size: tuple[int, int]  # CPU: smaller maps so four nets train in minutes; GPU: the paper's 32×32
    steps: int
    batch_size: int
    lr: float
    threads: int | None  # CPU intra-op threads during the run (None: torch's setting)
    note: str


# Half the cores on a CPU: the tiny CIFAR nets gain little from more threads, and two threads that
# compete with another process for two cores can run ten times slower (OpenMP waits on the straggler).
_CPU_THREADS = max(1, (os.cpu_count() or 2) // 2)

# Measured on a 2-core CPU (benchmarks/RESULTS.md, "Training lab"): the four default nets at 16×16,
# batch 32, 800 steps, one thread, finish in under 2 minutes; plain56's training loss ends far above plain20's.
CPU_DEFAULTS = Defaults((16, 16), 800, 32, 0.1, _CPU_THREADS, "CPU: 16×16 inputs, batch 32, 800 steps")
CUDA_DEFAULTS = Defaults((32, 32), 3000, 128, 0.1, None,
                         "GPU: full-size 32×32 inputs, batch 128, 3,000 steps, bf16 autocast, channels_last")


def defaults_for(device: torch.device | str) -> Defaults:
    return CUDA_DEFAULTS if torch.device(device).type == "cuda" else CPU_DEFAULTS


def lr_at(step: int, config: TrainConfig, warmup: bool) -> float:
    """The learning rate for 0-based `step`: warm-up (if this net warms up), then the schedule."""
    total, base = config.steps, config.lr
    w = config.warmup if warmup else 0
    if w and step < w:
        return base * (0.1 + 0.9 * step / w)
    if config.schedule == "constant":
        return base
    if config.schedule == "step":
        return base * (0.1 if step >= total // 2 else 1.0) * (0.1 if step >= (3 * total) // 4 else 1.0)
    t = (step - w) / max(1, total - w)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def weighted_depth(spec: ArchSpec) -> int:
    """Conv and fully connected layers on the main path: 20 for resnet20/plain20, as in the paper's names."""
    p = make_plan(spec)
    return sum(1 for lay in p.layers if lay.op in ("conv", "linear") and lay.part != "shortcut")


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
        "degradation", "Degradation: deeper plain nets train worse, residual nets do not",
        (("plain20", "plain20"), ("plain56", "plain56"), ("resnet20", "resnet20"), ("resnet56", "resnet56")),
        "plain56's training loss stays far above plain20's, although plain56 could copy plain20 and set its "
        "extra layers to the identity: the deeper plain net is harder to optimise. With shortcuts, resnet56 — "
        "just as deep — trains almost as well as resnet20 (in these short runs it is a little behind; in the "
        "paper's 64,000 iterations it ends ahead)."),
    "batchnorm": Experiment(
        "batchnorm", "Batch normalisation on and off",
        (("resnet20", "resnet20"), ("resnet20 no BN", "resnet20-nobn"),
         ("plain20", "plain20"), ("plain20 no BN", "plain20-nobn")),
        "The same nets from the same seed on the same batches, with and without batch norm, at lr 0.02. "
        "plain20 without batch norm learns more slowly than with it. resnet20 without batch norm diverges "
        "within a few steps: each block adds F(x) to x, so without normalisation the activations roughly "
        "double block after block (at the degradation experiment's lr 0.1, plain20 without it does not "
        "learn at all).",
        config=(("lr", 0.02),)),
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
            from .spec import SpecError
            try:
                spec = load_spec(text)
            except SpecError as e:
                raise TrainError(str(e)) from None
    if no_bn and spec.norm != "none":
        spec = spec.replace(norm="none", name=spec.name + "-nobn")
    return spec


def _unique_labels(labels: Sequence[str]) -> list[str]:
    seen: collections.Counter = collections.Counter()
    out = []
    for lab in labels:
        seen[lab] += 1
        out.append(lab if seen[lab] == 1 else f"{lab} #{seen[lab]}")
    return out


# --------------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StepRecord:
    step: int  # 1-based step just taken
    net: str  # the net's label
    loss: float  # training loss on this step's batch (train mode, before the update)
    accuracy: float  # fraction of this batch classified correctly
    lr: float  # the learning rate this step used
    time_s: float  # seconds since the run started, when the step ended


@dataclass(frozen=True)
class EvalRecord:
    step: int
    net: str
    split: str  # "heldout"
    loss: float
    accuracy: float


@dataclass(frozen=True)
class Progress:
    step: int  # steps done
    total: int  # steps asked for
    elapsed_s: float  # wall seconds since the run started
    steps_per_s: float  # over the last few dozen steps
    eta_s: float  # estimated seconds left
    stopped: bool = False  # stopped before `total`
    done: bool = False  # no more steps will come

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 1.0

    def text(self) -> str:
        left = f"{self.eta_s:.0f} s left" if not self.done else ("stopped" if self.stopped else "done")
        return f"step {self.step}/{self.total} · {self.steps_per_s:.1f} steps/s · {left}"


@dataclass(frozen=True)
class Update:
    """What one iteration of `TrainingRun.iter` yields."""

    step: int  # steps done
    records: tuple[StepRecord, ...]  # the new step records since the last update (every net, in order)
    evals: tuple[EvalRecord, ...]  # held-out evaluations made in this update (eval_every)
    progress: Progress
    diverged: tuple[str, ...] = ()  # nets whose loss became non-finite in this update (they stop training)


@dataclass(frozen=True)
class NetResult:
    net: str  # label
    spec: ArchSpec  # the spec trained: input size, channels and classes fitted to the data
    depth: int  # weighted layers
    params: int
    steps: int  # steps this net trained (fewer if stopped or diverged)
    final_loss: float  # mean training loss over the last `window` steps (the curve's end)
    train_loss: float  # loss on the train split, eval mode (running batch-norm statistics)
    train_accuracy: float
    heldout_loss: float
    heldout_accuracy: float
    time_s: float  # seconds of this net's own training steps
    warmup: bool  # whether this net warmed up
    diverged_at: int | None = None  # step at which its loss became non-finite


@dataclass
class TrainResult:
    nets: list[NetResult]
    records: list[StepRecord]
    evals: list[EvalRecord]
    config: TrainConfig
    data: str  # Dataset.describe()
    device: str  # device.describe()
    steps_done: int
    stopped: bool
    wall_s: float
    models: dict[str, nn.Module] = field(default_factory=dict, repr=False)  # the live trained models

    def net(self, label: str) -> NetResult:
        for r in self.nets:
            if r.net == label:
                return r
        raise KeyError(f"no net {label!r} in this run; it has {', '.join(r.net for r in self.nets)}")

    def state_dict(self, label: str) -> dict[str, torch.Tensor]:
        """The trained weights (torchvision-format keys) as CPU tensors, a copy."""
        self.net(label)
        return {k: v.detach().to("cpu", copy=True) for k, v in self.models[label].state_dict().items()}

    def trained_model(self, label: str, device: torch.device | str = "cpu") -> nn.Module:
        """A private copy of the trained model in eval mode, for the live lab (hooks may go on it)."""
        spec = self.net(label).spec
        model = build_model(spec)
        model.load_state_dict(self.state_dict(label))
        return model.to(device).eval()

    def save_checkpoint(self, label: str, path: str | Path) -> tuple[Path, Path]:
        r = self.net(label)
        meta = {"net": label, "steps": r.steps, "final_loss": r.final_loss, "train_accuracy": r.train_accuracy,
                "heldout_accuracy": r.heldout_accuracy, "data": self.data, "config": asdict(self.config)}
        return save_checkpoint(path, self.state_dict(label), r.spec, meta)

    def table_rows(self) -> list[dict[str, Any]]:
        return [{"net": r.net, "depth": r.depth, "params": r.params, "steps": r.steps,
                 "final_loss": r.final_loss, "train_loss": r.train_loss, "train_accuracy": r.train_accuracy,
                 "heldout_loss": r.heldout_loss, "heldout_accuracy": r.heldout_accuracy, "time_s": r.time_s,
                 "warmup": r.warmup, "diverged_at": r.diverged_at} for r in self.nets]

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data, "device": self.device, "steps_done": self.steps_done,
                "steps": self.config.steps, "stopped": self.stopped, "wall_s": self.wall_s,
                "config": asdict(self.config), "nets": [_json_safe(r) for r in self.table_rows()],
                "specs": {r.net: r.spec.to_dict() for r in self.nets}}


def _json_safe(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


CURVE_COLUMNS = ["step", "net", "loss", "accuracy", "lr", "time_s"]
RESULT_COLUMNS = ["net", "depth", "params", "steps", "final_loss", "train_loss", "train_accuracy", "heldout_loss",
                  "heldout_accuracy", "time_s", "warmup", "diverged_at"]


def curves_csv(records: Sequence[StepRecord], evals: Sequence[EvalRecord] = ()) -> str:
    """Training curves as CSV: one row per step and net; held-out evaluations as rows with split=heldout."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CURVE_COLUMNS + ["split"])
    for r in records:
        w.writerow([r.step, r.net, f"{r.loss:.6g}", f"{r.accuracy:.6g}", f"{r.lr:.6g}", f"{r.time_s:.4f}", "train"])
    for e in evals:
        w.writerow([e.step, e.net, f"{e.loss:.6g}", f"{e.accuracy:.6g}", "", "", e.split])
    return buf.getvalue()


def results_csv(result: TrainResult) -> str:
    """The final table as CSV, one row per net."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, RESULT_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in result.table_rows():
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else ("" if v is None else v)) for k, v in row.items()})
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------

def save_checkpoint(path: str | Path, model_or_state: nn.Module | Mapping[str, torch.Tensor], spec: ArchSpec,
                    meta: Mapping[str, Any] | None = None) -> tuple[Path, Path]:
    """Write the weights as a bare torchvision-format state_dict (`torch.save`) at `path` and the spec
    (with `meta`) beside it as `path` with the suffix .json. Returns both paths."""
    p = Path(path)
    if p.suffix not in (".pt", ".pth"):
        p = p.with_name(p.name + ".pt")
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    state = {k: v.detach().to("cpu") for k, v in state.items()}
    torch.save(state, p)
    side = p.with_suffix(".json")
    side.write_text(json.dumps({"spec": spec.to_dict(), "meta": dict(meta or {})}, indent=2, default=str),
                    encoding="utf-8")
    return p, side


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, ArchSpec, dict]:
    """The model (eval mode), its spec and the saved meta, from save_checkpoint's files."""
    p = Path(path)
    side = p.with_suffix(".json")
    if not p.is_file():
        raise TrainError(f"no checkpoint at {p}")
    if not side.is_file():
        raise TrainError(f"the checkpoint {p} has no spec beside it ({side.name})")
    try:
        info = json.loads(side.read_text(encoding="utf-8"))
        spec = spec_from_dict(info["spec"], source=str(side))
        state = torch.load(p, map_location="cpu", weights_only=True)
    except (OSError, ValueError, KeyError, RuntimeError, EOFError) as e:
        raise TrainError(f"cannot read the checkpoint {p}: {e}") from None
    model = build_model(spec)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise TrainError(f"the weights in {p} do not fit its spec: {str(e).splitlines()[0]}") from None
    return model.to(device).eval(), spec, dict(info.get("meta", {}))


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------

def _stop_fn(should_stop: Callable[[], bool] | threading.Event | None) -> Callable[[], bool]:
    if should_stop is None:
        return lambda: False
    if isinstance(should_stop, threading.Event):
        return should_stop.is_set
    return should_stop


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512, amp: bool = False,
             channels_last: bool = False) -> tuple[float, float]:
    """Mean loss and accuracy in eval mode; the model's mode is restored."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    try:
        for i in range(0, len(y), batch):
            xb, yb = x[i:i + batch], y[i:i + batch]
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with _autocast(xb.device, amp):
                out = model(xb)
            total_loss += float(F.cross_entropy(out.float(), yb, reduction="sum"))
            correct += int((out.argmax(1) == yb).sum())
    finally:
        model.train(was_training)
    n = max(1, len(y))
    return total_loss / n, correct / n


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    if n is None or n == torch.get_num_threads():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _autocast(device: torch.device, amp: bool):
    if amp:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


class TrainingRun:
    """Up to four nets, one data set, one batch order. Build, then `iter()` (or `run()`), then `result()`."""

    def __init__(self, nets: Sequence[str | ArchSpec | tuple[str, str | ArchSpec]], data: Dataset,
                 config: TrainConfig = TrainConfig(), device: torch.device | str = "auto"):
        config.validate()
        if not nets:
            raise TrainError("choose at least one network")
        if len(nets) > MAX_NETS:
            raise TrainError(f"at most {MAX_NETS} networks train side by side; got {len(nets)}")
        self.device = dev.pick_device(device) if isinstance(device, str) else torch.device(device)
        cuda = self.device.type == "cuda"
        self.amp = cuda if config.amp is None else bool(config.amp)
        self.channels_last = cuda if config.channels_last is None else bool(config.channels_last)
        report = config.report_every if config.report_every is not None else (10 if cuda else 1)
        self.config = replace(config, batch_size=min(config.batch_size, data.n_train), report_every=max(1, report))
        self.data = data
        c, h, w = data.input_shape

        labels, specs = [], []
        for item in nets:
            label, net = item if isinstance(item, tuple) else (None, item)
            spec = resolve_net(net)
            spec = spec.replace(in_channels=c, input_size=(h, w), num_classes=data.num_classes)
            labels.append(label or spec.name)
            specs.append(spec)
        self.labels = _unique_labels(labels)
        self.specs = dict(zip(self.labels, specs))

        traces = {}
        for label, spec in self.specs.items():
            t = trace(spec)
            if t.errors:
                raise TrainError(f"{label} cannot take {c}×{h}×{w} inputs: {t.errors[0]}")
            traces[label] = t
        dtype_bytes = 2 if self.amp else 4
        need = sum(dev.estimate_pass(t, self.config.batch_size, backward=True, dtype_bytes=dtype_bytes,
                                     optimizer=True).total for t in traces.values())
        need += data.nbytes
        dev.check_fits(need, self.device, what=f"training {len(specs)} nets at batch {self.config.batch_size}")
        self.memory_estimate = need

        self.depth = {label: weighted_depth(spec) for label, spec in self.specs.items()}
        self.params = {label: traces[label].total_params for label in self.labels}
        self.warms = {label: self.depth[label] >= self.config.warmup_depth and self.config.warmup > 0
                      for label in self.labels}
        self.models: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        for label, spec in self.specs.items():
            model = build_model(spec, seed=self.config.seed).to(self.device, memory_format=fmt).train()
            self.models[label] = model
            self.optimizers[label] = torch.optim.SGD(model.parameters(), lr=self.config.lr,
                                                     momentum=self.config.momentum,
                                                     weight_decay=self.config.weight_decay)
        self.x_train = data.x_train.to(self.device)
        self.y_train = data.y_train.to(self.device)
        self.x_test = data.x_test.to(self.device)
        self.y_test = data.y_test.to(self.device)
        self._gen = torch.Generator().manual_seed(self.config.seed)
        self._order = torch.empty(0, dtype=torch.long)
        self._pos = 0

        self.step = 0
        self.records: list[StepRecord] = []
        self.evals: list[EvalRecord] = []
        self.net_time = {label: 0.0 for label in self.labels}
        self.net_steps = {label: 0 for label in self.labels}
        self.diverged: dict[str, int] = {}
        self.stopped = False
        self.wall_s = 0.0
        self._stop = threading.Event()

    def describe_device(self) -> str:
        """'CPU · 1 thread' (the threads the run trains with) or 'CUDA · H100 (… free) · bf16 autocast + channels_last'."""
        if self.device.type == "cpu":
            n = self.config.threads or torch.get_num_threads()
            return f"CPU · {n} thread{'s' if n != 1 else ''}"
        extras = [x for x, on in (("bf16 autocast", self.amp), ("channels_last", self.channels_last)) if on]
        return " · ".join([dev.describe(self.device), *([" + ".join(extras)] if extras else [])])

    # ---- control -------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the run to stop at the next step boundary (thread-safe)."""
        self._stop.set()

    @property
    def done(self) -> bool:
        return self.step >= self.config.steps or self.stopped or len(self.diverged) == len(self.labels)

    def batch_indices(self) -> torch.Tensor:
        """The next batch's indices: seeded permutations of the train split, the last partial batch dropped."""
        b = self.config.batch_size
        if self._pos + b > len(self._order):
            self._order = torch.randperm(self.data.n_train, generator=self._gen)
            self._pos = 0
        idx = self._order[self._pos:self._pos + b]
        self._pos += b
        return idx

    # ---- the loop ------------------------------------------------------------------------
    def iter(self, should_stop: Callable[[], bool] | threading.Event | None = None) -> Iterator[Update]:
        """Train the remaining steps, yielding an Update every `report_every` steps and a last one at the end.

        Takes the device slot for each step (BusyError if another session holds it too long). Stopping
        (`stop()`, or `should_stop()` returning True) ends it at a step boundary with the weights kept;
        so does closing the generator.
        """
        stop = _stop_fn(should_stop)
        cfg = self.config
        if self.stopped:  # a stopped run resumes where it stopped when iterated again
            self.stopped = False
            self._stop.clear()
        cuda = self.device.type == "cuda"
        cl = torch.channels_last if self.channels_last else torch.contiguous_format
        # the device slot is taken per step (and per evaluation): other sessions' passes interleave
        with _threads(cfg.threads if self.device.type == "cpu" else None):
            t0 = time.perf_counter() - self.wall_s
            recent: collections.deque = collections.deque(maxlen=50)
            recent.append((self.step, time.perf_counter()))
            pending: list[tuple] = []  # (step, label, loss, correct, lr, time_s, cuda events): read in _update
            final_evals: list[EvalRecord] = []
            try:
                while not self.done:
                    if stop() or self._stop.is_set():
                        self.stopped = True
                        break
                    with dev.device_slot(self.device):
                        idx = self.batch_indices().to(self.device)
                        xb = self.x_train.index_select(0, idx).contiguous(memory_format=cl)  # (B, C, H, W)
                        yb = self.y_train.index_select(0, idx)  # (B,)
                        s = self.step
                        for label in self.labels:
                            if label in self.diverged:
                                continue
                            lr = lr_at(s, cfg, self.warms[label])
                            events = None
                            if cuda:  # GPU work is asynchronous: time it with events, read them at the next update
                                events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                                events[0].record()
                            t_net = time.perf_counter()
                            loss, correct = self._train_step(label, xb, yb, lr)
                            if cuda:
                                events[1].record()
                            else:
                                self.net_time[label] += time.perf_counter() - t_net
                            pending.append((s + 1, label, loss, correct, lr, time.perf_counter() - t0, events))
                        self.step += 1
                        for label in self.labels:
                            if label not in self.diverged:
                                self.net_steps[label] += 1
                        recent.append((self.step, time.perf_counter()))
                        evals = self._maybe_eval()
                    if (self.step % cfg.report_every == 0 or evals) and not self.done:
                        yield self._update(pending, evals, recent, t0)
                        pending = []
                    elif evals:
                        final_evals = evals
            finally:
                self.wall_s = time.perf_counter() - t0
            yield self._update(pending, final_evals, recent, t0, final=True)

    def _train_step(self, label: str, xb: torch.Tensor, yb: torch.Tensor, lr: float):
        model, opt = self.models[label], self.optimizers[label]
        for g in opt.param_groups:
            g["lr"] = lr
        with _autocast(self.device, self.amp):
            out = model(xb)  # (B, classes)
            loss = F.cross_entropy(out, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach(), (out.detach().argmax(1) == yb).sum()

    def _maybe_eval(self) -> list[EvalRecord]:
        k = self.config.eval_every
        if not k or self.step % k:
            return []
        out = []
        for label in self.labels:
            if label in self.diverged:
                continue
            loss, acc = evaluate(self.models[label], self.x_test, self.y_test, self.config.eval_batch, self.amp,
                                 self.channels_last)
            out.append(EvalRecord(self.step, label, "heldout", loss, acc))
        self.evals.extend(out)
        return out

    def _update(self, pending, evals, recent, t0, final: bool = False) -> Update:
        b = self.config.batch_size
        records, newly = [], []
        if pending:
            losses = torch.stack([p[2].float() for p in pending]).cpu().tolist()  # one sync for the lot
            corrects = torch.stack([p[3] for p in pending]).cpu().tolist()
            for (step, label, _, _, lr, t, events), loss, correct in zip(pending, losses, corrects):
                if events is not None:
                    events[1].synchronize()
                    self.net_time[label] += events[0].elapsed_time(events[1]) / 1000
                if label in self.diverged:
                    continue
                if not math.isfinite(loss):
                    self.diverged[label] = step
                    self.net_steps[label] = step - 1
                    newly.append(label)
                    continue
                records.append(StepRecord(step, label, loss, correct / b, lr, t))
        self.records.extend(records)
        now = time.perf_counter()
        (s0, t_first), (s1, t_last) = recent[0], recent[-1]
        rate = (s1 - s0) / (t_last - t_first) if t_last > t_first and s1 > s0 else 0.0
        left = self.config.steps - self.step
        done = final or self.done
        eta = 0.0 if done else (left / rate if rate > 0 else float("inf"))
        progress = Progress(self.step, self.config.steps, now - t0, rate, eta, self.stopped, done)
        return Update(self.step, tuple(records), tuple(evals), progress, tuple(newly))

    def run(self, should_stop: Callable[[], bool] | threading.Event | None = None,
            on_update: Callable[[Update], None] | None = None) -> TrainResult:
        """Iterate to the end (or the stop) calling `on_update` with each Update; then the result."""
        for update in self.iter(should_stop):
            if on_update is not None:
                on_update(update)
        return self.result()

    # ---- results -------------------------------------------------------------------------
    def final_loss(self, label: str, window: int | None = None) -> float:
        """Mean training loss over the last `window` steps (default: the last 10%, 5 to 50 steps); NaN
        for a net that diverged."""
        losses = [r.loss for r in self.records if r.net == label]
        if not losses or label in self.diverged:
            return float("nan")
        w = window or max(5, min(50, self.config.steps // 10))
        tail = losses[-w:]
        return sum(tail) / len(tail)

    def result(self) -> TrainResult:
        """Evaluate every net as it is now (train and held-out splits, eval mode); the models stay live."""
        cfg = self.config
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        n = self.data.n_train
        sub = torch.randperm(n, generator=gen)[:cfg.eval_limit] if cfg.eval_limit and n > cfg.eval_limit \
            else torch.arange(n)
        x_tr = self.x_train.index_select(0, sub.to(self.device))
        y_tr = self.y_train.index_select(0, sub.to(self.device))
        x_te, y_te = self.x_test, self.y_test
        nets = []
        with _threads(cfg.threads if self.device.type == "cpu" else None):
            for label in self.labels:
                nets.append(self._net_result(label, x_tr, y_tr, x_te, y_te))
        return TrainResult(nets, list(self.records), list(self.evals), cfg, self.data.describe(),
                           self.describe_device(), self.step, self.stopped, self.wall_s, dict(self.models))

    def _net_result(self, label, x_tr, y_tr, x_te, y_te) -> NetResult:
        cfg = self.config
        model = self.models[label]
        if label in self.diverged:
            tr = te = (float("nan"), float("nan"))
        else:
            tr = evaluate(model, x_tr, y_tr, cfg.eval_batch, self.amp, self.channels_last)
            te = evaluate(model, x_te, y_te, cfg.eval_batch, self.amp, self.channels_last)
        return NetResult(label, self.specs[label], self.depth[label], self.params[label],
                         self.net_steps[label], self.final_loss(label), tr[0], tr[1], te[0], te[1],
                         self.net_time[label], self.warms[label], self.diverged.get(label))


# --------------------------------------------------------------------------------------------
# one call for the page and the CLI
# --------------------------------------------------------------------------------------------

def make_run(nets: Sequence[str | ArchSpec | tuple[str, str | ArchSpec]] | str = "degradation",
             data: str | Dataset = "digits", *, steps: int | None = None, batch_size: int | None = None,
             input_size: int | tuple[int, int] | None = None, seed: int = 0, no_bn: bool = False,
             device: str | torch.device = "auto", **config: Any) -> TrainingRun:
    """A ready run with this device's defaults for what is not given.

    `nets`: an experiment name ("degradation", "batchnorm") or up to four preset names / specs /
    (label, net) pairs. `data`: "digits", "synthetic", "cifar:PATH" or a prepared Dataset.
    `no_bn` trains every net without batch norm. Extra keywords go to TrainConfig.
    Raises TrainError, DataError (data.py), DeviceError or MemoryGuardError (device.py), each with a message.
    """
    d = dev.pick_device(device) if isinstance(device, str) else torch.device(device)
    defaults = defaults_for(d)
    if isinstance(nets, str):
        items: list = list(experiment_specs(nets)) if nets in EXPERIMENTS else [nets]
        for key, value in EXPERIMENTS[nets].config if nets in EXPERIMENTS else ():
            config.setdefault(key, value)
    else:
        items = list(nets)
    if len(items) > MAX_NETS:
        raise TrainError(f"at most {MAX_NETS} networks train side by side; got {len(items)}")
    pairs = [it if isinstance(it, tuple) else (None, it) for it in items]
    if not pairs:
        raise TrainError("choose at least one network")
    if no_bn:
        relabel = []
        for label, net in pairs:
            spec = resolve_net(net)
            if spec.norm != "none" and label is not None:
                label += " no BN"
            relabel.append((label, resolve_net(spec, no_bn=True)))
        pairs = relabel
    first = pairs[0][1]
    in_channels = resolve_net(first).in_channels
    size = defaults.input_size if input_size is None else (
        (input_size, input_size) if isinstance(input_size, int) else tuple(input_size))
    if isinstance(data, Dataset):
        dataset = data
    else:
        options = {}
        if data.strip().lower().startswith(("cifar:", "cifar10:")) and d.type != "cuda":
            options = {"max_train": 10_000}  # a CPU run sees a seeded fifth of CIFAR-10's train split
        dataset = load_data(data, size, in_channels, seed=seed, **options)
    config.setdefault("lr", defaults.lr)
    config.setdefault("threads", defaults.threads)
    cfg = TrainConfig(steps=defaults.steps if steps is None else steps,
                      batch_size=defaults.batch_size if batch_size is None else batch_size, seed=seed, **config)
    return TrainingRun(pairs, dataset, cfg, d)
