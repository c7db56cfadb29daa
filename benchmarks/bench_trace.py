"""How fast is the analytic trace? Against torchinfo.summary on the same built model, in one run.

Targets (issue "Core"): resnet152 at 224×224 traced at least 20× faster than torchinfo.summary;
the CIFAR resnet1202 trace under 50 ms.

    python benchmarks/bench_trace.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torchinfo import summary  # noqa: E402

import resnet_core as rc  # noqa: E402


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    ok = True

    spec = rc.get_preset("resnet152")
    model = rc.build_model(spec, seed=0).eval()
    t_trace = median_seconds(lambda: rc.trace(spec).to_dict(), max(args.repeats, 20))
    t_info = median_seconds(lambda: summary(model, input_size=(1, 3, 224, 224), verbose=0, device="cpu"),
                            args.repeats)
    ratio = t_info / t_trace
    print(f"resnet152 224×224: analytic trace {t_trace * 1e3:.2f} ms · torchinfo.summary {t_info * 1e3:.0f} ms · "
          f"ratio {ratio:.0f}× (target ≥ 20×) {'PASS' if ratio >= 20 else 'FAIL'}")
    ok &= ratio >= 20

    spec = rc.get_preset("resnet1202")
    t1202 = median_seconds(lambda: rc.trace(spec), max(args.repeats, 20))
    layers = len(rc.trace(spec).layers)
    print(f"resnet1202 32×32 ({layers} layers): analytic trace {t1202 * 1e3:.1f} ms (target < 50 ms) "
          f"{'PASS' if t1202 < 0.050 else 'FAIL'}")
    ok &= t1202 < 0.050
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
