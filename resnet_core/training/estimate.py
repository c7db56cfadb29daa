"""How long a training run takes on this server, from measurements of this server (resnet_core.calibration).

Everything a person waits for after pressing Start is counted: every net's training steps (the measured
seconds per step of each net at this batch, input size, device and thread count) and the final
evaluation of every net on the train and held-out splits. A step never timed here is timed on first use,
on a private copy of the net and random inputs of the run's shape, at the thread count the run trains
with (timing it at torch's default of every core while the run trains on one made the estimate 5× too
pessimistic on a loaded 2-core server: two threads that compete with other processes wait on each other).
Every finished run records its own measured step and evaluation times (`record_run`), so the figures
follow the machine as it is used.

    est = estimate_training(specs, steps=800, batch=32, input_size=16, device="cpu", threads=1)
    est.total.text()        # 'about 3–4 min'
    est.note()              # 'on this server: 4 nets × 800 steps, measured just now at load 0.4 (1 measurement)'
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from resnet_core import calibration as cal
from resnet_core import device as dev
from resnet_core.i18n import _, ngettext
from resnet_core.structure.spec import ArchSpec, spec_key

EVAL_SHARE = (0.25, 0.6)  # an image's evaluation, as a share of its training step, until one is measured
MIN_STEPS_RECORDED = 5  # a run shorter than this tells too little about its steps


def net_id(spec: ArchSpec) -> str:
    """A short stable name of a network for the calibration keys: its name and a hash of the whole spec."""
    return f"{spec.name}#{hashlib.sha1(spec_key(spec).encode()).hexdigest()[:10]}"


def _threads(device: torch.device, threads: int | None) -> int:
    return (threads or torch.get_num_threads()) if device.type == "cpu" else 0


def step_key(spec: ArchSpec, batch: int, device: torch.device, threads: int | None) -> str:
    return cal.step_key(net_id(spec), batch, spec.input_size, device.type, _threads(device, threads))


def eval_key(spec: ArchSpec, device: torch.device, threads: int | None) -> str:
    return cal.step_key("eval:" + net_id(spec), 1, spec.input_size, device.type, _threads(device, threads))


def time_step(spec: ArchSpec, batch: int, device: torch.device | str = "cpu", threads: int | None = None,
              repeats: int = 3, model: torch.nn.Module | None = None) -> float:
    """Seconds of one training step (forward, backward, SGD step) of `spec` at `batch`, timed here on a private
    copy and random inputs of its shape: two warm-up steps, then the fastest of `repeats`, at `threads` intra-op
    threads on a CPU (the run's own setting), holding the device slot like a run's step."""
    from resnet_core.structure.build import build_model
    device = torch.device(device)
    net = copy.deepcopy(model) if model is not None else build_model(spec, seed=0)
    net = net.to(device).train()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *spec.input_shape, generator=gen).to(device)  # (B, C, H, W)
    y = torch.randint(0, spec.num_classes, (batch,), generator=gen).to(device)
    times = []
    with dev.torch_threads(threads if device.type == "cpu" else None), dev.device_slot(device):
        for i in range(2 + repeats):
            t0 = time.perf_counter()
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= 2:
                times.append(time.perf_counter() - t0)
    return min(times)


@dataclass
class NetEstimate:
    label: str
    step: cal.Measured  # seconds per training step
    measured_now: bool  # timed for this estimate (not yet from a real run)
    eval_per_image: cal.Span  # seconds per image of the final evaluation


@dataclass
class TrainingEstimate:
    """The time from Start to the results table: `total` (a Span, seconds) and what it is made of."""

    steps: int
    nets: list[NetEstimate]
    eval_images: int
    load: float  # the load average when estimated
    total: cal.Span = field(default_factory=lambda: cal.Span(0.0, 0.0))
    training: cal.Span = field(default_factory=lambda: cal.Span(0.0, 0.0))
    evaluation: cal.Span = field(default_factory=lambda: cal.Span(0.0, 0.0))

    def per_step(self) -> dict[str, float]:
        return {n.label: n.step.mean for n in self.nets}

    def slowest(self) -> NetEstimate:
        return max(self.nets, key=lambda n: n.step.mean)

    def note(self, load: bool = True) -> str:
        """What the estimate is made of, and when and at what load its figures were measured (and the load now)."""
        newest = max(self.nets, key=lambda n: n.step.when)
        oldest = min(self.nets, key=lambda n: n.step.when)
        when = newest.step.when_text() if newest is oldest or newest.step.when - oldest.step.when < 90 \
            else _("{first} to {last}", first=oldest.step.when_text(), last=newest.step.when_text())
        s = self.slowest()
        fields = {"nets": ngettext("{n} net", "{n} nets", len(self.nets), n=len(self.nets)),
                  "steps": f"{self.steps:,}", "slowest": s.label, "seconds": f"{s.step.mean:.3f}",
                  "images": f"{self.eval_images:,}", "when": when}
        if not load:
            return _("on this server: {nets} × {steps} steps ({slowest} the slowest at {seconds} s a step), then "
                     "evaluating {images} images per net; step times {when}", **fields)
        return _("on this server: {nets} × {steps} steps ({slowest} the slowest at {seconds} s a step), then "
                 "evaluating {images} images per net; step times {when}; load now {load} on {cores} cores",
                 load=f"{self.load:.1f}", cores=cal.cores(), **fields)


def estimate_training(specs: Mapping[str, ArchSpec], steps: int, batch: int, device: torch.device | str = "cpu",
                      threads: int | None = None, eval_images: int = 0, measure: bool = True,
                      data_root=None, models: Mapping[str, torch.nn.Module] | None = None) -> TrainingEstimate | None:
    """The time a run of these nets (label → spec at the run's input shape) takes here; None when a net was
    never measured and `measure` is False. A net not measured yet is timed now and its figure kept."""
    device = torch.device(device)
    store = cal.store(data_root)
    load = cal.load_now()
    t = _threads(device, threads)
    nets = []
    for label, spec in specs.items():
        key = step_key(spec, batch, device, threads)
        m = store.get(key)
        now = False
        if m is None:
            if not measure:
                return None
            seconds = time_step(spec, batch, device, threads, model=(models or {}).get(label))
            m = store.record(key, seconds, probe=True) or cal.Measured(seconds, [seconds], 1, time.time(), load, True)
            now = True
        e = store.get(eval_key(spec, device, threads))
        per_image = e.span(load=load, threads=max(1, t)) if e is not None else cal.Span(
            m.mean / batch * EVAL_SHARE[0], m.mean / batch * EVAL_SHARE[1])
        nets.append(NetEstimate(label, m, now, per_image))
    est = TrainingEstimate(steps, nets, eval_images, load)
    est.training = sum((n.step.span(steps, load, max(1, t)) for n in nets), cal.Span(0.0, 0.0))
    est.evaluation = sum((n.eval_per_image.scaled(eval_images) for n in nets), cal.Span(0.0, 0.0))
    est.total = est.training + est.evaluation
    return est


def estimate_run(run, data_root=None, measure: bool = True) -> TrainingEstimate | None:
    """The estimate for a built TrainingRun (its nets, steps, batch, device, threads, evaluation sizes)."""
    cfg = run.config
    n_train = run.data.n_train
    evaluated = min(n_train, cfg.eval_limit) if cfg.eval_limit else n_train
    evaluated += run.data.n_test + (len(run.data.y_val) if run.data.y_val is not None else 0)
    return estimate_training(run.specs, cfg.steps, cfg.batch_size, run.device, cfg.threads, evaluated, measure,
                             data_root, models=run.models)


def record_run(run, data_root=None) -> None:
    """Keep a finished (or stopped) one-process run's measured step times, per net (runs of several processes
    and very short runs are left out: their figures are not one process's steps)."""
    if run.world is not None:
        return
    store = cal.store(data_root)
    for label, spec in run.specs.items():
        n = run.net_steps.get(label, 0)
        if n >= MIN_STEPS_RECORDED and run.net_time.get(label, 0) > 0:
            store.record(step_key(spec, run.config.batch_size, run.device, run.config.threads), run.net_time[label] / n)


def record_eval(run, label: str, seconds: float, images: int, data_root=None) -> None:
    """Keep the measured seconds per image of one net's final evaluation."""
    if run.world is None and images > 0:
        cal.store(data_root).record(eval_key(run.specs[label], run.device, run.config.threads), seconds / images)
