"""The time estimates shown to a person against the measured run time, on this machine.

For each case: the estimate made before the run (as the app makes it: from the server's calibration, a net
never timed being timed on first use), then the run itself (training + final evaluation, or the whole
experiment with its pair's training), its measured wall time, and the ratio measured / estimate (the
estimate's geometric middle). Target (issue 22): within 1.5× either way. The calibration starts empty (a
fresh state folder) unless --keep, so the first case shows the first-use estimate; the later cases of the
same nets use what the earlier runs recorded.

    python benchmarks/bench_estimate.py [--case train|lesion|landscape|all] [--steps N] [--keep]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def machine() -> str:
    from resnet_core import calibration as cal
    return f"{cal.cores()} cores, load {cal.load_now():.2f}"


class LoadWatch:
    """The load average sampled every 2 s while a case runs (its mean says how busy the machine was)."""

    def __init__(self) -> None:
        from resnet_core import calibration as cal
        self.samples = [cal.load_now()]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        from resnet_core import calibration as cal
        while not self._stop.wait(2.0):
            self.samples.append(cal.load_now())

    def stop(self) -> float:
        self._stop.set()
        return sum(self.samples) / len(self.samples)


def row(name: str, est, measured: float, load_at_estimate: float, load_during: float) -> tuple[str, float]:
    from resnet_core import calibration as cal
    ratio = measured / est.total.mid
    ok = "ok" if 1 / 1.5 <= ratio <= 1.5 else "OUTSIDE 1.5x"
    busier = cal.slowdown(load_during) / cal.slowdown(load_at_estimate)
    line = (f"{name:<44} estimate {est.total.text():<18} ({est.total.low:6.1f}–{est.total.high:6.1f} s)  "
            f"measured {measured:6.1f} s  ratio {ratio:4.2f} {ok:<12} load {load_at_estimate:.1f} at the estimate, "
            f"{load_during:.1f} during the run (ratio over the load's expected slowdown ×{busier:.2f}: "
            f"{ratio / busier:.2f})")
    print(line, flush=True)
    return line, ratio


def case_train(nets: list[str], steps: int, size: int = 16, batch: int = 32) -> tuple[str, float]:
    from resnet_core.training.estimate import estimate_run
    from resnet_core.training.run import make_run
    run = make_run(nets, "digits", steps=steps, batch_size=batch, input_size=size)
    est = estimate_run(run)
    load0 = est.load
    watch = LoadWatch()
    t0 = time.perf_counter()
    for _ in run.iter():
        pass
    t1 = time.perf_counter()
    run.result()
    t2 = time.perf_counter()
    print(f"    training {t1 - t0:.1f} s (estimate {est.training.text()}), evaluation {t2 - t1:.1f} s "
          f"(estimate {est.evaluation.text()})", flush=True)
    return row(f"train {'+'.join(nets)} {steps} steps {size}px b{batch}", est, t2 - t0, load0, watch.stop())


def case_experiment(name: str, steps: int | None) -> tuple[str, float]:
    from resnet_core.experiments import landscape, lesion, timing
    module = {"lesion": lesion, "landscape": landscape}[name]
    settings = module.LesionSettings() if name == "lesion" else module.LandscapeSettings()
    if steps:
        settings = replace(settings, pair=replace(settings.pair, steps=steps))
    settings = replace(settings, pair=replace(settings.pair, processes=1))  # as the app trains it
    from resnet_core.experiments.trained import train_pair
    est = timing.estimate(module, settings)
    assert est is not None  # measured when it was not yet
    load0 = cal_load()
    watch = LoadWatch()
    t0 = time.perf_counter()
    trained = []

    def make_pair():
        trained.append(train_pair(settings.pair))
        return trained[0]
    result = module.run(settings, None, make_pair=make_pair)  # as the app runs it
    total = time.perf_counter() - t0
    train_s = float(trained[0].info["wall_s"])
    print(f"    training the pair {train_s:.1f} s (estimate {est.training.text()}), the experiment "
          f"{total - train_s:.1f} s (estimate {est.own.text()}); verdict: "
          f"{'reproduced' if result.verdict.reproduced else 'NOT reproduced'}", flush=True)
    timing.record(module, settings, total - train_s, trained[0])
    return row(f"{name} (pair {settings.pair.residual} {settings.pair.steps} steps, {settings.pair.input_size}px)",
               est, total, load0, watch.stop())


def cal_load() -> float:
    from resnet_core import calibration as cal
    return cal.load_now()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", default="all", choices=["train", "lesion", "landscape", "all"])
    p.add_argument("--steps", type=int, default=None, help="steps of each training (default: each case's own)")
    p.add_argument("--keep", action="store_true", help="use the server's calibration instead of a fresh one")
    args = p.parse_args()
    if not args.keep:
        os.environ["RESNET_EXPLORER_STATE_DIR"] = tempfile.mkdtemp(prefix="bench-estimate-")
    print(f"machine: {machine()} at the start; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    ratios = []
    if args.case in ("train", "all"):
        four = ["plain20", "plain56", "resnet20", "resnet56"]
        ratios.append(case_train(four, args.steps or 100)[1])  # first use: timed before the run
        ratios.append(case_train(four, args.steps or 200)[1])  # from the first run's recorded figures
        ratios.append(case_train(["resnet20", "plain20"], args.steps or 300, size=8)[1])
    for name in ("lesion", "landscape"):
        if args.case in (name, "all"):
            ratios.append(case_experiment(name, args.steps)[1])
    worst = max(max(r, 1 / r) for r in ratios)
    print(f"worst ratio {worst:.2f}× (target ≤ 1.5×) · machine: {machine()} at the end", flush=True)


if __name__ == "__main__":
    main()
