"""The Why it works page's per-session state: one background experiment at a time and its results kept per
settings; and the server's trained pairs, shared by every session and by the lesion study and the loss
landscape when their settings agree: prepared for the class (resnet_core.training.prepared, under the data
folder) or trained by any session of this process (kept here, the newest MAX_SHARED_PAIRS). Never renders.

A job (app.jobs.Job) runs the library's experiment in a thread; the page polls its progress every second,
Stop sets an event the experiment checks between steps, and a job whose session is gone (app.jobs'
liveness rule) stops by itself.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import streamlit as st

from app.jobs import Job, replace_job
from resnet_core.experiments.common import ExperimentResult, said
from resnet_core.i18n import N_, _

JOB = "why.job"
RESULTS = "why.results"  # {(name, settings key): ExperimentResult}
MAX_RESULTS = 12  # per session; the oldest goes first
MAX_SHARED_PAIRS = 4  # pairs trained by any session, kept for every session of this process (the oldest goes first)
_SHARED: OrderedDict[str, Any] = OrderedDict()
_SHARED_LOCK = threading.Lock()
_ESTIMATES: dict[Any, threading.Thread] = {}


@dataclass(frozen=True)
class Step:
    """An experiment's progress: the fraction done and what it is doing."""

    fraction: float
    text: str


def current() -> Job | None:
    return st.session_state.get(JOB)


def start(name: str, key: Any, work: Callable[[Callable[[], bool], Callable[[float, str], None]], ExperimentResult]
          ) -> Job:
    """Run the experiment `work(should_stop, progress(fraction, text))` as this session's job (a running one
    is stopped first); `job.name` is the experiment, `job.key` the settings its result is kept under."""
    def run(should_stop, report) -> ExperimentResult:
        return work(should_stop, lambda fraction, text: report(Step(max(0.0, min(1.0, fraction)), text)))
    job = Job(name, run, key=key)
    job.progress = Step(0.0, said(N_("starting…")))
    return replace_job(st.session_state, JOB, job, wait_s=0)


# The tables' column names and their labels' values, shown (tables, CSV files) through _(): in English as they are
TABLES = (N_("stream"), N_("autocorrelation"), N_("gradients"), N_("stacks"), N_("maps"), N_("network"), N_("single"),
          N_("random"), N_("paths"), N_("baseline"), N_("slice_1d"), N_("slice_2d"), N_("summary"))
COLUMNS = (N_("variant"), N_("bn"), N_("skips"), N_("block"), N_("name"), N_("variance"), N_("channel_variance"),
           N_("squared_channel_mean"), N_("reference_l_plus_1"), N_("arch"), N_("depth"), N_("bias"),
           N_("autocorrelation"), N_("sd"), N_("min"), N_("max"), N_("seeds"), N_("toggles"), N_("x"),
           N_("gradient"), N_("gradient_scaled"), N_("stack"), N_("layers"), N_("erf_std"), N_("std_over_sqrt_n"),
           N_("theoretical_rf"), N_("share_of_rf"), N_("centre_weight"), N_("map"), N_("row"), N_("col"),
           N_("value"), N_("relative"), N_("layer"), N_("input"), N_("index"), N_("downsampling"), N_("residual"),
           N_("plain"), N_("k"), N_("net"), N_("mean"), N_("draws"), N_("length"), N_("fraction"), N_("accuracy"),
           N_("alpha"), N_("beta"), N_("loss"), N_("role"), N_("train_accuracy"), N_("loss_at_0"),
           N_("loss_at_distance_1"), N_("convex_share_2d"), N_("max_loss_2d"))
LABEL_COLUMNS = {"variant", "toggles", "arch", "stack", "role", "net", "name", "map"}  # their values are words


def label_text(value: Any) -> Any:
    """A table's label (a variant, an architecture, an ERF map's "plain, 8 layers") in this run's language."""
    from app.charts.experiments import map_title
    if not isinstance(value, str):
        return value
    titled = map_title(value)
    return _(value) if titled == value else titled


def shown_rows(rows: list[dict]) -> list[dict]:
    """A table's rows with their column names and labels in this run's language (English: the rows as they are)."""
    return [{_(k): label_text(v) if k in LABEL_COLUMNS else v for k, v in r.items()} for r in rows]


def shown(df: Any) -> Any:
    """A data frame of the page with its column names and labels in this run's language."""
    df = df.copy()
    for col in LABEL_COLUMNS & set(df.columns):
        df[col] = df[col].map(label_text)
    return df.rename(columns=lambda c: _(c) if isinstance(c, str) else c)


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
    for (n, _key), r in results().items():
        if n == name:
            found = r
    return found


def pair_key(ps: Any) -> str:
    from resnet_core.training.prepared import pair_settings
    return repr(sorted(pair_settings(ps).items()))


def shared_pair(ps: Any, root=None) -> Any:
    """The trained pair of these settings this server already has — prepared for the class (under the data
    folder, surviving a restart) or trained by any session of this process — or None. Shared: take
    trained.private_copy before running on it."""
    from resnet_core.training import prepared
    ready = prepared.load_pair(ps, root)
    if ready is not None:
        return ready
    with _SHARED_LOCK:
        return _SHARED.get(pair_key(ps))


def keep_pair(ps: Any, pair: Any) -> None:
    """Keep a pair a session trained (to its end) for every session of this process."""
    with _SHARED_LOCK:
        _SHARED[pair_key(ps)] = pair
        while len(_SHARED) > MAX_SHARED_PAIRS:
            _SHARED.popitem(last=False)


def in_background(key: Any, fn: Callable[[], Any]) -> bool:
    """Run `fn` once per process in a thread of its own (a first-use measurement); whether it is still running."""
    with _SHARED_LOCK:
        t = _ESTIMATES.get(key)
        if t is None:
            t = _ESTIMATES[key] = threading.Thread(target=fn, daemon=True, name="resnet-explorer-calibration")
            t.start()
    return t.is_alive()


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
