"""The Why it works page's per-session state: one background experiment at a time, results kept per
settings, and the trained pair (taken from the Training lab, or trained here) shared by the lesion
study and the loss landscape. Never renders.

A job runs the library's experiment in a thread; the page polls its progress every second, Stop sets an
event the experiment checks between steps, and a job whose session stops asking for it (a closed tab)
stops by itself.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import streamlit as st

from resnet_core.experiments.common import ExperimentResult

JOB = "why.job"
RESULTS = "why.results"  # {(name, settings key): ExperimentResult}
PAIRS = "why.pairs"  # {pair settings key: TrainedPair} trained on this page
ABANDONED_AFTER_S = 300
MAX_RESULTS = 12  # per session; the oldest goes first


@dataclass
class Job:
    name: str  # the experiment
    key: Any  # the settings key its result is kept under
    work: Callable[[Callable[[], bool], Callable[[float, str], None]], ExperimentResult]
    stop_event: threading.Event = field(default_factory=threading.Event)
    fraction: float = 0.0
    text: str = "starting…"
    result: ExperimentResult | None = None
    error: str | None = None
    finished: bool = False
    started: float = field(default_factory=time.monotonic)
    last_seen: float = field(default_factory=time.monotonic)
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def _should_stop(self) -> bool:
        return self.stop_event.is_set() or time.monotonic() - self.last_seen > ABANDONED_AFTER_S

    def _progress(self, fraction: float, text: str) -> None:
        self.fraction, self.text = max(0.0, min(1.0, fraction)), text

    def _work(self) -> None:
        from resnet_core.errors import ExplorerError
        try:
            self.result = self.work(self._should_stop, self._progress)
        except ExplorerError as e:
            self.error = str(e)
        except Exception as e:  # noqa: BLE001 - shown on the page as one line, never a traceback
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self.finished = True

    def start(self) -> None:
        self.thread = threading.Thread(target=self._work, name=f"resnet-explorer-{self.name}", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()


def current() -> Job | None:
    return st.session_state.get(JOB)


def touch() -> None:
    job = current()
    if job is not None:
        job.last_seen = time.monotonic()


def start(name: str, key: Any, work) -> Job:
    old = current()
    if old is not None and old.running:
        old.stop()
    job = Job(name, key, work)
    st.session_state[JOB] = job
    job.start()
    return job


def results() -> dict:
    return st.session_state.setdefault(RESULTS, {})


def collect() -> None:
    """Move a finished job's result into the results (once)."""
    job = current()
    if job is not None and job.finished and job.result is not None:
        store = results()
        if store.get((job.name, job.key)) is not job.result:
            store[(job.name, job.key)] = job.result
            while len(store) > MAX_RESULTS:
                store.pop(next(iter(store)))


def result_for(name: str, key: Any) -> ExperimentResult | None:
    return results().get((name, key))


def latest(name: str) -> ExperimentResult | None:
    """The most recent result of this experiment, whatever its settings."""
    found = None
    for (n, _), r in results().items():
        if n == name:
            found = r
    return found


def pairs() -> dict:
    return st.session_state.setdefault(PAIRS, {})


def training_lab_pair(residual: str):
    """(residual label, plain label, TrainResult, Dataset) from a finished Training lab run holding this
    residual preset and its plain twin, or None."""
    from resnet_core.experiments.trained import twin_of
    try:
        from app import train_session
    except ImportError:  # pragma: no cover - the Training lab is part of the app
        return None
    job = train_session.current()
    if job is None or not job.finished or job.result is None:
        return None
    result = job.result
    plain = twin_of(residual)
    by_name = {r.spec.name: r for r in result.nets if r.diverged_at is None}
    if residual in by_name and plain in by_name:
        r, p = by_name[residual], by_name[plain]
        if r.net in result.models and p.net in result.models:
            return r.net, p.net, result, job.run.data
    return None
