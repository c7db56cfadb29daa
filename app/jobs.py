"""Background jobs of the app's browser sessions: ONE job type for every lab, threads and processes alike,
and ONE rule for noticing that a session has gone.

A `Job` runs `work(should_stop, report)` in a thread of its own: `should_stop()` turns true on Stop or when
the session that started it is gone; `report(p)` keeps the latest progress (`job.progress`, whatever the
lab reports); what `work` returns is `job.result`; an exception becomes `job.error`, one line, never a
traceback. `start_process` makes the work of a job that owns a subprocess: the command runs in a process
group of its own, a follower thread (the job's) reads its JSON-lines progress file, signals the whole group
when the job should stop (SIGINT, then SIGTERM, then SIGKILL), and removes the job's folder when it ends.
Processes die with the server: an exit handler ends every group still running (and removes its folder),
and on Linux each launcher gets SIGTERM from the kernel when the server dies (even by SIGKILL); the folders
of a server killed outright are removed by the next server's first process job (`make_workdir`).

The liveness rule (`session_alive`): a session is there while Streamlit's runtime says it is connected;
one disconnected for more than GRACE_S seconds (a closed tab; a reconnect within it is forgiven) is gone.
Outside a server (bare mode, AppTest) there is nothing to watch and a session is always there. A wait
inside a script run (`run_alive`) also ends when Streamlit has replaced or stopped that run (a click while
it waited: the new run asks again).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resnet_core.errors import ExplorerError
from resnet_core.i18n import _

GRACE_S = 10.0  # a session disconnected this long is gone
STOP_GRACE_S = 10.0  # a process group asked to stop (SIGINT) gets this long before SIGTERM, and as long again before SIGKILL
MAX_ERROR_CHARS = 400

Check = Callable[[], bool]
Report = Callable[[Any], None]


class Refused(ExplorerError):
    """A job was not started: the server already runs as many of its kind as it allows."""


class Failed(ExplorerError):
    """A job's work ended without a result; the message is the one line the page shows."""


# ------------------------------------------------------------------------------------------------
# liveness: one rule
# ------------------------------------------------------------------------------------------------

def _connected_probe() -> Check | None:
    """Streamlit's own answer to 'is this script run's session connected', or None when there is no such
    answer (no server, or a session the runtime does not track, as in AppTest)."""
    try:
        from streamlit import runtime
        from streamlit.runtime.scriptrunner import get_script_run_ctx
        ctx = get_script_run_ctx(suppress_warning=True)
        if ctx is None or not runtime.exists():
            return None
        rt, sid = runtime.get_instance(), ctx.session_id
        if not rt.is_active_session(sid):
            return None
        return lambda: rt.is_active_session(sid)
    except Exception:  # noqa: BLE001 - a Streamlit without these internals: do not guess
        return None


def session_alive(grace_s: float = GRACE_S) -> Check:
    """For the calling script run's session: true while the browser session is connected, or was within
    the last `grace_s` seconds. Always true outside a server."""
    connected = _connected_probe()
    if connected is None:
        return lambda: True
    lock = threading.Lock()
    gone_since: list[float | None] = [None]

    def alive() -> bool:
        if connected():
            with lock:
                gone_since[0] = None
            return True
        now = time.monotonic()
        with lock:
            if gone_since[0] is None:
                gone_since[0] = now
            return now - gone_since[0] < grace_s

    return alive


def _run_current() -> Check:
    """True while the calling script run has not been stopped or replaced by Streamlit (with fastReruns a
    click starts a new run and only asks the old one to stop, which it notices at its next element)."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx
        from streamlit.runtime.scriptrunner_utils.script_requests import ScriptRequestType
        ctx = get_script_run_ctx(suppress_warning=True)
        requests = getattr(ctx, "script_requests", None)
        if requests is None or not hasattr(requests, "_state"):
            return lambda: True
        return lambda: requests._state != ScriptRequestType.STOP
    except Exception:  # noqa: BLE001
        return lambda: True


def run_alive() -> Check:
    """For a wait inside a script run (a place in a line): its session is there and this run is still the
    one the session waits for."""
    alive, current = session_alive(), _run_current()
    return lambda: current() and alive()


def one_line(error: BaseException | str) -> str:
    """An error as the page shows it: one line, bounded; a library error's own message, else its type too."""
    if isinstance(error, BaseException):
        text = str(error) if isinstance(error, ExplorerError) else f"{type(error).__name__}: {error}"
    else:
        text = str(error)
    text = " ".join(text.split()) or _("the job ended with an error")
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


# ------------------------------------------------------------------------------------------------
# the job
# ------------------------------------------------------------------------------------------------

class Job:
    """One background job of one session: a thread running `work(should_stop, report)`.

    Lab-specific details (the request it answers, the settings key, the run it shows) are given as keyword
    arguments and read back as attributes (`job.request`, `job.key`, ...).
    """

    def __init__(self, name: str, work: Callable[[Check, Report], Any], **details: Any):
        self.name = name
        self.work = work
        self.stop_event = threading.Event()
        self.progress: Any = None
        self.result: Any = None
        self.error: str | None = None
        self.finished = False
        self.started = time.monotonic()
        self.thread: threading.Thread | None = None
        self.alive: Check | None = None
        for key, value in details.items():
            if hasattr(self, key):
                raise TypeError(f"a job detail may not be called {key!r}")  # i18n: not shown (a programming error)
            setattr(self, key, value)

    @property
    def running(self) -> bool:
        return self.thread is not None and not self.finished

    def should_stop(self) -> bool:
        return self.stop_event.is_set() or (self.alive is not None and not self.alive())

    def report(self, progress: Any) -> None:
        self.progress = progress

    def _run(self) -> None:
        try:
            self.result = self.work(self.should_stop, self.report)
        except BaseException as e:  # noqa: BLE001 - shown on the page as one line, never a traceback
            self.error = one_line(e)
        finally:
            self.finished = True

    def start(self, alive: Check | None = None) -> Job:
        """Run in a thread of its own; it stops by itself once `alive()` (default: the liveness rule for the
        calling script run's session) turns false."""
        self.alive = alive or session_alive()
        self.thread = threading.Thread(target=self._run, name=f"resnet-explorer-{self.name}", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the end (at most `timeout` seconds); whether it has ended."""
        if self.thread is not None:
            self.thread.join(timeout)
        return self.finished


def replace_job(state: Any, key: str, job: Job, wait_s: float = 30.0) -> Job:
    """Put `job` in the session's `state[key]` and start it; the session's running job there is stopped
    first (one job per lab and session)."""
    old = state.get(key)
    if isinstance(old, Job) and old.running:
        old.stop()
        old.wait(wait_s)
    state[key] = job
    return job.start()


# ------------------------------------------------------------------------------------------------
# jobs that own a process
# ------------------------------------------------------------------------------------------------

class Capacity:
    """At most `n` jobs of one kind at once on this server; a job over it is refused, not queued."""

    def __init__(self, n: int, refusal: str):
        self.n, self.refusal = n, refusal
        self._held = 0
        self._lock = threading.Lock()

    def take(self) -> None:
        with self._lock:
            if self._held >= self.n:
                raise Refused(_(self.refusal))  # marked N_ where the capacity is made; shown in this run's language
            self._held += 1

    def give(self) -> None:
        with self._lock:
            self._held = max(0, self._held - 1)

    @property
    def held(self) -> int:
        with self._lock:
            return self._held


_GROUPS: dict[int, tuple[subprocess.Popen, Path]] = {}  # group id → (its leader, its folder), while running
_GROUPS_LOCK = threading.Lock()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, sig)
        elif proc.poll() is None:  # no process groups (Windows): the launcher alone
            if sig == signal.SIGINT:
                proc.send_signal(sig)
            else:
                proc.terminate()
    except (ProcessLookupError, PermissionError, OSError, ValueError):
        pass


def end_all(grace_s: float = 3.0) -> None:
    """End every job process group still running (the server is exiting): SIGTERM, then SIGKILL."""
    with _GROUPS_LOCK:
        running = list(_GROUPS.values())
    for proc, _folder in running:
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc, workdir in running:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.0, deadline - time.monotonic()))
        _signal_group(proc, getattr(signal, "SIGKILL", signal.SIGTERM))
        shutil.rmtree(workdir, ignore_errors=True)


OWNER_FILE = "owner.pid"


def make_workdir(prefix: str) -> Path:
    """A private temporary folder for a job's process, marked with this server's pid. Folders of this
    prefix left by a server that no longer runs (killed outright: nothing of it could clean up) are
    removed first."""
    sweep(prefix)
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    (workdir / OWNER_FILE).write_text(str(os.getpid()), encoding="utf-8")
    return workdir


def sweep(prefix: str) -> list[Path]:
    """Remove the folders `make_workdir(prefix)` made for servers that are gone; the folders removed."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(prefix + "*"):
        try:
            owner = int((folder / OWNER_FILE).read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            continue  # not one of ours, or still being made
        if owner == os.getpid() or _pid_exists(owner):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


atexit.register(end_all)

# Linux: the launcher asks the kernel for SIGTERM when the server dies (even by SIGKILL), then becomes the
# command. Set in the child itself, not with preexec_fn (unsafe in a threaded server); `parent` guards the
# race where the server died before the request was made.
_DIE_WITH_PARENT = ("import ctypes, os, signal, sys\n"  # i18n: not shown (code)
                    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"
                    "if os.getppid() != int(sys.argv[1]): sys.exit(143)\n"
                    "os.execv(sys.argv[2], sys.argv[2:])\n")


def _launch_argv(cmd: list[str]) -> list[str]:
    if sys.platform.startswith("linux"):
        return [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *cmd]
    return list(cmd)


def start_process(cmd: list[str], workdir: Path, read: Callable[[dict, Report], None],
                  finish: Callable[[int, str], Any], cwd: str | Path | None = None,
                  progress_file: str = "progress.jsonl", on_end: Callable[[], None] | None = None
                  ) -> Callable[[Check, Report], Any]:
    """The work of a job that owns the process `cmd` (its first item an executable path).

    The process starts in the job's thread (so that the kernel's parent-death signal is tied to a thread
    that lives as long as the process), in a session and process group of its own, its stdout and stderr
    in `workdir`. Every complete JSON line of `workdir/progress_file` goes to `read(msg, report)` as it
    arrives (`report` sets the job's progress).
    When the job should stop, the group gets SIGINT (the command stops cleanly and reports), then SIGTERM
    and SIGKILL if it does not end. At the end `finish(returncode, stderr_text)` gives the job's result
    (or raises: the job's error). At the end, whatever happened, `workdir` is removed and `on_end()` is
    called (e.g. a Capacity's `give`).
    """
    workdir = Path(workdir)

    def work(should_stop: Check, report: Report) -> Any:
        proc = None
        try:
            with open(workdir / "stdout.txt", "wb") as out, open(workdir / "stderr.txt", "wb") as err:
                proc = subprocess.Popen(_launch_argv(cmd), cwd=cwd, stdout=out, stderr=err,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
            with _GROUPS_LOCK:
                _GROUPS[proc.pid] = (proc, workdir)
            path, pos, asked_at, sent = workdir / progress_file, 0, None, []
            while True:
                exited = proc.poll() is not None
                if path.exists():
                    with path.open(encoding="utf-8") as f:
                        f.seek(pos)
                        while True:
                            line = f.readline()
                            if not line.endswith("\n"):
                                break
                            pos = f.tell()
                            try:
                                msg = json.loads(line)
                            except ValueError:
                                continue
                            if isinstance(msg, dict):
                                read(msg, report)
                if exited:
                    break
                if should_stop():
                    now = time.monotonic()
                    if asked_at is None:
                        asked_at = now
                    for sig, after in ((signal.SIGINT, 0.0), (signal.SIGTERM, STOP_GRACE_S),
                                       (getattr(signal, "SIGKILL", signal.SIGTERM), 2 * STOP_GRACE_S)):
                        if sig not in sent and now - asked_at >= after:
                            _signal_group(proc, sig)
                            sent.append(sig)
                time.sleep(0.3)
            err_text = (workdir / "stderr.txt").read_text(encoding="utf-8", errors="replace")
            return finish(proc.returncode, err_text)
        finally:
            if proc is not None:
                _signal_group(proc, getattr(signal, "SIGKILL", signal.SIGTERM))  # what is left of the group
                with _GROUPS_LOCK:
                    _GROUPS.pop(proc.pid, None)
            shutil.rmtree(workdir, ignore_errors=True)
            if on_end is not None:
                on_end()

    return work
