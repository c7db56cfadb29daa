"""How long the lesion study and the loss landscape take on this server, everything the person waits for:
training the pair (unless a trained one is given: the Training lab's, a prepared one, one kept from an
earlier run) and the experiment's own evaluations, each from measurements of this server
(resnet_core.calibration, resnet_core.training.estimate).

The own part is the experiment's forward passes (its cost's multiply-adds over the net's multiply-adds
per image) times the measured seconds per image of a forward pass of the larger net, times a correction
measured on this server from the experiment's earlier runs (`record`), 1 until there is one.

    est = estimate(landscape, settings, pair=None)     # ExperimentEstimate: .total (Span), .note()
    ...run it...
    record(landscape, settings, own_seconds, pair)     # after the run: the correction learns
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from resnet_core import calibration as cal
from resnet_core import device as dev
from resnet_core.experiments.pair_cost import pair_cost, pair_specs, trained_pair_figures
from resnet_core.i18n import _

UNMEASURED = (0.7, 1.6)  # the correction's range before this experiment ran here once


def _fwd_key(spec, device: str, threads: int) -> str:
    from resnet_core.training.estimate import net_id
    return cal.step_key("fwd:" + net_id(spec), 1, spec.input_size, device, threads)


def forward_per_image(spec, device: str = "cpu", threads: int = 1, images: int = 256, data_root=None,
                      measure: bool = True) -> cal.Measured | None:
    """Seconds per image of a forward pass of `spec` in eval mode (batches of `images`), measured here once
    (None when it never was and `measure` is False)."""
    store = cal.store(data_root)
    key = _fwd_key(spec, device, threads)
    m = store.get(key)
    if m is not None or not measure:
        return m
    from resnet_core.structure.build import build_model
    net = build_model(spec, seed=0).eval().to(device)
    x = torch.randn(images, *spec.input_shape, generator=torch.Generator().manual_seed(0)).to(device)
    times = []
    with torch.no_grad(), dev.torch_threads(threads if device == "cpu" else None), dev.device_slot(device):
        for i in range(3):
            t0 = time.perf_counter()
            net(x)
            if i:
                times.append(time.perf_counter() - t0)
    value = min(times) / images
    return store.record(key, value) or cal.Measured(value, [value], 1, time.time(), cal.load_now())  # a pass: exact


@dataclass
class ExperimentEstimate:
    name: str
    training: cal.Span  # training the pair (0 when a trained pair is given)
    own: cal.Span  # the experiment's own evaluations
    forwards: int  # image forwards of the own part
    training_note: str
    correction: cal.Measured | None

    @property
    def total(self) -> cal.Span:
        return self.training + self.own

    def note(self) -> str:
        parts = [self.training_note] if self.training_note else []
        if self.correction is not None:
            how = _("its {n} image evaluations at the measured forward time × {factor}, this experiment's own "
                    "factor, {when}", n=f"{self.forwards:,}", factor=f"{self.correction.mean:.2f}",
                    when=self.correction.when_text())
        else:
            how = _("its {n} image evaluations at the measured forward time (this experiment has not run here yet: "
                    "its range is wider)", n=f"{self.forwards:,}")
        parts.append(how)
        return "; ".join(parts) + _("; load now {load} on {cores} cores", load=f"{cal.load_now():.1f}",
                                    cores=cal.cores())


def _specs(settings: Any, pair: Any) -> tuple[list[Any], int, int]:
    if pair is not None:
        return trained_pair_figures(pair)
    pc = pair_cost(settings.pair)
    return list(pair_specs(settings.pair.residual, settings.pair.input_size)), pc.n_train, pc.n_test


def _forwards(module: Any, settings: Any, pair: Any) -> int:
    pc = pair_cost(settings.pair) if pair is None else pair_cost(settings.pair, *_specs(settings, pair))
    own = module.cost(settings, pair).work - (pc.work if pair is None else 0)
    return max(0, round(own / max(1, pc.mult_adds)))


def estimate(module: Any, settings: Any, pair: Any = None, device: str = "cpu", threads: int = 1,
             data_root=None, measure: bool = True) -> ExperimentEstimate | None:
    """The time of `module.run(settings, pair)` here (module: lesion or landscape): training the pair when
    `pair` is None, then the experiment's own part. What was never measured here is measured now (a few
    steps, one forward pass), or, with `measure` False, the answer is None."""
    from resnet_core.training.estimate import estimate_training
    name = module.__name__.rsplit(".", 1)[-1]
    specs, _n_train, n_test = _specs(settings, pair)
    load = cal.load_now()
    training, training_note = cal.Span(0.0, 0.0), ""
    if pair is None:
        ps = settings.pair
        est = estimate_training({s.name: s for s in specs}, ps.steps, ps.batch_size, device, threads,
                                eval_images=_n_train + n_test, measure=measure, data_root=data_root)
        if est is None:
            return None
        training, training_note = est.total, _("training the pair: {how}",
                                                how=est.note(load=False).removeprefix("on this server: "))
        if getattr(ps, "processes", 1) == 2:  # one process per net: between the slower net alone and both in turn
            alone = max((n.step.span(ps.steps, load) for n in est.nets), key=lambda sp: sp.low)
            training = cal.Span(alone.low + est.evaluation.low / 2, training.high)
            training_note += _(" (two processes: from the slower net alone to both in turn")
            from resnet_core.experiments.trained import SPAWN_KEY
            spawn = cal.store(data_root).get(SPAWN_KEY)
            if spawn is not None:
                training = training + spawn.span(1, load)
                training_note += _(", plus starting them: {s} s, {when})", s=f"{spawn.mean:.0f}", when=spawn.when_text())
            else:
                training_note += _(", plus starting them: not timed here yet)")
    fwds = [forward_per_image(s, device, threads, data_root=data_root, measure=measure) for s in specs]
    if any(f is None for f in fwds):
        return None
    fwd = max((f for f in fwds if f is not None), key=lambda m: m.mean)
    forwards = _forwards(module, settings, pair)
    base = fwd.span(forwards, load, threads)
    corr = cal.store(data_root).get(cal.work_key(name, device, threads))
    own = base.scaled(corr.mean) if corr is not None else cal.Span(base.low * UNMEASURED[0], base.high * UNMEASURED[1])
    if corr is not None:
        own = cal.Span(min(own.low, base.low * corr.low), max(own.high, base.high * corr.high))
    return ExperimentEstimate(name, training, own, forwards, training_note, corr)


def record(module: Any, settings: Any, own_seconds: float, pair: Any = None, device: str = "cpu", threads: int = 1,
           data_root=None) -> None:
    """After a run: its own part took `own_seconds`; the experiment's correction factor learns from it."""
    name = module.__name__.rsplit(".", 1)[-1]
    specs, _nets, _labels = _specs(settings, pair)
    fwds = [forward_per_image(s, device, threads, data_root=data_root) for s in specs]
    fwd = max((f for f in fwds if f is not None), key=lambda m: m.mean)
    predicted = fwd.mean * _forwards(module, settings, pair)
    if predicted > 0 and own_seconds > 0:
        cal.store(data_root).record(cal.work_key(name, device, threads), own_seconds / predicted)
