"""The Live lab's per-session state (it never renders): this session's own model and what its weights
really are, the input batch, the one forward record every view reads, and the gradient-flow job.

- `model_for` builds this session's model for (spec, weights) and says which weights it really holds
  (`Weights.used`) and why, when they differ from the choice (`Weights.problem`).
- `record_for` runs ONE forward pass per (weights, input, BN mode) and keeps its `ForwardRecord`:
  changing the layer, the block or top-k on the page reads from it and runs nothing.
- `view_turn` lets at most VIEWS_AT_ONCE sessions draw their forward views at once, the others waiting in
  line (first come, first served), so that a classroom's twenty first views do not fight over the GIL
  with each other and with the server's event loop (health checks, every other session's messages).
- `start_job` runs a gradient flow as an `app.jobs.Job` (a thread of its own with progress and a Stop); it
  stops by itself when the session is gone, and a session has at most one.
- The session's network is admitted like a pass (`build_network`): its build is booked with
  `device.reserve`, and the kept network's weights stay booked while the session keeps it.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import streamlit as st
import torch
from torch import nn

from app import handoff, jobs
from resnet_core import i18n
from resnet_core.device import BusyError, FairSlots, describe_text, estimate_pass, reserve
from resnet_core.formatting import fmt_sig
from resnet_core.i18n import N_, _
from resnet_core.lab import forward as lab_forward
from resnet_core.lab import gradients, images, views, weights
from resnet_core.lab.flow import GradientFlow
from resnet_core.structure.build import build_model
from resnet_core.structure.records import Plan
from resnet_core.structure.spec import ArchSpec, spec_key
from resnet_core.structure.trace import Trace

TAB_FORWARD = N_("Forward: what the network sees")  # the page's two tabs (their labels are their values)
TAB_BACKWARD = N_("Backward: gradient flow with and without skips")
TAB_KEY = "live.tab"  # session_state: the open tab's label, in the language it was shown in (or English)
MODEL = "live.model"  # session_state: (key, Weights)
RECORD = "live.record"  # session_state: (key, ForwardRecord)
JOB = "live.gf_job"  # session_state: the gradient-flow Job (app.jobs)
BATCH_STATS_IMAGES = 8  # with batch statistics, the batch: the chosen image and 7 other sample images
# Forward views drawn at once by the whole server. Drawing one is mostly Python (build, the pass's hooks,
# the charts) under one GIL: more at once only slow each other and the event loop down; two let one
# session's torch work (which releases the GIL) overlap another's drawing.
VIEWS_AT_ONCE = 2
_VIEW_LINE = FairSlots(VIEWS_AT_ONCE)
# How long a session still there waits for its turn (in the view line, for the device) before it is told
# why not. Long: a class of sessions is served in order, and a waiter that leaves (closed tab, replaced
# run) leaves the line at once; a short fixed wait dropped the last sessions of a class (issue 25).
LINE_WAIT_S = 900.0


def tab_labels() -> tuple[str, str]:
    """The two tabs' labels in this run's language. The open tab is kept under its label here when it was
    chosen in another language (a guide's link sets the English label; a switch of language leaves the
    other language's label in the session)."""
    shown = (_(TAB_FORWARD), _(TAB_BACKWARD))
    chosen = st.session_state.get(TAB_KEY)
    if chosen is not None and chosen not in shown:
        for english, here in zip((TAB_FORWARD, TAB_BACKWARD), shown, strict=True):
            names = {english}
            for code in i18n.LANGUAGES:
                with i18n.use(code):
                    names.add(_(english))
            if chosen in names:
                st.session_state[TAB_KEY] = here
    return shown


INIT_TEXT = {"kaiming_fan_out": N_("kaiming fan out"), "kaiming_fan_in": N_("kaiming fan in"),
             "pytorch_default": N_("pytorch default"), "xavier": N_("xavier")}
STATUS_TEXT = {"ok": N_("ok"), "vanished": N_("vanished"), "exploded": N_("exploded"), "unused": N_("unused")}


def init_text(init: str) -> str:
    """An initialisation scheme's name as shown ("kaiming_fan_out" → "kaiming fan out")."""
    return _(INIT_TEXT[init]) if init in INIT_TEXT else init.replace("_", " ")


def status_text(status: str) -> str:
    """A gradient's status (ok | vanished | exploded | unused) as shown."""
    return _(STATUS_TEXT[status]) if status in STATUS_TEXT else status


def device_text(device: str) -> str:
    """The device line of a pass ("CPU · 2 threads"), in this run's language."""
    return describe_text(device)


COLUMN_TEXT = {"rank": N_("rank"), "channel": N_("channel"), "energy": N_("energy"), "min": N_("min"),
               "max": N_("max"), "flat": N_("flat")}


def shown_columns(df):
    """A library table with its column names as shown (the data keys stay English)."""
    return df.rename(columns={c: _(COLUMN_TEXT[c]) for c in df.columns if c in COLUMN_TEXT})


def sentences(*parts: str) -> str:
    """Sentences one after another, spaced as this run's language spaces them (English: one space; Chinese:
    none after a full stop)."""
    kept = [p for p in parts if p]
    return functools.reduce(lambda a, b: _("{sentence} {next}", sentence=a, next=b), kept) if kept else ""


def _leaving():
    """The stop check of a wait inside this script run: true once its session is gone or Streamlit has
    replaced the run (app.jobs' one liveness rule)."""
    alive = jobs.run_alive()
    return lambda: not alive()


@contextmanager
def view_turn(waiting_note=None, timeout: float = LINE_WAIT_S) -> Iterator[None]:
    """This session's turn to draw its forward views: waits in line (FIFO) behind the sessions drawing
    now. `waiting_note(n)` is called first when others are ahead. The wait ends only with the turn, or when
    the session leaves the line: its tab closed, or its run was replaced by a newer one (a click while it
    waited; the new run asks again): a run that nobody will see keeps no place. Raises BusyError, with the
    reason, after `timeout` seconds."""
    ahead = _VIEW_LINE.waiting + (1 if _VIEW_LINE.full else 0)
    if ahead and waiting_note is not None:
        waiting_note(ahead)
    leaving = _leaving()
    if not _VIEW_LINE.acquire(timeout=timeout, should_stop=leaving):
        if leaving():
            raise BusyError(_("this view was not drawn: the page was asked for again (or closed) while it waited"))
        raise BusyError(_("the server has been drawing other sessions' views for {minutes} minutes; try again in a "
                          "moment", minutes=f"{timeout / 60:.0f}"))
    try:
        yield
    finally:
        _VIEW_LINE.release()


# ------------------------------------------------------------------------------------------------
# weights
# ------------------------------------------------------------------------------------------------

def weight_sources(spec: ArchSpec) -> dict[str, str]:
    out = {"random": _("random (seeded)")}
    for net in handoff.matching(spec):
        out[net.choice] = _("trained: {label}", label=net.label)
    if weights.imagenet_weights_name(spec):
        out["imagenet"] = _("ImageNet (torchvision)")
    out["checkpoint"] = _("checkpoint file")
    return out


def input_sources(source: str) -> dict[str, str]:
    out = {}
    if handoff.lookup(source) is not None:
        out["example"] = _("held-out example")
    out.update({"sample": _("sample image"), "upload": _("your image"), "noise": _("random noise")})
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
    booking: Booking | None = field(default=None, repr=False, compare=False)  # the kept network's memory


class Booking:
    """Memory booked with `device.reserve` for as long as something is kept: `release()` (once; later
    calls do nothing) ends it. Booked on entry; raises MemoryGuardError, with the numbers, when it does
    not fit next to what is booked already."""

    def __init__(self, nbytes: int, what: str, device: str = "cpu"):
        self.nbytes = int(nbytes)
        self._cm = reserve(self.nbytes, device, what=what)
        self._cm.__enter__()
        self._lock = threading.Lock()
        self.released = False

    def release(self) -> None:
        with self._lock:
            if self.released:
                return
            self.released = True
        with _KEPT_LOCK:
            _KEPT.pop(id(self), None)
        self._cm.__exit__(None, None, None)


# every kept network's booking, with its session's liveness check (app.jobs' rule): a booking whose session
# is gone is released at the next admission even if the session's state has not been collected yet
_KEPT: dict[int, tuple[Booking, object]] = {}
_KEPT_LOCK = threading.Lock()


def release_kept(only_gone: bool = True) -> int:
    """Release the kept networks' bookings of sessions that are gone (all of them with only_gone=False: a
    test harness whose sessions are over); how many were released."""
    with _KEPT_LOCK:
        entries = list(_KEPT.values())
    n = 0
    for booking, alive in entries:
        if not only_gone or not alive():
            booking.release()
            n += 1
    return n


def build_network(t: Trace, seed: int) -> tuple[nn.Module, Booking]:
    """Build the trace's network, admitted like a pass is: the build (weights, one image's activations and
    workspace) is booked with `device.reserve` while it runs, so sessions asking at once cannot together
    build past the free memory or RESNET_EXPLORER_MEMORY_BUDGET; the built weights stay booked until the
    returned Booking is released (`keep` ties that to the kept network). Raises MemoryGuardError."""
    spec = t.plan.spec
    what = _("building {name} ({params} parameters) and running one image", name=spec.name,
             params=f"{t.total_params:,}")
    est = estimate_pass(t.param_bytes, t.activation_bytes, 1, backward=False)
    release_kept()  # what sessions that are gone still had booked goes first
    kept = Booking(t.param_bytes, what=what)
    try:
        with reserve(max(0, est.total - t.param_bytes), "cpu", what=what):
            model = build_model(t.plan, seed=seed)
    except BaseException:
        kept.release()
        raise
    return model, kept


def keep(holder: object, booking: Booking) -> None:
    """The booking lasts as long as `holder` (the session's kept network) and its session: released when
    the holder is dropped (the network is replaced, or the session's state goes), or at the next admission
    once the session is gone by app.jobs' liveness rule, whichever comes first."""
    weakref.finalize(holder, booking.release)
    with _KEPT_LOCK:
        _KEPT[id(booking)] = (booking, jobs.session_alive())


def _drop_kept_model() -> None:
    """The session's kept network is being replaced: its booking ends now (not whenever it is collected)."""
    cached = st.session_state.pop(MODEL, None)
    st.session_state.pop(RECORD, None)
    if cached is not None:
        booking = getattr(cached[1], "booking", None)
        if booking is not None:
            booking.release()


def model_for(t: Trace, source: str, seed: int, upload) -> Weights:
    """This session's model for (the trace's network, weights); rebuilt only when they change.

    Raises MemoryGuardError before building a network that does not fit next to what is booked (passes
    running, networks kept by sessions), CheckpointError for a file that is not a usable checkpoint."""
    spec = t.plan.spec
    key = model_key(spec, source, seed, upload)
    if model_ready(spec, source, seed, upload):
        return st.session_state[MODEL][1]
    _drop_kept_model()
    model, booking = build_network(t, seed)
    try:
        w = _with_weights(model, spec, source, seed, upload)
    except BaseException:
        booking.release()
        raise
    w = dataclasses.replace(w, booking=booking)
    keep(w, booking)
    st.session_state[MODEL] = (key, w)
    return w


def _with_weights(model: nn.Module, spec: ArchSpec, source: str, seed: int, upload) -> Weights:
    """The weights chosen, loaded into the freshly built `model`, and what they really are."""
    random_used = _("random weights (seed {seed}, {init} init)", seed=seed, init=init_text(spec.init))
    used, trained, report, problem, detail = random_used, False, None, None, None
    classes = weights.class_names_for(spec.num_classes)
    net = handoff.lookup(source)
    if source == "checkpoint":
        if upload is None:
            problem = _("No checkpoint file chosen yet: the views use random weights until you choose one.")
        else:
            report = weights.load_checkpoint(model, upload.getvalue(), strict=False)
            used, trained = _("checkpoint {name}", name=upload.name), True
    elif source == "imagenet":
        name = weights.imagenet_weights_name(spec)
        try:
            report = weights.load_imagenet_weights(model, name)
            used, trained = _("ImageNet weights ({name}, torchvision)", name=name), True
            classes = weights.class_names_for(spec.num_classes)
        except weights.WeightsUnavailable as e:
            problem = _("ImageNet weights could not be had here: every view uses {weights} instead.",
                        weights=random_used)
            detail = str(e)
    elif net is not None:
        model.load_state_dict(net.state_dict, strict=True)
        used = (_("trained: {label} ({data})", label=net.label, data=net.data) if net.data
                else _("trained: {label}", label=net.label))
        trained, classes = True, net.classes
    return Weights(model=model, used=used, trained=trained, report=report, problem=problem, problem_detail=detail,
                   classes=tuple(classes))


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
            return images.noise_input(shape, noise_seed), _("No image chosen yet: the input is seeded noise until "
                                                            "then.")
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
        return x_in.tensor, _("1 image")
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
    what = _("a batch of {n}: this image and {samples} other sample images", n=x.shape[0], samples=n_samples)
    if seed:
        what += _(" and {n} seeded noise images", n=seed)
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
    rec = lab_forward.forward_record(model, x, plan, train=train, device="auto", should_stop=_leaving(),
                                     slot_timeout=LINE_WAIT_S)
    st.session_state[RECORD] = (full_key, rec)
    return rec


# ------------------------------------------------------------------------------------------------
# gradient flow in the background
# ------------------------------------------------------------------------------------------------

def gradflow_work(spec: ArchSpec, seed: int, batch: int):
    """The work of a gradient-flow job: the library's gradient flow, waiting its turn for the device as
    long as its session is there (LINE_WAIT_S at most), with progress and a Stop."""
    code = i18n.language()  # the job's thread speaks the language of the run that started it (its messages)

    def work(should_stop, report) -> GradientFlow:
        with i18n.use(code):
            return gradients.gradient_flow(spec, seed=seed, batch=batch, device="auto", progress=report,
                                           should_stop=should_stop, slot_timeout=LINE_WAIT_S)
    return work


def gradflow_job(spec: ArchSpec, seed: int, batch: int, request: tuple) -> jobs.Job:
    """A gradient-flow job, not started (`.start(alive=...)`); `job.request` is what the page asked for."""
    return jobs.Job("gradflow", gradflow_work(spec, seed, batch), spec=spec, seed=seed, batch=batch,
                    request=request)


def current_job() -> jobs.Job | None:
    return st.session_state.get(JOB)


def start_job(spec: ArchSpec, seed: int, batch: int, request: tuple) -> jobs.Job:
    """Start a gradient flow; a running one of this session is stopped first (one per session)."""
    return jobs.replace_job(st.session_state, JOB, gradflow_job(spec, seed, batch, request))


def fmt(v: float | None) -> str:
    return fmt_sig(v, 3, nan="NaN/Inf", inf=("NaN/Inf", "NaN/Inf"))


def gradient_tables(flow: GradientFlow) -> tuple[list[dict], list[dict]]:
    """The rows of the two number tables: every weight gradient, every block-input gradient."""
    labels = [_(v.label) for v in flow.variants]
    depth, ratio = _("depth"), _("ratio")

    def status(lab: str) -> str:
        return _("status {variant}", variant=lab)
    w = [{depth: r["depth"], _("layer"): r["layer"],
          **{f"‖∂L/∂W‖ {lab}": fmt(n) for lab, n in zip(labels, r["norms"], strict=True)},
          **{status(lab): status_text(s) for lab, s in zip(labels, r["statuses"], strict=True)}, ratio: fmt(r["ratio"])}
         for r in flow.weight_rows()]
    i = [{depth: r["depth"], _("block"): r["block"],
          **{f"‖∂L/∂x‖ {lab}": fmt(n) for lab, n in zip(labels, r["norms"], strict=True)},
          **{status(lab): status_text(s) for lab, s in zip(labels, r["statuses"], strict=True)}, ratio: fmt(r["ratio"])}
         for r in flow.input_rows()]
    return w, i
