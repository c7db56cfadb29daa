"""A class through the real proxy: 40 simulated students follow a teacher through five pushes and one live view.

Starts `resnet-explorer serve --replicas R` (nginx before R app processes, a SQLite class database in a temporary
folder) for R = 1 and then 2. Each student is a lightweight websocket client speaking Streamlit's own protocol
(the protobuf BackMsg/ForwardMsg of the installed streamlit, through nginx's /_stcore/stream): it opens the app
on its student link (?class=CODE&member=ID), runs the auto-rerun fragments the server asks for (the follow poll,
once a second, as a browser does) and reads every element it is sent. The students are split between the
replicas by the affinity cookie, as nginx splits browsers. No browser is drawn: the clients measure the server.

The teacher (this script, through the library with the class's secret, as the Send button does) pushes five
networks alternately to the Graph and Shape trace pages, waiting until every student has the page, then sends
the class to the Live lab on resnet20: every student's session runs its first forward view.

Printed, for each R: push → last student's page (median and worst over the five pushes), the live push → last
student's finished view, errors (an exception or error box, a dropped connection, a timeout), cross-talk (a
student shown another student's name, or a page with another network than the push's), and the server's CPU
seconds per student view (the app processes' and nginx's user+system time from /proc over the live view, / 40).
Also the server's CPU while the class follows and nothing is pushed (the once-a-second polls). Then the ratio
of the two set-ups' figures.

    python benchmarks/bench_class.py [--students 40] [--replicas 1 2] [--port 8630]

Targets (issue 23), 2 cores: every push reaches every student in ≤ 2 s, 0 errors, 0 cross-talk.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import websockets  # noqa: E402 - streamlit's own dependency (its server's websocket)
from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402

import resnet_core as rc  # noqa: E402
from resnet_core.classroom import Classroom, connect  # noqa: E402

PUSHES = [("resnet20", "graph", "computation graph"), ("resnet32", "home", "shape trace"),
          ("resnet44", "graph", "computation graph"), ("resnet56", "home", "shape trace"),
          ("resnet110", "graph", "computation graph")]
LIVE = ("resnet20", "live", "Live lab")
TIMEOUT_S = 120.0


@dataclass
class Student:
    index: int
    name: str
    member: str
    replica: str
    headings: list[tuple[float, str]] = field(default_factory=list)  # (time, heading text) of each full run
    finished: list[tuple[float, str]] = field(default_factory=list)  # (time, the run's first heading)
    errors: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # every text element it was sent
    ws: object = None
    timers: dict = field(default_factory=dict)
    run_heading: str = ""
    page_hash: str = ""
    query: str = ""
    log: list = field(default_factory=list)


def element_text(el) -> str:
    kind = el.WhichOneof("type")
    if kind in ("heading", "markdown", "alert", "text"):
        return getattr(el, kind).body
    if kind == "code":
        return el.code.code_text
    if kind == "exception":
        return "EXCEPTION " + el.exception.message
    return ""


async def send_rerun(s: Student, fragment: str = "") -> None:
    msg = BackMsg()
    cs = msg.rerun_script
    cs.query_string = s.query
    cs.page_script_hash = s.page_hash
    if fragment:
        cs.fragment_id = fragment
        cs.is_auto_rerun = True
    await s.ws.send(msg.SerializeToString())


async def auto_rerun(s: Student, fragment: str, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        await send_rerun(s, fragment)


async def run_student(s: Student, base: str, ws_url: str, code: str, stop: asyncio.Event) -> None:
    s.query = urlencode({"class": code, "member": s.member})
    try:
        # no pings of its own, as a browser sends none (a client starved of CPU would time its own pings out)
        async with websockets.connect(ws_url, subprotocols=["streamlit"], max_size=None, open_timeout=60,
                                      ping_interval=None,
                                      additional_headers={"Cookie": f"rx_replica={s.replica}", "Origin": base}) as ws:
            s.ws = ws
            await send_rerun(s)
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=1.0)
                except TimeoutError:
                    continue
                try:
                    handle(s, raw)
                except Exception as e:  # noqa: BLE001 - a message this client cannot read: counted, never fatal
                    s.errors.append(f"client: {type(e).__name__}: {e}")
    except (OSError, websockets.WebSocketException) as e:
        if not stop.is_set():
            s.errors.append(f"connection: {type(e).__name__}: {e}")
    finally:
        for t in s.timers.values():
            t.cancel()


def handle(s: Student, raw: bytes) -> None:
    msg = ForwardMsg()
    msg.ParseFromString(raw)
    kind = msg.WhichOneof("type")
    now = time.monotonic()
    if kind == "new_session":
        s.page_hash = msg.new_session.page_script_hash or s.page_hash
        s.run_heading = ""
    elif kind == "page_info_changed":
        s.query = msg.page_info_changed.query_string
    elif kind == "navigation":
        s.page_hash = msg.navigation.page_script_hash or s.page_hash
    elif kind == "auto_rerun":
        frag, interval = msg.auto_rerun.fragment_id, msg.auto_rerun.interval
        if frag not in s.timers:
            s.timers[frag] = asyncio.get_running_loop().create_task(auto_rerun(s, frag, interval))
    elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
        el = msg.delta.new_element
        text = element_text(el)
        if text:
            s.texts.append(text)
        if el.WhichOneof("type") == "exception" or (el.WhichOneof("type") == "alert" and el.alert.format == 1):
            s.errors.append(f"{el.WhichOneof('type')}: {text[:120]}")
        if el.WhichOneof("type") == "heading" and el.heading.tag == "h1" and not s.run_heading:
            s.run_heading = text
            s.headings.append((now, text))
    if kind in ("script_finished", "new_session", "page_not_found", "session_status_changed", "stop_auto_rerun"):
        s.log.append((round(now, 2), kind, msg.script_finished if kind == "script_finished" else s.run_heading[:20]))
    if kind == "script_finished" and msg.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY and s.run_heading:
        s.finished.append((now, s.run_heading))


async def wait_all(students: list[Student], want: str, since: float, finished: bool = False) -> list[float]:
    """Seconds from `since` until each student was sent a page whose title contains `want` (the app sends a run's
    elements together at its end: app/delivery.py), or, `finished`, until that run had finished."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        done = [next((t for t, h in (s.finished if finished else s.headings) if t >= since and want in h), None)
                for s in students]
        if all(d is not None for d in done):
            return [d - since for d in done]
        await asyncio.sleep(0.05)
    for s, d in zip(students, done, strict=True):
        if d is None:
            s.errors.append(f"timeout: no '{want}' within {TIMEOUT_S:.0f} s (last titles: "
                            f"{[h for _, h in s.finished[-2:]]}, {len(s.headings)} runs)")
            if os.environ.get("BENCH_DEBUG"):
                interesting = [e for e in s.log if e[1] in ("script_finished", "page_not_found", "stop_auto_rerun")
                               and e[2] != 3]
                print(s.index, interesting[-8:], s.headings[-4:], s.timers.keys(), file=sys.stderr)
    return [(d - since) if d is not None else TIMEOUT_S for d in done]


def _die_with_us() -> None:
    """In the serve child: SIGTERM when this benchmark dies, however it dies (it then stops its own children)."""
    import ctypes
    import signal
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return total


def server_pids(serve_pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(serve_pid)], capture_output=True, text=True).stdout.split()
    kids = [int(p) for p in out]
    grand = [int(p) for k in kids for p in subprocess.run(["pgrep", "-P", str(k)], capture_output=True,
                                                          text=True).stdout.split()]
    return kids + grand


async def lesson(n: int, replicas: int, port: int, db_path: str) -> dict:
    proc = subprocess.Popen([sys.executable, "-m", "resnet_core", "serve", "--replicas", str(replicas), "--port",
                             str(port), "--address", "127.0.0.1", "--db", db_path],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                            preexec_fn=_die_with_us)
    try:
        line = proc.stdout.readline()
        while line and not line.startswith("serving"):
            line = proc.stdout.readline()
        if not line.startswith("serving"):
            raise RuntimeError(f"serve did not start: {line}")
        pids = server_pids(proc.pid)
        room = Classroom(connect(db_path, shared=False))
        key = room.start("benchmark")
        students = []
        for i in range(n):
            m = room.join(key.code, f"student{i:02d}")
            students.append(Student(i, m.name, m.member_id, f"r{i % replicas + 1}"))
        base = f"http://127.0.0.1:{port}"
        stop = asyncio.Event()
        tasks = [asyncio.create_task(run_student(s, base, f"ws://127.0.0.1:{port}/_stcore/stream", key.code, stop))
                 for s in students]
        t0 = time.monotonic()
        first = await wait_all(students, "shape trace", t0, finished=True)  # everyone on the first page, in the class
        opened = max(first)
        print(f"  {n} students on their first page after {opened:.1f} s", file=sys.stderr, flush=True)
        idle0, i0 = cpu_seconds(pids), time.monotonic()
        await asyncio.sleep(10.0)  # following, nothing pushed: what the once-a-second polls cost the server
        idle = (cpu_seconds(pids) - idle0) / (time.monotonic() - i0)
        push_times = []
        for spec_name, page, title in PUSHES:
            await asyncio.sleep(1.0)
            since = time.monotonic()
            room.push(key.code, key.secret, spec=rc.get_preset(spec_name), page=page)
            times = await wait_all(students, f"{spec_name}: {title}", since)
            push_times.append(max(times))
            print(f"  push {spec_name} → {page}: last student after {max(times):.2f} s", file=sys.stderr, flush=True)
        await asyncio.sleep(1.0)
        cpu0 = cpu_seconds(pids)
        since = time.monotonic()
        room.push(key.code, key.secret, spec=rc.get_preset(LIVE[0]), page=LIVE[1])
        live = await wait_all(students, LIVE[2], since, finished=True)
        cpu = cpu_seconds(pids) - cpu0
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        names = [s.name for s in students]
        crosstalk = 0
        for s in students:
            if any(other != s.name and other in t for t in s.texts for other in names):
                crosstalk += 1
        errors = sum(len(s.errors) for s in students)
        examples = [e for s in students for e in s.errors][:3]
        return {"replicas": replicas, "open": opened, "push_med": statistics.median(push_times),
                "push_worst": max(push_times), "pushes": push_times, "live_last": max(live),
                "live_med": statistics.median(live), "cpu_per_view": cpu / n, "errors": errors,
                "examples": examples, "crosstalk": crosstalk, "idle": idle}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--students", type=int, default=40)
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--port", type=int, default=8630)
    args = ap.parse_args()
    if not 1 <= args.students <= 100:
        ap.error("--students must be 1–100")
    print(f"{args.students} simulated students (websocket clients speaking Streamlit's protocol) through nginx; "
          f"{os.cpu_count()} cores", flush=True)
    rows = []
    for r in args.replicas:
        with tempfile.TemporaryDirectory() as tmp:
            res = asyncio.run(lesson(args.students, r, args.port, str(Path(tmp) / "class.sqlite3")))
        rows.append(res)
        print(f"replicas={r}: all {args.students} in the class on their first page in {res['open']:.1f} s; "
              f"push → last student: median {res['push_med']:.2f} s, worst {res['push_worst']:.2f} s "
              f"({', '.join(f'{t:.2f}' for t in res['pushes'])}); live push → last finished view {res['live_last']:.1f} s "
              f"(median {res['live_med']:.1f} s); server CPU per student view {res['cpu_per_view']:.3f} s; "
              f"errors {res['errors']} {res['examples']}; cross-talk {res['crosstalk']}; server CPU while {args.students} "
              f"follow and nothing is pushed: {res['idle']:.2f} CPU s per s", flush=True)
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        print(f"ratio replicas={b['replicas']} / replicas={a['replicas']}: worst push {b['push_worst'] / a['push_worst']:.2f}, "
              f"live last view {b['live_last'] / a['live_last']:.2f}, CPU per view "
              f"{b['cpu_per_view'] / a['cpu_per_view']:.2f}")
    verdicts = []
    for r in rows:
        ok = r["push_worst"] <= 2.0 and r["errors"] == 0 and r["crosstalk"] == 0
        verdicts.append(f"{'met' if ok else 'NOT met'} with {r['replicas']} process{'es' if r['replicas'] > 1 else ''} "
                        f"(worst push {r['push_worst']:.2f} s, {r['errors']} errors, {r['crosstalk']} cross-talk)")
    print("target (every push ≤ 2 s to every student, 0 errors, 0 cross-talk): " + "; ".join(verdicts))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
