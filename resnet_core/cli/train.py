"""`python -m resnet_core train`: train up to four nets side by side and print the final table.

    python -m resnet_core train --nets plain20,plain56,resnet20,resnet56 --data digits --steps 1000

Progress goes to stderr (a line every couple of seconds), the final table or JSON to stdout. Ctrl-C
stops at the next step and still prints what was learned (a second Ctrl-C abandons the run).
Bad input (an unknown net, more than four, a bad data folder, steps < 1) exits 2 with one line each.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
import time
from pathlib import Path

from resnet_core.cli.common import CliError
from resnet_core.formatting import text_table

DEFAULT_NETS = "plain20,plain56,resnet20,resnet56"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nets", default=DEFAULT_NETS, metavar="A,B,...",
                   help="up to four comma-separated presets or spec files (a '-nobn' suffix drops batch norm), "
                        f"or an experiment: degradation, batchnorm (default: {DEFAULT_NETS})")
    p.add_argument("--data", default="digits", metavar="DATA",
                   help="digits | synthetic | cifar:PATH (a local cifar-10-batches-py folder); default digits")
    p.add_argument("--steps", type=int, metavar="N", help="optimiser steps (default: 800 on CPU, 3000 on a GPU)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="weights, split and batch order (default 0)")
    p.add_argument("--batch", type=int, metavar="B", help="batch size (default: 32 on CPU, 128 on a GPU)")
    p.add_argument("--input-size", type=int, metavar="H", help="input height and width (default: 16 on CPU, 32 on a GPU)")
    p.add_argument("--lr", type=float, metavar="LR",
                   help="peak learning rate (default 0.1; the batchnorm experiment: 0.02)")
    p.add_argument("--schedule", choices=["cosine", "step", "constant"], default="cosine",
                   help="cosine (default) | step: ÷10 at 50%% and 75%% as in the paper | constant")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads while training (default: half the cores)")
    p.add_argument("--no-bn", action="store_true", help="train every net without batch normalisation")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--csv", metavar="FILE", help="write the curves to FILE and the final table to FILE's name + _results.csv")
    p.add_argument("--save-dir", metavar="DIR", help="save each trained net as DIR/NET.pt (state_dict) + NET.json (spec)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def _safe_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "net"


def _fmt(v, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "—"
    return f"{100 * v:.1f}%" if pct else f"{v:.4f}"


def format_table(result) -> str:
    head = ["net", "depth", "params", "steps", "final loss", "train acc", "held-out acc", "time"]
    rows = [[r.net, str(r.depth), f"{r.params:,}", str(r.steps) + (" (diverged)" if r.diverged_at else ""),
             _fmt(r.final_loss), _fmt(r.train_accuracy, True), _fmt(r.heldout_accuracy, True), f"{r.time_s:.1f} s"]
            for r in result.nets]
    status = (f"stopped at step {result.steps_done} of {result.config.steps}" if result.stopped
              else f"{result.steps_done} steps")
    out = [f"{result.data}", f"{result.device} · batch {result.config.batch_size} · {status} · "
                              f"{result.wall_s:.1f} s", ""]
    out += text_table(head, rows, right=range(1, len(head)))
    return "\n".join(out) + "\n"


def _check_args(args: argparse.Namespace) -> list[str]:
    from resnet_core.training.config import EXPERIMENTS, MAX_NETS
    problems = []
    if args.steps is not None and args.steps < 1:
        problems.append(f"error: --steps must be at least 1, got {args.steps}")
    if args.batch is not None and args.batch < 1:
        problems.append(f"error: --batch must be at least 1, got {args.batch}")
    if args.input_size is not None and not 4 <= args.input_size <= 512:
        problems.append(f"error: --input-size must be between 4 and 512, got {args.input_size}")
    if args.threads is not None and args.threads < 1:
        problems.append(f"error: --threads must be at least 1, got {args.threads}")
    if args.lr is not None and not args.lr > 0:
        problems.append(f"error: --lr must be positive, got {args.lr}")
    names = [n.strip() for n in args.nets.split(",") if n.strip()]
    if not names:
        problems.append("error: --nets is empty; give up to four networks, e.g. plain20,plain56")
    elif len(names) > MAX_NETS:
        problems.append(f"error: at most {MAX_NETS} networks train side by side; --nets gave {len(names)}")
    elif len(names) > 1 and any(n in EXPERIMENTS for n in names):
        problems.append("error: an experiment name (degradation, batchnorm) stands alone in --nets")
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


def cmd_train(args: argparse.Namespace) -> int:
    problems = _check_args(args)
    if problems:
        raise CliError(*problems)
    nets = _resolve_nets(args.nets)

    from resnet_core.device import BusyError, DeviceError, MemoryGuardError
    from resnet_core.training.config import TrainError
    from resnet_core.training.data import DataError
    from resnet_core.training.results import curves_csv, results_csv
    from resnet_core.training.run import make_run

    csv_path = Path(args.csv) if args.csv else None
    if csv_path is not None and not csv_path.parent.exists():
        raise CliError(f"error: cannot write {args.csv}: the folder {csv_path.parent} does not exist")
    save_dir = Path(args.save_dir) if args.save_dir else None
    if save_dir is not None and save_dir.exists() and not save_dir.is_dir():
        raise CliError(f"error: --save-dir {save_dir} is a file, not a folder")

    extra = {"schedule": args.schedule}
    if args.lr is not None:
        extra["lr"] = args.lr
    if args.threads is not None:
        extra["threads"] = args.threads
    try:
        run = make_run(nets, args.data, steps=args.steps, batch_size=args.batch, input_size=args.input_size,
                       seed=args.seed, no_bn=args.no_bn, device=args.device, **extra)
    except (DataError, DeviceError, MemoryGuardError, TrainError) as e:
        raise CliError(f"error: {e}") from None

    say = (lambda *a: None) if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    say(f"training {', '.join(run.labels)} on {run.data.describe()}")
    say(f"{run.config.steps} steps of batch {run.config.batch_size} on {run.describe_device()}; Ctrl-C stops and keeps what was learned")

    stop = threading.Event()
    previous = None
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        def on_sigint(signum, frame):  # first Ctrl-C: stop at the next step; second: give up
            if stop.is_set():
                raise KeyboardInterrupt
            stop.set()
            print("\nstopping after this step (Ctrl-C again to abandon)…", file=sys.stderr, flush=True)
        previous = signal.signal(signal.SIGINT, on_sigint)
    last = {n: float("nan") for n in run.labels}
    next_say = time.perf_counter() + 2.0
    try:
        for update in run.iter(should_stop=stop):
            for r in update.records:
                last[r.net] = r.loss
            for n in update.diverged:
                say(f"{n}: the loss became non-finite at step {update.step}; it stops training")
            now = time.perf_counter()
            if now >= next_say or update.progress.done:
                next_say = now + 2.0
                losses = " · ".join(f"{n} {last[n]:.3f}" for n in run.labels)
                say(f"{update.progress.text()} · loss {losses}")
    except BusyError as e:
        raise CliError(f"error: {e}") from None
    finally:
        if in_main and previous is not None:
            signal.signal(signal.SIGINT, previous)

    result = run.result()
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
        print(json.dumps(result.to_dict(), indent=2))
    else:
        sys.stdout.write(format_table(result))
    return 0


def register(sub) -> None:
    """Add `train` to the command parser."""
    p = sub.add_parser("train", help="train up to four nets side by side (degradation and batch-norm experiments)")
    add_arguments(p)
    p.set_defaults(run=cmd_train)

