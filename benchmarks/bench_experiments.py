"""Default runs of the five experiments: wall time and verdict of each, as `python -m resnet_core experiment
NAME` runs them, with the machine's load average beside (the 2-minute target is for a 2-core CPU).

    .venv/bin/python benchmarks/bench_experiments.py [NAME ...]

Prints one line per experiment: seconds, reproduced or not, and the numbers that decide it; and, as the
reference measured in the same run, the seconds of one 800-step Training lab step loop of resnet20
(20 steps, scaled), so a reader can tell a slow machine from a slow experiment.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from resnet_core.experiments import erf, landscape, lesion, shatter, signal  # noqa: E402
from resnet_core.experiments.trained import PairSettings, train_pair  # noqa: E402

RUNS = {
    "signal": lambda pair: signal.run(),
    "shatter": lambda pair: shatter.run(),
    "erf": lambda pair: erf.run(),
    "lesion": lambda pair: lesion.run(pair=pair),
    "landscape": lambda pair: landscape.run(),
}


def reference_s() -> float:
    """20 training steps of resnet20 + plain20 at the defaults, scaled to the 800 of a default run."""
    t = time.perf_counter()
    train_pair(PairSettings(steps=20))
    return (time.perf_counter() - t) * 40


def main(names: list[str]) -> None:
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores · torch {torch.__version__}")
    print(f"reference: resnet20 + plain20, 800 training steps ≈ {reference_s():.0f} s (20 measured, × 40)")
    pair = None
    for name in names:
        t = time.perf_counter()
        if name == "lesion":  # the CLI trains the pair inside the run; time it the same way
            pair = train_pair(PairSettings())
        r = RUNS[name](pair)
        s = time.perf_counter() - t
        v = r.verdict
        print(f"{name:10s} {s:7.1f} s  {'REPRODUCED' if v.reproduced else 'not reproduced'}  "
              + " · ".join(text for text, _ in v.checks) + f"  (load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main(sys.argv[1:] or list(RUNS))
