"""What every experiment shares: the result record (claim, settings, measured tables, verdict), settings
checks, seeding and the CSV/JSON export.

An experiment is a function `run(settings, should_stop=None, on_progress=None) -> ExperimentResult`.
Its numbers are in `tables` (one list of flat rows per plotted quantity), its verdict is computed from
them, and every sentence it returns (`findings`) is built from those numbers.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Iterator

import torch

from resnet_core.device import torch_threads as threads  # noqa: F401 - the experiments' thread setting
from resnet_core.errors import ExplorerError

NAMES = ("lesion", "shatter", "erf", "landscape", "signal")

# CPU intra-op threads while an experiment runs: half the cores, like the Training lab (two threads that
# compete with another process for two cores can run many times slower)
CPU_THREADS = max(1, (os.cpu_count() or 2) // 2)


class ExperimentError(ExplorerError):
    """A setting out of range, a network the experiment cannot use, or a run that cannot start."""


class Stopped(Exception):
    """Raised inside an experiment when its caller asked it to stop; the runner catches it."""


@dataclass(frozen=True)
class Paper:
    citation: str  # authors, title, venue, year
    claim: str  # the paper's claim, in one sentence
    url: str  # where to read it


@dataclass(frozen=True)
class Verdict:
    reproduced: bool
    claim: str  # the acceptance criterion, in words, with its thresholds
    measured: dict[str, Any]  # the numbers that decide it
    checks: tuple[tuple[str, bool], ...] = ()  # each condition, in words with its numbers, and whether it held

    def to_dict(self) -> dict[str, Any]:
        return {"reproduced": self.reproduced, "claim": self.claim, "measured": _clean(self.measured),
                "checks": [{"check": text, "passed": ok} for text, ok in self.checks]}


@dataclass
class ExperimentResult:
    name: str  # one of NAMES
    title: str
    paper: Paper
    settings: dict[str, Any]  # every setting the run used
    tables: dict[str, list[dict[str, Any]]]  # every plotted number, one table per chart
    verdict: Verdict
    findings: list[str]  # sentences computed from the numbers
    explanation: str  # for students: why the result comes out this way
    seconds: float = 0.0  # wall time of the run
    stopped: bool = False  # stopped early: the tables hold what was measured so far
    extra: dict[str, Any] = field(default_factory=dict, repr=False)  # live objects (models), never exported

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.name, "title": self.title, "paper": asdict(self.paper),
                "settings": _clean(self.settings), "tables": _clean(self.tables),
                "verdict": self.verdict.to_dict(), "findings": list(self.findings),
                "explanation": self.explanation, "seconds": round(self.seconds, 3), "stopped": self.stopped}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def table_csv(self, table: str) -> str:
        return rows_csv(self.tables[table])


def _clean(value: Any) -> Any:
    """JSON-safe: tuples to lists, non-finite floats to None (JSON has no NaN), numpy/torch scalars to floats."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if hasattr(value, "item") and not isinstance(value, float):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def _csv_cell(v: Any) -> Any:
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") and not _is_number(v):
        return "'" + v  # a spreadsheet must not read a cell as a formula
    return v


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def rows_csv(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _csv_cell(r.get(k, "")) for k in keys})
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------- settings

def check_settings(settings: Any, bounds: dict[str, tuple[float, float]]) -> None:
    """Every numeric field within its bounds (inclusive) and finite; ExperimentError naming each that is not."""
    problems = []
    for f in fields(settings):
        if f.name not in bounds:
            continue
        lo, hi = bounds[f.name]
        v = getattr(settings, f.name)
        values = v if isinstance(v, (tuple, list)) else (v,)
        if isinstance(v, (tuple, list)) and not v:
            problems.append(f"{f.name} must not be empty")
        for x in values:
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                problems.append(f"{f.name} must be a number, got {x!r}")
            elif not math.isfinite(x):
                problems.append(f"{f.name} must be a finite number, got {x}")
            elif not lo <= x <= hi:
                problems.append(f"{f.name} must be between {lo:g} and {hi:g}, got {x:g}")
    if problems:
        raise ExperimentError("; ".join(problems))


def stop_fn(should_stop: Callable[[], bool] | threading.Event | None) -> Callable[[], bool]:
    if should_stop is None:
        return lambda: False
    if isinstance(should_stop, threading.Event):
        return should_stop.is_set
    return should_stop


Progress = Callable[[float, str], None]  # (fraction done 0..1, what is being done)


def no_progress(_f: float, _text: str) -> None:
    return None


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Torch's global RNG set to `seed` inside, restored after (module initialisers draw from it)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def fmt(x: float, digits: int = 3) -> str:
    """A number for a sentence: 3 significant digits, 'nan'/'inf' spelled out."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return f"{x:.{digits}g}"


def pct(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.1f} %"
