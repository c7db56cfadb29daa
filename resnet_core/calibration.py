"""Time on this server, measured: every time a person is shown is computed from measurements of this machine.

A training step of a network is timed (on first use, at the thread count a run trains with), and every
finished run updates the figure (an exponential moving average of the measured step times, with the range
of the recent ones) per (network, batch, input size, device, threads). The figures are kept for the
process and persisted (a small JSON file under the state folder, `state_dir()`) with when they were
measured and the machine's load then, so a restarted server starts from what it already knows.

    cal = calibration.store()                            # this process's, read from the state folder
    m = cal.get(calibration.step_key(spec, 32, 16, "cpu", 1))      # Measured | None
    cal.record(key, seconds)                              # one more measurement (EMA, range, when, load)
    span = Span(low_s, high_s); span.text()               # 'about 2–3 min'

Experiments record their own part the same way, as seconds per multiply-add (`work_key`), so a run
whose settings were never timed is estimated from the same measured rate.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from resnet_core.i18n import _, ngettext

STATE_ENV = "RESNET_EXPLORER_STATE_DIR"  # where the server keeps what it measured and prepared
DATA_ENV = "RESNET_EXPLORER_DATA_DIR"  # the operator's data folder (the app reads CIFAR-10 below it)
CACHE_ENV = "RESNET_EXPLORER_CACHE"
FILE = "calibration.json"
ALPHA = 0.3  # weight of a new measurement in the moving average
RECENT = 8  # measurements kept for the range
MAX_KEYS = 2_000  # entries kept in the file (the oldest go first)
_ROOT: list[str | Path | None] = [None]  # the operator's data folder this process was given (use_data_root)


def use_data_root(data_root: str | Path | None) -> None:
    """The operator's data folder for this process (the app reads it from its settings once)."""
    _ROOT[0] = data_root


def state_dir(data_root: str | Path | None = None) -> Path:
    """The folder for state that outlives a process: $RESNET_EXPLORER_STATE_DIR; else `resnet-explorer/` in the
    operator's data folder (`data_root`, else $RESNET_EXPLORER_DATA_DIR); else the cache folder
    ($RESNET_EXPLORER_CACHE, else ~/.cache/resnet_explorer)."""
    explicit = os.environ.get(STATE_ENV)
    if explicit:
        return Path(explicit)
    root = data_root or _ROOT[0] or os.environ.get(DATA_ENV)
    if root:
        return Path(root) / "resnet-explorer"
    cache = os.environ.get(CACHE_ENV)
    return Path(cache) if cache else Path.home() / ".cache" / "resnet_explorer"


def load_now() -> float:
    """The 1-minute load average (0 where the system has none)."""
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return 0.0


def cores() -> int:
    return os.cpu_count() or 1


def slowdown(load: float, threads: int = 1) -> float:
    """How much slower a CPU run of `threads` threads goes at this load than alone, when the cores are
    shared fairly: 1 while the load (with the run itself) fits the cores, load / cores past that."""
    return max(1.0, (load + threads) / cores())


@dataclass
class Measured:
    """What was measured for one key: the moving average, the recent range, how many, when and at what load."""

    mean: float
    recent: list[float] = field(default_factory=list)
    n: int = 0
    when: float = 0.0  # time.time() of the last measurement
    load: float = 0.0  # the load average then
    probe: bool = False  # only a few steps timed before any run: the first real run's figure replaces it

    @property
    def low(self) -> float:
        return min(self.recent or [self.mean])

    @property
    def high(self) -> float:
        return max(self.recent or [self.mean])

    def span(self, count: float = 1.0, load: float | None = None, threads: int = 1) -> Span:
        """`count` times this figure as a range: the recent measurements' range, its top scaled by how much
        busier the machine is now than when measured (`load`: now)."""
        lo, hi = min(self.low, self.mean), max(self.high, self.mean)
        if self.probe:  # a few steps timed: the run's own steps vary more
            lo, hi = lo * 0.8, hi * 1.25
        elif len(self.recent) < 3:  # one or two runs say little about how much the next one varies
            lo, hi = min(lo, self.mean * 0.85), max(hi, self.mean * 1.15)
        if load is not None:
            factor = slowdown(load, threads) / slowdown(self.load, threads)
            lo, hi = lo * min(1.0, factor), hi * max(1.0, factor)
        return Span(lo * count, hi * count)

    def when_text(self) -> str:
        t = time.gmtime(self.when)
        age = time.time() - self.when
        ago = _("just now") if age < 90 else (_("{n} min ago", n=f"{age / 60:.0f}") if age < 5400 else
                                              _("on {date} UTC", date=time.strftime('%Y-%m-%d %H:%M', t)))
        runs = _("a few steps timed") if self.probe else ngettext("{n} run", "{n} runs", self.n, n=self.n)
        return _("measured {ago} at load {load} ({runs})", ago=ago, load=f"{self.load:.1f}", runs=runs)


@dataclass(frozen=True)
class Span:
    """A time range in seconds."""

    low: float
    high: float

    def __add__(self, other: Span) -> Span:
        return Span(self.low + other.low, self.high + other.high)

    def scaled(self, k: float) -> Span:
        return Span(self.low * k, self.high * k)

    @property
    def mid(self) -> float:
        return math.sqrt(max(self.low, 1e-9) * max(self.high, 1e-9))

    def text(self) -> str:
        """'about 40–55 s', 'about 2–3 min', 'about 1.5–2.1 h': the unit chosen by the top of the range."""
        lo, hi = max(0.0, self.low), max(0.0, self.high)
        if hi < 90:
            unit, k = "s", 1.0
        elif hi < 90 * 60:
            unit, k = "min", 60.0
        else:
            unit, k = "h", 3600.0
        a, b = lo / k, hi / k
        digits = 1 if unit == "h" or b < 3 else 0
        fa, fb = f"{a:.{digits}f}", f"{max(b, a):.{digits}f}"
        if fa == fb:
            return _("about {a} {unit}", a=fa, unit=unit)
        return _("about {a}–{b} {unit}", a=fa, b=fb, unit=unit)


def step_key(net: str, batch: int, input_size: int | tuple[int, int], device: str, threads: int | None) -> str:
    """The key of one training step of `net` (a name, or a spec's JSON) at this batch, input, device, threads."""
    size = input_size if isinstance(input_size, int) else "x".join(str(s) for s in input_size)
    return f"step|{net}|b{int(batch)}|{size}|{device}|t{threads or 0}"


def work_key(what: str, device: str, threads: int | None) -> str:
    """The key of an experiment's own part (after its training): seconds per multiply-add."""
    return f"work|{what}|{device}|t{threads or 0}"


class Calibration:
    """The measurements of this server: read from `path` once, updated in memory and written back."""

    def __init__(self, path: Path | None):
        self.path = path
        self._lock = threading.Lock()
        self._data: dict[str, Measured] = {}
        if path is not None:
            self._data = self._read()

    def _read(self) -> dict[str, Measured]:
        assert self.path is not None
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return {str(k): Measured(float(v["mean"]), [float(x) for x in v.get("recent", [])][-RECENT:],
                                     int(v.get("n", 0)), float(v.get("when", 0)), float(v.get("load", 0)),
                                     bool(v.get("probe", False)))
                    for k, v in raw.get("measured", {}).items()
                    if isinstance(v, dict) and math.isfinite(float(v.get("mean", "nan")))}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return {}  # no file yet, or one that cannot be read: measure again

    def get(self, key: str) -> Measured | None:
        with self._lock:
            return self._data.get(key)

    def record(self, key: str, value: float, load: float | None = None, probe: bool = False) -> Measured | None:
        """One more measurement of `key` (seconds); the moving average, range, time and load updated and saved.
        A `probe` (a few steps timed on first use) is replaced by the first real measurement, not averaged."""
        if not (math.isfinite(value) and value > 0):
            return None
        with self._lock:
            m = self._data.get(key)
            if m is None or (m.probe and not probe):
                m = self._data[key] = Measured(value, probe=probe)
            else:
                m.mean = (1 - ALPHA) * m.mean + ALPHA * value
            m.recent = [*m.recent, value][-RECENT:]
            m.n += 1
            m.when = time.time()
            m.load = load_now() if load is None else load
            while len(self._data) > MAX_KEYS:
                oldest = min(self._data, key=lambda k: self._data[k].when)
                self._data.pop(oldest)
            self._save()
            return m

    def _save(self) -> None:
        if self.path is None:
            return
        # another process (a second server, `prepare`, a pair's trainers) may have written newer figures: keep them
        for key, theirs in self._read().items():
            mine = self._data.get(key)
            if mine is None or theirs.when > mine.when:
                self._data[key] = theirs
        with contextlib.suppress(OSError):  # a read-only folder: the figures stay for this process
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}")
            body = {"machine": {"cores": cores()},
                    "measured": {k: asdict(v) for k, v in self._data.items()}}
            tmp.write_text(json.dumps(body), encoding="utf-8")
            os.replace(tmp, self.path)

    def names(self) -> list[str]:
        with self._lock:
            return list(self._data)


_STORES: dict[str, Calibration] = {}
_STORES_LOCK = threading.Lock()


def store(data_root: str | Path | None = None) -> Calibration:
    """This process's calibration for the state folder (read from disk the first time)."""
    path = state_dir(data_root) / FILE
    with _STORES_LOCK:
        cal = _STORES.get(str(path))
        if cal is None:
            cal = _STORES[str(path)] = Calibration(path)
        return cal


def forget() -> None:
    """Drop the in-memory stores (the next `store()` reads the file again: as a restarted process would)."""
    with _STORES_LOCK:
        _STORES.clear()


def describe(m: Measured | None) -> str:
    """'measured 3 min ago at load 1.8 (4 measurements)', or 'not measured yet'."""
    return m.when_text() if m is not None else _("not measured yet")


def to_dict(m: Measured) -> dict[str, Any]:
    return {**asdict(m), "low": m.low, "high": m.high}
