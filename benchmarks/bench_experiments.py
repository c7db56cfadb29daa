"""Default runs of the five experiments: wall time and verdict of each, as `python -m resnet_core experiment
NAME` runs them, with the machine's load average beside (the 2-minute target is for a 2-core CPU).

    .venv/bin/python benchmarks/bench_experiments.py [NAME ...]

Prints one line per experiment: seconds, reproduced or not, and the numbers that decide it; and, as the
reference measured in the same run, the time of one resnet20 training step, so a reader can tell a slow
machine from a slow experiment.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from resnet_core.experiments import erf, landscape, lesion, shatter, signal  # noqa: E402


def _as_cli(pair):
    """The pair as the command line trains it: two processes on a machine of two cores or more."""
    from dataclasses import replace

    from resnet_core.cli.experiment import pair_processes
    return replace(pair, processes=pair_processes())


RUNS = {
    "signal": lambda pair: signal.run(),
    "shatter": lambda pair: shatter.run(),
    "erf": lambda pair: erf.run(),
    "lesion": lambda pair: lesion.run(lesion.LesionSettings(pair=_as_cli(lesion.LesionSettings().pair))),
    "landscape": lambda pair: landscape.run(landscape.LandscapeSettings(pair=_as_cli(landscape.LandscapeSettings().pair))),
}


def reference_s() -> float:
    """Seconds of one training step of resnet20 (forward + backward, batch 32, 16×16), the median of 20: the
    machine's speed, measured in the same run, so a reader can tell a slow machine from a slow experiment."""
    import statistics

    import resnet_core as rc
    model = rc.build_model(rc.get_preset("resnet20").replace(input_size=(16, 16)), seed=0).train()
    x, y = torch.randn(32, 3, 16, 16), torch.randint(0, 10, (32,))
    times = []
    for _ in range(20):
        t = time.perf_counter()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(names: list[str]) -> None:
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores · torch {torch.__version__}")
    step = reference_s()
    print(f"reference: one resnet20 training step (batch 32, 16×16) takes {1000 * step:.1f} ms here")
    for name in names:
        t = time.perf_counter()
        r = RUNS[name](None)  # lesion and landscape train their pair inside the run, as the CLI does
        s = time.perf_counter() - t
        v = r.verdict
        print(f"{name:10s} {s:7.1f} s = {s / step:,.0f} reference steps  {'REPRODUCED' if v.reproduced else 'not reproduced'}  "
              + " · ".join(text for text, _ in v.checks) + f"  (load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main(sys.argv[1:] or list(RUNS))
