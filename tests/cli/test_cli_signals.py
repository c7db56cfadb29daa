"""No process outlives its run: `train --nproc 2` and an experiment's pair trained in two processes,
interrupted (SIGINT), terminated (SIGTERM) or killed (SIGKILL) at start-up and mid-run. Every process of the
run is found by a marker put in the command's environment (RESNET_EXPLORER_RUN_ID, inherited by whatever it
starts), scanning /proc/*/environ, never by name; none may remain a few seconds after the command ends.
An interrupted command prints one line naming the signal, no traceback, and exits 128 + the signal.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; PR_SET_PDEATHSIG")]

ROOT = Path(__file__).resolve().parents[2]
MARK = "RESNET_EXPLORER_RUN_ID"
TINY = ["--input-size", "8", "--batch", "8", "--threads", "1", "--device", "cpu", "--data", "synthetic"]
GONE_WITHIN_S = 10.0  # after the command ended
ENDS_WITHIN_S = 30.0  # from the signal to the command's end (a graceful stop on a busy 2-core machine)


def marked(run_id: str) -> list[int]:
    """Live processes whose environment carries the run's marker."""
    needle = f"{MARK}={run_id}".encode()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if needle not in Path(f"/proc/{d}/environ").read_bytes().split(b"\0"):
                continue
            state = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.append(int(d))
    return out


class Command:
    """A command started with a fresh marker; its stderr read by a thread."""

    def __init__(self, *args: str):
        self.run_id = uuid.uuid4().hex
        env = {**os.environ, MARK: self.run_id, "PYTHONUNBUFFERED": "1"}
        env.pop("RESNET_EXPLORER_MEMORY_BUDGET", None)
        env["RESNET_EXPLORER_WORK_LIMIT"] = "1000T"  # the runs are long on purpose: they are signalled mid-run
        self.p = subprocess.Popen([sys.executable, "-m", "resnet_core", *args], cwd=ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.err: list[str] = []
        self.outs: list[str] = []
        # read by threads: a child that outlives the command keeps the pipes open, and must not hang the test
        for stream, into in ((self.p.stderr, self.err), (self.p.stdout, self.outs)):
            threading.Thread(target=self._read, args=(stream, into), daemon=True).start()

    @staticmethod
    def _read(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    def wait_for(self, cond, timeout: float = 120.0) -> None:
        end = time.monotonic() + timeout
        while not cond():
            if self.p.poll() is not None:
                pytest.fail(f"the command ended early ({self.p.returncode}): {''.join(self.err)[-2000:]}")
            if time.monotonic() > end:
                pytest.fail(f"timed out waiting; stderr: {''.join(self.err)[-2000:]}")
            time.sleep(0.05)

    def children(self) -> list[int]:
        return [q for q in marked(self.run_id) if q != self.p.pid]

    def end(self, timeout: float = 60.0) -> tuple[int, str]:
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        finally:
            if self.p.poll() is None:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(10)
        time.sleep(0.3)  # the last lines
        return self.p.returncode, "".join(self.err)

    def cleanup(self) -> list[int]:
        """The marked processes still alive a few seconds after the end (then killed, to leave nothing)."""
        end = time.monotonic() + GONE_WITHIN_S
        left = marked(self.run_id)
        while left and time.monotonic() < end:
            time.sleep(0.1)
            left = marked(self.run_id)
        for q in left:
            with contextlib.suppress(OSError):
                os.kill(q, signal.SIGKILL)
        return left


def _check(cmd: Command, sig: int) -> None:
    t0 = time.monotonic()
    code, err = cmd.end(ENDS_WITHIN_S)
    assert time.monotonic() - t0 < ENDS_WITHIN_S
    left = cmd.cleanup()
    assert left == [], f"processes outlived the run: {left}"
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
        return
    name = signal.Signals(sig).name
    assert code == 128 + sig, err
    assert "Traceback" not in err, err
    assert sum(name in line for line in err.splitlines()) == 1, err


SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_train_nproc_at_start_up(sig):
    cmd = Command("train", "--nets", "resnet20", "--steps", "100000", "--nproc", "2", *TINY)
    try:
        cmd.wait_for(lambda: len(cmd.children()) >= 2)  # the workers exist, and are still starting
        os.kill(cmd.p.pid, sig)
        _check(cmd, sig)
    finally:
        cmd.cleanup()


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_train_nproc_mid_run(sig):
    cmd = Command("train", "--nets", "resnet20", "--steps", "100000", "--nproc", "2", *TINY)
    try:
        cmd.wait_for(lambda: any(line.startswith("step ") for line in cmd.err))
        workers = cmd.children()
        assert len(workers) >= 2
        os.kill(cmd.p.pid, sig)
        _check(cmd, sig)
    finally:
        cmd.cleanup()


def test_the_launcher_before_its_workers_start():
    cmd = Command("train", "--nets", "resnet20", "--steps", "100000", "--nproc", "2", *TINY)
    try:
        time.sleep(0.3)  # still importing
        os.kill(cmd.p.pid, signal.SIGTERM)
        code, err = cmd.end()
        assert cmd.cleanup() == []
        assert code in (143, -signal.SIGTERM) and "Traceback" not in err
    finally:
        cmd.cleanup()


PAIR = ["experiment", "lesion", "--processes", "2", "--steps", "100000", "--input-size", "8", "--batch", "8"]


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_the_pair_in_two_processes(sig):
    cmd = Command(*PAIR)
    try:
        cmd.wait_for(lambda: len(cmd.children()) >= 2)  # the two trainers (and multiprocessing's helper)
        time.sleep(1.5 if sig == signal.SIGKILL else 0.0)  # SIGKILL: while they import; others: at once
        os.kill(cmd.p.pid, sig)
        _check(cmd, sig)
    finally:
        cmd.cleanup()


def test_a_single_process_run_terminated():
    cmd = Command("train", "--nets", "resnet20", "--steps", "100000", *TINY)
    try:
        cmd.wait_for(lambda: any(line.startswith("step ") for line in cmd.err))
        os.kill(cmd.p.pid, signal.SIGTERM)
        _check(cmd, signal.SIGTERM)
    finally:
        cmd.cleanup()


@pytest.mark.slow
def test_a_command_started_with_sigterm_blocked_still_answers_it():
    """A blocked signal mask is inherited across exec (and Python keeps it): a command started by a process
    that had SIGTERM blocked (a test runner, a server thread) must still end on SIGTERM, with its one line.
    Before the fix it never ended."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        cmd = Command("train", "--nets", "resnet20", "--steps", "100000", *TINY)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
    try:
        cmd.wait_for(lambda: any(line.startswith("step ") for line in cmd.err))
        os.kill(cmd.p.pid, signal.SIGTERM)
        code, err = cmd.end(30)
        assert code == 143 and "interrupted by SIGTERM" in err and "Traceback" not in err
        assert cmd.cleanup() == []
    finally:
        cmd.cleanup()
