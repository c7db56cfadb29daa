"""A trained residual net and its plain twin, for the experiments that need trained weights (lesion,
landscape): trained side by side by the Training lab's own run (resnet_core.training.run), or taken from
a finished Training lab run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from resnet_core.experiments.common import ExperimentError, OnProgress, no_progress, said, said_later
from resnet_core.experiments.pair import PAIR_BOUNDS, PairSettings, twin_name
from resnet_core.i18n import N_
from resnet_core.structure.presets import is_preset, preset_info
from resnet_core.structure.spec import ArchSpec
from resnet_core.training.data import Dataset

SPAWN_KEY = "spawn|pair-trainers|cpu"  # seconds from starting the two trainer processes to both nets built


def twin_of(residual: str) -> str:
    if not is_preset(residual):
        raise ExperimentError(f"unknown network {residual!r}; use a residual preset such as resnet20 or resnet56")
    info = preset_info(residual)
    if info.plain_of is not None or not info.spec.skip:
        raise ExperimentError(f"{residual} is a plain net; name the residual net (e.g. {info.plain_of or 'resnet20'})")
    return twin_name(residual)


@dataclass
class TrainedPair:
    """Two trained nets on one data set: models[label] in eval mode, with the labels of each role."""

    residual_label: str
    plain_label: str
    models: dict[str, nn.Module]
    specs: dict[str, ArchSpec]
    data: Dataset
    source: str  # "trained here (800 steps …)" or "from the Training lab"
    heldout: dict[str, float] = field(default_factory=dict)  # held-out accuracy of each, unlesioned
    stopped: bool = False
    info: dict[str, Any] = field(default_factory=dict)


def train_pair(settings: PairSettings = PairSettings(), should_stop: Callable[[], bool] | None = None,
               on_progress: OnProgress = no_progress, device: str = "cpu") -> TrainedPair:
    """Train the residual net and its plain twin side by side (same batches, same seed)."""
    from resnet_core.experiments.common import check_settings
    from resnet_core.training.run import make_run

    check_settings(settings, PAIR_BOUNDS)
    plain = twin_of(settings.residual)
    if settings.processes == 2 and device == "cpu":
        return _train_pair_in_two_processes(settings, should_stop, on_progress)
    run = make_run([settings.residual, plain], settings.data, steps=settings.steps, batch_size=settings.batch_size,
                   input_size=settings.input_size, seed=settings.seed, lr=settings.lr, device=device)
    for update in run.iter(should_stop=should_stop):
        on_progress(update.progress.fraction, said(N_("training {what}"), what=update.progress.text()))
    result = run.result()
    models = {label: m.eval() for label, m in result.models.items()}
    labels = run.labels
    return TrainedPair(labels[0], labels[1], models, dict(run.specs), run.data,
                       said(N_("trained here: {steps} steps, {data}, {device}"), steps=result.steps_done,
                            data=said_later(run.data.describe), device=result.device),
                       {r.net: r.heldout_accuracy for r in result.nets}, result.stopped,
                       {"wall_s": result.wall_s, "steps": result.steps_done})


def _train_alone(net: str, settings: PairSettings, messages, parent: int | None = None) -> None:
    """One net of the pair, trained alone in a process of its own (spawned): exactly the weights it gets in
    the side-by-side run (each net is built from the seed, the batches follow the seed). Sends ("ready", net) once
    built, ("step", net,
    n) every 10 steps, then ("done", net, weights as torch.save bytes, held-out accuracy, steps, wall s) or
    ("error", net, text). It dies with `parent` (the process that spawned it), and leaves Ctrl-C to it."""
    import io
    import signal

    from resnet_core.training.lifecycle import STOP_SIGNALS, die_with_parent
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal's Ctrl-C reaches the whole group: the parent ends us
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked by the parent while it started us
    torch.set_num_threads(1)
    try:
        from resnet_core.training.run import make_run
        run = make_run([net], settings.data, steps=settings.steps, batch_size=settings.batch_size,
                       input_size=settings.input_size, seed=settings.seed, lr=settings.lr, device="cpu")
        messages.put(("ready", net))
        for update in run.iter():
            if update.progress.step % 10 == 0:
                messages.put(("step", net, update.progress.step))
        result = run.result()
        buf = io.BytesIO()
        torch.save(result.models[net].state_dict(), buf)
        messages.put(("done", net, buf.getvalue(), result.nets[0].heldout_accuracy, result.steps_done,
                      result.wall_s))
    except Exception as e:  # noqa: BLE001 - reported to the parent as one line
        messages.put(("error", net, f"{type(e).__name__}: {e}"))


def _start_from_a_bare_main(procs) -> None:
    """Start spawned processes that do not re-run the parent's __main__: what they run is in this library,
    and the parent's main script may be anything (a Streamlit page under AppTest, a notebook)."""
    import os
    import sys
    import types

    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    # The trainers report through their queue (errors included); their inherited stderr would only carry
    # multiprocessing's own traceback when a signal ends the command while a trainer is still in its
    # bootstrap, before any of our code runs. So they start with stderr on the null device: fd 2 is swapped
    # for the moment of the start, then restored.
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        for p in procs:
            p.start()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
        sys.modules["__main__"] = main


def _train_pair_in_two_processes(settings: PairSettings, should_stop, on_progress: OnProgress) -> TrainedPair:
    """The pair trained at once on two cores (spawned processes, one thread each); stops both on `should_stop`."""
    import io
    import multiprocessing
    import os
    import queue as queues
    import time

    from resnet_core import calibration as cal
    from resnet_core.structure.build import build_model
    from resnet_core.training.lifecycle import BOOKED_ENV, marked_children, signals_held
    from resnet_core.training.run import make_run

    run = make_run([settings.residual, twin_of(settings.residual)], settings.data, steps=settings.steps,
                   batch_size=settings.batch_size, input_size=settings.input_size, seed=settings.seed,
                   lr=settings.lr, device="cpu")  # the specs, labels and data; it trains nothing here
    nets = list(run.labels)
    ctx = multiprocessing.get_context("spawn")
    messages = ctx.Queue()
    procs = [ctx.Process(target=_train_alone, args=(net, settings, messages, os.getpid()), daemon=True)
             for net in nets]
    t0 = time.perf_counter()
    steps: dict[str, int] = {net: 0 for net in nets}
    ready: set[str] = set()
    done: dict[str, tuple] = {}
    stopped = False
    try:
        # the marker and the booking in their environment; a signal waits until both are started (a start
        # cut in the middle leaves a child reading half its instructions)
        with marked_children(**{BOOKED_ENV: str(run.memory_estimate)}), signals_held():
            _start_from_a_bare_main(procs)
        while len(done) < len(nets):
            if should_stop is not None and should_stop():
                stopped = True
                break
            try:
                kind, net, *rest = messages.get(timeout=0.2)
            except queues.Empty:
                dead = [p for p in procs if not p.is_alive() and p.exitcode not in (0, None)]
                if dead:
                    raise ExperimentError(f"a training process ended with exit status {dead[0].exitcode}") from None
                continue
            if kind == "error":
                raise ExperimentError(f"training {net} failed: {rest[0]}")
            if kind == "ready":
                ready.add(net)
                if len(ready) == len(nets):  # this server's cost of starting the two trainers, for the estimates
                    cal.store().record(SPAWN_KEY, time.perf_counter() - t0)
                continue
            if kind == "step":
                steps[net] = rest[0]
                on_progress(sum(steps.values()) / (len(nets) * settings.steps),
                            said(N_("training {what} (two processes)"),
                                 what=" · ".join(f"{n} {s}/{settings.steps}" for n, s in steps.items())))
            else:
                done[net] = rest
    finally:  # whatever ends the wait (a stop, an error, Ctrl-C, SIGTERM): no trainer outlives it
        for p in procs:
            if p.pid is not None and p.is_alive():
                p.terminate()
        for p in procs:
            if p.pid is not None:
                p.join(5)
                if p.is_alive():
                    p.kill()
                    p.join(5)
    done = {net: done[net] for net in nets if net in done}  # the pair's order, not the order they finished in
    models: dict[str, nn.Module] = {}
    for net, (weights, *_rest) in done.items():
        model = build_model(run.specs[net], seed=settings.seed)
        model.load_state_dict(torch.load(io.BytesIO(weights), weights_only=True))
        models[net] = model.eval()
    steps_done = min((d[2] for d in done.values()), default=0)
    return TrainedPair(nets[0], nets[1], models, dict(run.specs), run.data,
                       said(N_("trained here: {steps} steps, {data}, the CPU (two processes)"), steps=steps_done,
                            data=said_later(run.data.describe)),
                       {net: d[1] for net, d in done.items()}, stopped,
                       {"wall_s": time.perf_counter() - t0, "steps": steps_done})


def ensure_pair(pair: TrainedPair | None, settings: PairSettings, stop: Callable[[], bool], on_progress: OnProgress,
                share: float, needs: str) -> tuple[TrainedPair, float]:
    """`pair`, or one trained now from `settings` (reporting progress up to `share` of the whole run).

    Returns the pair and where the experiment's own progress starts (`share` when it trained here, else 0).
    `needs` says what the stopped experiment needed, e.g. "the lesion study needs trained networks".
    """
    if pair is None:
        pair = train_pair(settings, stop, lambda f, text: on_progress(share * f, text))
        if pair.stopped:
            raise ExperimentError(f"training was stopped before it finished; {needs}")
    return pair, (share if pair.source.startswith("trained here") else 0.0)


def private_copy(pair: TrainedPair) -> TrainedPair:
    """A copy of a shared pair (a prepared one, one kept for every session) whose models a run may change: the
    lesion study deletes blocks in place while it measures, so no two runs may hold the same models."""
    import copy
    from dataclasses import replace
    return replace(pair, models={k: copy.deepcopy(m).eval() for k, m in pair.models.items()},
                   heldout=dict(pair.heldout), info=dict(pair.info))


def pair_from_models(residual: tuple[str, nn.Module, ArchSpec], plain: tuple[str, nn.Module, ArchSpec],
                     data: Dataset, source: str) -> TrainedPair:
    """A pair made of already trained models (e.g. the Training lab's), each a private copy in eval mode."""
    import copy
    (rl, rm, rs), (pl, pm, ps) = residual, plain
    if rs.input_shape != data.input_shape or ps.input_shape != data.input_shape:
        raise ExperimentError("the two networks and the data set must have the same input shape")
    models = {rl: copy.deepcopy(rm).eval(), pl: copy.deepcopy(pm).eval()}
    return TrainedPair(rl, pl, models, {rl: rs, pl: ps}, data, source)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> float:
    """Held-out accuracy in eval mode (the mode is restored)."""
    was = model.training
    model.eval()
    try:
        correct = 0
        for i in range(0, len(y), batch):
            correct += int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    finally:
        model.train(was)
    return correct / max(1, len(y))
