"""The command line: `resnet-explorer COMMAND ...` or `python -m resnet_core COMMAND ...`.

One module per command group, each with a `register(subparsers)`:
structure (presets, trace, export), live (gradflow), train, experiment, app.

Exit status: 0 done; 2 bad input (an invalid network, a file that is not a spec, bad arguments),
with one line per problem on stderr; 130 interrupted by SIGINT (Ctrl-C), 143 terminated by SIGTERM,
with one line naming the signal; 1 anything else, as one line (never a traceback; set
RESNET_EXPLORER_DEBUG=1 to see it). A command that started processes (train --nproc, an experiment's
pair trained in two processes) ends them before it exits, and they die with it if it is killed
(training/lifecycle.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time

from resnet_core.cli import app, experiment, live, serve, structure, train
from resnet_core.cli import prepare as prepare_cmd
from resnet_core.cli.common import CliError, Interrupted, one_line_error
from resnet_core.errors import ExplorerError
from resnet_core.training import lifecycle

WAIT_FOR_RANK_0_S = 5.0  # torchrun stops the waiting ranks as soon as rank 0 has failed


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (what is wrong, and where help is), not the usage block."""

    def error(self, message: str):
        if lifecycle.launched_by_torchrun() and os.environ.get("RANK") != "0":
            # every rank got the same argv: rank 0 says it, once. The others wait for it first: a rank that
            # exited at once could have torchrun stop rank 0 before it said anything (seen on a loaded machine)
            time.sleep(WAIT_FOR_RANK_0_S)
            self.exit(2)
        one_line_error(self, with_prog=True)(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="resnet-explorer",
        description="ResNet Explorer on the command line: trace, export, check, run and train residual networks.",
        epilog="SPEC is a preset name (see `presets`) or a JSON/YAML spec file.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for group in (structure, live, train, experiment, app, prepare_cmd, serve):
        group.register(sub)
    return parser


FORCED_EXIT_AFTER_S = 25.0  # a graceful stop (the launcher stopping its workers) takes well under this


def _raise_interrupted(signum, frame):
    _exit_later(signum)
    raise Interrupted(signum)


def _exit_later(signum: int, after_s: float = FORCED_EXIT_AFTER_S) -> None:
    """Make sure the command ends after a SIGTERM: the Interrupted raised by the handler can be swallowed
    where Python cannot propagate it (a finalizer or callback running during an import prints "Exception
    ignored" and goes on), so a watchdog ends the process with the same line and status if the graceful stop
    has not ended it by then. Children die with it (lifecycle.die_with_parent)."""
    def force() -> None:
        print(f"interrupted by {lifecycle.signal_name(signum)}", file=sys.stderr, flush=True)
        os._exit(lifecycle.exit_status(signum))

    timer = threading.Timer(after_s, force)
    timer.daemon = True
    timer.start()


@contextlib.contextmanager
def _signals(worker: bool):
    """SIGTERM ends the command like Ctrl-C does (one line, status 143). In a torchrun worker both take
    their default action until the run installs its own (nothing to save before the training starts, and a
    worker blocked in the rendezvous could not run a Python handler)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    if worker:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    else:
        signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        yield
    finally:
        for sig, handler in before.items():
            if handler is not None:
                signal.signal(sig, handler)


def _interrupted(e: Interrupted) -> int:
    worker = lifecycle.launched_by_torchrun() and (os.environ.get(lifecycle.LAUNCHER_ENV)
                                                   or os.environ.get("RANK") != "0")
    if not (e.quiet or worker):  # the launcher (or rank 0) says it, once
        print(f"interrupted by {lifecycle.signal_name(e.signum)}{e.detail}", file=sys.stderr, flush=True)
    return lifecycle.exit_status(e.signum)


def main(argv: list[str] | None = None) -> int:
    lifecycle.die_with_parent()  # a child of our launcher (or of the app): it ends when its parent does
    if hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread():
        # a blocked signal mask is inherited across exec, and Python does not reset it: whatever the process that
        # started us had blocked, this command answers SIGINT and SIGTERM
        signal.pthread_sigmask(signal.SIG_UNBLOCK, lifecycle.STOP_SIGNALS)
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "expand", None) is not None:
        args.expand -= 1
    try:
        with _signals(worker=lifecycle.launched_by_torchrun()):
            return args.run(args)
    except CliError as e:
        for line in e.lines:
            print(line, file=sys.stderr)
        return 2
    except ExplorerError as e:  # the library's one base for bad input: its message says what and where
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        return _interrupted(e)
    except KeyboardInterrupt:
        return _interrupted(Interrupted(signal.SIGINT))
    except BrokenPipeError:
        return 0
    except MemoryError:  # an allocation the estimate did not foresee: say so, never "internal error"
        print("error: out of memory; use a smaller batch, input or network", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, no traceback
        if os.environ.get("RESNET_EXPLORER_DEBUG"):
            raise
        if "out of memory" in str(e).lower() or "can't allocate memory" in str(e).lower():
            print(f"error: out of memory ({str(e).splitlines()[0][:160]}); use a smaller batch, input or network",
                  file=sys.stderr)
            return 1
        print(f"internal error: {type(e).__name__}: {e} (set RESNET_EXPLORER_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1
