"""The Live lab's per-session state (it never renders): this session's own model and what its weights
really are, the input batch, the one forward record every view reads, and the gradient-flow job.

- `model_for` builds this session's model for (spec, weights) and says which weights it really holds
  (`Weights.used`) and why, when they differ from the choice (`Weights.problem`).
- `record_for` runs ONE forward pass per (weights, input, BN mode) and keeps its `ForwardRecord`:
  changing the layer, the block or top-k on the page reads from it and runs nothing.
- `view_turn` lets at most VIEWS_AT_ONCE sessions draw their forward views at once, the others waiting in
  line (first come, first served), so that a classroom's twenty first views do not fight over the GIL
  with each other and with the server's event loop (health checks, every other session's messages).
- `GradFlowJob` runs a gradient flow in a thread of its own with progress and a Stop; it stops by
  itself when the session's tab is gone, and a session has at most one.
"""

from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import streamlit as st
import torch
from torch import nn

from app import handoff
from resnet_core.device import BusyError, FairSlots, check_fits, estimate_pass, pick_device
from resnet_core.lab import forward as lab_forward
from resnet_core.lab import gradients, images, views, weights
from resnet_core.lab.flow import GradientFlow, GradProgress
from resnet_core.structure.build import build_model
from resnet_core.structure.records import Plan
from resnet_core.structure.spec import ArchSpec, spec_key
from resnet_core.structure.trace import Trace

MODEL = "live.model"  # session_state: (key, Weights)
RECORD = "live.record"  # session_state: (key, ForwardRecord)
JOB = "live.gf_job"  # session_state: GradFlowJob
BATCH_STATS_IMAGES = 8  # with batch statistics, the batch: the chosen image and 7 other sample images
# Forward views drawn at once by the whole server. Drawing one is mostly Python (build, the pass's hooks,
# the charts) under one GIL: more at once only slow each other and the event loop down; two let one
# session's torch work (which releases the GIL) overlap another's drawing.
VIEWS_AT_ONCE = 2
_VIEW_LINE = FairSlots(VIEWS_AT_ONCE)


def session_alive():
    """A check that is true while this browser session is connected (always true outside a server)."""
    try:
        from streamlit import runtime
        from streamlit.runtime.scriptrunner import get_script_run_ctx
        ctx = get_script_run_ctx()
        if ctx is None or not runtime.exists():
            return lambda: True
        rt, sid = runtime.get_instance(), ctx.session_id
        if not rt.is_active_session(sid):
            return lambda: True  # not a tracked session (a test harness): nothing to watch
        return lambda: rt.is_active_session(sid)
    except Exception:  # noqa: BLE001 - a Streamlit without these internals: do not guess
        return lambda: True


@contextmanager
def view_turn(waiting_note=None, timeout: float = 600.0) -> Iterator[None]:
    """This session's turn to draw its forward views: waits in line (FIFO) behind the sessions drawing
    now, leaving the line when its tab closes. `waiting_note(n)` is called first when others are ahead.
    Raises BusyError after `timeout` seconds."""
    ahead = _VIEW_LINE.waiting + (1 if _VIEW_LINE.full else 0)
    if ahead and waiting_note is not None:
        waiting_note(ahead)
    if not _VIEW_LINE.acquire(timeout=timeout, should_stop=session_alive_stop()):
        raise BusyError("the server is drawing other sessions' views; try again in a moment")
    try:
        yield
    finally:
        _VIEW_LINE.release()


# ------------------------------------------------------------------------------------------------
# weights
# ------------------------------------------------------------------------------------------------

def weight_sources(spec: ArchSpec) -> dict[str, str]:
    out = {"random": "random (seeded)"}
    for net in handoff.matching(spec):
        out[net.choice] = f"trained: {net.label}"
    if weights.imagenet_weights_name(spec):
        out["imagenet"] = "ImageNet (torchvision)"
    out["checkpoint"] = "checkpoint file"
    return out


def input_sources(source: str) -> dict[str, str]:
    out = {}
    if handoff.lookup(source) is not None:
        out["example"] = "held-out example"
    out.update({"sample": "sample image", "upload": "your image", "noise": "random noise"})
    return out


def upload_id(upload) -> str:
    """Streamlit's id of this upload: a new file (even one with the same name) gets a new id."""
    return "" if upload is None else str(getattr(upload, "file_id", None) or id(upload))


def model_key(spec: ArchSpec, source: str, seed: int, upload) -> str:
    return f"{spec_key(spec)}|{source}|{seed}|{upload_id(upload) if source == 'checkpoint' else ''}"


def model_ready(spec: ArchSpec, source: str, seed: int, upload) -> bool:
    """Whether `model_for` with these arguments returns the session's model as it is (builds nothing)."""
    cached = st.session_state.get(MODEL)
    return bool(cached) and cached[0] == model_key(spec, source, seed, upload)


@dataclass(frozen=True)
class Weights:
    """The session's model and the weights it really holds."""

    model: nn.Module = field(repr=False)
    used: str  # what every view runs on: "random (seed 0)", "ImageNet (resnet18)", "trained: resnet20", ...
    trained: bool  # trained weights (running statistics are meaningful, predictions are shown)
    report: weights.LoadReport | None = None
    problem: str | None = None  # one line: the chosen weights are not the ones used (offline, no file yet)
    problem_detail: str | None = None  # the reason in full, with what to do
    classes: tuple[str, ...] = ()


def model_for(t: Trace, source: str, seed: int, upload) -> Weights:
    """This session's model for (the trace's network, weights); rebuilt only when they change.

    Raises MemoryGuardError before building a network too large for the free memory, CheckpointError for
    a file that is not a usable checkpoint."""
    spec = t.plan.spec
    key = model_key(spec, source, seed, upload)
    if model_ready(spec, source, seed, upload):
        return st.session_state[MODEL][1]
    check_fits(estimate_pass(t.param_bytes, t.activation_bytes, 1, backward=False), pick_device("auto"),
               what=f"building {spec.name} ({t.total_params:,} parameters) and running one image")
    model = build_model(t.plan, seed=seed)
    random_used = f"random weights (seed {seed}, {spec.init.replace('_', ' ')} init)"
    used, trained, report, problem, detail = random_used, False, None, None, None
    classes = weights.class_names_for(spec.num_classes)
    net = handoff.lookup(source)
    if source == "checkpoint":
        if upload is None:
            problem = "No checkpoint file chosen yet: the views use random weights until you choose one."
        else:
            report = weights.load_checkpoint(model, upload.getvalue(), strict=False)
            used, trained = f"checkpoint {upload.name}", True
    elif source == "imagenet":
        name = weights.imagenet_weights_name(spec)
        try:
            report = weights.load_imagenet_weights(model, name)
            used, trained = f"ImageNet weights ({name}, torchvision)", True
            classes = weights.class_names_for(spec.num_classes)
        except weights.WeightsUnavailable as e:
            problem = f"ImageNet weights could not be had here: every view uses {random_used} instead."
            detail = str(e)
    elif net is not None:
        model.load_state_dict(net.state_dict, strict=True)
        used, trained, classes = f"trained: {net.label} ({net.data})" if net.data else f"trained: {net.label}", \
            True, net.classes
    w = Weights(model=model, used=used, trained=trained, report=report, problem=problem, problem_detail=detail,
                classes=tuple(classes))
    st.session_state[MODEL] = (key, w)
    st.session_state.pop(RECORD, None)
    return w


# ------------------------------------------------------------------------------------------------
# input
# ------------------------------------------------------------------------------------------------

def input_key(kind: str, sample: str | None, upload, example: int, noise_seed: int, source: str) -> tuple:
    """Everything the input image depends on (its label alone would miss a re-upload under the same name)."""
    return (kind, sample, upload_id(upload) if kind == "upload" else "", example, noise_seed, source)


def input_for(spec: ArchSpec, kind: str, sample: str | None = None, upload=None, example: int = 0,
              noise_seed: int = 0, source: str = "random") -> tuple[images.ImageInput, str | None]:
    """The input image and, when it is not what was chosen, why (no file uploaded yet)."""
    shape = spec.input_shape
    if kind == "sample":
        return images.load_sample(sample or images.list_samples()[0], shape,
                                  crop_fraction=0.875 if source == "imagenet" else 1.0), None
    if kind == "upload":
        if upload is None:
            return images.noise_input(shape, noise_seed), "No image chosen yet: the input is seeded noise until then."
        return images.load_upload(upload.getvalue(), upload.name, shape), None
    net = handoff.lookup(source)
    if kind == "example" and net is not None:
        return net.example(example), None
    return images.noise_input(shape, noise_seed), None


def batch_for(x_in: images.ImageInput, spec: ArchSpec, batch_stats: bool, source: str = "random"
              ) -> tuple[torch.Tensor, str]:
    """The batch the pass runs on, and what it is. Running statistics: the image alone. Batch statistics:
    the image first, then other sample images (seeded noise where there are too few), so that batch norm
    normalises over BATCH_STATS_IMAGES images, not over one."""
    if not batch_stats:
        return x_in.tensor, "1 image"
    shape = spec.input_shape
    crop = 0.875 if source == "imagenet" else 1.0
    others = []
    for name in images.list_samples():
        if len(others) == BATCH_STATS_IMAGES - 1:
            break
        if x_in.source != f"sample {name}":
            others.append(images.load_sample(name, shape, crop_fraction=crop).tensor)
    n_samples = len(others)
    seed = 0
    while len(others) < BATCH_STATS_IMAGES - 1:
        others.append(images.noise_input(shape, 10_000 + seed).tensor)
        seed += 1
    x = torch.cat([x_in.tensor.to(others[0].dtype), *others], 0)
    what = f"a batch of {x.shape[0]}: this image and {n_samples} other sample images"
    if seed:
        what += f" and {seed} seeded noise images"
    return x, what


# ------------------------------------------------------------------------------------------------
# the forward record
# ------------------------------------------------------------------------------------------------

def record_ready(key, x: torch.Tensor, train: bool) -> bool:
    """Whether `record_for` with these arguments returns the kept pass (runs nothing)."""
    cached = st.session_state.get(RECORD)
    return bool(cached) and cached[0] == (key, bool(train), tuple(x.shape))


def record_for(model: nn.Module, x: torch.Tensor, plan: Plan, train: bool, key) -> views.ForwardRecord:
    """ONE forward pass keeping every view, reused while the weights, the input and the BN mode stay."""
    full_key = (key, bool(train), tuple(x.shape))
    if record_ready(key, x, train):
        return st.session_state[RECORD][1]
    rec = lab_forward.forward_record(model, x, plan, train=train, device="auto", should_stop=session_alive_stop())
    st.session_state[RECORD] = (full_key, rec)
    return rec


def session_alive_stop():
    alive = session_alive()
    return lambda: not alive()


# ------------------------------------------------------------------------------------------------
# gradient flow in the background
# ------------------------------------------------------------------------------------------------

@dataclass
class GradFlowJob:
    """One gradient flow of this session: a thread, its progress, a Stop, the result or the error."""

    spec: ArchSpec
    seed: int
    batch: int
    request: tuple  # what the page asked for (to say when the settings changed since)
    stop_event: threading.Event = field(default_factory=threading.Event)
    progress: GradProgress | None = None
    result: GradientFlow | None = None
    error: str | None = None
    finished: bool = False
    thread: threading.Thread | None = None
    alive: object = None  # the session's liveness check

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def _should_stop(self) -> bool:
        return self.stop_event.is_set() or (self.alive is not None and not self.alive())

    def _progress(self, p: GradProgress) -> None:
        self.progress = p

    def _work(self) -> None:
        from resnet_core.errors import ExplorerError
        try:
            self.result = gradients.gradient_flow(self.spec, seed=self.seed, batch=self.batch, device="auto",
                                                  progress=self._progress, should_stop=self._should_stop)
        except ExplorerError as e:
            self.error = str(e)
        except Exception as e:  # noqa: BLE001 - shown on the page as one line, never a traceback
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self.finished = True

    def start(self, alive=None) -> None:
        """Run in a thread of its own; it stops by itself once `alive()` (default: this browser session
        is still connected) turns false."""
        self.alive = alive or session_alive()
        self.thread = threading.Thread(target=self._work, name="resnet-explorer-gradflow", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()

    def wait(self, timeout: float | None = None) -> bool:
        if self.thread is not None:
            self.thread.join(timeout)
        return self.finished


def current_job() -> GradFlowJob | None:
    return st.session_state.get(JOB)


def start_job(spec: ArchSpec, seed: int, batch: int, request: tuple) -> GradFlowJob:
    """Start a gradient flow; a running one of this session is stopped first (one per session)."""
    old = current_job()
    if old is not None and old.running:
        old.stop()
        old.wait(30)
    job = GradFlowJob(spec=spec, seed=seed, batch=batch, request=request)
    st.session_state[JOB] = job
    job.start()
    return job


def fmt(v: float | None) -> str:
    if v is None:
        return "—"
    if not math.isfinite(v):
        return "NaN/Inf"
    return "0" if v == 0 else f"{v:.3g}"


def gradient_tables(flow: GradientFlow) -> tuple[list[dict], list[dict]]:
    """The rows of the two number tables: every weight gradient, every block-input gradient."""
    labels = [v.label for v in flow.variants]
    w = [{"depth": r["depth"], "layer": r["layer"], **{f"‖∂L/∂W‖ {lab}": fmt(n) for lab, n in zip(labels, r["norms"])},
          **{f"status {lab}": s for lab, s in zip(labels, r["statuses"])}, "ratio": fmt(r["ratio"])}
         for r in flow.weight_rows()]
    i = [{"depth": r["depth"], "block": r["block"], **{f"‖∂L/∂x‖ {lab}": fmt(n) for lab, n in zip(labels, r["norms"])},
          **{f"status {lab}": s for lab, s in zip(labels, r["statuses"])}, "ratio": fmt(r["ratio"])}
         for r in flow.input_rows()]
    return w, i
