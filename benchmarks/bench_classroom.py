"""A classroom at once: N real browser sessions open the Live lab together, each on its own network.

Starts `streamlit run` on a free loopback port and opens N sessions (Playwright driving Debian's chromium,
in a process of its own under `nice -n 19` — the driver and every chromium inherit it — so that the browsers
yield the CPU to the server and to the health checks, which stay at normal priority), each on a different
ResNet-18-sized network (resnet18 / plain18 / resnet34 / plain34 / preact_resnet18 with stage-1 widths
32, 36, …, so that no two pages may show the same numbers). As in a lesson: the class opens the app (its
first page, the Shape trace, all sessions at once; timed and printed on its own line), then at one word
every student clicks "Live lab" at the same moment, and the benchmark times each session from its click
to its finished first forward view. Meanwhile a thread polls `/_stcore/health` every 0.25 s, and
another polls a bare `python -m http.server` (a process of its own, at the server's priority) the same
way: the reference, what the machine's scheduling alone costs a request under the same load.

Printed: median and 95th percentile of the time from the click to a finished view; the server's CPU
seconds per first view (from /proc, from the click to the last view, divided by N), and the browsers'; the time one session alone takes (the server's own time
for a first view, no queue); the worst health-check latency; errors (exceptions or error boxes on a
page, timeouts); cross-talk (a page showing another network's name, or a ‖F(x)‖/‖x‖ other than its own
network's, computed here with the library). Where the time goes: the library's parts of one first view
(build, the one forward pass, the script rerun around them) measured in this process on the same net.

    python benchmarks/bench_classroom.py [--sessions 20] [--timeout 300] [--server-nice N]

--server-nice runs the server under `nice -n N` (a negative N needs root): on a machine that other work
shares, a negative value approximates the issue's "no other load" for the server while the browsers
stay at 19; the printout says which it was.

Targets (issue "Live lab: instant views ... a classroom"), 2-core CPU, browsers at low priority:
p95 ≤ 10 s to a finished view, ≤ 1 s of server time per first view, worst health check ≤ 1 s, 0 errors,
0 cross-talk. Bounded: N ≤ 40 sessions, loopback only, every wait has a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import resnet_core as rc  # noqa: E402
from resnet_core.lab import forward, images  # noqa: E402
from resnet_core.structure.plan import plan as make_plan  # noqa: E402
from resnet_core.structure.spec import to_url_token  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
BASES = ("resnet18", "plain18", "resnet34", "plain34", "preact_resnet18")
TARGETS = {"p95_s": 10.0, "server_s": 1.0, "health_s": 1.0}
MAX_SESSIONS = 40


def specs(n: int) -> list:
    out = []
    for i in range(n):
        base = rc.get_preset(BASES[i % len(BASES)])
        first = dataclasses.replace(base.stages[0], width=32 + 4 * i)
        out.append(base.replace(name=f"class{i:02d}-{base.name}", stages=(first, *base.stages[1:]), shortcut="B"))
    return out


def expected_ratio(spec) -> float:
    """‖F(x)‖/‖x‖ of layer1.0 as the page computes it by default: seed 0, the first sample image, running
    statistics, one image."""
    p = make_plan(spec)
    model = rc.build_model(p, seed=0)
    x = images.load_sample(images.list_samples()[0], p.input_shape).tensor
    return forward.forward_record(model, x, p, device="cpu").anatomy("layer1.0").ratio


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def browsers_cpu_by_kind() -> dict[str, float]:
    """CPU seconds used so far by every live chromium process, by kind: the renderers (the pages' JavaScript,
    style, layout, paint), the GPU process (compositing every window's frames, in software here), the
    browser process and the rest."""
    out: dict[str, float] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().replace(b"\0", b" ").split()
            if not args or b"chrom" not in args[0]:
                continue
            kind = next((a[7:].decode() for a in args if a.startswith(b"--type=")), "browser")
            kind = {"renderer": "renderers", "gpu-process": "GPU process", "browser": "browser"}.get(kind, "other")
            out[kind] = out.get(kind, 0.0) + cpu_seconds(int(pid))
        except OSError:
            continue
    return out


def browsers_cpu_seconds() -> float:
    """CPU seconds used so far by every live chromium process (the renderers of the sessions)."""
    return sum(browsers_cpu_by_kind().values())


class HealthPoller(threading.Thread):
    def __init__(self, url: str, path: str = "/_stcore/health"):
        super().__init__(daemon=True)
        self.url, self.path, self.stop, self.latencies, self.failures = url, path, threading.Event(), [], 0
        self.split = 0  # index of the first latency of the second phase (set by mark())

    def mark(self) -> None:
        self.split = len(self.latencies)

    def run(self) -> None:
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(f"{self.url}{self.path}", timeout=10) as r:
                    r.read()
                self.latencies.append(time.perf_counter() - t0)
            except OSError:
                self.failures += 1
                self.latencies.append(time.perf_counter() - t0)
            self.stop.wait(0.25)


READY = '[data-testid="stApp"][data-test-script-state="notRunning"]'


async def open_app(browser, url: str, spec, timeout_s: float) -> dict:
    """A student opens the app on their network (the Shape trace, the first page) and waits until it is drawn."""
    ctx = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await ctx.new_page()
    page.set_default_timeout(timeout_s * 1000)
    t0 = time.perf_counter()
    out = {"name": spec.name, "error": None, "ctx": ctx, "page": page}
    try:
        await page.goto(f"{url}/?spec={to_url_token(spec)}")
        await page.get_by_role("heading", name="Shape trace").first.wait_for()
        await page.wait_for_selector(READY)
        out["open_s"] = time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001 - counted and printed, the run goes on
        out["error"] = f"opening the app: {type(e).__name__}: {str(e).splitlines()[0][:120]}"
        out["open_s"] = time.perf_counter() - t0
    return out


async def first_view(session: dict, spec, start: asyncio.Event) -> dict:
    """At the teacher's word (`start`), the student clicks Live lab; timed until the first forward view is drawn."""
    page = session["page"]
    out = {k: v for k, v in session.items() if k not in ("ctx", "page")}
    if out["error"] is not None:
        return out
    await start.wait()
    t0 = time.perf_counter()
    try:
        await page.get_by_role("link", name="Live lab").click()
        await page.get_by_text("‖F(x)‖ / ‖x‖", exact=True).first.wait_for()
        await page.wait_for_selector(READY)
        out["seconds"] = time.perf_counter() - t0
        main = page.locator('[data-testid="stMain"]')
        text = await main.inner_text()
        out["own_name"] = f"Runs {spec.name} for real" in text
        metric = page.locator('[data-testid="stMetric"]').filter(has_text="‖F(x)‖ / ‖x‖")
        out["ratio_text"] = (await metric.locator('[data-testid="stMetricValue"]').inner_text()).strip()
        errors = await page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').count()
        if errors:
            out["error"] = f"{errors} error box(es) on the page"
    except Exception as e:  # noqa: BLE001 - counted and printed, the run goes on
        out["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
        out["seconds"] = time.perf_counter() - t0
    return out


async def sessions(url: str, todo: list, timeout_s: float, chromium: str, between=None, after=None) -> list[dict]:
    """Every student opens the app (all at once), then all click Live lab at the same moment.

    `between()` runs after the class has opened the app and before the clicks (the benchmark starts its
    CPU and health-check meters there), `after()` once every view is drawn, before the tabs close."""
    from playwright.async_api import async_playwright
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            opened = await asyncio.gather(*(open_app(browser, url, s, timeout_s) for s in todo))
            if between is not None:
                between()
            start = asyncio.Event()
            views = [asyncio.ensure_future(first_view(o, s, start)) for o, s in zip(opened, todo, strict=True)]
            await asyncio.sleep(0.5)  # every task is waiting on the word
            start.set()
            results = await asyncio.gather(*views)
            if after is not None:
                after()
            for o in opened:
                await o["ctx"].close()
            return results
        finally:
            await browser.close()


def client_main(url: str, which: str, n: int, timeout_s: float) -> int:
    """The browsers' side, run in a process of its own under `nice -n 19` (Playwright's driver and every
    chromium inherit it): the sessions, with a line protocol on stdin/stdout so that the benchmark (at normal
    priority) reads its meters at the right moments. READY → GO: the class has the app open; DONE → OK:
    every view is drawn; then RESULTS <json>."""
    import json
    todo = specs(n)
    if which != "class":
        todo = [todo[0].replace(name=which)]

    def handshake(say: str) -> None:
        print(say, flush=True)
        sys.stdin.readline()

    results = asyncio.run(sessions(url, todo, timeout_s, CHROMIUM, between=lambda: handshake("READY"),
                                   after=lambda: handshake("DONE")))
    print("RESULTS " + json.dumps(results), flush=True)
    return 0


def run_sessions(url: str, which: str, n: int, timeout_s: float, between=None, after=None) -> list[dict]:
    """Run the browsers' side (`client_main`) at nice 19; `between()` and `after()` at its READY and DONE."""
    import json
    proc = subprocess.Popen(["nice", "-n", "19", sys.executable, __file__, "--client", url, "--which", which,
                             "--sessions", str(n), "--timeout", str(timeout_s)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    results: list[dict] = []
    assert proc.stdin is not None and proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("READY") or line.startswith("DONE"):
            hook = between if line.startswith("READY") else after
            if hook is not None:
                hook()
            proc.stdin.write("GO\n")
            proc.stdin.flush()
        elif line.startswith("RESULTS "):
            results = json.loads(line[len("RESULTS "):])
    proc.wait(60)
    if not results:
        raise RuntimeError(f"the browsers' process ended without results (exit status {proc.returncode})")
    return results


def spread(lat: list[float]) -> str:
    """Median, 95th percentile and worst of a list of latencies, and how many were over 1 s."""
    if not lat:
        return "no checks"
    lat = sorted(lat)
    p95 = lat[min(len(lat) - 1, max(0, round(0.95 * len(lat)) - 1))]
    return (f"median {statistics.median(lat):.2f} s, p95 {p95:.2f} s, worst {lat[-1]:.2f} s, "
            f"{sum(x > 1 for x in lat)} of {len(lat)} over 1 s")


def library_parts(spec) -> dict[str, float]:
    """The library's share of one first view, in this process: build, the one forward pass."""
    p = make_plan(spec)
    t0 = time.perf_counter()
    model = rc.build_model(p, seed=0)
    t1 = time.perf_counter()
    x = images.load_sample(images.list_samples()[0], p.input_shape).tensor
    forward.forward_record(model, x, p, device="cpu")
    t2 = time.perf_counter()
    with torch.no_grad():
        model.eval()(x)
    t3 = time.perf_counter()
    return {"build": t1 - t0, "record": t2 - t1, "bare forward": t3 - t2}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds a session may wait for its view")
    ap.add_argument("--server-nice", type=int, default=0, help="run the server under nice -n N (default 0)")
    ap.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)  # the browsers' process (internal)
    ap.add_argument("--which", default="class", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        return client_main(args.client, args.which, args.sessions, args.timeout)
    if not 1 <= args.sessions <= MAX_SESSIONS:
        print(f"--sessions must be between 1 and {MAX_SESSIONS}", file=sys.stderr)
        return 2
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is not installed", file=sys.stderr)
        return 2
    todo = specs(args.sessions)
    print(f"computing the expected ‖F(x)‖/‖x‖ of {len(todo)} networks with the library…", flush=True)
    expected = {s.name: expected_ratio(s) for s in todo}
    parts = library_parts(todo[0])

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(  # noqa: SIM115 - the server writes to it for the whole run; closed in the finally below
        Path(tempfile.gettempdir()) / f"bench_classroom_{port}.log", "w")
    prefix = ["nice", "-n", str(args.server_nice)] if args.server_nice else []
    server = subprocess.Popen(
        [*prefix, sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "streamlit_app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    # the reference: a bare Python HTTP server in a process of its own at the server's priority, polled the
    # same way; its latencies are what the machine's scheduling alone costs a request under the class's load
    ref_port = free_port()
    ref_dir = tempfile.mkdtemp()
    (Path(ref_dir) / "ok").write_text("ok")
    reference = subprocess.Popen([*(["nice", "-n", str(args.server_nice)] if args.server_nice else []), sys.executable,
                                  "-m", "http.server", str(ref_port), "--bind", "127.0.0.1", "--directory", ref_dir],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    poller = ref_poller = None
    kids0 = os.times()
    server_total = reference_total = 0.0
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if server.poll() is not None or time.time() > deadline:
                print("the server did not start", file=sys.stderr)
                return 1
            time.sleep(0.5)
        # warm the server (imports, caches) with one session of a network outside the class
        run_sessions(url, "warm-up", 1, args.timeout)
        marks: dict[str, float] = {}

        def meter(prefix: str):
            def at_the_word() -> None:  # the class has the app open: start the meters of the clicks
                marks[prefix + "cpu"] = cpu_seconds(server.pid)
                marks[prefix + "kinds"] = browsers_cpu_by_kind()
                marks[prefix + "browsers"] = sum(marks[prefix + "kinds"].values())
                marks[prefix + "t"] = time.perf_counter()
                if poller is not None:
                    poller.mark()
                if ref_poller is not None:
                    ref_poller.mark()
            return at_the_word

        alone = run_sessions(url, "alone", 1, args.timeout, between=meter("alone."))[0]
        cpu_alone = cpu_seconds(server.pid) - marks["alone.cpu"]
        poller = HealthPoller(url)
        poller.start()
        ref_poller = HealthPoller(f"http://127.0.0.1:{ref_port}", "/ok")
        ref_poller.start()
        cpu_open0 = cpu_seconds(server.pid)
        t_open0 = time.perf_counter()

        def stop_meters() -> None:
            marks["end.t"], marks["end.cpu"] = time.perf_counter(), cpu_seconds(server.pid)
            marks["end.kinds"] = browsers_cpu_by_kind()
            marks["end.browsers"] = sum(marks["end.kinds"].values())

        results = run_sessions(url, "class", len(todo), args.timeout, between=meter(""), after=stop_meters)
        wall = marks["end.t"] - marks["t"]
        cpu = marks["end.cpu"] - marks["cpu"]
        browsers_views = marks["end.browsers"] - marks["browsers"]
        cpu_open = marks["cpu"] - cpu_open0
        wall_open = marks["t"] - t_open0
    finally:
        for p in (poller, ref_poller):
            if p is not None:
                p.stop.set()
                p.join(15)
        with contextlib.suppress(OSError):
            reference_total = cpu_seconds(reference.pid)
        reference.terminate()
        reference.wait(15)
        shutil.rmtree(ref_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            server_total = cpu_seconds(server.pid)
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()

    kids1 = os.times()
    # every child reaped so far: the server and, through Playwright's driver, every browser process
    browsers_cpu = (kids1.children_user + kids1.children_system - kids0.children_user - kids0.children_system
                    - server_total - reference_total)
    times = sorted(r["seconds"] for r in results if r["error"] is None)
    errors = [r for r in results if r["error"] is not None]
    crosstalk = []
    for r in results:
        if r["error"] is not None:
            continue
        want = expected[r["name"]]
        try:
            got = float(r["ratio_text"])
        except ValueError:
            got = float("nan")
        if not r["own_name"] or not abs(got - want) <= 0.01 * abs(want):
            crosstalk.append(f"{r['name']}: shows ‖F(x)‖/‖x‖ {r['ratio_text']} (own {want:.3g}), own name "
                             f"{'yes' if r['own_name'] else 'NO'}")
    distinct = len({f"{v:.3g}" for v in expected.values()})
    p95 = times[min(len(times) - 1, max(0, round(0.95 * len(times)) - 1))] if times else float("nan")
    median = statistics.median(times) if times else float("nan")
    server_s = cpu / len(todo)
    views_lat = poller.latencies[poller.split:] if poller else []
    open_lat = poller.latencies[:poller.split] if poller else []
    worst = max(views_lat) if views_lat else float("nan")
    opens = sorted(r["open_s"] for r in results if "open_s" in r)
    print(f"{len(todo)} sessions at once · Live lab · ResNet-18-sized networks at 224×224 · server on "
          f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f} at the end), server nice {args.server_nice}, "
          f"browsers nice 19, torch {torch.__version__}")
    print(f"  the class opens the app (Shape trace, all at once): median {statistics.median(opens) if opens else float('nan'):.1f} s, "
          f"slowest {opens[-1] if opens else float('nan'):.1f} s, all in {wall_open:.1f} s; server {cpu_open / len(todo):.2f} CPU s "
          f"per session; worst health check {max(open_lat) if open_lat else float('nan'):.2f} s")
    print(f"  then all {len(todo)} click Live lab at the same moment; timed from the click to the drawn first view:")
    print(f"  one session alone: {alone.get('seconds', float('nan')):.2f} s to a finished view, "
          f"{cpu_alone:.2f} CPU s on the server")
    print(f"  library, one first view in this process: build {parts['build'] * 1e3:.0f} ms, the one forward record "
          f"{parts['record'] * 1e3:.0f} ms (a bare forward {parts['bare forward'] * 1e3:.0f} ms)")
    ok = True
    for label, value, target in (("p95 time to a finished view", p95, TARGETS["p95_s"]),
                                 ("server CPU s per first view", server_s, TARGETS["server_s"]),
                                 ("worst health-check latency", worst, TARGETS["health_s"])):
        good = value <= target
        ok &= good
        print(f"  {label:30s} {value:7.2f} s (target ≤ {target:g}) {'PASS' if good else 'FAIL'}")
    print(f"  median time to a finished view {median:7.2f} s · all {len(todo)} done in {wall:.1f} s · "
          f"server CPU {cpu:.1f} s in all · the browsers {browsers_views:.1f} CPU s ({browsers_views / len(todo):.2f} "
          f"per view) · {len(views_lat)} health checks, {poller.failures if poller else 0} failed in the whole run")
    kinds = {k: v - marks["kinds"].get(k, 0.0) for k, v in marks["end.kinds"].items()}
    print("  the browsers' CPU s per view, by process: " + ", ".join(
        f"{k} {v / len(todo):.2f}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]) if v > 0.005))
    print(f"  browsers (Playwright's driver and chromium, nice 19): {browsers_cpu:.0f} CPU s for {len(todo) + 2} "
          f"sessions, {browsers_cpu / (len(todo) + 2):.1f} per session; the server: {server_total:.0f} CPU s in all")
    print(f"  health checks while the views were drawn: {spread(views_lat)}")
    ref_lat = ref_poller.latencies[ref_poller.split:] if ref_poller else []
    print(f"  the reference (a bare Python HTTP server, same priority, same polling): {spread(ref_lat)}")
    if views_lat and ref_lat:
        print(f"  worst health check / the reference's worst: {max(views_lat) / max(max(ref_lat), 1e-3):.2f}×")
    print(f"  errors: {len(errors)} {'PASS' if not errors else 'FAIL'}")
    for r in errors:
        print(f"    {r['name']}: {r['error']}")
    print(f"  cross-talk: {len(crosstalk)} of {len(todo) - len(errors)} pages checked ({distinct} distinct expected "
          f"ratios) {'PASS' if not crosstalk else 'FAIL'}")
    for line in crosstalk:
        print(f"    {line}")
    ok &= not errors and not crosstalk
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
