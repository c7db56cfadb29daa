"""A real `streamlit run` on a free port and a real headless Chromium (Debian's, driven by Playwright).

Every test here is marked `e2e` and put in one pytest-xdist group by tests/conftest.py, so a parallel run
starts one server and one browser, on one worker."""

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "e2e"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app_url():
    port = _free_port()
    # one log per pytest-xdist worker (scripts/test.sh keeps every e2e test on one worker; `-n` without
    # `--dist loadgroup` may start a server on each)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    name = f"streamlit-e2e-{worker}.log" if worker else "streamlit-e2e.log"
    # the server writes to it for the whole session; closed with the server below
    log = open(ROOT / "artifacts" / name, "w") if (ROOT / "artifacts").exists() else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "streamlit_app.py"),
         "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with status {proc.returncode}")
            if time.time() > deadline:
                raise RuntimeError("streamlit did not become healthy within 90 s")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log is not subprocess.DEVNULL:
            log.close()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is not installed (scripts/setup.sh dev installs Debian's chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    context.close()


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def wait_idle(page, timeout_ms: int = 180_000) -> None:
    """Wait until Streamlit has finished running the script after the last interaction."""
    page.wait_for_selector('[data-testid="stApp"]')
    # a rerun starts shortly after a click; catch it if it has not started yet (it may have finished already)
    with contextlib.suppress(Exception):
        page.wait_for_selector('[data-testid="stApp"][data-test-script-state="running"]', timeout=1500)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_ms)
    page.wait_for_timeout(500)


AXE = ROOT / ".cache" / "npm" / "node_modules" / "axe-core" / "axe.min.js"  # scripts/setup.sh dev installs it
_RUN_AXE = """async () => {
  const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},
                                     resultTypes: ['violations']});
  return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical').map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 3).map(n => n.html.slice(0, 120) + ' :: ' + n.failureSummary.slice(0, 160))}));
}"""


def axe_violations(page) -> list[dict]:
    """axe-core's serious and critical WCAG 2.1 A/AA violations on the page as it is now."""
    if not AXE.exists():
        message = f"{AXE} is missing: `bash scripts/setup.sh dev` installs axe-core from npm"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    page.add_script_tag(content=AXE.read_text())
    return page.evaluate(_RUN_AXE)


# Text cut by its box, or a control running out of the box that clips it (a page measured in tests/e2e/
# test_projector.py and test_zh.py)
CUT_CHECK = """() => {
  const sel = ['[data-testid="stMetricValue"]', '[data-testid="stMetricLabel"]', '[data-testid="stMain"] button',
               '[data-testid="stSidebar"] button', '.katex-display', '[data-testid="stMarkdownContainer"] p'];
  const cut = [];
  for (const s of sel) for (const el of document.querySelectorAll(s)) {
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height) continue;  // not shown (a closed expander, another tab)
    if (r.right <= 0 || r.left >= innerWidth) continue;  // off the screen (a collapsed sidebar)
    for (const e of [el, ...el.querySelectorAll('*')]) {
      const st = getComputedStyle(e);
      const clips = st.overflowX === 'hidden' || st.textOverflow === 'ellipsis';
      // (a 1-px clip is how text is hidden for screen readers only, e.g. KaTeX's MathML: not a cut)
      if (clips && e.scrollWidth > e.clientWidth + 1 && e.clientWidth > 2) { cut.push(s + ': ' + el.innerText.slice(0, 40)); break; }
    }
  }
  // a control wider than the box that clips it (a segmented control running out of its column)
  const controls = '[data-testid="stMain"] button, [data-testid="stSidebar"] button, [data-testid="stMetric"]';
  for (const el of document.querySelectorAll(controls)) {
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height || r.right <= 0 || r.left >= innerWidth) continue;
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      if (getComputedStyle(a).overflowX === 'visible') continue;
      const ar = a.getBoundingClientRect();
      if (r.right > ar.right + 1 || r.left < ar.left - 1) cut.push('outside its box: ' + el.innerText.slice(0, 40));
      break;
    }
  }
  return cut;
}"""
