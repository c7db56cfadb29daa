"""A training run in the background for one browser session.

The run is an `app.jobs.Job`: it trains in a thread of its own (the library's `TrainingRun.iter`), so
the page can redraw its curves every second, the Stop button only sets an event, and what was learned is
kept; or, on several processes, the job owns the `train --nproc N` launcher's process group and follows
its progress file. Each session has at most one job. A job stops by itself once its session is gone
(app.jobs' liveness rule), the library's device slot keeps two sessions from training on one device at
once, and the server runs at most MAX_PROCESS_RUNS multi-process runs at a time.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from app.jobs import Capacity, Failed, Job, make_workdir, replace_job, start_process
from resnet_core import calibration, i18n
from resnet_core.calibration import Span
from resnet_core.i18n import N_, _, ngettext
from resnet_core.paths import ROOT
from resnet_core.training import prepared
from resnet_core.training.data import Dataset, load_data
from resnet_core.training.results import TrainResult
from resnet_core.training.run import TrainingRun
from resnet_core.training.session import ProgressReader

JOB = "train.job"
DATA_DIR_ENV = "RESNET_EXPLORER_DATA_DIR"


def data_root() -> Path | None:
    """The folder the operator lets visitors read CIFAR-10 from: $RESNET_EXPLORER_DATA_DIR, else the
    Streamlit secret `data_dir`; None when neither is set (then no server path is readable)."""
    value = os.environ.get(DATA_DIR_ENV)
    if not value:
        try:
            value = st.secrets.get("data_dir")
        except Exception:  # noqa: BLE001 - no secrets file: the setting is simply absent
            value = None
    root = Path(value) if value else None
    calibration.use_data_root(root)  # the server's measurements and prepared runs live below it
    return root


def visitor_text(text: object) -> str:
    """`text` as a visitor may see it: the server's data folder (as set and as resolved) reads `DATA`."""
    out = str(text)
    root = data_root()
    if root is None:
        return out
    forms = {str(root)}
    with contextlib.suppress(OSError, RuntimeError):
        forms.add(str(root.resolve()))
    for form in sorted((f.rstrip("/") for f in forms if f.rstrip("/")), key=len, reverse=True):
        out = out.replace(form, "DATA")
    return out


def shown_device(text: str) -> str:
    """A device line as a run keeps it ('CPU · 2 threads', 'CUDA · H100 (79.1 GiB free) · bf16 autocast', '… per
    worker · 2 workers (gloo, CPU)') in this run's language (English: as it is)."""
    if i18n.language() == i18n.DEFAULT:
        return text
    text = re.sub(r"\b(\d+) threads?\b",
                  lambda m: ngettext("{n} thread", "{n} threads", int(m.group(1)), n=m.group(1)), text)
    text = re.sub(r"\b(\d+) workers?\b",
                  lambda m: ngettext("{n} worker", "{n} workers", int(m.group(1)), n=m.group(1)), text)
    text = re.sub(r"\(([^()]+) free\)", lambda m: _("({amount} free)", amount=m.group(1)), text)
    return text.replace(" per worker", _(" per worker"))  # i18n: not shown (what is replaced)


def current() -> Job | None:
    return st.session_state.get(JOB)


@dataclass(frozen=True)
class Evaluating:
    """The progress of a run's final evaluation (after its last step, or after Stop)."""

    net: str  # the net being evaluated ("" once done)
    index: int  # 0-based
    nets: int
    images: int  # images each net is evaluated on
    left: Span | None  # the estimated time left
    step: int  # the step the training ended at
    total: int

    @property
    def fraction(self) -> float:
        return self.index / max(1, self.nets)

    def text(self) -> str:
        if not self.net:
            return _("evaluated every net at step {step}", step=f"{self.step:,}")
        fields = {"step": f"{self.step:,}", "total": f"{self.total:,}", "net": self.net, "i": self.index + 1,
                  "n": self.nets, "images": f"{self.images:,}"}
        if self.left is None:
            return _("training ended at step {step} of {total}; evaluating {net} ({i} of {n}) on {images} images, "
                     "train and held-out splits", **fields)
        return _("training ended at step {step} of {total}; evaluating {net} ({i} of {n}) on {images} images, "
                 "train and held-out splits · {left} left", left=self.left.text(), **fields)


def training_work(run: TrainingRun, estimate=None, prepare: dict | None = None):
    """The work of a training job: the library's run, step by step, its progress reported; then the final
    evaluation, net by net, with its progress; with `prepare` (the run's settings) the result is kept for every
    session (prepared.save_training)."""
    def work(should_stop, report) -> TrainResult:
        for update in run.iter(should_stop=should_stop):
            report(update.progress)
        per_net = {n.label: n.eval_per_image for n in estimate.nets} if estimate is not None else {}
        images = estimate.eval_images if estimate is not None else 0

        def evaluating(i: int, n: int, label: str) -> None:
            left = None
            if per_net and label:
                left = sum((per_net[x].scaled(images) for x in run.labels[i:] if x in per_net), Span(0.0, 0.0))
            report(Evaluating(label, i, n, images or run.data.n_train + run.data.n_test, left, run.step,
                              run.config.steps))
        result = run.result(evaluating)
        if prepare is not None and not result.stopped:
            prepared.save_training(result, prepare, prepared.HOWS[0], data_root())  # "a teacher in the app"
        return result
    return work


def start(run: TrainingRun, experiment: str | None, estimate=None, prepare: dict | None = None) -> Job:
    """Train `run` as this session's job (a running one is stopped first); `job.run`, `job.experiment`,
    `job.estimate` (training.estimate.TrainingEstimate or None), `job.prepare` (the settings it prepares)."""
    return replace_job(st.session_state, JOB, Job("training", training_work(run, estimate, prepare), run=run,
                                                  experiment=experiment, estimate=estimate, prepare=prepare),
                       wait_s=0)


def default_estimate(device, defaults, root=None):
    """The Training lab's default run on this server: (TrainingEstimate or None, measuring). The first page view
    of a server that never measured it starts timing a few steps of each net in the background (once per
    process; the figures are kept under the data folder), and says so until they are in."""
    from resnet_core.training import estimate as te
    from resnet_core.training.config import experiment_specs
    size = defaults.input_size
    specs = {label: spec.replace(in_channels=3, input_size=size, num_classes=10)
             for label, spec in experiment_specs("degradation")}
    images = 1797  # the digits: every image is evaluated at the end (train and held-out splits)
    est = te.estimate_training(specs, defaults.steps, defaults.batch_size, device, defaults.threads, images,
                               measure=False, data_root=root)
    if est is not None:
        return est, False
    where = str(calibration.state_dir(root))  # once per process and state folder
    with _CALIBRATING_LOCK:
        thread = _CALIBRATING.get(where)
        if thread is None:
            thread = _CALIBRATING[where] = threading.Thread(
                target=te.estimate_training, args=(specs, defaults.steps, defaults.batch_size, device, defaults.threads,
                                                   images), kwargs={"data_root": root}, daemon=True,
                name="resnet-explorer-calibration")
            thread.start()
    return None, thread.is_alive()


_CALIBRATING: dict[str, threading.Thread] = {}
_CALIBRATING_LOCK = threading.Lock()


def show_prepared(result: TrainResult, experiment: str | None, data_args: dict) -> Job:
    """A prepared run as this session's finished job: its curves, table and nets, trained once for the server.
    `data_args` (load_data's) give the data set the Live lab's hand-off takes its examples from."""
    run = ProcessRun([r.net for r in result.nets], data_args, result.device)
    run.records[:], run.evals[:] = result.records, result.evals
    job = Job("prepared", lambda should_stop, report: result, run=run, experiment=experiment, estimate=None,
              prepare=None, prepared=getattr(result, "prepared", None))
    return replace_job(st.session_state, JOB, job, wait_s=0)


def records_frame(run: TrainingRun):
    """The step records so far as a DataFrame (a snapshot: the training thread keeps appending)."""
    import pandas as pd
    recs = list(run.records[: len(run.records)])
    if not recs:
        return pd.DataFrame(columns=["step", "net", "loss", "accuracy", "lr", "time_s"])
    return pd.DataFrame([r.__dict__ for r in recs])


def checkpoint_bytes(result: TrainResult, label: str) -> bytes:
    buf = io.BytesIO()
    torch.save(result.state_dict(label), buf)
    return buf.getvalue()


def hand_off(result: TrainResult, label: str, run: TrainingRun, examples: int = 16) -> dict:
    """What the live lab needs to run a trained net: its spec, weights, class names, held-out examples."""
    data = run.data
    x = data.x_test[:examples].cpu()
    shown = data.denormalise(x).clamp(0, 1)
    display = []
    for img in shown:
        arr = (img.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        display.append(arr[..., 0] if arr.shape[2] == 1 else arr)
    return {"spec": result.net(label).spec, "state": result.state_dict(label), "classes": list(data.classes),
            "examples": x, "example_labels": data.y_test[:examples].cpu(), "example_display": display,
            "data": visitor_text(data.describe())}


# --------------------------------------------------------------------------------------------
# a run on several local processes: `python -m resnet_core train --nproc N`, read from its progress file
# --------------------------------------------------------------------------------------------

class ProcessRun:
    """What the page reads from a run: labels, step records so far, the device line and (lazily) the data."""

    def __init__(self, labels: list[str], data_args: dict, device: str):
        self.labels, self.records, self.evals = labels, [], []
        self._data_args, self._data, self._device = data_args, None, device

    @property
    def data(self) -> Dataset:
        if self._data is None:
            self._data = load_data(**self._data_args)
        return self._data

    def describe_device(self) -> str:
        return self._device


class ProcessFollower:
    """Reads a --nproc run's progress file (through the library's ProgressReader: the one reader of the
    format the train command writes) into its ProcessRun, and its result with the checkpoints it saved."""

    def __init__(self, run: ProcessRun, workdir: Path):
        self.run, self.workdir = run, workdir
        self.reader = ProgressReader(workdir / "progress.jsonl")
        self.result: TrainResult | None = None

    def read(self, msg: dict, report) -> None:
        self.reader.feed(msg)
        r = self.reader
        kind = msg.get("kind")
        if kind == "start":
            self.run.labels, self.run._device = list(r.labels), r.device
        elif kind == "update":
            self.run.records[:], self.run.evals[:] = r.records, r.evals
            report(r.progress)
        elif kind == "result":
            self.result = r.result(self.workdir / "ckpt")

    def finish(self, returncode: int, stderr_text: str) -> TrainResult:
        """The run's result (done, or stopped: 130 and 143 still write it), or Failed with the launcher's last
        error line (one line, no server path)."""
        if returncode in (0, 130, 143) and self.result is not None:
            return self.result
        lines = [x for x in stderr_text.splitlines() if x.strip()]
        errors = [x for x in lines if x.startswith("error:")]
        raise Failed(visitor_text(errors[-1] if errors else (lines[-1] if lines else
                                                            _("exit status {code}", code=returncode))))


# At most this many multi-process runs at once on the server: each takes every core (or GPU) it is given.
MAX_PROCESS_RUNS = 1
WORKDIR_PREFIX = "resnet-explorer-nproc-"
PROCESS_RUNS = Capacity(MAX_PROCESS_RUNS, N_("another session's run on several processes is using this server's "
                                             "workers (one such run at a time): try again when it ends, or train "
                                             "on one process (Start training)"))


def start_processes(args: list[str], nproc: int, labels: list[str], data_args: dict, device: str,
                    experiment: str | None) -> Job:
    """Start `python -m resnet_core train ARGS --nproc N` as this session's job: its progress file and
    checkpoints in a private temporary folder, removed when the run ends; refused (jobs.Refused) while the
    server runs MAX_PROCESS_RUNS of them. `job.run` is its ProcessRun, `job.nproc` its process count."""
    old = current()
    if old is not None and old.running:
        old.stop()
        old.wait(5)
    PROCESS_RUNS.take()  # first: a refused run makes nothing
    workdir = None
    try:
        workdir = make_workdir(WORKDIR_PREFIX)
        cmd = [sys.executable, "-m", "resnet_core", *args, "--nproc", str(nproc), "--quiet", "--format", "json",
               "--progress-file", str(workdir / "progress.jsonl"), "--save-dir", str(workdir / "ckpt")]
        run = ProcessRun(labels, data_args, device)
        follower = ProcessFollower(run, workdir)
        work = start_process(cmd, workdir, follower.read, follower.finish, cwd=ROOT, on_end=PROCESS_RUNS.give)
        job = Job("nproc", work, run=run, experiment=experiment, nproc=nproc, workdir=workdir)
    except BaseException:
        PROCESS_RUNS.give()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
        raise
    return replace_job(st.session_state, JOB, job, wait_s=0)
