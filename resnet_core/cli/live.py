"""`python -m resnet_core gradflow`: gradient norms through the depth, with and without skip connections.

    python -m resnet_core gradflow resnet56 --compare-skip --norm none --init pytorch_default

For each variant (with skips, without skips: one model from the seed, the same weights and the same
seeded batch), the table lists ‖∂L/∂W‖ of every conv/linear weight and ‖∂L/∂x‖ at every block's input,
side by side with their ratio; vanished (0 or tiny) and exploded (NaN, Inf or huge) values are marked.
Bad input (an unknown network, shapes that do not meet, a batch outside 1…4096, a seed outside
0…2**64 − 1, no GPU for --device cuda, a run too large for the free memory or above the work limit for
one run, an allocation that fails all the same) exits 2 with one line each.
Ctrl-C stops the run at the next layer and exits 130 with "interrupted".
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading

from resnet_core.cli.common import CliError, parse_shape, plan_error_lines, resolve_spec
from resnet_core.formatting import text_table
from resnet_core.structure.spec import INITS, NORMS

MAX_BATCH = 4096


def _int_in(lo: int, hi: int | None, hi_text: str):
    """An argparse type: an integer in lo…hi, else a one-line reason (exit 2). hi None: the seeds' bound,
    training.config.SEED_MAX (read when a seed is parsed: that module imports torch)."""
    def parse(text: str) -> int:
        top = hi
        if top is None:
            from resnet_core.training.config import SEED_MAX
            top = SEED_MAX
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not lo <= value <= top:
            raise argparse.ArgumentTypeError(f"must be between {lo} and {hi_text}, got {text}")
        return value
    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC", help="a preset name (resnet56, plain20, resnet18, …), a JSON/YAML spec file, "
                                                "or a model from code: FILE.py:NAME, timm:NAME, torchvision:NAME")
    p.add_argument("--compare-skip", action="store_true",
                   help="run with every skip connection on and then off, on the same weights and batch")
    p.add_argument("--norm", choices=list(NORMS), help="batch | none (default: the spec's)")
    p.add_argument("--init", choices=list(INITS), help="weight initialisation (default: the spec's)")
    p.add_argument("--shortcut", choices=["A", "B", "C"], help="shortcut option (default: the spec's)")
    p.add_argument("--zero-init-residual", action="store_true", help="zero each residual branch's last layer")
    p.add_argument("--batch", type=_int_in(1, MAX_BATCH, str(MAX_BATCH)), default=8, metavar="N",
                   help=f"images in the batch, 1…{MAX_BATCH} (default 8)")
    p.add_argument("--seed", type=_int_in(0, None, "2**64-1"), default=0, metavar="S",
                   help="weights, images and labels, 0…2**64-1 (default 0)")
    p.add_argument("--input", type=parse_shape, metavar="C,H,W", help="input shape (default: the spec's)")
    p.add_argument("--mode", choices=["train", "eval"], default="train",
                   help="train (default: batch statistics, as in training) or eval (running statistics)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--format", choices=["table", "json"], default="table")


def _num(v: float | None) -> str:
    if v is None:
        return "—"
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    return f"{v:.3e}"


_MARK = {"ok": "", "vanished": " vanished", "exploded": " EXPLODED", "unused": " (unused)"}


def _cell(v: float | None, status: str) -> str:
    if status == "unused":
        return "— (unused)"
    return _num(v) + _MARK.get(status, "")


def _ratio(v: float | None) -> str:
    if v is None:
        return "—"
    if math.isinf(v):
        return "∞"
    return f"{v:.3g}"


def format_table(gf) -> str:
    spec = gf.spec
    c, h, w = gf.input_shape
    labels = [v.label for v in gf.variants]
    two = len(labels) == 2
    out = [f"gradient flow · {spec.name} · norm {spec.norm} · init {spec.init} · shortcut {spec.shortcut}"
           + (" · zero-init residual" if spec.zero_init_residual else ""),
           f"batch {gf.batch} of {c}×{h}×{w} seeded noise (seed {gf.data_seed}) · weights seed {gf.seed} · "
           f"{'train' if gf.train else 'eval'} mode · {gf.device}",
           "loss (cross-entropy): " + ", ".join(f"{v.label} {_num(v.loss)}" for v in gf.variants)]
    if two:
        out.append(f"same weights: {'yes' if gf.same_weights else 'NO'} ({gf.variants[0].weights_fingerprint}) · "
                   f"same batch: {'yes' if gf.same_batch else 'NO'}")
    out.append(f"vanished: 0 or below {gf.vanished_below:g} · exploded: NaN, Inf or above {gf.exploded_above:g}")
    out.append("")
    out.append("weight gradients ‖∂L/∂W‖ (every conv and linear layer, through the depth)")
    head = ["depth", "layer", "part"] + labels + (["with/without"] if two else [])
    rows = [[str(r["depth"]), r["layer"], r["part"]] + [_cell(n, s) for n, s in zip(r["norms"], r["statuses"], strict=True)]
            + ([_ratio(r["ratio"])] if two else []) for r in gf.weight_rows()]
    out += text_table(head, rows, right={0, *range(3, len(head))})
    out.append("")
    out.append("block input gradients ‖∂L/∂x‖")
    head = ["block", "depth", "input"] + labels + (["with/without"] if two else [])
    rows = [[r["block"], str(r["depth"]), "×".join(map(str, r["shape"]))]
            + [_cell(n, s) for n, s in zip(r["norms"], r["statuses"], strict=True)] + ([_ratio(r["ratio"])] if two else [])
            for r in gf.input_rows()]
    out += text_table(head, rows, right={1, *range(3, len(head))})
    out.append("")
    for v in gf.variants:
        parts = []
        for of, noun in (("weights", "weight gradients"), ("inputs", "block-input gradients")):
            c = v.counts(of)
            parts.append(f"{noun} {c['ok']} ok, {c['vanished']} vanished, {c['exploded']} exploded"
                         + (f", {c['unused']} unused" if c["unused"] else ""))
        out.append(f"{v.label}: " + "; ".join(parts))
    if two:
        first = gf.weight_rows()[0]
        out.append(f"first layer ({first['layer']}): {labels[0]} {_num(first['norms'][0])}, "
                   f"{labels[1]} {_num(first['norms'][1])}, ratio {_ratio(first['ratio'])}")
    return "\n".join(out) + "\n"


def _variant_spec(args: argparse.Namespace):
    spec = resolve_spec(args.spec)
    changes = {}
    if args.norm:
        changes["norm"] = args.norm
    if args.init:
        changes["init"] = args.init
    if args.shortcut:
        changes["shortcut"] = args.shortcut
    if args.zero_init_residual:
        changes["zero_init_residual"] = True
    if args.input:
        changes["in_channels"] = args.input[0]
        changes["input_size"] = (args.input[1], args.input[2])
    return spec.replace(**changes) if changes else spec


def cmd_gradflow(args: argparse.Namespace) -> int:
    from resnet_core.cli import modules
    if modules.is_module_source(args.spec):  # FILE.py:NAME, timm:NAME, torchvision:NAME
        return modules.cmd_gradflow(args)
    spec = _variant_spec(args)

    import torch

    from resnet_core.device import BusyError, DeviceError, MemoryGuardError, OutOfMemoryError, WorkLimitError
    from resnet_core.lab import ProbeError, gradient_flow
    from resnet_core.structure.build import BuildError
    from resnet_core.structure.plan import plan

    check = plan(spec.replace(skip=True) if args.compare_skip else spec)
    if check.errors:
        raise CliError(*plan_error_lines(check.errors))
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        def on_sigint(signum, frame):  # stop at the next layer; the run then ends as "interrupted"
            stop.set()
        previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        gf = gradient_flow(spec, seed=args.seed, batch=args.batch, compare_skip=args.compare_skip,
                           device=args.device, train=args.mode == "train", should_stop=stop.is_set,
                           threads=torch.get_num_threads())  # alone on the machine: every thread
    except BuildError as e:
        raise CliError(*plan_error_lines(e.plan.errors)) from None
    except (DeviceError, MemoryGuardError, WorkLimitError, OutOfMemoryError, BusyError, ProbeError) as e:
        if stop.is_set():
            raise KeyboardInterrupt from None
        raise CliError(f"error: {e}") from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if gf.stopped or stop.is_set():
        raise KeyboardInterrupt  # main(): "interrupted", exit 130
    if args.format == "json":
        sys.stdout.write(json.dumps(gf.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(format_table(gf))
    return 0


def register(sub) -> None:
    """Add `gradflow` to the command parser."""
    p = sub.add_parser("gradflow", help="gradient norms of every layer and block input, with and without skip connections")
    add_arguments(p)
    p.set_defaults(run=cmd_gradflow)

