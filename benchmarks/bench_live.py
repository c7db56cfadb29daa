"""How much does the live lab's instrumentation cost? Against a bare forward + backward, in one run.

The instrumented pass is the one users run: `gradients.gradient_pass`, the path behind the Live lab's
gradient flow and the `gradflow` command (forward + backward with the norm of every conv/linear weight
gradient and of every block input's gradient, all copied to the CPU in one transfer, hooks removed and
the model's state restored).
The bare pass: zero the grads, forward, cross-entropy, backward, on the same model and batch.

Target (issue "Live lab"): instrumented ≤ 1.25 × bare, for
- CPU: resnet18, batch 8, 224×224, float32;
- GPU (when there is one): resnet50, batch 64, 224×224, bf16 autocast and channels_last; the bare
  pass's images/s is printed too.

    python benchmarks/bench_live.py [--device auto|cpu|cuda] [--repeats N] [--warmup N] [--only pass|views]

`auto` runs the CPU case, and the GPU case too when CUDA is available. The two passes alternate within
each repeat (so drift in the machine's speed hits both); the ratio is of their medians.

The view-change case (issue "Live lab: instant views"): Streamlit AppTest reruns of the Live lab on
ResNet-50 (CPU) after the first pass, changing the feature-map layer, the residual block and top-k,
against a rerun that changes nothing, interleaved in one run; it also counts the forward passes the
view changes ran (the target needs 0). Target: a view change ≤ 1.3 × a no-change rerun.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import resnet_core as rc  # noqa: E402
from resnet_core.device import describe  # noqa: E402
from resnet_core.lab import gradients  # noqa: E402

TARGET = 1.25

CASES = {
    "cpu": dict(preset="resnet18", batch=8, size=224, autocast=None, channels_last=False),
    "cuda": dict(preset="resnet50", batch=64, size=224, autocast=torch.bfloat16, channels_last=True),
}


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def bare_pass(model, x, y, plan, autocast):
    """The reference: what training does for one batch, without an optimiser step."""
    for p in model.parameters():
        p.grad = None
    if autocast is not None:
        with torch.autocast(device_type=x.device.type, dtype=autocast):
            logits = model(x)
    else:
        logits = model(x)
    F.cross_entropy(logits.float(), y).backward()
    sync(x.device)


def instrumented(model, x, y, plan, autocast):
    if autocast is not None:
        with torch.autocast(device_type=x.device.type, dtype=autocast):
            gradients.gradient_pass(model, x, y, plan, skip=True)  # ends with its one device→CPU copy
    else:
        gradients.gradient_pass(model, x, y, plan, skip=True)
    sync(x.device)


def run_case(kind: str, repeats: int, warmup: int) -> bool:
    cfg = CASES[kind]
    dev = torch.device(kind)
    spec = rc.get_preset(cfg["preset"])
    plan = rc.plan(spec.replace(input_size=(cfg["size"], cfg["size"])))
    model = rc.build_model(plan, seed=0).to(dev).train()
    x, y = gradients.seeded_batch((3, cfg["size"], cfg["size"]), cfg["batch"], spec.num_classes, seed=0)
    x, y = x.to(dev), y.to(dev)
    if cfg["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    ac = cfg["autocast"]
    for _ in range(warmup):
        bare_pass(model, x, y, plan, ac)
        instrumented(model, x, y, plan, ac)
    t_bare, t_inst = [], []
    for r in range(repeats):
        order = ((bare_pass, t_bare), (instrumented, t_inst))
        for fn, times in (order if r % 2 == 0 else order[::-1]):
            t0 = time.perf_counter()
            fn(model, x, y, plan, ac)
            times.append(time.perf_counter() - t0)
    mb, mi = statistics.median(t_bare), statistics.median(t_inst)
    ratio = mi / mb
    ok = ratio <= TARGET
    dtype = "bf16 autocast, channels_last" if ac is not None else "float32"
    print(f"{describe(dev)} · {cfg['preset']} batch {cfg['batch']} {cfg['size']}×{cfg['size']} "
          f"({dtype}) · {repeats} repeats after {warmup} warm-up")
    print(f"  bare forward+backward   median {mb * 1e3:8.1f} ms  (min {min(t_bare) * 1e3:.1f}, max "
          f"{max(t_bare) * 1e3:.1f})  {cfg['batch'] / mb:8.1f} images/s")
    print(f"  instrumented pass       median {mi * 1e3:8.1f} ms  (min {min(t_inst) * 1e3:.1f}, max "
          f"{max(t_inst) * 1e3:.1f})  {cfg['batch'] / mi:8.1f} images/s")
    print(f"  ratio instrumented / bare = {ratio:.3f} (target ≤ {TARGET}) {'PASS' if ok else 'FAIL'}")
    return ok


VIEW_TARGET = 1.3


def run_views(repeats: int) -> bool:
    """AppTest reruns of the Live lab on resnet50: view changes against no-change reruns, same run."""
    import logging
    logging.getLogger("streamlit").setLevel(logging.ERROR)
    from streamlit.testing.v1 import AppTest

    from resnet_core.lab import forward

    real = forward.forward_record
    passes = []

    def counted(*args, **kwargs):
        passes.append(1)
        return real(*args, **kwargs)

    forward.forward_record = counted
    root = Path(__file__).resolve().parents[1]
    at = AppTest.from_file(str(root / "app" / "streamlit_app.py"), default_timeout=300)
    at.query_params["net"] = "resnet50"
    at.run()
    at.switch_page("app_pages/live.py")
    t0 = time.perf_counter()
    at.run()
    first = time.perf_counter() - t0
    if at.exception:
        raise RuntimeError(at.exception[0].value)
    plan = rc.plan(rc.get_preset("resnet50"))
    layers = [lay.index for lay in plan.layers if lay.out_shape is not None and len(lay.out_shape) == 3]
    blocks = [b.name for b in plan.blocks]
    at.run()  # warm

    def timed() -> float:
        t = time.perf_counter()
        at.run()
        if at.exception:
            raise RuntimeError(at.exception[0].value)
        return time.perf_counter() - t

    times: dict[str, list[float]] = {"no change": [], "layer": [], "block": [], "top-k": []}
    before = len(passes)
    for r in range(repeats):
        times["no change"].append(timed())
        at.selectbox(key="live.layer").set_value(layers[(7 * r + 11) % len(layers)])
        times["layer"].append(timed())
        at.selectbox(key="live.block").set_value(blocks[(3 * r + 5) % len(blocks)])
        times["block"].append(timed())
        at.number_input(key="live.topk").set_value(4 + (r % 5) * 8)
        times["top-k"].append(timed())
    ran = len(passes) - before
    base = statistics.median(times["no change"])
    print(f"Live lab view changes · AppTest · resnet50 224×224 on {describe(torch.device('cpu'))} · "
          f"{repeats} rounds, interleaved · first view (builds the model, one forward pass) {first * 1e3:.0f} ms")
    ok = ran == 0
    print(f"  no-change rerun          median {base * 1e3:7.1f} ms")
    for what in ("layer", "block", "top-k"):
        m = statistics.median(times[what])
        ratio = m / base
        ok &= ratio <= VIEW_TARGET
        print(f"  {what + ' change':22s}   median {m * 1e3:7.1f} ms  ratio {ratio:.2f}× (target ≤ {VIEW_TARGET}) "
              f"{'PASS' if ratio <= VIEW_TARGET else 'FAIL'}")
    print(f"  forward passes run by the {3 * repeats} view changes: {ran} (target 0) {'PASS' if ran == 0 else 'FAIL'}")
    forward.forward_record = real
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--only", choices=["pass", "views"], help="only the instrumented-pass case or the view-change case")
    args = ap.parse_args()
    if args.only == "views":
        return 0 if run_views(args.repeats) else 1
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: this machine has no usable GPU", file=sys.stderr)
        return 2
    kinds = {"cpu": ["cpu"], "cuda": ["cuda"], "auto": ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])}
    ok = True
    for kind in kinds[args.device]:
        ok &= run_case(kind, args.repeats, args.warmup)
    if args.device == "auto" and not torch.cuda.is_available():
        print("GPU case (resnet50, batch 64, bf16 autocast, channels_last) not run: no CUDA device on this machine")
    if args.only is None:
        ok &= run_views(args.repeats)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
