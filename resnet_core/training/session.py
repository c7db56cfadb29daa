"""One `train` run as one object: on one process, or as one rank of torchrun, with its progress file,
checkpoints and outputs. The command line parses and prints; the app reads the progress file.

    session = TrainSession(args)                 # args: train's options (options.add_arguments), world=None
    for line in session.notes: print(line)       # what the run will do
    for update in session.iter(stop_event):      # trains; writes the progress file and the checkpoints
        print(session.status_line(update))
    result = session.finish()                    # the result; CSV, checkpoints and the progress file's end
    session.written                              # "wrote …", "saved …": what finish() wrote

With several workers (world from distributed.init_worker) every rank calls the same; rank 0 alone writes.

The progress file (JSON lines, appended and flushed line by line; a reader takes only whole lines):
    {"kind": "start", "labels": [...], "steps": N, "device": "...", "data": "...", "world_size": W,
     "effective_batch": B}
    {"kind": "update", "step": s, "records": [[step, net, loss, accuracy, lr, time_s], ...],
     "evals": [[step, net, split, loss, accuracy], ...], "progress": {...}, "diverged": [...]}
    {"kind": "result", "result": TrainResult.to_dict()}
`ProgressReader` turns it back into StepRecords, EvalRecords, TrainProgress and a TrainResult.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from resnet_core.text import safe_filename
from resnet_core.training.config import TrainError
from resnet_core.training.results import EvalRecord, StepRecord, TrainProgress, TrainResult, Update

# --------------------------------------------------------------------------------------------
# the progress file
# --------------------------------------------------------------------------------------------


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def update_message(update: Update) -> dict:
    p = update.progress
    return {"kind": "update", "step": update.step,
            "records": [[r.step, r.net, _finite(r.loss), _finite(r.accuracy), r.lr, round(r.time_s, 4)]
                        for r in update.records],
            "evals": [[e.step, e.net, e.split, _finite(e.loss), _finite(e.accuracy)] for e in update.evals],
            "progress": {"step": p.step, "total": p.total, "elapsed_s": p.elapsed_s, "steps_per_s": p.steps_per_s,
                         "eta_s": _finite(p.eta_s), "stopped": p.stopped, "done": p.done},
            "diverged": list(update.diverged)}


class ProgressWriter:
    """Appends the run's progress to a file, a whole line at a time."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._f = self.path.open("a", encoding="utf-8")

    def _write(self, msg: dict) -> None:
        self._f.write(json.dumps(msg) + "\n")
        self._f.flush()

    def start(self, run) -> None:
        self._write({"kind": "start", "labels": run.labels, "steps": run.config.steps,
                     "device": run.describe_device(), "data": run.data.describe(), "world_size": run.nworld,
                     "effective_batch": run.global_batch})

    def update(self, update: Update) -> None:
        self._write(update_message(update))

    def result(self, result: TrainResult) -> None:
        self._write({"kind": "result", "result": result.to_dict()})

    def close(self) -> None:
        self._f.close()


class ProgressReader:
    """Follows a progress file another process writes (`train --progress-file F`).

    `poll()` reads the whole lines added since the last call (True when there were any); then
    `labels`, `steps`, `device` (with the effective batch), `records`, `evals`, `progress` (results.TrainProgress)
    and `result_dict` (the end, when written) say where the run is; `result(checkpoints)` is the TrainResult
    with the models read from `checkpoints`/NET.pt where they are (as `--save-dir` writes them)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._pos = 0
        self.labels: list[str] = []
        self.steps = 0
        self.device = ""
        self.data = ""
        self.world_size = 1
        self.effective_batch = 0
        self.records: list[StepRecord] = []
        self.evals: list[EvalRecord] = []
        self.progress: TrainProgress | None = None
        self.result_dict: dict | None = None

    def poll(self) -> bool:
        if not self.path.exists():
            return False
        new = False
        with self.path.open(encoding="utf-8") as f:
            f.seek(self._pos)
            while True:
                line = f.readline()
                if not line.endswith("\n"):
                    break
                self._pos = f.tell()
                self.feed(json.loads(line))
                new = True
        return new

    def feed(self, msg: Mapping[str, Any]) -> None:
        """One message of the file (a parsed line)."""
        kind = msg.get("kind")
        if kind == "start":
            self.labels = list(msg["labels"])
            self.steps, self.data = int(msg["steps"]), str(msg.get("data", ""))
            self.world_size, self.effective_batch = int(msg["world_size"]), int(msg["effective_batch"])
            self.device = f"{msg['device']} · effective batch {msg['effective_batch']}"
        elif kind == "update":
            self.records.extend(StepRecord(*r) for r in msg["records"] if r[2] is not None)
            self.evals.extend(EvalRecord(*e) for e in msg["evals"])
            p = msg["progress"]
            self.progress = TrainProgress(p["step"], p["total"], p["elapsed_s"], p["steps_per_s"],
                                     p["eta_s"] if p["eta_s"] is not None else float("inf"), p["stopped"], p["done"])
        elif kind == "result":
            self.result_dict = msg["result"]

    def result(self, checkpoints: str | Path | None = None) -> TrainResult | None:
        """The finished run's TrainResult (None before its end is written)."""
        if self.result_dict is None:
            return None
        return result_from_dict(self.result_dict, self.records, self.evals, checkpoints)


def result_from_dict(d: Mapping[str, Any], records=(), evals=(), checkpoints: str | Path | None = None) -> TrainResult:
    """TrainResult.to_dict() back into a TrainResult; the models from `checkpoints`/NET.pt where saved."""
    from resnet_core.structure.spec import spec_from_dict
    from resnet_core.training.config import TrainConfig
    from resnet_core.training.results import NetResult, load_saved_net
    cfg = dict(d["config"])
    cfg["milestones"] = tuple(cfg.get("milestones") or ())
    config = TrainConfig(**cfg)
    nets, models = [], {}
    nan = float("nan")
    for row in d["nets"]:
        spec = spec_from_dict(d["specs"][row["net"]])
        vals: dict[str, Any] = {k: (nan if v is None and k not in ("diverged_at", "warmup_until") else v)
                                for k, v in row.items()}
        nets.append(NetResult(spec=spec, **vals))
        ckpt = checkpoint_path(checkpoints, row["net"]) if checkpoints is not None else None
        if ckpt is not None and ckpt.is_file():
            models[row["net"]] = load_saved_net(ckpt)[0]
    return TrainResult(nets, list(records), list(evals), config, d["data"], d["device"], d["steps_done"],
                       d["stopped"], d["wall_s"], models, world_size=d.get("world_size", 1),
                       global_batch=d.get("effective_batch", 0))


def checkpoint_path(save_dir: str | Path, label: str) -> Path:
    """Where `train --save-dir DIR` keeps a net: DIR/<the label as a safe file name>.pt (+ .json beside)."""
    return Path(save_dir) / safe_filename(label, ".pt", default="net")


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------

def parse_options(settings: Mapping[str, Any] | argparse.Namespace) -> argparse.Namespace:
    """train's options with their defaults, from a mapping of some of them (argparse dest names)."""
    from resnet_core.training.options import add_arguments
    p = argparse.ArgumentParser(add_help=False)
    add_arguments(p)
    ns = p.parse_args([])
    for key, value in (vars(settings) if isinstance(settings, argparse.Namespace) else settings).items():
        setattr(ns, key, value)
    return ns


class TrainSession:
    """The train command's run, in the library: settings → make_run, progress file, checkpoint cadence, outputs.

    Raises (bad input, one clear message): TrainError, DataError, DeviceError, MemoryGuardError.
    """

    def __init__(self, settings: Mapping[str, Any] | argparse.Namespace, world=None):
        from resnet_core.training.options import check
        self.opts = opts = parse_options(settings)
        problems = check(opts)
        if problems:
            raise TrainError("; ".join(p.removeprefix("error: ") for p in problems))
        self.world = world
        self.main = world is None or world.is_main
        self.csv_path = Path(opts.csv) if opts.csv else None
        if self.csv_path is not None and not self.csv_path.parent.exists():
            raise TrainError(f"cannot write {opts.csv}: the folder {self.csv_path.parent} does not exist")
        self.save_dir = Path(opts.save_dir) if opts.save_dir else None
        if self.save_dir is not None and self.save_dir.exists() and not self.save_dir.is_dir():
            raise TrainError(f"--save-dir {self.save_dir} is a file, not a folder")
        self.nets = resolve_nets(opts.nets)
        from resnet_core.training.run import make_run
        kwargs, world_lines = self._settings()
        self.run = make_run(self.nets, opts.data, seed=opts.seed, no_bn=opts.no_bn, device=opts.device, world=world,
                            **kwargs)
        self.notes = self._notes(world_lines)
        self.every = opts.checkpoint_every or max(1, self.run.config.steps // 10)
        self.written: list[str] = []
        self.diverged_notes: list[str] = []
        self._last = {n: float("nan") for n in self.run.labels}
        self._progress = ProgressWriter(opts.progress_file) if (opts.progress_file and self.main) else None
        self.result_: TrainResult | None = None

    # ---- settings ------------------------------------------------------------------------
    def _settings(self) -> tuple[dict, list[str]]:
        """make_run's keywords, and the line that says what the run does with several workers."""
        from resnet_core.device import pick_device
        from resnet_core.training.config import EXPERIMENTS, defaults_for
        from resnet_core.training.distributed import scaled_lr
        from resnet_core.training.recipe import get_recipe
        from resnet_core.training.report import world_line
        opts, world = self.opts, self.world
        n = world.size if world is not None else 1
        device = world.device if world is not None else pick_device(opts.device)
        d = defaults_for(device)
        extra: dict = {"schedule": opts.schedule, "sync_bn": opts.sync_bn}
        data_options: dict = {}
        batch, size, scaling = opts.batch, opts.input_size, opts.lr_scaling
        if opts.recipe:
            rec = get_recipe(opts.recipe)
            extra.update(rec.train_config(opts.steps))
            if batch is None:
                if rec.batch_size % n:
                    raise TrainError(f"the recipe's batch of {rec.batch_size} does not split evenly over {n} "
                                     "workers; use a divisor of it, or give --batch per worker")
                batch = rec.batch_size // n
            size = size or rec.input_size
            data_options = {"val_fraction": rec.val_fraction, "max_train": None}
            base = opts.lr if opts.lr is not None else rec.lr
            scaling = "recipe" if opts.batch is None else scaling
        else:
            nets = self.nets
            exp_lr = dict(EXPERIMENTS[nets].config).get("lr") if isinstance(nets, str) else None
            base = opts.lr if opts.lr is not None else (exp_lr or d.lr)
        if getattr(opts, "data_root", None):  # a server's data folder: CIFAR-10 is read only below it
            data_options["root"] = opts.data_root
        lr = base if scaling == "recipe" else scaled_lr(base, n, scaling)
        extra["lr"] = lr
        if opts.threads is not None:
            extra["threads"] = opts.threads
        lines = []
        if world is not None:
            lines.append(world_line(n, world.backend, device.type, batch or d.batch_size, base, lr, scaling))
        return dict(steps=extra.pop("steps", opts.steps), batch_size=batch, input_size=size,
                    data_options=data_options, **extra), lines

    def _notes(self, world_lines: list[str]) -> list[str]:
        run = self.run
        notes = [f"training {', '.join(run.labels)} on {run.data.describe()}"]
        if self.opts.recipe:
            from resnet_core.training.recipe import get_recipe
            notes.append(get_recipe(self.opts.recipe).describe())
        notes.append(f"{run.config.steps} steps of batch {run.global_batch} on {run.describe_device()}; "
                     "Ctrl-C stops and keeps what was learned")
        notes += world_lines
        if self.world is not None:
            from resnet_core.training.distributed import sync_bn_note
            has_bn = any(s.norm != "none" for s in run.specs.values())
            note = sync_bn_note(run.device, self.opts.sync_bn, has_bn, run.config.batch_size)
            if note:
                notes.append(note)
        return notes

    # ---- training ------------------------------------------------------------------------
    def iter(self, should_stop: Callable[[], bool] | Any = None) -> Iterator[Update]:
        """Train to the end (or the stop), yielding each Update after it is in the progress file and, every
        `every` steps, after the checkpoints are saved (rank 0)."""
        run = self.run
        if self._progress is not None:
            self._progress.start(run)
        for update in run.iter(should_stop=should_stop):
            for r in update.records:
                self._last[r.net] = r.loss
            for n in update.diverged:
                self.diverged_notes.append(f"{n}: the loss became non-finite at step {update.step}; it stops training")
            if self._progress is not None:
                self._progress.update(update)
            if self.main and self.save_dir is not None and update.step % self.every == 0 and not update.progress.done:
                self.checkpoint()
            yield update

    def status_line(self, update: Update) -> str:
        """'step 40/800 · 12.3 steps/s · 62 s left · loss plain20 1.234 · resnet20 1.101'."""
        losses = " · ".join(f"{n} {self._last[n]:.3f}" for n in self.run.labels)
        return f"{update.progress.text()} · loss {losses}"

    def checkpoint(self) -> None:
        """Save every net as it is now (meta partial: True) in the save folder."""
        from resnet_core.training.results import save_checkpoint
        run, save_dir = self.run, self.save_dir
        if save_dir is None:
            return
        try:
            save_dir.mkdir(parents=True, exist_ok=True)
            for label in run.labels:
                meta = {"net": label, "steps": run.net_steps[label], "data": run.data.describe(), "partial": True}
                save_checkpoint(checkpoint_path(save_dir, label), run.models[label], run.specs[label], meta)
        except OSError as e:
            raise TrainError(f"cannot save checkpoints in {self.save_dir}: {e.strerror}") from None

    def finish(self) -> TrainResult:
        """Evaluate (every rank), then on rank 0 write the CSV, the checkpoints and the progress file's end."""
        from resnet_core.training.results import curves_csv, results_csv
        result = self.result_ = self.run.result()
        if not self.main:
            return result
        if self.csv_path is not None:
            table_path = self.csv_path.with_name(self.csv_path.stem + "_results.csv")
            try:
                self.csv_path.write_text(curves_csv(result.records, result.evals), encoding="utf-8")
                table_path.write_text(results_csv(result), encoding="utf-8")
            except OSError as e:
                raise TrainError(f"cannot write {self.csv_path}: {e.strerror}") from None
            self.written.append(f"wrote {self.csv_path} and {table_path}")
        if self.save_dir is not None:
            try:
                self.save_dir.mkdir(parents=True, exist_ok=True)
                for r in result.nets:
                    pt, _ = result.save_checkpoint(r.net, checkpoint_path(self.save_dir, r.net))
                    self.written.append(f"saved {pt}")
            except OSError as e:
                raise TrainError(f"cannot save checkpoints in {self.save_dir}: {e.strerror}") from None
        if self._progress is not None:
            self._progress.result(result)
        return result

    def close(self) -> None:
        """The progress file closed and the run's memory booking given back."""
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self.run.close()


def resolve_nets(text: str) -> str | list[str]:
    """--nets as make_run takes it: an experiment's name alone, or the list of nets (each checked)."""
    from resnet_core.training.config import EXPERIMENTS, resolve_net
    from resnet_core.training.options import split_nets
    try:
        names = split_nets(text)
    except ValueError as e:
        raise TrainError(str(e)) from None
    if len(names) == 1 and names[0] in EXPERIMENTS:
        return names[0]
    bad = []
    for n in names:
        try:
            resolve_net(n)
        except TrainError as e:
            bad.append(f"--nets: {e}")
    if bad:
        raise TrainError("; ".join(bad))
    return names


def last_checkpoint(save_dir: str | Path | None) -> str:
    """What a failed run kept, as the end of its error line."""
    if not save_dir:
        return " (no --save-dir: no checkpoint kept)"
    steps = []
    for side in sorted(Path(save_dir).glob("*.json")):
        try:
            steps.append(int(json.loads(side.read_text(encoding="utf-8"))["meta"]["steps"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    if not steps:
        return f"; no checkpoint was saved in {save_dir} yet"
    return f"; the last checkpoint, at step {min(steps)}, is in {save_dir}"



# --------------------------------------------------------------------------------------------
# the launcher books the whole run once
# --------------------------------------------------------------------------------------------

_IMAGES = {"digits": 1797, "synthetic": 3000}  # images in each built-in data set (all splits)


def book_workers(settings: Mapping[str, Any] | argparse.Namespace, nproc: int):
    """Book the memory of `nproc` workers of this run here (device.reserve), before any starts: an ExitStack
    to close when they end, and the bytes booked per worker (0 when the run cannot be estimated here: its
    workers then report what is wrong). MemoryGuardError with the numbers and a batch that would fit."""
    import contextlib

    from resnet_core.device import pick_device
    from resnet_core.structure.trace import trace
    from resnet_core.training.config import EXPERIMENTS, defaults_for, experiment_specs, resolve_net
    from resnet_core.training.memory import book_training, train_bytes
    from resnet_core.training.recipe import get_recipe
    opts = parse_options(settings)
    device = pick_device(opts.device)
    d = defaults_for(device)
    rec = get_recipe(opts.recipe) if opts.recipe else None
    batch = opts.batch or (rec.batch_size // nproc if rec else d.batch_size)
    size = opts.input_size or (rec.input_size if rec else None)
    h, w = (size, size) if size else d.input_size
    nets = resolve_nets(opts.nets)
    specs = ([s for _, s in experiment_specs(nets)] if isinstance(nets, str) and nets in EXPERIMENTS
             else [resolve_net(n, no_bn=opts.no_bn) for n in nets])
    c = specs[0].in_channels
    traces = [trace(s.replace(in_channels=c, input_size=(h, w), num_classes=10)) for s in specs]
    if any(t.errors for t in traces):
        return contextlib.ExitStack(), 0
    kind = opts.data.strip().lower().partition(":")[0]
    images = _IMAGES.get(kind, 60_000 if (rec or device.type == "cuda") else 20_000)  # CIFAR: a CPU run takes 10k
    data_bytes = images * c * h * w * 4
    amp = device.type == "cuda"
    copies = nproc if device.type == "cpu" else 1  # on CUDA each worker has a GPU of its own
    hold = book_training(traces, batch, amp, data_bytes, device, copies=copies)
    return hold, train_bytes(traces, batch, amp, data_bytes)
