"""How fast is tracing a model from its code? Against the preset's analytic trace and torchinfo, in one run.

Issue "Your own network", item 7: tracing ResNet-50 from code within 2× of tracing its preset's spec
analytically, and far below torchinfo.summary on the same model. Three timings, interleaved in each repeat
so drift in the machine's speed hits all of them; the ratios are of their medians:

- preset: `resnet_core.trace(spec)` for the resnet50 preset, planned from the spec;
- from code: `inspect_module(model, (3, 224, 224))` on torchvision's resnet50 built once (the reference
  code, installed for tests); the model's own construction is timed apart ("build on meta");
- torchinfo: `torchinfo.summary(model, (1, 3, 224, 224), verbose=0)` on the same model, on the CPU.

    python benchmarks/bench_module_trace.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
for _name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
    sys.modules.setdefault(_name, types.ModuleType(_name))

import torch  # noqa: E402
import torchinfo  # noqa: E402
import torchvision.models as tvm  # noqa: E402

import resnet_core as rc  # noqa: E402
from resnet_core.modules import inspect_module  # noqa: E402

TARGET_VS_PRESET = 2.0


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    spec = rc.get_preset("resnet50")
    cpu_model = tvm.resnet50().eval()

    def preset() -> None:
        rc.trace(spec)  # planned from the spec each time (nothing is cached)

    def from_code() -> None:
        t = inspect_module(cpu_model, (3, 224, 224))
        assert t.ok and t.total_params == 25_557_032

    def on_meta() -> None:
        with torch.device("meta"):
            tvm.resnet50()

    def info() -> None:
        torchinfo.summary(cpu_model, (1, 3, 224, 224), verbose=0, device="cpu")

    cases = {"preset (analytic)": preset, "from code (fx, meta)": from_code, "build on meta": on_meta,
             "torchinfo.summary": info}
    for fn in cases.values():  # warm up imports and caches once
        fn()
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.repeats):
        for name, fn in cases.items():
            times[name].append(timed(fn))
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        print(f"{k:22s} median {med[k] * 1000:8.1f} ms   (min {min(v) * 1000:.1f}, max {max(v) * 1000:.1f}, n={len(v)})")
    vs_preset = med["from code (fx, meta)"] / med["preset (analytic)"]
    vs_info = med["from code (fx, meta)"] / med["torchinfo.summary"]
    print(f"from code / preset     {vs_preset:.2f}×  (target ≤ {TARGET_VS_PRESET:.1f}×: "
          f"{'met' if vs_preset <= TARGET_VS_PRESET else 'NOT met'})")
    print(f"from code / torchinfo  {vs_info:.2f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
