"""app/jobs.py: the one background job type. Thread jobs (result, one-line errors, Stop, the session
gone), process jobs (their whole process group ends on Stop, when the session goes, when the server exits
or is killed; their folder is removed; a server-wide cap refuses the next one with a reason)."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from app import jobs
from resnet_core.errors import ExplorerError

ROOT = Path(__file__).resolve().parents[2]

# a launcher that starts a worker of its own (the same process group), reports both pids and progress
LAUNCHER = textwrap.dedent("""
    import json, os, subprocess, sys, time
    out = sys.argv[1]
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(os.path.join(out, "progress.jsonl"), "a") as f:
        f.write(json.dumps({"kind": "pids", "launcher": os.getpid(), "worker": worker.pid}) + "\\n")
        f.flush()
        for step in range(1, 100000):
            f.write(json.dumps({"kind": "step", "step": step}) + "\\n")
            f.flush()
            time.sleep(0.05)
""")


def gone(pid: int, within: float = 10.0) -> bool:
    """Whether process `pid` has ended (or is a zombie nobody waits for) within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ", 1)[1].startswith("Z"):
                    return True
        except (FileNotFoundError, ProcessLookupError):
            return True
        time.sleep(0.1)
    return False


def process_job(tmp_path, on_end=None, alive=None, stop_grace=None):
    workdir = tmp_path / "work"
    workdir.mkdir()
    seen = {}

    def read(msg, report):
        if msg["kind"] == "pids":
            seen.update(msg)
        else:
            report(msg["step"])

    def finish(code, err):
        if code not in (0, 130):
            raise jobs.Failed(f"exit status {code}: {err.strip().splitlines()[-1] if err.strip() else ''}")
        return "done"

    work = jobs.start_process([sys.executable, "-c", LAUNCHER, str(workdir)], workdir, read, finish, on_end=on_end)
    job = jobs.Job("test-process", work).start(alive=alive)
    deadline = time.monotonic() + 60
    while not (seen and job.progress) and not job.finished and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen and job.progress, (job.error, job.finished)
    return job, seen, workdir


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process checks read /proc")
def test_stop_ends_the_whole_process_group_and_removes_its_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(jobs, "STOP_GRACE_S", 1.0)  # the launcher ignores nothing; SIGINT ends it at once
    ended = []
    job, pids, workdir = process_job(tmp_path, on_end=lambda: ended.append(1))
    assert job.running
    job.stop()
    assert job.wait(30), "the job did not end after Stop"
    assert gone(pids["launcher"]) and gone(pids["worker"]), "a process of the job outlived it"
    assert not workdir.exists() and ended == [1]
    assert job.error is not None and "\n" not in job.error  # SIGINT: a traceback's last line, on one line


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process checks read /proc")
def test_a_process_job_ends_when_its_session_is_gone(tmp_path, monkeypatch):
    monkeypatch.setattr(jobs, "STOP_GRACE_S", 1.0)
    here = {"alive": True}
    job, pids, workdir = process_job(tmp_path, alive=lambda: here["alive"])
    here["alive"] = False  # the tab closed
    assert job.wait(30)
    assert gone(pids["launcher"]) and gone(pids["worker"]) and not workdir.exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process checks read /proc")
def test_the_server_exiting_ends_every_job_group(tmp_path):
    job, pids, workdir = process_job(tmp_path)
    jobs.end_all(grace_s=2.0)  # what the server's exit handler runs
    assert gone(pids["launcher"]) and gone(pids["worker"]) and not workdir.exists()
    assert job.wait(30)


SERVER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[2])
    from pathlib import Path
    from app import jobs
    work = Path(sys.argv[1])
    w = jobs.start_process([sys.executable, "-c", sys.argv[3], str(work)], work, lambda m, r: None,
                           lambda c, e: None)
    jobs.Job("nproc", w).start(alive=lambda: True)
    time.sleep(300)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_killed_server_takes_its_job_processes_with_it(tmp_path):
    """SIGKILL runs no handler in the server: the launcher's parent-death signal ends it, and its worker."""
    work = tmp_path / "work"
    work.mkdir()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(work), str(ROOT), LAUNCHER], cwd=ROOT,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        pids = None
        while pids is None and time.monotonic() < deadline:
            try:
                pids = json.loads((work / "progress.jsonl").read_text().splitlines()[0])
            except (OSError, IndexError, ValueError):
                time.sleep(0.1)
        assert pids is not None, "the server never started its job"
        server.kill()
        server.wait(10)
        assert gone(pids["launcher"]), "the launcher outlived the killed server"
        # the worker is the launcher's child: its own parent-death signal is the command's business (torchrun
        # workers have it); here it is orphaned but its group is known, so clean it up
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        if pids:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pids["launcher"], signal.SIGKILL)


def test_a_thread_job_keeps_its_result_and_says_errors_in_one_line():
    job = jobs.Job("ok", lambda stop, report: report(0.5) or 42).start()
    assert job.wait(10) and job.result == 42 and job.error is None and job.progress == 0.5 and not job.running

    def boom(stop, report):
        raise ExplorerError("line one\nline two\n  indented")
    job = jobs.Job("explorer", boom).start()
    assert job.wait(10) and job.error == "line one line two indented" and job.result is None

    def crash(stop, report):
        raise RuntimeError("x" * 1000)
    job = jobs.Job("crash", crash).start()
    assert job.wait(10) and job.error.startswith("RuntimeError: xxx") and len(job.error) <= jobs.MAX_ERROR_CHARS


def test_a_thread_job_stops_on_stop_and_when_its_session_is_gone():
    def loop(stop, report):
        n = 0
        while not stop():
            n += 1
            time.sleep(0.01)
        return n
    job = jobs.Job("loop", loop).start()
    time.sleep(0.1)
    job.stop()
    assert job.wait(10) and job.result > 0
    here = {"alive": True}
    job = jobs.Job("loop", loop).start(alive=lambda: here["alive"])
    time.sleep(0.1)
    assert job.running
    here["alive"] = False
    assert job.wait(10) and not job.running


def test_a_job_detail_cannot_shadow_the_job():
    with pytest.raises(TypeError):
        jobs.Job("x", lambda s, r: None, result=1)
    assert jobs.Job("x", lambda s, r: None, request=(1, 2)).request == (1, 2)


def test_the_server_wide_cap_refuses_with_a_reason():
    cap = jobs.Capacity(1, "one at a time: try again when it ends")
    cap.take()
    with pytest.raises(jobs.Refused, match="one at a time"):
        cap.take()
    cap.give()
    cap.take()
    cap.give()
    assert cap.held == 0


def test_the_liveness_rule_forgives_a_short_disconnection(monkeypatch):
    state = {"connected": True}
    monkeypatch.setattr(jobs, "_connected_probe", lambda: lambda: state["connected"])
    alive = jobs.session_alive(grace_s=0.3)
    assert alive()
    state["connected"] = False
    assert alive()  # a reconnect within the grace keeps the session
    state["connected"] = True
    assert alive()
    state["connected"] = False
    assert alive()
    time.sleep(0.4)
    assert not alive()  # gone for longer than the grace: the tab is closed
    monkeypatch.setattr(jobs, "_connected_probe", lambda: None)
    assert jobs.session_alive()()  # no server to ask: always there


def test_folders_of_a_server_killed_outright_are_swept_by_the_next(tmp_path, monkeypatch):
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    prefix = "resnet-explorer-test-"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / (prefix + "stale")
    stale.mkdir()
    (stale / jobs.OWNER_FILE).write_text(str(dead.pid))
    foreign = tmp_path / (prefix + "foreign")  # no owner mark: not one of ours
    foreign.mkdir()
    mine = jobs.make_workdir(prefix)
    assert mine.parent == tmp_path and mine.is_dir() and (mine / jobs.OWNER_FILE).read_text() == str(os.getpid())
    assert not stale.exists() and foreign.exists()
    assert jobs.sweep(prefix) == [] and mine.exists()  # a running server's folder stays
