"""`python -m resnet_core train`: train up to four nets side by side and print the final table.

    python -m resnet_core train --nets plain20,plain56,resnet20,resnet56 --data digits --steps 1000
    python -m resnet_core train --nets resnet20 --nproc 2            # 2 worker processes (torchrun, DDP)
    torchrun --nproc-per-node 4 -m resnet_core train --nets resnet20 # the same, started by torchrun itself
    python -m resnet_core train --recipe he2015-cifar --nets resnet20 --data cifar:PATH

The run itself is the library's (training/session.py: TrainSession); this module parses, launches and prints.
Progress goes to stderr (a line every couple of seconds), the final table or JSON to stdout.

Exit status and what is printed:
- 0: done.
- 2: bad input (an unknown net, more than four, `--nets a,,b`, a bad data folder, a number out of its range,
  a run whose memory estimate does not fit the device or RESNET_EXPLORER_MEMORY_BUDGET, `--nproc` inside
  torchrun): one line per problem. With several workers the line is printed once, not once per rank.
- 130 (SIGINT, Ctrl-C) / 143 (SIGTERM): interrupted. One line names the signal. Ctrl-C stops at the next
  step and still prints what was learned (a second Ctrl-C abandons the run); SIGTERM ends at once (with
  several workers: at the next step, rank 0 keeping what was learned).
- 1: a worker died or failed (the run ends on every rank, the last checkpoint stays), or anything else.
With several workers only rank 0 prints and writes. Every worker dies with the command that started it,
however it ends (SIGKILL included): see training/lifecycle.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from resnet_core.cli.common import CliError, Interrupted, one_line_error
from resnet_core.errors import ExplorerError
from resnet_core.training import lifecycle
from resnet_core.training.options import add_arguments, check, train_args

# after a stop signal, a worker that has not finished within this many seconds ends at once
WORKER_GRACE_S = 15.0


def format_table(result, recipe: bool = False) -> str:
    from resnet_core.training.report import format_table as fmt
    return fmt(result, recipe)


def worker_argv(args: argparse.Namespace) -> list[str]:
    """The argv of each worker of `--nproc N`: this command's own options, less the launcher's."""
    return train_args(vars(args))


def cmd_train(args: argparse.Namespace) -> int:
    inside = lifecycle.launched_by_torchrun()
    if not inside:
        problems = check(args)
        if problems:
            raise CliError(*problems)
        if args.nproc and args.nproc > 1:
            return _launch(args)
        return _run(args, None)
    try:  # a worker: a bad input is said once (by the launcher, or rank 0), and every rank exits 2
        if args.nproc is not None or args.port is not None:
            raise CliError("error: --nproc/--port start torchrun here; this process is already a torchrun worker "
                           "(torchrun's --nproc-per-node sets the workers): leave them out")
        problems = check(args)
        if problems:
            raise CliError(*problems)
        from resnet_core.training import distributed as D
        try:
            world = D.init_worker(args.device)
        except D.DistError as e:
            raise CliError(f"error: {e}") from None
        try:
            return _run(args, world)
        finally:
            D.shutdown()
    except ExplorerError as e:
        _worker_refuses([f"error: {e}"])
    except CliError as e:
        _worker_refuses(e.lines)
    return 2  # not reached


def _worker_refuses(lines: list[str]) -> None:
    """One rank's bad input: to our launcher's error folder, or printed by rank 0 alone; exit 2 everywhere."""
    folder = os.environ.get(lifecycle.ERROR_DIR_ENV)
    rank = os.environ.get("RANK", "0")
    if folder and lines:
        with contextlib.suppress(OSError, ValueError):
            Path(folder, f"rank{int(rank)}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        raise CliError()
    raise CliError(*(lines if rank == "0" else []))


def _launch(args: argparse.Namespace) -> int:
    """--nproc N here: N workers through torchrun, each running this same command without --nproc. The whole
    run's memory is booked here once; the workers know (lifecycle.BOOKED_ENV) and book nothing of their own."""
    from resnet_core.device import MemoryGuardError
    from resnet_core.training import distributed as D
    from resnet_core.training.session import book_workers, last_checkpoint
    try:
        D.check_launch(args.nproc, args.device, args.port)
    except D.DistError as e:
        raise CliError(f"error: {e}") from None
    try:
        booking, per_worker = book_workers(args, args.nproc)
    except (MemoryGuardError, ExplorerError) as e:
        raise CliError(f"error: {e}") from None
    worker = worker_argv(args)
    if not args.quiet:
        where = "127.0.0.1" if args.port is None else f"127.0.0.1:{args.port}"
        print(f"launching {args.nproc} workers through torchrun (rendezvous on {where}): "
              f"{D.command_line(worker, args.nproc)}", file=sys.stderr, flush=True)
    errors = Path(tempfile.mkdtemp(prefix="resnet-explorer-errors-"))
    env = {lifecycle.ERROR_DIR_ENV: str(errors)}
    if per_worker:
        env[lifecycle.BOOKED_ENV] = str(per_worker)
    try:
        D.launch(worker, args.nproc, args.port, env=env)
    except D.WorkerFailure as e:
        said = sorted(errors.glob("rank*.txt"), key=lambda p: int(p.stem[4:]))
        if said:  # a bad input the workers found: its line, once
            raise CliError(*said[0].read_text(encoding="utf-8").splitlines()) from None
        kept = last_checkpoint(args.save_dir)
        if e.signum is not None:
            raise Interrupted(e.signum, f"; every worker stopped{kept}") from None
        print(f"error: {e}; the run ended on every rank{kept}", file=sys.stderr, flush=True)
        return e.exit_code
    finally:
        booking.close()
        shutil.rmtree(errors, ignore_errors=True)
    return 0


class _Stopper:
    """SIGINT (and SIGTERM in a worker: torchrun's way to stop it) ask the run to stop at the next step.

    One process: the first Ctrl-C prints one line naming it and stops after the step; a second abandons
    the run (KeyboardInterrupt). A worker: stops after the step, and ends at once if it has not finished
    within WORKER_GRACE_S (a peer that is gone can leave it waiting)."""

    def __init__(self, worker: bool):
        self.event = threading.Event()
        self.signum: int | None = None
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
            raise Interrupted(signum, ": the run was abandoned")  # a second Ctrl-C: give up
        if self.signum is None:
            self.signum = signum
            if self.worker:
                timer = threading.Timer(WORKER_GRACE_S, os._exit, (lifecycle.exit_status(signum),))
                timer.daemon = True
                timer.start()
            else:
                print(f"\ninterrupted by {lifecycle.signal_name(signum)}: stopping after this step "
                      "(Ctrl-C again to abandon)…", file=sys.stderr, flush=True)
        self.event.set()

    def __exit__(self, *exc):
        for sig, prev in self.previous.items():
            signal.signal(sig, prev)
        return False


def _run(args: argparse.Namespace, world) -> int:
    """The run here: one process (world None) or this rank of a torchrun run."""
    from resnet_core.device import BusyError
    from resnet_core.training.distributed import barrier
    from resnet_core.training.session import TrainSession

    try:
        session = TrainSession(args, world)
    except ExplorerError as e:
        raise CliError(f"error: {e}") from None
    quiet = args.quiet or not session.main
    say = (lambda *a: None) if quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    for note in session.notes:
        say(note)
    next_say, said_diverged = time.perf_counter() + 2.0, 0
    try:
        with _Stopper(worker=world is not None) as stopper:
            try:
                for update in session.iter(should_stop=stopper.event):
                    for note in session.diverged_notes[said_diverged:]:
                        say(note)
                    said_diverged = len(session.diverged_notes)
                    now = time.perf_counter()
                    if now >= next_say or update.progress.done:
                        next_say = now + 2.0
                        say(session.status_line(update))
                result = session.finish()
            except (BusyError, ExplorerError) as e:
                raise CliError(f"error: {e}") from None
            except RuntimeError as e:
                if world is None:
                    raise
                line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                line = re.sub(r"^\[[^\]]*\]\s*", "", line).split(". ")[0][:160]  # gloo's "[file:line] Read error …"
                if "out of memory" in line.lower() or "can't allocate memory" in line.lower():
                    raise CliError(f"error: rank {world.rank}: out of memory at step {session.run.step} ({line}); "
                                   "use a smaller batch, input or network") from None
                if stopper.signum is not None:  # stopping anyway: a peer that went first is no news
                    raise Interrupted(stopper.signum, quiet=True) from None
                print(f"error: rank {world.rank}: the run lost a worker at step {session.run.step} ({line}); "
                      "stopping", file=sys.stderr, flush=True)
                return 1
    finally:
        session.close()
    if session.main:
        for line in session.written:
            say(line)
        if args.format == "json":
            print(json.dumps(result.to_dict(), indent=2), flush=True)
        else:
            sys.stdout.write(format_table(result, recipe=bool(args.recipe)))
            sys.stdout.flush()
    if world is not None:
        barrier()  # rank 0 has written everything before any worker exits
    if stopper.signum is not None:
        # one process said it when the signal came; under torchrun rank 0 says it now (our launcher's
        # workers leave it to the launcher)
        raise Interrupted(stopper.signum, f" at step {result.steps_done}; what was learned is kept",
                          quiet=world is None)
    return 0


def _error_once(parser: argparse.ArgumentParser):
    """argparse's error as one line, said by rank 0 alone when torchrun started every rank with the same argv."""
    say = one_line_error(parser)

    def error(message: str):
        if lifecycle.launched_by_torchrun() and os.environ.get("RANK") != "0":
            parser.exit(2)
        say(message)
    return error


def register(sub) -> None:
    """Add `train` to the command parser."""
    p = sub.add_parser("train", help="train up to four nets side by side (degradation and batch-norm experiments), "
                                     "on one process or several (--nproc, torchrun)")
    add_arguments(p)
    p.error = _error_once(p)  # a bad value: one line and exit 2, not the usage text
    p.set_defaults(run=cmd_train)
