"""No process outlives its run: the children a run starts die with it, and say how they ended.

Every process a run starts (torchrun's workers, the two trainers of an experiment's pair) carries
    RESNET_EXPLORER_RUN_ID     a marker shared by the whole run (kept if the caller set one: the app or a
                               test finds the run's processes by it in /proc/*/environ)
    RESNET_EXPLORER_PARENT_PID the process that started it
and calls `die_with_parent()` first thing: on Linux the kernel then sends it SIGKILL when that parent
ends, however it ends (SIGKILL included), and a child whose parent died before the call ends at once.

Exit status of an interrupted command: 128 + the signal, i.e. 130 for SIGINT (Ctrl-C), 143 for SIGTERM.
Without torch.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import uuid

RUN_ID_ENV = "RESNET_EXPLORER_RUN_ID"
PARENT_ENV = "RESNET_EXPLORER_PARENT_PID"
LAUNCHER_ENV = "RESNET_EXPLORER_LAUNCHER"  # set for workers our own launcher (`train --nproc`) started
BOOKED_ENV = "RESNET_EXPLORER_MEMORY_BOOKED"  # bytes the launcher booked for each worker (device.reserve)
ERROR_DIR_ENV = "RESNET_EXPLORER_ERROR_DIR"  # where our launcher's workers leave their bad-input line

PR_SET_PDEATHSIG = 1
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def launched_by_torchrun(env: dict | None = None) -> bool:
    """True inside a process that torchrun started (it sets these variables for every worker)."""
    e = os.environ if env is None else env
    return all(k in e for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def exit_status(signum: int) -> int:
    """The shell's convention: 128 + the signal (130 SIGINT, 143 SIGTERM)."""
    return 128 + int(signum)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def signal_of_status(code: int | None) -> int | None:
    """The signal a child ended by: its negative exit code (killed), or 128 + n (it said so); else None."""
    if code is None:
        return None
    if code < 0:
        return -code
    if code in (exit_status(signal.SIGINT), exit_status(signal.SIGTERM)):
        return code - 128
    return None


def die_with_parent(parent_pid: int | None = None, sig: int = signal.SIGKILL) -> None:
    """Linux: ask the kernel for `sig` when the parent ends; end now if it already has (the race between
    the parent's death and this call). `parent_pid`: the parent expected (default $RESNET_EXPLORER_PARENT_PID);
    without one, nothing is done. Elsewhere: nothing (the parent's own cleanup is the only guard)."""
    if parent_pid is None:
        raw = os.environ.get(PARENT_ENV, "")
        parent_pid = int(raw) if raw.isdigit() else None
    if parent_pid is None or not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent was gone before the kernel could be told
        os._exit(exit_status(signal.SIGTERM))


def child_env(env: dict | None = None) -> dict:
    """The environment for children of this process: the run's marker (a new one if none) and this parent."""
    out = dict(os.environ if env is None else env)
    out.setdefault(RUN_ID_ENV, uuid.uuid4().hex)
    out[PARENT_ENV] = str(os.getpid())
    return out


class marked_children:
    """Within: os.environ carries the run's marker and this process as the parent (what children inherit);
    restored after. For launchers that take their children's environment from os.environ (torchrun)."""

    def __init__(self, **extra: str):
        self.extra = extra
        self.before: dict[str, str | None] = {}

    def __enter__(self) -> str:
        wanted = {**child_env(), **self.extra}
        for key in (RUN_ID_ENV, PARENT_ENV, *self.extra):
            self.before[key] = os.environ.get(key)
            os.environ[key] = wanted[key]
        return os.environ[RUN_ID_ENV]

    def __exit__(self, *exc: object) -> None:
        for key, value in self.before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def signals_held():
    """SIGINT and SIGTERM wait (blocked) inside, and arrive when it ends: for starting children, which must
    not be left half started. Children inherit the mask: they unblock STOP_SIGNALS first thing."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
