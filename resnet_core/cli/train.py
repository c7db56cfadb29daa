"""`python -m resnet_core train`: train up to four nets side by side and print the final table.

    python -m resnet_core train --nets plain20,plain56,resnet20,resnet56 --data digits --steps 1000
    python -m resnet_core train --nets resnet20 --nproc 2            # 2 worker processes (torchrun, DDP)
    torchrun --nproc-per-node 4 -m resnet_core train --nets resnet20 # the same, started by torchrun itself
    python -m resnet_core train --recipe he2015-cifar --nets resnet20 --data cifar:PATH

Progress goes to stderr (a line every couple of seconds), the final table or JSON to stdout. Ctrl-C
stops at the next step and still prints what was learned (a second Ctrl-C abandons the run).
Bad input (an unknown net, more than four, a bad data folder, a number out of its range) exits 2 with
one line. With several workers only rank 0 prints and writes; a worker that dies or is interrupted ends
the run on every rank, the last checkpoint stays, and the command exits 1 (130 if interrupted) with why.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import signal
import sys
import threading
import time
from pathlib import Path

from resnet_core.cli.common import CliError

DEFAULT_NETS = "plain20,plain56,resnet20,resnet56"
SEED_MAX = 2**64 - 1


def _int(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nets", default=None, metavar="A,B,...",
                   help="up to four comma-separated presets or spec files (a '-nobn' suffix drops batch norm), "
                        f"or an experiment: degradation, batchnorm (default: {DEFAULT_NETS}; with --recipe: resnet20)")
    p.add_argument("--recipe", choices=["he2015-cifar"],
                   help="he2015-cifar: the paper's CIFAR-10 training (batch 128, lr 0.1 ÷10 at 32k and 48k, 64k "
                        "steps, 45k/5k split, crop + flip); needs --data cifar:PATH")
    p.add_argument("--data", default="digits", metavar="DATA",
                   help="digits | synthetic | cifar:PATH (a local cifar-10-batches-py folder); default digits")
    p.add_argument("--steps", type=_int, metavar="N", help="optimiser steps (default: 800 on CPU, 3000 on a GPU)")
    p.add_argument("--seed", type=_int, default=0, metavar="S",
                   help="weights, split and batch order, 0…2**64-1 (default 0)")
    p.add_argument("--batch", type=_int, metavar="B",
                   help="batch size per worker (default: 32 on CPU, 128 on a GPU)")
    p.add_argument("--input-size", type=_int, metavar="H", help="input height and width (default: 16 on CPU, 32 on a GPU)")
    p.add_argument("--lr", type=_float, metavar="LR",
                   help="peak learning rate for one worker's batch (default 0.1; the batchnorm experiment: 0.02)")
    p.add_argument("--schedule", choices=["cosine", "step", "constant"], default="cosine",
                   help="cosine (default) | step: ÷10 at 50%% and 75%% as in the paper | constant")
    p.add_argument("--threads", type=_int, metavar="N", help="CPU threads while training (default: half the cores)")
    p.add_argument("--no-bn", action="store_true", help="train every net without batch normalisation")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--nproc", type=_int, metavar="N",
                   help="train on N worker processes here through torchrun (DistributedDataParallel; gloo on CPU, "
                        "NCCL on CUDA); N ≤ the GPUs, or the CPU cores")
    p.add_argument("--port", type=_int, metavar="P",
                   help="with --nproc: the rendezvous port on 127.0.0.1 (default: a free one)")
    p.add_argument("--lr-scaling", choices=["linear", "none"], default="linear",
                   help="several workers: linear multiplies the lr by N for the N× larger batch (default) | none")
    p.add_argument("--sync-bn", action="store_true",
                   help="several workers on CUDA: SyncBatchNorm (on CPU PyTorch has none: BN stays per worker)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--csv", metavar="FILE", help="write the curves to FILE and the final table to FILE's name + _results.csv")
    p.add_argument("--save-dir", metavar="DIR", help="save each trained net as DIR/NET.pt (state_dict) + NET.json (spec)")
    p.add_argument("--checkpoint-every", type=_int, metavar="K",
                   help="with --save-dir: also save every K steps (default: every tenth of the run)")
    p.add_argument("--progress-file", metavar="FILE", help=argparse.SUPPRESS)  # JSON lines for the app
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def _safe_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "net"


def format_table(result, recipe: bool = False) -> str:
    from resnet_core.training.report import format_table as fmt
    return fmt(result, recipe)


def _in(problems: list[str], name: str, value, lo, hi, hi_text: str | None = None) -> None:
    if value is not None and not lo <= value <= hi:
        problems.append(f"error: {name} must be between {lo} and {hi_text or f'{hi:,}'}, got {value}")


def _check_args(args: argparse.Namespace) -> list[str]:
    from resnet_core.training.config import EXPERIMENTS, MAX_BATCH, MAX_LR, MAX_NETS, MAX_STEPS, max_threads
    problems: list[str] = []
    _in(problems, "--steps", args.steps, 1, MAX_STEPS)
    _in(problems, "--batch", args.batch, 1, MAX_BATCH)
    _in(problems, "--input-size", args.input_size, 4, 512)
    _in(problems, "--threads", args.threads, 1, max_threads(), f"{max_threads()} (this machine's cores)")
    _in(problems, "--seed", args.seed, 0, SEED_MAX, "2**64-1")
    _in(problems, "--nproc", args.nproc, 1, 1024)
    _in(problems, "--port", args.port, 1024, 65535, "65535")
    _in(problems, "--checkpoint-every", args.checkpoint_every, 1, MAX_STEPS)
    if args.lr is not None and not 0 < args.lr <= MAX_LR:
        problems.append(f"error: --lr must be in (0, {MAX_LR:g}], got {args.lr}")
    if args.checkpoint_every is not None and not args.save_dir:
        problems.append("error: --checkpoint-every needs --save-dir (where the checkpoints go)")
    if args.port is not None and not args.nproc:
        problems.append("error: --port is for --nproc (the workers' rendezvous); torchrun takes its own")
    nets = args.nets if args.nets is not None else ("resnet20" if args.recipe else DEFAULT_NETS)
    names = [n.strip() for n in nets.split(",") if n.strip()]
    if not names:
        problems.append("error: --nets is empty; give up to four networks, e.g. plain20,plain56")
    elif len(names) > MAX_NETS:
        problems.append(f"error: at most {MAX_NETS} networks train side by side; --nets gave {len(names)}")
    elif len(names) > 1 and any(n in EXPERIMENTS for n in names):
        problems.append("error: an experiment name (degradation, batchnorm) stands alone in --nets")
    if args.recipe and not args.data.strip().lower().startswith(("cifar:", "cifar10:")):
        problems.append(f"error: --recipe {args.recipe} trains on CIFAR-10: give --data cifar:PATH")
    if args.recipe and names and any(n in EXPERIMENTS for n in names):
        problems.append("error: --recipe trains presets or spec files, not an experiment name")
    args.nets = nets
    return problems


def _resolve_nets(text: str) -> str | list[str]:
    from resnet_core.training.config import EXPERIMENTS, TrainError, resolve_net
    names = [n.strip() for n in text.split(",") if n.strip()]
    if len(names) == 1 and names[0] in EXPERIMENTS:
        return names[0]
    bad = []
    for n in names:
        try:
            resolve_net(n)
        except TrainError as e:
            bad.append(f"error: --nets: {e}")
    if bad:
        raise CliError(*bad)
    return names


def _launch(args: argparse.Namespace) -> int:
    """--nproc N here: N workers through torchrun, each running this same command without --nproc."""
    from resnet_core.training import distributed as D
    try:
        D.check_launch(args.nproc, args.device, args.port)
    except D.DistError as e:
        raise CliError(f"error: {e}") from None
    worker = D.train_args({k: v for k, v in vars(args).items() if k not in D.LAUNCHER_ONLY})
    if not args.quiet:
        where = "127.0.0.1" if args.port is None else f"127.0.0.1:{args.port}"
        print(f"launching {args.nproc} workers through torchrun (rendezvous on {where}): "
              f"{D.command_line(worker, args.nproc)}", file=sys.stderr, flush=True)
    try:
        D.launch(worker, args.nproc, args.port)
    except D.WorkerFailure as e:
        kept = _last_checkpoint(args.save_dir)
        print(f"error: {e}; the run ended on every rank{kept}", file=sys.stderr, flush=True)
        return e.exit_code
    return 0


def _last_checkpoint(save_dir: str | None) -> str:
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


def cmd_train(args: argparse.Namespace) -> int:
    problems = _check_args(args)
    if problems:
        raise CliError(*problems)
    from resnet_core.training import distributed as D
    inside = D.launched_by_torchrun()
    nets = _resolve_nets(args.nets)
    if args.nproc and args.nproc > 1 and not inside:
        return _launch(args)
    if not inside:
        return _train(args, nets, None)
    try:
        world = D.init_worker(args.device)
    except D.DistError as e:
        raise CliError(f"error: {e}") from None
    try:
        return _train(args, nets, world)
    except CliError as e:
        if world.rank != 0:  # every rank meets the same bad input: rank 0 alone says it
            raise CliError() from None
        raise e
    finally:
        D.shutdown()


class _Stopper:
    """SIGINT (and SIGTERM in a worker: torchrun's way to stop it) ask the run to stop at the next step."""

    def __init__(self, worker: bool):
        self.event = threading.Event()
        self.signal_name: str | None = None
        self.worker = worker
        self.previous: dict = {}

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self
        sigs = [signal.SIGINT] + ([signal.SIGTERM] if self.worker else [])
        for sig in sigs:
            self.previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def _on_signal(self, signum, frame):
        if self.event.is_set() and signum == signal.SIGINT and not self.worker:
            raise KeyboardInterrupt  # a second Ctrl-C: give up
        if not self.event.is_set() and not self.worker:
            print("\nstopping after this step (Ctrl-C again to abandon)…", file=sys.stderr, flush=True)
        self.signal_name = self.signal_name or signal.Signals(signum).name
        self.event.set()

    def __exit__(self, *exc):
        for sig, prev in self.previous.items():
            signal.signal(sig, prev)
        return False


def _settings(args, nets, world):
    """make_run's keywords and the lines that say what the run does with several workers."""
    from resnet_core.device import pick_device
    from resnet_core.training.config import EXPERIMENTS, defaults_for
    from resnet_core.training.distributed import scaled_lr
    from resnet_core.training.recipe import get_recipe
    from resnet_core.training.report import world_line
    n = world.size if world is not None else 1
    device = world.device if world is not None else pick_device(args.device)
    d = defaults_for(device)
    extra: dict = {"schedule": args.schedule, "sync_bn": args.sync_bn}
    options: dict = {}
    batch, size, scaling = args.batch, args.input_size, args.lr_scaling
    if args.recipe:
        rec = get_recipe(args.recipe)
        extra.update(rec.train_config(args.steps))
        if batch is None:
            if rec.batch_size % n:
                raise CliError(f"error: the recipe's batch of {rec.batch_size} does not split evenly over {n} "
                               "workers; use a divisor of it, or give --batch per worker")
            batch = rec.batch_size // n
        size = size or rec.input_size
        options = {"val_fraction": rec.val_fraction, "max_train": None}
        base = args.lr if args.lr is not None else rec.lr
        scaling = "recipe" if args.batch is None else scaling
    else:
        exp_lr = dict(EXPERIMENTS[nets].config).get("lr") if isinstance(nets, str) and nets in EXPERIMENTS else None
        base = args.lr if args.lr is not None else (exp_lr or d.lr)
    lr = base if scaling == "recipe" else scaled_lr(base, n, scaling)
    extra["lr"] = lr
    if args.threads is not None:
        extra["threads"] = args.threads
    lines = []
    if world is not None:
        per_rank = batch or d.batch_size
        lines.append(world_line(n, world.backend, device.type, per_rank, base, lr, scaling))
    return dict(steps=extra.pop("steps", args.steps), batch_size=batch, input_size=size, data_options=options,
                **extra), lines


def _train(args: argparse.Namespace, nets, world) -> int:
    from resnet_core.device import BusyError, DeviceError, MemoryGuardError
    from resnet_core.training.config import TrainError
    from resnet_core.training.data import DataError
    from resnet_core.training.distributed import barrier, sync_bn_note
    from resnet_core.training.report import update_json
    from resnet_core.training.results import curves_csv, results_csv, save_checkpoint
    from resnet_core.training.run import make_run

    main = world is None or world.is_main
    csv_path = Path(args.csv) if args.csv else None
    if csv_path is not None and not csv_path.parent.exists():
        raise CliError(f"error: cannot write {args.csv}: the folder {csv_path.parent} does not exist")
    save_dir = Path(args.save_dir) if args.save_dir else None
    if save_dir is not None and save_dir.exists() and not save_dir.is_dir():
        raise CliError(f"error: --save-dir {save_dir} is a file, not a folder")
    progress = Path(args.progress_file) if args.progress_file else None

    kwargs, world_lines = _settings(args, nets, world)
    try:
        run = make_run(nets, args.data, seed=args.seed, no_bn=args.no_bn, device=args.device, world=world, **kwargs)
    except (DataError, DeviceError, MemoryGuardError, TrainError) as e:
        raise CliError(f"error: {e}") from None

    quiet = args.quiet or not main
    say = (lambda *a: None) if quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    say(f"training {', '.join(run.labels)} on {run.data.describe()}")
    if args.recipe:
        from resnet_core.training.recipe import get_recipe
        say(get_recipe(args.recipe).describe())
    say(f"{run.config.steps} steps of batch {run.global_batch} on {run.describe_device()}; "
        "Ctrl-C stops and keeps what was learned")
    for line in world_lines:
        say(line)
    if world is not None:
        has_bn = any(s.norm != "none" for s in run.specs.values())
        note = sync_bn_note(run.device, args.sync_bn, has_bn, run.config.batch_size)
        if note:
            say(note)

    every = args.checkpoint_every or max(1, run.config.steps // 10)
    pfile = progress.open("a", encoding="utf-8") if (progress is not None and main) else None

    def checkpoint_all() -> None:
        save_dir.mkdir(parents=True, exist_ok=True)
        for label in run.labels:
            meta = {"net": label, "steps": run.net_steps[label], "data": run.data.describe(), "partial": True}
            save_checkpoint(save_dir / f"{_safe_name(label)}.pt", run.models[label], run.specs[label], meta)

    if pfile is not None:
        pfile.write(json.dumps({"kind": "start", "labels": run.labels, "steps": run.config.steps,
                                "device": run.describe_device(), "data": run.data.describe(),
                                "world_size": run.nworld, "effective_batch": run.global_batch}) + "\n")
        pfile.flush()
    last = {n: float("nan") for n in run.labels}
    next_say = time.perf_counter() + 2.0
    with _Stopper(worker=world is not None) as stopper:
        try:
            for update in run.iter(should_stop=stopper.event):
                for r in update.records:
                    last[r.net] = r.loss
                for n in update.diverged:
                    say(f"{n}: the loss became non-finite at step {update.step}; it stops training")
                if pfile is not None:
                    pfile.write(update_json(update) + "\n")
                    pfile.flush()
                if main and save_dir is not None and update.step % every == 0 and not update.progress.done:
                    try:
                        checkpoint_all()
                    except OSError as e:
                        raise CliError(f"error: cannot save checkpoints in {save_dir}: {e.strerror}") from None
                now = time.perf_counter()
                if now >= next_say or update.progress.done:
                    next_say = now + 2.0
                    losses = " · ".join(f"{n} {last[n]:.3f}" for n in run.labels)
                    say(f"{update.progress.text()} · loss {losses}")
            result = run.result()
        except BusyError as e:
            raise CliError(f"error: {e}") from None
        except RuntimeError as e:
            if world is None:
                raise
            line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            line = re.sub(r"^\[[^\]]*\]\s*", "", line).split(". ")[0][:160]  # gloo's "[file:line] Read error …"
            print(f"error: rank {world.rank}: the run lost a worker at step {run.step} ({line}); stopping",
                  file=sys.stderr, flush=True)
            return 1

    if main:
        _write_outputs(args, result, csv_path, save_dir, say, curves_csv, results_csv)
        if pfile is not None:
            pfile.write(json.dumps({"kind": "result", "result": result.to_dict()}) + "\n")
            pfile.close()
    if world is not None:
        barrier()  # rank 0 has written everything before any worker exits
        if stopper.signal_name:
            if main:
                print(f"interrupted ({stopper.signal_name}) at step {result.steps_done}; what was learned is saved",
                      file=sys.stderr, flush=True)
            return 130
    return 0


def _write_outputs(args, result, csv_path, save_dir, say, curves_csv, results_csv) -> None:
    if csv_path is not None:
        curves = curves_csv(result.records, result.evals)
        table_path = csv_path.with_name(csv_path.stem + "_results.csv")
        try:
            csv_path.write_text(curves, encoding="utf-8")
            table_path.write_text(results_csv(result), encoding="utf-8")
        except OSError as e:
            raise CliError(f"error: cannot write {csv_path}: {e.strerror}") from None
        say(f"wrote {csv_path} and {table_path}")
    if save_dir is not None:
        try:
            save_dir.mkdir(parents=True, exist_ok=True)
            for r in result.nets:
                pt, _ = result.save_checkpoint(r.net, save_dir / f"{_safe_name(r.net)}.pt")
                say(f"saved {pt}")
        except OSError as e:
            raise CliError(f"error: cannot save checkpoints in {save_dir}: {e.strerror}") from None
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2), flush=True)
    else:
        sys.stdout.write(format_table(result, recipe=bool(args.recipe)))
        sys.stdout.flush()


def _one_line_error(parser: argparse.ArgumentParser):
    def error(message: str):
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)
    return error


def register(sub) -> None:
    """Add `train` to the command parser."""
    p = sub.add_parser("train", help="train up to four nets side by side (degradation and batch-norm experiments), "
                                     "on one process or several (--nproc, torchrun)")
    add_arguments(p)
    p.error = _one_line_error(p)  # a bad value: one line and exit 2, not the usage text
    p.set_defaults(run=cmd_train)
