"""Server time of the app's reruns (Streamlit AppTest), for resnet152.

Target (issue "The explorer app"): a preset change or a stage edit re-renders the builder, trace and
graph in under 300 ms of server time for resnet152. Every measured rerun is cold: a stage edit makes a
network never seen before, and the caches are cleared before each preset change. The reference is a
rerun that changes nothing, measured in the same run.

    python benchmarks/bench_app.py [--repeats N]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
logging.getLogger("streamlit").setLevel(logging.ERROR)

from streamlit.testing.v1 import AppTest  # noqa: E402

from app import ui  # noqa: E402

TARGET_MS = 300


def timed(at: AppTest) -> float:
    t0 = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - t0
    if at.exception:
        raise RuntimeError(at.exception[0].value)
    return elapsed * 1e3


def clear_caches() -> None:
    ui._trace.clear()
    ui._dot.clear()


def measure(page: str, repeats: int) -> dict[str, float]:
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=120)
    at.run()
    at.switch_page(page).run()
    at.selectbox(key="ui.preset").set_value("resnet152").run()
    at.run()
    baseline = statistics.median(timed(at) for _ in range(repeats))
    preset = []
    for i in range(repeats):
        at.selectbox(key="ui.preset").set_value("resnet101" if i % 2 else "resnet50").run()
        clear_caches()
        at.selectbox(key="ui.preset").set_value("resnet152")
        preset.append(timed(at))
    edits = []
    for i in range(repeats):
        at.number_input(key="net.s2.blocks").set_value(37 + i)  # a new network every time: cold caches
        edits.append(timed(at))
    return {"baseline": baseline, "preset": statistics.median(preset), "edit": statistics.median(edits)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    ok = True
    for page, label in (("app_pages/trace.py", "Shape trace"), ("app_pages/graph.py", "Graph")):
        m = measure(page, args.repeats)
        for what in ("preset", "edit"):
            verdict = "PASS" if m[what] < TARGET_MS else "FAIL"
            ok &= m[what] < TARGET_MS
            print(f"{label:12s} resnet152 {what + ' change' if what == 'preset' else 'stage edit':13s} "
                  f"{m[what]:6.0f} ms (median of {args.repeats}, cold) · no-change rerun {m['baseline']:5.0f} ms · "
                  f"ratio {m[what] / m['baseline']:.2f}× · target < {TARGET_MS} ms {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
