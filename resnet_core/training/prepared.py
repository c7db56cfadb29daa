"""Runs prepared once for the whole server: the Training lab's runs and the experiments' resnet/plain pairs,
trained once (by a teacher in the app, or by the operator: `resnet-explorer prepare`) and reused by every
session instead of each session training the same networks.

Each prepared run is a folder under the state folder (`calibration.state_dir()`: the operator's data
folder, or $RESNET_EXPLORER_STATE_DIR): `prepared/training/<key>/` or `prepared/pair/<key>/`, holding
`run.json` (the settings, when, how, on which device, the wall time, the result) and one checkpoint per net
(torchvision-format state_dict + spec, as `train --save-dir` writes them). A folder is written beside its
place and renamed into it, so a reader never sees half a run; the key is a hash of the settings, so the
same settings always find the same run. Loaded runs are kept for the process (one copy for every
session; each user takes a private copy of a model before changing anything).

    prepared.save_training(result, settings, how="the command line")   # settings: training_settings(...)
    prepared.load_training(settings)                                   # TrainResult | None
    prepared.save_pair(pair, ps, how=...); prepared.load_pair(ps)      # TrainedPair | None
    prepared.listing()                                                 # [{kind, settings, when, device, wall_s, ...}]
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from resnet_core import calibration as cal
from resnet_core.i18n import N_, _
from resnet_core.training.config import TrainError  # noqa: F401 - what a full store raises (re-exported)
from resnet_core.training.results import TrainResult

FOLDER = "prepared"
RUN_FILE = "run.json"
KINDS = ("training", "pair")
MAX_PER_KIND = 24  # prepared runs of each kind a server keeps (a visitor's button cannot fill its disk)
_CACHE: dict[str, tuple[float, Any]] = {}  # folder → (run.json's mtime, the loaded run)
_LOCK = threading.Lock()

# who prepares runs, as run.json keeps it (English), translated where it is shown: shown_how()
HOWS = (N_("a teacher in the app"), N_("the command line (prepare)"))
# the settings' names as a person reads them (describe())
SETTING_LABELS = {"data": N_("data"), "steps": N_("steps"), "batch": N_("batch"), "lr": N_("lr"),
                  "input_size": N_("input_size"), "seed": N_("seed"), "schedule": N_("schedule"),
                  "device": N_("device")}

# the settings that make a Training lab run what it is (everything else is how it was started)
TRAINING_FIELDS = ("nets", "data", "steps", "batch", "lr", "input_size", "seed", "schedule", "device")


def folder(data_root: str | Path | None = None) -> Path:
    return cal.state_dir(data_root) / FOLDER


def training_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical settings of a Training lab run (train's option names): nets (an experiment's name or
    the nets joined by commas), data, steps, batch, lr, input_size, seed, schedule and the device's kind."""
    out = {k: settings.get(k) for k in TRAINING_FIELDS}
    for k in ("steps", "batch", "input_size", "seed"):
        v = out[k]
        out[k] = int(v) if v is not None else None
    lr = out["lr"]
    out["lr"] = float(lr) if lr is not None else None
    out["device"] = str(out["device"] or "cpu")
    return out


def _key(kind: str, settings: Mapping[str, Any]) -> str:
    text = json.dumps({"kind": kind, **settings}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _place(kind: str, settings: Mapping[str, Any], data_root=None) -> Path:
    return folder(data_root) / kind / _key(kind, settings)


def _write(kind: str, settings: Mapping[str, Any], body: Mapping[str, Any], save_nets, how: str, data_root=None) -> Path:
    """Write a prepared run's folder beside its place and rename it into place (replacing an older one)."""
    place = _place(kind, settings, data_root)
    place.parent.mkdir(parents=True, exist_ok=True)
    kept = [p for p in place.parent.iterdir() if not p.name.startswith(".")]
    if not place.exists() and len(kept) >= MAX_PER_KIND:
        raise TrainError(f"this server keeps at most {MAX_PER_KIND} prepared {kind} runs, and has them; its operator "
                         f"can remove old ones from {place.parent.name}/ in its data folder")
    tmp = place.with_name(f".{place.name}.{os.getpid()}.{threading.get_ident()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save_nets(tmp)
        meta = {"kind": kind, "settings": dict(settings), "when": time.time(), "how": how,
                "load": round(cal.load_now(), 2), **body}
        (tmp / RUN_FILE).write_text(json.dumps(meta, default=str), encoding="utf-8")
        old = place.with_name(f".{place.name}.old.{os.getpid()}")
        if place.exists():
            os.replace(place, old)
        os.replace(tmp, place)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return place


def _read(place: Path, loader) -> Any:
    """The run in `place`, loaded once per process (again when its run.json changed); None when absent."""
    f = place / RUN_FILE
    try:
        mtime = f.stat().st_mtime
    except OSError:
        return None
    with _LOCK:
        hit = _CACHE.get(str(place))
        if hit is not None and hit[0] == mtime:
            return hit[1]
    try:
        meta = json.loads(f.read_text(encoding="utf-8"))
        value = loader(place, meta)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError):
        return None  # a damaged folder is as good as none: prepare it again
    with _LOCK:
        _CACHE[str(place)] = (mtime, value)
    return value


def forget() -> None:
    """Drop the loaded runs (the next load reads the folders again, as a restarted process would)."""
    with _LOCK:
        _CACHE.clear()


# --------------------------------------------------------------------------------------------
# the Training lab's runs
# --------------------------------------------------------------------------------------------

def save_training(result: TrainResult, settings: Mapping[str, Any], how: str, data_root=None) -> Path:
    """Keep a finished run for every session: its result, curves and trained nets."""
    from resnet_core.training.session import checkpoint_path
    canon = training_settings(settings)

    def save_nets(tmp: Path) -> None:
        for r in result.nets:
            if r.net in result.models:
                result.save_checkpoint(r.net, checkpoint_path(tmp, r.net))
    body = {"device": result.device, "wall_s": result.wall_s, "steps_done": result.steps_done,
            "result": result.to_dict(),
            "records": [[r.step, r.net, r.loss, r.accuracy, r.lr, r.time_s] for r in result.records],
            "evals": [[e.step, e.net, e.split, e.loss, e.accuracy] for e in result.evals]}
    return _write("training", canon, body, save_nets, how, data_root)


def load_training(settings: Mapping[str, Any], data_root=None) -> TrainResult | None:
    """The prepared run of these settings (shared by every session of this process), or None."""
    def loader(place: Path, meta: dict) -> TrainResult:
        from resnet_core.training.results import EvalRecord, StepRecord
        from resnet_core.training.session import result_from_dict
        records = [StepRecord(*r) for r in meta["records"] if r[2] is not None]
        evals = [EvalRecord(*e) for e in meta["evals"]]
        result = result_from_dict(meta["result"], records, evals, place)
        result.prepared = info(meta)  # type: ignore[attr-defined]
        return result
    return _read(_place("training", training_settings(settings), data_root), loader)


# --------------------------------------------------------------------------------------------
# the experiments' pairs
# --------------------------------------------------------------------------------------------

def pair_settings(ps: Any) -> dict[str, Any]:
    """A pair's canonical settings (how many processes trained it does not change its weights)."""
    return dict(ps.describe())


def save_pair(pair: Any, ps: Any, how: str, data_root=None) -> Path:
    """Keep a trained pair (experiments.trained.TrainedPair) for every session."""
    from resnet_core.training.results import save_checkpoint
    from resnet_core.training.session import checkpoint_path

    def save_nets(tmp: Path) -> None:
        for label in (pair.residual_label, pair.plain_label):
            save_checkpoint(checkpoint_path(tmp, label), pair.models[label], pair.specs[label], {"net": label})
    body = {"device": str(pair.source).rsplit(", ", 1)[-1], "wall_s": pair.info.get("wall_s"), "steps_done": pair.info.get("steps"),
            "labels": [pair.residual_label, pair.plain_label], "heldout": pair.heldout, "source": pair.source}
    return _write("pair", pair_settings(ps), body, save_nets, how, data_root)


def load_pair(ps: Any, data_root=None) -> Any:
    """The prepared pair of PairSettings `ps` (a TrainedPair, models in eval mode, shared: copy before
    changing), or None."""
    def loader(place: Path, meta: dict) -> Any:
        from resnet_core.experiments.trained import TrainedPair
        from resnet_core.training.data import load_data
        from resnet_core.training.results import load_saved_net
        from resnet_core.training.session import checkpoint_path
        labels = meta["labels"]
        models, specs = {}, {}
        for label in labels:
            models[label], specs[label], _meta = load_saved_net(checkpoint_path(place, label))
        c, h, w = specs[labels[0]].input_shape
        data = load_data(ps.data, (h, w), c, seed=ps.seed)
        about = info(meta)
        return TrainedPair(labels[0], labels[1], models, specs, data,
                           f"prepared for the class {about['when_text']}: {meta['source']}",
                           dict(meta.get("heldout") or {}), False,
                           {"wall_s": meta.get("wall_s"), "steps": meta.get("steps_done"), "prepared": about})
    return _read(_place("pair", pair_settings(ps), data_root), loader)


def lab_settings(device: str = "cpu", **changes: Any) -> dict[str, Any]:
    """The Training lab's default run on this kind of device (the degradation experiment's four nets)."""
    from resnet_core.training.config import EXPERIMENTS, defaults_for
    d = defaults_for(device)
    exp = changes.get("nets", "degradation")
    exp_lr = dict(EXPERIMENTS[exp].config).get("lr") if exp in EXPERIMENTS else None
    out = {"nets": exp, "data": "digits", "steps": d.steps, "batch": d.batch_size, "lr": exp_lr or d.lr,
           "input_size": d.input_size[0], "seed": 0, "schedule": "cosine", "device": str(device)}
    out.update(changes)
    return training_settings(out)


def train_for(settings: Mapping[str, Any], should_stop=None, on_progress=None, data_root=None) -> TrainResult:
    """Train the run of these (canonical) settings; `on_progress(fraction, text)` as it goes."""
    from resnet_core.training.run import make_run
    s = training_settings(settings)
    nets = s["nets"] if "," not in s["nets"] else s["nets"].split(",")
    run = make_run(nets, s["data"], steps=s["steps"], batch_size=s["batch"], input_size=s["input_size"],
                   seed=s["seed"], lr=s["lr"], schedule=s["schedule"], device=s["device"],
                   data_options={"root": data_root} if str(s["data"]).startswith("cifar") else None)
    for update in run.iter(should_stop=should_stop):
        if on_progress is not None:
            on_progress(update.progress.fraction, "training " + update.progress.text())
    return run.result(None if on_progress is None else
                      lambda i, n, label: on_progress(1.0, f"evaluating {label} ({i + 1} of {n})" if label else "done"))


def prepare_training(settings: Mapping[str, Any], how: str, should_stop=None, on_progress=None,
                     data_root=None) -> tuple[TrainResult, Path | None]:
    """Train and keep a Training lab run for every session (a stopped run is returned, not kept)."""
    result = train_for(settings, should_stop, on_progress, data_root)
    if result.stopped:
        return result, None
    return result, save_training(result, settings, how, data_root)


def prepare_pair(ps: Any, how: str, should_stop=None, on_progress=None, data_root=None) -> tuple[Any, Path | None]:
    """Train and keep an experiment's pair for every session (a stopped pair is returned, not kept)."""
    from resnet_core.experiments.trained import train_pair
    pair = train_pair(ps, should_stop, on_progress or (lambda f, t: None))
    if pair.stopped:
        return pair, None
    return pair, save_pair(pair, ps, how, data_root)


# --------------------------------------------------------------------------------------------
# the list
# --------------------------------------------------------------------------------------------

def info(meta: Mapping[str, Any]) -> dict[str, Any]:
    """What a person is told about a prepared run: when, how, settings, device, wall time."""
    when = float(meta.get("when", 0))
    wall = meta.get("wall_s")
    return {"kind": meta.get("kind"), "settings": meta.get("settings", {}), "how": meta.get("how", ""),
            "when": when, "when_text": when_text(when),
            "device": meta.get("device", ""), "wall_s": float(wall) if wall is not None else None,
            "steps_done": meta.get("steps_done"), "load": meta.get("load")}


def when_text(when: float) -> str:
    """'on 2026-12-07 at 09:30 UTC', in the language of the run that asks (call it where it is shown: a loaded
    run's `when_text` is in the language of whoever loaded it first)."""
    t = time.gmtime(when)
    return _("on {date} at {time} UTC", date=time.strftime("%Y-%m-%d", t), time=time.strftime("%H:%M", t))


def shown_how(how: str) -> str:
    """Who prepared a run, in this run's language (an unknown `how` as it was kept)."""
    return _(how) if how in HOWS else how


def listing(data_root=None) -> list[dict[str, Any]]:
    """Every prepared run of this server, newest first."""
    out = []
    for kind in KINDS:
        base = folder(data_root) / kind
        if not base.is_dir():
            continue
        for place in base.iterdir():
            if place.name.startswith("."):
                continue
            with contextlib.suppress(OSError, ValueError):
                out.append(info(json.loads((place / RUN_FILE).read_text(encoding="utf-8"))))
    return sorted(out, key=lambda m: -m["when"])


def describe(entry: Mapping[str, Any]) -> str:
    """One line: 'pair resnet20 + plain20 · 1,600 steps · … · trained on … by the command line in 96 s on CPU'."""
    s = entry["settings"]
    if entry["kind"] == "pair":
        what = _("pair {residual} + {plain}", residual=s.get("residual"), plain=s.get("plain"))
    else:
        what = _("Training lab: {nets}", nets=s.get("nets"))
    knobs = ", ".join(f"{_(SETTING_LABELS[k]) if k in SETTING_LABELS else k} {v}" for k, v in s.items()
                      if k not in ("residual", "plain", "nets"))
    when, how = when_text(entry["when"]), shown_how(entry["how"])
    if entry.get("wall_s") is not None:
        trained = _("trained {when} by {how} in {wall} s", when=when, how=how, wall=f"{entry['wall_s']:.0f}")
    else:
        trained = _("trained {when} by {how}", when=when, how=how)
    return _("{what} ({settings}) · {trained} · {device}", what=what, settings=knobs, trained=trained,
             device=entry["device"])
