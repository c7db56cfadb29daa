"""The `train` command's options: defined once, here; the command line parses them, the launcher derives
each worker's argv from them, the app turns its settings into the same command.

    p = argparse.ArgumentParser(); add_arguments(p)      # the command line (cli/train.py)
    problems = check(args)                               # ranges and combinations, one line each
    train_args({"nets": "resnet20", "steps": 100})       # ['train', '--nets', 'resnet20', '--steps', '100']

Without torch: the help prints fast.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from typing import Any

from resnet_core.limits import (
    MAX_BATCH,
    MAX_INPUT_SIZE,
    MAX_LR,
    MAX_NETS,
    MAX_NPROC,
    MAX_STEPS,
    SEED_MAX,
    max_threads,
)
from resnet_core.training.rates import BATCHNORM_LR, CPU_LR, GPU_LR

DEFAULT_NETS = "plain20,plain56,resnet20,resnet56"
LAUNCHER_ONLY = ("nproc", "port")  # what the launcher itself uses; its workers never see these


def _int(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Every option of `train` (argparse dest names are the settings' keys)."""
    p.add_argument("--nets", default=None, metavar="A,B,...",
                   help=f"up to {MAX_NETS} comma-separated presets or spec files (a '-nobn' suffix drops batch "
                        "norm), or an experiment: degradation, batchnorm "
                        f"(default: {DEFAULT_NETS}; with --recipe: resnet20)")
    p.add_argument("--recipe", choices=["he2015-cifar"],
                   help="he2015-cifar: the paper's CIFAR-10 training (batch 128, lr 0.1 ÷10 at 32k and 48k, 64k "
                        "steps, 45k/5k split, crop + flip); needs --data cifar:PATH")
    p.add_argument("--data", default="digits", metavar="DATA",
                   help="digits | synthetic | cifar:PATH (a local cifar-10-batches-py folder); default digits")
    p.add_argument("--data-root", metavar="DIR",
                   help="read a cifar:PATH folder only below DIR (a server's data folder; each file is checked "
                        "where it really is when it is read): the app passes it to its runs on several processes")
    p.add_argument("--steps", type=_int, metavar="N", help="optimiser steps (default: 800 on CPU, 3000 on a GPU)")
    p.add_argument("--seed", type=_int, default=0, metavar="S",
                   help="weights, split and batch order, 0…2**64-1 (default 0)")
    p.add_argument("--batch", type=_int, metavar="B",
                   help="batch size per worker (default: 32 on CPU, 128 on a GPU)")
    p.add_argument("--input-size", type=_int, metavar="H",
                   help="input height and width (default: 16 on CPU, 32 on a GPU)")
    p.add_argument("--lr", type=finite_float, metavar="LR",
                   help=f"peak learning rate for one worker's batch (default {CPU_LR:g} on CPU, as in the Training "
                        f"lab; {GPU_LR:g} on a GPU; the batchnorm experiment: {BATCHNORM_LR:g})")
    p.add_argument("--schedule", choices=["cosine", "step", "constant"], default="cosine",
                   help="cosine (default) | step: ÷10 at 50%% and 75%% as in the paper | constant")
    p.add_argument("--threads", type=_int, metavar="N", help="CPU threads while training (default: half the cores)")
    p.add_argument("--no-bn", action="store_true", help="train every net without batch normalisation")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--nproc", type=_int, metavar="N",
                   help="train on N worker processes here through torchrun (DistributedDataParallel; gloo on CPU, "
                        "NCCL on CUDA); N ≤ the GPUs, or the CPU cores")
    p.add_argument("--port", type=_int, metavar="P",
                   help="with --nproc: the rendezvous port on 127.0.0.1 (default: a free one)")
    p.add_argument("--lr-scaling", choices=["linear", "none"], default="linear",
                   help="several workers: linear multiplies the lr by N for the N× larger batch (default) | none")
    p.add_argument("--sync-bn", action="store_true",
                   help="several workers on CUDA: SyncBatchNorm (on CPU PyTorch has none: BN stays per worker)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--csv", metavar="FILE",
                   help="write the curves to FILE and the final table to FILE's name + _results.csv")
    p.add_argument("--save-dir", metavar="DIR", help="save each trained net as DIR/NET.pt (state_dict) + NET.json (spec)")
    p.add_argument("--checkpoint-every", type=_int, metavar="K",
                   help="with --save-dir: also save every K steps (default: every tenth of the run)")
    p.add_argument("--progress-file", metavar="FILE", help=argparse.SUPPRESS)  # JSON lines (session.ProgressReader)
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train", add_help=False)
    add_arguments(p)
    return p


def train_args(settings: Mapping[str, Any]) -> list[str]:
    """`train --nets … --steps …` for these settings (argparse's dest names), derived from the one parser:
    an option at its default is left out, and so are the launcher's own (--nproc, --port)."""
    out = ["train"]
    for action in _parser()._actions:
        key = action.dest
        if key in LAUNCHER_ONLY or key not in settings or not action.option_strings:
            continue
        value = settings[key]
        if value is None or value == action.default:
            continue
        flag = action.option_strings[0]
        if isinstance(action, argparse._StoreTrueAction):
            if value:
                out.append(flag)
        else:
            out += [flag, str(value)]
    return out


def split_nets(text: str) -> list[str]:
    """'a,b' → ['a', 'b']; an empty item ('a,,b', a trailing comma) is refused (ValueError)."""
    names = [n.strip() for n in text.split(",")]
    if names == [""]:
        return []
    if any(not n for n in names):
        raise ValueError(f"--nets {text!r} has an empty name between commas; give names like plain20,resnet20")
    return names


def _in(problems: list[str], name: str, value, lo, hi, hi_text: str | None = None) -> None:
    if value is not None and not lo <= value <= hi:
        problems.append(f"error: {name} must be between {lo} and {hi_text or f'{hi:,}'}, got {value}")


def check(args: argparse.Namespace) -> list[str]:
    """The options' ranges and combinations, one 'error: …' line per problem; fills in `args.nets`' default."""
    from resnet_core.training.config import EXPERIMENTS
    problems: list[str] = []
    _in(problems, "--steps", args.steps, 1, MAX_STEPS)
    _in(problems, "--batch", args.batch, 1, MAX_BATCH)
    _in(problems, "--input-size", args.input_size, 4, MAX_INPUT_SIZE)
    _in(problems, "--threads", args.threads, 1, max_threads(), f"{max_threads()} (this machine's cores)")
    _in(problems, "--seed", args.seed, 0, SEED_MAX, "2**64-1")
    _in(problems, "--nproc", args.nproc, 1, MAX_NPROC)
    _in(problems, "--port", args.port, 1024, 65535, "65535")
    _in(problems, "--checkpoint-every", args.checkpoint_every, 1, MAX_STEPS)
    if args.lr is not None and not 0 < args.lr <= MAX_LR:
        problems.append(f"error: --lr must be in (0, {MAX_LR:g}], got {args.lr}")
    if args.checkpoint_every is not None and not args.save_dir:
        problems.append("error: --checkpoint-every needs --save-dir (where the checkpoints go)")
    if args.port is not None and not args.nproc:
        problems.append("error: --port is for --nproc (the workers' rendezvous); torchrun takes its own")
    nets = args.nets if args.nets is not None else ("resnet20" if args.recipe else DEFAULT_NETS)
    try:
        names = split_nets(nets)
    except ValueError as e:
        problems.append(f"error: {e}")
        names = None
    if names is not None and not names:
        problems.append(f"error: --nets is empty; give up to {MAX_NETS} networks, e.g. plain20,plain56")
    elif names is not None and len(names) > MAX_NETS:
        problems.append(f"error: at most {MAX_NETS} networks train side by side; --nets gave {len(names)}")
    elif names is not None and len(names) > 1 and any(n in EXPERIMENTS for n in names):
        problems.append("error: an experiment name (degradation, batchnorm) stands alone in --nets")
    if args.recipe and not args.data.strip().lower().startswith(("cifar:", "cifar10:")):
        problems.append(f"error: --recipe {args.recipe} trains on CIFAR-10: give --data cifar:PATH")
    if args.recipe and names and any(n in EXPERIMENTS for n in names):
        problems.append("error: --recipe trains presets or spec files, not an experiment name")
    args.nets = nets
    return problems
