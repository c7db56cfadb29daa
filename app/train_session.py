"""A training run in the background for one browser session.

The run trains in a thread of its own (the library's `TrainingRun.iter`), so the page can redraw its
curves every second, the Stop button only sets an event, and what was learned is kept. Each session
has at most one job. The job stops by itself if its session stops asking for it (a closed tab), and
the library's device slot keeps two sessions from training on one device at once.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from resnet_core.paths import ROOT
from resnet_core.structure.spec import spec_from_dict
from resnet_core.training import results as train_results
from resnet_core.training.config import TrainConfig
from resnet_core.training.data import Dataset, load_data
from resnet_core.training.results import EvalRecord, NetResult, Progress, StepRecord, TrainResult
from resnet_core.training.run import TrainingRun

JOB = "train.job"
ABANDONED_AFTER_S = 300  # no rerun of this session for this long: the tab is gone, stop training
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
    return Path(value) if value else None


@dataclass
class Job:
    run: TrainingRun
    experiment: str | None
    stop_event: threading.Event = field(default_factory=threading.Event)
    progress: train_results.Progress | None = None
    result: TrainResult | None = None
    error: str | None = None
    finished: bool = False
    last_seen: float = field(default_factory=time.monotonic)
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def _should_stop(self) -> bool:
        return self.stop_event.is_set() or time.monotonic() - self.last_seen > ABANDONED_AFTER_S

    def _work(self) -> None:
        try:
            for update in self.run.iter(should_stop=self._should_stop):
                self.progress = update.progress
            self.result = self.run.result()
        except Exception as e:  # noqa: BLE001 - shown to the user on the page, never a traceback
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self.finished = True

    def start(self) -> None:
        self.thread = threading.Thread(target=self._work, name="resnet-explorer-training", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()


def current() -> Job | None:
    return st.session_state.get(JOB)


def touch() -> None:
    """Called on every rerun of the app: this session is still here."""
    job = current()
    if job is not None:
        job.last_seen = time.monotonic()


def start(run: TrainingRun, experiment: str | None) -> Job:
    old = current()
    if old is not None and old.running:
        old.stop()
    job = Job(run=run, experiment=experiment)
    st.session_state[JOB] = job
    job.start()
    return job


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
            "data": data.describe()}


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


@dataclass
class ProcessJob:
    """A --nproc N run in child processes; a thread follows its progress file and stops it if the tab goes."""

    proc: subprocess.Popen
    workdir: Path
    run: ProcessRun
    experiment: str | None
    nproc: int
    progress: Progress | None = None
    result: TrainResult | None = None
    error: str | None = None
    finished: bool = False
    last_seen: float = field(default_factory=time.monotonic)
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return not self.finished

    def stop(self) -> None:
        """Ctrl-C for the launcher: torchrun stops every worker at its next step; rank 0 saves and reports."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def _follow(self) -> None:
        path, pos, stopped = self.workdir / "progress.jsonl", 0, False
        try:
            while True:
                exited = self.proc.poll() is not None
                if path.exists():
                    with path.open(encoding="utf-8") as f:
                        f.seek(pos)
                        while True:
                            line = f.readline()
                            if not line.endswith("\n"):
                                break
                            pos = f.tell()
                            self._read(json.loads(line))
                if exited:
                    break
                if not stopped and time.monotonic() - self.last_seen > ABANDONED_AFTER_S:
                    self.stop()
                    stopped = True
                time.sleep(0.3)
            if self.proc.returncode not in (0, 130) or self.result is None:
                lines = (self.workdir / "stderr.txt").read_text(encoding="utf-8", errors="replace").splitlines()
                errors = [x for x in lines if x.startswith("error:")]
                self.error = (errors[-1] if errors else (lines[-1] if lines else f"exit status {self.proc.returncode}"))
        except Exception as e:  # noqa: BLE001 - shown on the page, never a traceback
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self.finished = True

    def _read(self, msg: dict) -> None:
        kind = msg.get("kind")
        if kind == "start":
            self.run.labels = list(msg["labels"])
            self.run._device = f"{msg['device']} · effective batch {msg['effective_batch']}"
        elif kind == "update":
            self.run.records.extend(StepRecord(*r) for r in msg["records"] if r[2] is not None)
            self.run.evals.extend(EvalRecord(*e) for e in msg["evals"])
            p = msg["progress"]
            self.progress = Progress(p["step"], p["total"], p["elapsed_s"], p["steps_per_s"],
                                     p["eta_s"] if p["eta_s"] is not None else float("inf"), p["stopped"], p["done"])
        elif kind == "result":
            self.result = self._result(msg["result"])

    def _result(self, d: dict) -> TrainResult:
        cfg = dict(d["config"])
        cfg["milestones"] = tuple(cfg.get("milestones") or ())
        config = TrainConfig(**cfg)
        nets, models = [], {}
        nan = float("nan")
        for row in d["nets"]:
            spec = spec_from_dict(d["specs"][row["net"]])
            vals = {k: (nan if v is None and k not in ("diverged_at", "warmup_until") else v) for k, v in row.items()}
            nets.append(NetResult(spec=spec, **vals))
            ckpt = self.workdir / "ckpt" / f"{safe_name(row['net'])}.pt"
            if ckpt.is_file():
                models[row["net"]] = train_results.load_checkpoint(ckpt)[0]
        return TrainResult(nets, list(self.run.records), list(self.run.evals), config, d["data"], d["device"],
                           d["steps_done"], d["stopped"], d["wall_s"], models, world_size=d.get("world_size", 1),
                           global_batch=d.get("effective_batch", 0))

    def start(self) -> None:
        self.thread = threading.Thread(target=self._follow, name="resnet-explorer-nproc", daemon=True)
        self.thread.start()


def safe_name(label: str) -> str:
    import re
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "net"


def start_processes(args: list[str], nproc: int, labels: list[str], data_args: dict, device: str,
                    experiment: str | None) -> ProcessJob:
    """Start `python -m resnet_core train ARGS --nproc N` with its progress file and checkpoints in a private
    temporary folder (removed when the next run of this session starts)."""
    old = current()
    if old is not None and old.running:
        old.stop()
    _cleanup(old)
    workdir = Path(tempfile.mkdtemp(prefix="resnet-explorer-nproc-"))
    cmd = [sys.executable, "-m", "resnet_core", *args, "--nproc", str(nproc), "--quiet", "--format", "json",
           "--progress-file", str(workdir / "progress.jsonl"), "--save-dir", str(workdir / "ckpt")]
    with open(workdir / "stderr.txt", "wb") as err, open(workdir / "stdout.txt", "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    job = ProcessJob(proc, workdir, ProcessRun(labels, data_args, device), experiment, nproc)
    st.session_state[JOB] = job
    job.start()
    return job


def _cleanup(job) -> None:
    if isinstance(job, ProcessJob) and job.finished:
        shutil.rmtree(job.workdir, ignore_errors=True)
