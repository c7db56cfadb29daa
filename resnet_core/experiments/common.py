"""What every experiment shares: the result record (claim, settings, measured tables, verdict), settings
checks, admission by cost, seeding and the CSV/JSON export.

An experiment is a function `run(settings, should_stop=None, on_progress=None) -> ExperimentResult`.
Before it starts, its cost is estimated from its settings and network (`Cost`: the memory at its peak and
the multiply-adds in all) and admitted (`admitted`): a run that would not fit the memory left
(device.memory_room, RESNET_EXPLORER_MEMORY_BUDGET) or is above the work limit for one run
(device.work_limit, RESNET_EXPLORER_WORK_LIMIT) is refused with the numbers and a smaller setting that
fits; an admitted run books its memory (device.reserve) while it runs, and an allocation failure ends it
with one line (device.OutOfMemoryError).
Its numbers are in `tables` (one list of flat rows per plotted quantity), its verdict is computed from
them, and every sentence it returns (`findings`, the verdict's claim and checks, its progress) is built from
those numbers as a `Said`: the English text (what the command line prints), keeping its message and fields so
that the app says it again in its visitor's language where it shows it (`say`) — an experiment runs in a
thread of its own, and its result may be shown to a visitor of another language.
"""

from __future__ import annotations

import csv
import io
import json
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Self

import torch

from resnet_core.device import torch_threads as threads  # noqa: F401 - the experiments' thread setting
from resnet_core.errors import ExplorerError
from resnet_core.formatting import fmt_pct, fmt_sig
from resnet_core.i18n import _

NAMES = ("lesion", "shatter", "erf", "landscape", "signal")


class Said(str):
    """A sentence built from numbers, in English (a str: the command line prints it as it is), that keeps its
    message and fields so that a page can say it again in its visitor's language (`say`). An experiment runs in
    a thread of its own, and its result may be shown to a visitor of another language: the sentence is
    translated where it is shown, from the same numbers."""

    message: str
    fields: dict[str, Any]

    def __new__(cls, message: str, /, **fields: Any) -> Self:
        text = message.format(**fields) if fields else message
        self = super().__new__(cls, text)
        self.message, self.fields = message, fields
        return self

    def __getnewargs__(self) -> tuple[str]:  # copy/pickle: the English text; message and fields come with the state
        return (str(self),)

    def again(self) -> str:
        """This sentence in the language of the current run (its fields too, where they are sentences)."""
        return _(self.message, **{k: say(v) for k, v in self.fields.items()}) if self.fields else _(self.message)


def said(message: str, /, **fields: Any) -> Said:
    """A sentence to be said again in the visitor's language: `said(N_("… {n} …"), n=fmt(x))`."""
    return Said(message, **fields)


class _Later(Said):
    """A text another module makes (a data set's description), made again where it is shown."""

    make: Callable[[], str]

    def __new__(cls, make: Callable[[], str]) -> Self:
        self = super().__new__(cls, make())
        self.make = make
        return self

    def __reduce__(self):  # a copy keeps the words it was made with
        return (Said, (str(self),))

    def again(self) -> str:
        return self.make()


def said_later(make: Callable[[], str]) -> Said:
    """`make()` now (in English, as the command line prints it) and again where it is shown, in the visitor's
    language: `said_later(data.describe)`."""
    return _Later(make)


def said_all(parts: Sequence[Any], sep: str = ", ") -> Said:
    """Sentences joined by `sep`, each said again in the visitor's language (the joint is not a message)."""
    return Said(sep.join(f"{{p{i}}}" for i in range(len(parts))), **{f"p{i}": p for i, p in enumerate(parts)})


def say(text: Any) -> Any:
    """`text` in the current run's language when it is a Said sentence; anything else as it is."""
    return text.again() if isinstance(text, Said) else text


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

def check_settings(settings: Any, bounds: Mapping[str, tuple[float, float]]) -> None:
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


OnProgress = Callable[[float, str], None]  # (fraction done 0..1, what is being done)


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
    return fmt_sig(x, digits, missing="n/a", nan="n/a")


def pct(x: float) -> str:
    return fmt_pct(x, 1, missing="n/a", sep=" ")


# ---------------------------------------------------------------------------------------------- admission

@dataclass(frozen=True)
class Cost:
    """What a run will take, estimated from its settings and network before it starts."""

    what: str  # "the ERF stacks (depths up to 32, 16 channels, 8 samples, 4 seeds)"
    memory: int  # bytes at the run's peak (what it books with device.reserve)
    work: int  # multiply-adds in all (forward 1×, forward + backward 3× the trace's count per image)

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "memory_bytes": self.memory, "multiply_adds": self.work}


Shrink = Callable[[Any], Any]  # settings → smaller settings, or None where this knob is at its least


def halve(value: int, least: int) -> int | None:
    """value // 2, not below `least`; None when it is there already."""
    return max(least, value // 2) if value > least else None


def _fits(cost: Cost, room: int, limit: int) -> bool:
    return cost.memory <= room and cost.work <= limit


def smaller_setting(settings: Any, cost_of: Callable[[Any], Cost], shrinks: Sequence[Shrink], room: int, limit: int,
                    steps: int = 80) -> Any | None:
    """Settings that fit (`room` bytes, `limit` multiply-adds), found by shrinking one knob a step at a time,
    the knobs taken in turn (in the order given: no one knob is driven to its least while others stay),
    skipping a knob whose step brings the cost down by less than 3 %; None when no knob helps any more."""
    def score(c: Cost) -> float:
        return max(c.memory / max(1, room), c.work / max(1, limit))

    s, current, turn = settings, cost_of(settings), 0
    for _step in range(steps):
        if _fits(current, room, limit):
            return s
        for k in range(len(shrinks)):
            i = (turn + k) % len(shrinks)
            t = shrinks[i](s)
            if t is None or t == s:
                continue
            c = cost_of(t)
            if score(c) < 0.97 * score(current):
                s, current, turn = t, c, i + 1
                break
        else:
            return None
    return None


def _changes(before: dict, after: dict) -> str:
    return ", ".join(f"{k} {_setting_text(v)}" for k, v in after.items() if before.get(k) != v)


def _setting_text(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    return f"{v:g}" if isinstance(v, float) else str(v)


def admit(settings: Any, cost_of: Callable[[Any], Cost], shrinks: Sequence[Shrink] = (),
          device: torch.device | str = "cpu") -> Cost:
    """The run's Cost when it fits the memory left and the work limit now; else MemoryGuardError or
    WorkLimitError (device) with the numbers and a smaller setting that would fit (read off `describe()`)."""
    from resnet_core.device import (
        MemoryGuardError,
        WorkLimitError,
        describe,
        free_memory,
        memory_budget,
        memory_room,
        reserved,
        work_limit,
    )
    cost = cost_of(settings)
    room, limit = memory_room(device), work_limit(device)
    if _fits(cost, room, limit):
        return cost
    smaller = smaller_setting(settings, cost_of, shrinks, room, limit) if room > 0 else None
    if smaller is not None and smaller != settings:
        hint = "a smaller setting that fits: " + _changes(settings.describe(), smaller.describe())
    elif room <= 0:
        hint = "the memory is taken by the runs going on now; try again when they end"
    else:
        hint = "no smaller setting of this experiment fits: use a smaller network or input"
    if cost.memory > room:
        budget = memory_budget()
        free = free_memory(device)
        booked = reserved(device)
        tighter = budget is not None and budget - booked <= int(0.8 * free) - booked
        raise MemoryGuardError(cost.memory, free, describe(device).split(" (")[0], cost.what, booked=booked,
                               hint=hint, budget=budget if tighter else None)
    raise WorkLimitError(cost.work, limit, cost.what, hint)


@contextmanager
def admitted(settings: Any, cost_of: Callable[[Any], Cost], shrinks: Sequence[Shrink] = (),
             device: torch.device | str = "cpu") -> Iterator[Cost]:
    """Admit the run (`admit`), book its memory while it runs (device.reserve: concurrent runs and live
    passes share the budget), and turn an allocation failure inside into one line (device.OutOfMemoryError)."""
    from resnet_core.device import allocation_guard, reserve
    cost = admit(settings, cost_of, shrinks, device)
    with reserve(cost.memory, device, what=cost.what), allocation_guard(cost.what, device):
        yield cost
