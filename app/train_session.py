"""A training run in the background for one browser session.

The run trains in a thread of its own (the library's `TrainingRun.iter`), so the page can redraw its
curves every second, the Stop button only sets an event, and what was learned is kept. Each session
has at most one job. The job stops by itself if its session stops asking for it (a closed tab), and
the library's device slot keeps two sessions from training on one device at once.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import streamlit as st
import torch

from resnet_core.training import results as train_results
from resnet_core.training.results import TrainResult
from resnet_core.training.run import TrainingRun

JOB = "train.job"
ABANDONED_AFTER_S = 300  # no rerun of this session for this long: the tab is gone, stop training


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
