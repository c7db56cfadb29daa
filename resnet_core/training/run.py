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

Several processes (torchrun, see distributed.py): pass `world=init_worker(...)`. Each net is wrapped in
DistributedDataParallel; `batch_size` is per worker and the global batch of every step is batch × N,
taken from the same seeded order on every rank (rank r trains on its r-th slice); losses and accuracies
are averaged over the ranks, so every rank sees the same records, stops at the same step and warms up
alike; evaluation is sharded over the ranks and summed.
"""


from __future__ import annotations

import collections
import contextlib
import math
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from resnet_core import device as dev
from resnet_core.structure.build import build_model
from resnet_core.structure.spec import ArchSpec
from resnet_core.structure.trace import trace
from resnet_core.training.config import (
    EXPERIMENTS,
    MAX_NETS,
    TrainConfig,
    TrainError,
    defaults_for,
    experiment_specs,
    lr_at,
    offset_seed,
    resolve_net,
    unique_labels,
    weighted_depth,
)
from resnet_core.training.data import Dataset, load_data
from resnet_core.training.memory import book_training, train_bytes
from resnet_core.training.ops import EpochOrder, augment_batch, autocast_context, evaluate, evaluate_sums
from resnet_core.training.results import EvalRecord, NetResult, StepRecord, TrainProgress, TrainResult, Update

# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------

def _stop_fn(should_stop: Callable[[], bool] | threading.Event | None) -> Callable[[], bool]:
    if should_stop is None:
        return lambda: False
    if isinstance(should_stop, threading.Event):
        return should_stop.is_set
    return should_stop


class TrainingRun:
    """Up to four nets, one data set, one batch order. Build, then `iter()` (or `run()`), then `result()`."""

    def __init__(self, nets: Sequence[str | ArchSpec | tuple[str, str | ArchSpec]], data: Dataset,
                 config: TrainConfig = TrainConfig(), device: torch.device | str = "auto", world=None):
        config.validate()
        self.world = world  # distributed.World, or None for one process
        self.nworld = world.size if world is not None else 1
        self.rank = world.rank if world is not None else 0
        if world is not None:
            device = world.device
        if not nets:
            raise TrainError("choose at least one network")
        if len(nets) > MAX_NETS:
            raise TrainError(f"at most {MAX_NETS} networks train side by side; got {len(nets)}")
        self.device = dev.pick_device(device) if isinstance(device, str) else torch.device(device)
        cuda = self.device.type == "cuda"
        self.amp = cuda if config.amp is None else bool(config.amp)
        self.channels_last = cuda if config.channels_last is None else bool(config.channels_last)
        report = config.report_every if config.report_every is not None else (10 if cuda else 1)
        per_rank = min(config.batch_size, max(1, data.n_train // self.nworld))
        self.config = replace(config, batch_size=per_rank, report_every=max(1, report))
        self.global_batch = per_rank * self.nworld  # the images of one step, over every worker
        self.data = data
        c, h, w = data.input_shape

        labels, specs = [], []
        for item in nets:
            label, net = item if isinstance(item, tuple) else (None, item)
            spec = resolve_net(net)
            spec = spec.replace(in_channels=c, input_size=(h, w), num_classes=data.num_classes)
            labels.append(label or spec.name)
            specs.append(spec)
        self.labels = unique_labels(labels)
        self.specs = dict(zip(self.labels, specs, strict=True))

        traces = {}
        for label, spec in self.specs.items():
            t = trace(spec)
            if t.errors:
                raise TrainError(f"{label} cannot take {c}×{h}×{w} inputs: {t.errors[0]}")
            traces[label] = t
        # the memory is booked (device.reserve, under RESNET_EXPLORER_MEMORY_BUDGET) before anything is allocated
        self.memory_estimate = train_bytes(traces.values(), self.config.batch_size, self.amp, data.nbytes)
        self._booking = book_training(traces.values(), self.config.batch_size, self.amp, data.nbytes,
                                      self.device, world)
        weakref.finalize(self, self._booking.close)

        self.depth = {label: weighted_depth(spec) for label, spec in self.specs.items()}
        self.params = {label: traces[label].total_params for label in self.labels}
        linear = self.config.warmup_mode == "linear"
        self.warms = {label: self.depth[label] >= self.config.warmup_depth and (self.config.warmup > 0 or not linear)
                      for label in self.labels}
        self.warming = {label: self.warms[label] and not linear for label in self.labels}  # error80: until < 80 %
        self.warmup_until: dict[str, int] = {}  # error80: the step at which each net left its warm-up
        self._recent_acc: dict[str, collections.deque] = {label: collections.deque(maxlen=10) for label in self.labels}
        self.models: dict[str, nn.Module] = {}  # the plain modules (torchvision state_dict keys)
        self._train_models: dict[str, nn.Module] = {}  # what the steps call: the module, or its DDP wrapper
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.sync_bn = bool(config.sync_bn and world is not None and self.device.type == "cuda")
        for label, spec in self.specs.items():
            # Module.to takes memory_format (torch's stub leaves it out of its overloads)
            model = build_model(spec, seed=self.config.seed).to(self.device, memory_format=fmt)  # type: ignore[call-overload]
            model.train()
            if self.sync_bn:
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            self.models[label] = model
            if world is not None:
                from torch.nn.parallel import DistributedDataParallel as DDP
                ids = [self.device.index] if self.device.type == "cuda" else None
                self._train_models[label] = DDP(model, device_ids=ids)
            else:
                self._train_models[label] = model
            self.optimizers[label] = torch.optim.SGD(model.parameters(), lr=self.config.lr,
                                                     momentum=self.config.momentum,
                                                     weight_decay=self.config.weight_decay)
        self.x_train = data.x_train.to(self.device)
        self.y_train = data.y_train.to(self.device)
        self.x_test = data.x_test.to(self.device)
        self.y_test = data.y_test.to(self.device)
        # the data order: the same on every rank; the augmentation: seeded per rank
        self.order = EpochOrder(data.n_train, per_rank, self.config.seed, self.nworld, self.rank)
        self._aug_gen = torch.Generator().manual_seed(offset_seed(self.config.seed, 7919 + self.rank))

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
            out = f"CPU · {n} thread{'s' if n != 1 else ''}"
        else:
            extras = [x for x, on in (("bf16 autocast", self.amp), ("channels_last", self.channels_last)) if on]
            out = " · ".join([dev.describe(self.device), *([" + ".join(extras)] if extras else [])])
        return out if self.world is None else f"{out} per worker · {self.world.describe()}"

    # ---- control -------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the run to stop at the next step boundary (thread-safe)."""
        self._stop.set()

    def close(self) -> None:
        """Give back the memory booked for this run (done by itself when it finishes or is collected)."""
        self._booking.close()

    @property
    def done(self) -> bool:
        return self.step >= self.config.steps or self.stopped or len(self.diverged) == len(self.labels)

    def batch_indices(self) -> torch.Tensor:
        """This worker's part of the next step's batch (ops.EpochOrder: seeded permutations of the train
        split, one per epoch, the same on every rank, the last partial batch dropped)."""
        return self.order.next()

    # ---- the loop ------------------------------------------------------------------------
    def iter(self, should_stop: Callable[[], bool] | threading.Event | None = None) -> Iterator[Update]:
        """Train the remaining steps, yielding an Update every `report_every` steps and a last one at the end.

        Takes the device slot for each step (BusyError if another session holds it too long). Stopping
        (`stop()`, or `should_stop()` returning True) ends it at a step boundary with the weights kept;
        so does closing the generator.
        """
        stop = _stop_fn(should_stop)
        cfg = self.config
        every = cfg.report_every or 1  # set in __init__ (never None after it)
        if self.stopped:  # a stopped run resumes where it stopped when iterated again
            self.stopped = False
            self._stop.clear()
        cuda = self.device.type == "cuda"
        cl = torch.channels_last if self.channels_last else torch.contiguous_format
        # the device slot is taken per step (and per evaluation): other sessions' passes interleave
        with dev.torch_threads(cfg.threads if self.device.type == "cpu" else None):
            t0 = time.perf_counter() - self.wall_s
            recent: collections.deque = collections.deque(maxlen=50)
            recent.append((self.step, time.perf_counter()))
            pending: list[tuple] = []  # (step, label, loss, correct, lr, time_s, cuda events): read in _update
            final_evals: list[EvalRecord] = []
            dist_mode = self.world is not None
            try:
                while not self.done:
                    if not dist_mode and (stop() or self._stop.is_set()):
                        self.stopped = True
                        break
                    with dev.device_slot(self.device):
                        idx = self.batch_indices().to(self.device)
                        xb = self.x_train.index_select(0, idx)  # (B, C, H, W)
                        if cfg.augment:
                            xb = augment_batch(xb, self._aug_gen)
                        xb = xb.contiguous(memory_format=cl)
                        yb = self.y_train.index_select(0, idx)  # (B,)
                        s = self.step
                        first_new = len(pending)
                        for label in self.labels:
                            if label in self.diverged:
                                continue
                            lr = lr_at(s, cfg, self.warms[label], self.warming[label])
                            events = None
                            if cuda:  # GPU work is asynchronous: time it with events, read them at the next update
                                events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                                events[0].record()
                            t_net = time.perf_counter()
                            loss, correct = self._train_step(label, xb, yb, lr)
                            if events is not None:
                                events[1].record()
                            else:
                                self.net_time[label] += time.perf_counter() - t_net
                            pending.append((s + 1, label, loss, correct, lr, time.perf_counter() - t0, events))
                        if dist_mode:  # average the step's losses and accuracies over the ranks; agree on stopping
                            pending[first_new:], agreed_stop = self._reduce_step(
                                pending[first_new:], stop() or self._stop.is_set())
                        self.step += 1
                        for label in self.labels:
                            if label not in self.diverged:
                                self.net_steps[label] += 1
                        recent.append((self.step, time.perf_counter()))
                        evals = self._maybe_eval()
                    if dist_mode and (self.step % every == 0 or self.done) and bool(agreed_stop):
                        self.stopped = not self.step >= cfg.steps
                    if (self.step % every == 0 or evals) and not self.done:
                        yield self._update(pending, evals, recent, t0)
                        pending = []
                    elif evals:
                        final_evals = evals
            finally:
                self.wall_s = time.perf_counter() - t0
            with contextlib.suppress(Exception):  # the server's timing figures; never the run's failure
                from resnet_core.training.estimate import record_run
                record_run(self)
            if not self.stopped:  # finished: its memory is no longer needed for training (a stopped run may resume)
                self.close()
            yield self._update(pending, final_evals, recent, t0, final=True)

    def _reduce_step(self, entries: list[tuple], stop_here: bool) -> tuple[list[tuple], torch.Tensor]:
        """One all-reduce for a step: each net's loss (averaged) and number correct (summed), and a stop
        vote (any rank). Returns the entries with the global values, and the vote (a tensor, read later)."""
        from resnet_core.training.distributed import all_reduce_sum
        vals = [e[2].float().reshape(()) for e in entries] + [e[3].float().reshape(()) for e in entries]
        vals.append(torch.tensor(1.0 if stop_here else 0.0, device=self.device))
        t = all_reduce_sum(torch.stack(vals))
        k = len(entries)
        out = [(e[0], e[1], t[i] / self.nworld, t[k + i], *e[4:]) for i, e in enumerate(entries)]
        return out, t[-1]

    def _train_step(self, label: str, xb: torch.Tensor, yb: torch.Tensor, lr: float):
        model, opt = self._train_models[label], self.optimizers[label]
        for g in opt.param_groups:
            g["lr"] = lr
        with autocast_context(self.device, self.amp):
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
        xv, yv = self.data.x_val, self.data.y_val
        x, y, split = (xv, yv, "val") if xv is not None and yv is not None else (self.x_test, self.y_test, "heldout")
        x, y = x.to(self.device), y.to(self.device)
        for label in self.labels:
            if label in self.diverged:
                continue
            loss, acc = self._evaluate(label, x, y)
            out.append(EvalRecord(self.step, label, split, loss, acc))
        self.evals.extend(out)
        return out

    def _evaluate(self, label: str, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        """Mean loss and accuracy of one net on (x, y); sharded over the ranks when there are several."""
        cfg = self.config
        if self.world is None:
            return evaluate(self.models[label], x, y, cfg.eval_batch, self.amp, self.channels_last)
        from resnet_core.training.distributed import all_reduce_sum
        loss, correct = evaluate_sums(self.models[label], x[self.rank::self.nworld], y[self.rank::self.nworld],
                                      cfg.eval_batch, self.amp, self.channels_last)
        t = all_reduce_sum(torch.tensor([loss, float(correct)], dtype=torch.float64, device=self.device))
        n = max(1, len(y))
        return float(t[0]) / n, float(t[1]) / n

    def _update(self, pending, evals, recent, t0, final: bool = False) -> Update:
        b = self.global_batch
        records, newly = [], []
        if pending:
            losses = torch.stack([p[2].float() for p in pending]).cpu().tolist()  # one sync for the lot
            corrects = torch.stack([p[3] for p in pending]).cpu().tolist()
            for (step, label, _, _, lr, t, events), loss, correct in zip(pending, losses, corrects, strict=True):
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
                if self.warming[label]:  # error80: leave the warm-up once the last 10 batches' error < 80 %
                    acc = self._recent_acc[label]
                    acc.append(correct / b)
                    if len(acc) == acc.maxlen and sum(acc) / len(acc) > 0.2:
                        self.warming[label] = False
                        self.warmup_until[label] = step
        self.records.extend(records)
        now = time.perf_counter()
        (s0, t_first), (s1, t_last) = recent[0], recent[-1]
        rate = (s1 - s0) / (t_last - t_first) if t_last > t_first and s1 > s0 else 0.0
        left = self.config.steps - self.step
        done = final or self.done
        eta = 0.0 if done else (left / rate if rate > 0 else float("inf"))
        progress = TrainProgress(self.step, self.config.steps, now - t0, rate, eta, self.stopped, done)
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
        """Mean training loss over the last `window` steps (default: the last 10% taken, 5 to 50 steps); NaN
        for a net that diverged."""
        losses = [r.loss for r in self.records if r.net == label]
        if not losses or label in self.diverged:
            return float("nan")
        w = window or max(5, min(50, self.step // 10))  # the last tenth of the steps taken so far
        tail = losses[-w:]
        return sum(tail) / len(tail)

    def result(self, on_progress: Callable[[int, int, str], None] | None = None) -> TrainResult:
        """Evaluate every net as it is now (train and held-out splits, eval mode); the models stay live.
        `on_progress(i, n, label)` is called before the i-th of the n nets is evaluated (and (n, n, "") at the end)."""
        cfg = self.config
        gen = torch.Generator().manual_seed(offset_seed(cfg.seed, 1))
        n = self.data.n_train
        sub = torch.randperm(n, generator=gen)[:cfg.eval_limit] if cfg.eval_limit and n > cfg.eval_limit \
            else torch.arange(n)
        x_tr = self.x_train.index_select(0, sub.to(self.device))
        y_tr = self.y_train.index_select(0, sub.to(self.device))
        x_te, y_te = self.x_test, self.y_test
        nets = []
        images = len(y_tr) + len(y_te) + (len(self.data.y_val) if self.data.y_val is not None else 0)
        with dev.torch_threads(cfg.threads if self.device.type == "cpu" else None):
            for i, label in enumerate(self.labels):
                if on_progress is not None:
                    on_progress(i, len(self.labels), label)
                t_eval = time.perf_counter()
                nets.append(self._net_result(label, x_tr, y_tr, x_te, y_te))
                if label not in self.diverged:
                    with contextlib.suppress(Exception):  # the server's timing figures; never the result's failure
                        from resnet_core.training.estimate import record_eval
                        record_eval(self, label, time.perf_counter() - t_eval, images)
        if on_progress is not None:
            on_progress(len(self.labels), len(self.labels), "")
        return TrainResult(nets, list(self.records), list(self.evals), cfg, self.data.describe(),
                           self.describe_device(), self.step, self.stopped, self.wall_s, dict(self.models),
                           world_size=self.nworld, global_batch=self.global_batch)

    def _net_result(self, label, x_tr, y_tr, x_te, y_te) -> NetResult:
        nan = (float("nan"), float("nan"))
        va = nan
        if label in self.diverged:
            tr = te = nan
        else:
            tr = self._evaluate(label, x_tr, y_tr)
            te = self._evaluate(label, x_te, y_te)
            xv, yv = self.data.x_val, self.data.y_val
            if xv is not None and yv is not None:
                va = self._evaluate(label, xv.to(self.device), yv.to(self.device))
        return NetResult(label, self.specs[label], self.depth[label], self.params[label],
                         self.net_steps[label], self.final_loss(label), tr[0], tr[1], te[0], te[1],
                         self.net_time[label], self.warms[label], self.diverged.get(label),
                         val_loss=va[0], val_accuracy=va[1], warmup_until=self.warmup_until.get(label))


# --------------------------------------------------------------------------------------------
# one call for the page and the CLI
# --------------------------------------------------------------------------------------------

def make_run(nets: Sequence[str | ArchSpec | tuple[str, str | ArchSpec]] | str = "degradation",
             data: str | Dataset = "digits", *, steps: int | None = None, batch_size: int | None = None,
             input_size: int | tuple[int, int] | None = None, seed: int = 0, no_bn: bool = False,
             device: str | torch.device = "auto", world=None, data_options: dict | None = None,
             **config: Any) -> TrainingRun:
    """A ready run with this device's defaults for what is not given.

    `nets`: an experiment name ("degradation", "batchnorm") or up to four preset names / specs /
    (label, net) pairs. `data`: "digits", "synthetic", "cifar:PATH" or a prepared Dataset.
    `no_bn` trains every net without batch norm. Extra keywords go to TrainConfig.
    `world` (distributed.World): this worker's place in a torchrun run; `batch_size` is then per worker.
    `data_options` go to the data loader (e.g. val_split, max_train).
    Raises TrainError, DataError (data.py), DeviceError or MemoryGuardError (device.py), each with a message.
    """
    if world is not None:
        d = world.device
    else:
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
        options: dict[str, Any] = {}
        if data.strip().lower().startswith(("cifar:", "cifar10:")) and d.type != "cuda":
            options = {"max_train": 10_000}  # a CPU run sees a seeded fifth of CIFAR-10's train split
        options.update(data_options or {})
        dataset = load_data(data, size, in_channels, seed=seed, **options)
    config.setdefault("lr", defaults.lr)
    config.setdefault("threads", defaults.threads)
    cfg = TrainConfig(steps=defaults.steps if steps is None else steps,
                      batch_size=defaults.batch_size if batch_size is None else batch_size, seed=seed, **config)
    return TrainingRun(pairs, dataset, cfg, d, world=world)
