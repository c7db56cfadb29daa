"""`python -m resnet_core experiment NAME [SPEC] ...`: five published results, reproduced and judged.

    python -m resnet_core experiment signal               # De & Smith 2020: variance of the residual stream
    python -m resnet_core experiment shatter --format json
    python -m resnet_core experiment erf resnet20         # Luo 2016, plus the ERF of resnet20
    python -m resnet_core experiment lesion               # Veit 2016: trains resnet20 + plain20 first
    python -m resnet_core experiment landscape            # Li 2018: trains resnet20 + plain20 first

The table (or JSON) goes to stdout: the paper's claim, the settings, the measurements and the verdict
(`verdict: {reproduced, claim, measured, checks}`); progress goes to stderr. Exit status 0 whether or
not the result reproduced (the verdict says which); 2 for bad options, with one line; 130 on Ctrl-C.
A run whose memory does not fit the memory left (or RESNET_EXPLORER_MEMORY_BUDGET), or whose work is above
the limit for one run (RESNET_EXPLORER_WORK_LIMIT), is refused before it starts, with the numbers and a
smaller setting that fits (exit 2); so is a run that runs out of memory all the same.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from resnet_core.cli.common import CliError, one_line_error
from resnet_core.formatting import text_table
from resnet_core.training.options import finite_float

# What each run does, for the help; how long it takes is measured on this machine, not claimed: the two that
# train a pair print their expected time on this server before they start (experiments/timing.py), and every
# run prints its own time at the end.
TIMES = {"signal": "forward passes at initialisation", "shatter": "gradients of small random nets",
         "erf": "gradients of random conv stacks",
         "lesion": "trains resnet20 + plain20, then evaluates every single and random deletion",
         "landscape": "trains resnet56 + plain56, then 120 loss evaluations"}


class OneLineParser(argparse.ArgumentParser):
    """Bad options: one line on stderr, exit status 2 (no usage block)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        one_line_error(self, with_prog=True)(message)


MAX_LIST = 16  # integers in one list option (--depths); experiments.settings.MAX_DEPTHS is the library's bound


def int_list(text: str) -> tuple[int, ...]:
    """'4,8,16' → (4, 8, 16): integers separated by single commas; an empty item ('1,,2', '1,2,', ' '),
    a non-integer or more than MAX_LIST items is refused in one line (exit 2)."""
    items = text.split(",")
    if len(items) > MAX_LIST:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_LIST} comma-separated integers, got {len(items)}")
    values = []
    for i, item in enumerate(items, start=1):
        item = item.strip()
        if not item:
            raise argparse.ArgumentTypeError(f"item {i} of {text[:40]!r} is empty: expected comma-separated integers "
                                             "such as 4,8,16")
        if not item.lstrip("+-").isdigit() or len(item) > 12:
            raise argparse.ArgumentTypeError(f"item {i} of {text[:40]!r} is not an integer ({item[:20]!r}): expected "
                                             "comma-separated integers such as 4,8,16")
        values.append(int(item))
    return tuple(values)


def bounded_int(text: str) -> int:
    """An integer of at most 12 digits (the settings' bounds then say where it may lie)."""
    t = text.strip()
    if not t.lstrip("+-").isdigit() or len(t) > 12:
        raise argparse.ArgumentTypeError(f"expected an integer of at most 12 digits, got {text[:30]!r}")
    return int(t)


def _common(p: argparse.ArgumentParser, seed: int = 0) -> None:
    p.add_argument("--seed", type=bounded_int, default=seed, metavar="S", help=f"every random thing (default {seed})")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _pair_options(p: argparse.ArgumentParser, default) -> None:
    """The pair's options, their defaults those of the experiment (`default`, a PairSettings)."""
    d = default
    p.add_argument("spec", nargs="?", default=d.residual, metavar="SPEC",
                   help=f"the residual preset; its plain twin trains beside it (default {d.residual})")
    p.add_argument("--data", default=d.data, metavar="DATA", help=f"digits | synthetic | cifar:PATH (default {d.data})")
    p.add_argument("--steps", type=bounded_int, default=d.steps, metavar="N",
                   help=f"training steps of the pair (default {d.steps})")
    p.add_argument("--batch", type=bounded_int, default=d.batch_size, metavar="B", help=f"training batch (default {d.batch_size})")
    p.add_argument("--input-size", type=bounded_int, default=d.input_size, metavar="H",
                   help=f"input side (default {d.input_size})")
    p.add_argument("--lr", type=finite_float, default=d.lr, metavar="LR", help=f"peak learning rate (default {d.lr:g})")
    p.add_argument("--processes", type=int, choices=[1, 2], default=pair_processes(), metavar="{1,2}",
                   help="2: the two nets train at once in two processes, the same weights as in one (default "
                        f"{pair_processes()} on this machine of {os.cpu_count()} cores)")


def pair_processes() -> int:
    """Two training processes where there are two cores for them."""
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def register(sub) -> None:
    """Add `experiment` (with one sub-command per experiment) to the command parser."""
    p = sub.add_parser("experiment", help="reproduce a published result about residual networks and judge it",
                       description=__doc__.split("\n\n")[0] + " Lesion and landscape print their expected time on this "
                       "machine before they start (measured here); every run prints its own time.")
    p.error = OneLineParser.error.__get__(p)  # an unknown NAME: one line too
    names = p.add_subparsers(dest="experiment", metavar="NAME", parser_class=OneLineParser)
    names.required = True

    from resnet_core.experiments.settings import (
        ErfSettings,
        LandscapeSettings,
        LesionSettings,
        ShatterSettings,
        SignalSettings,
    )

    sig = SignalSettings()
    s = names.add_parser("signal", help=f"signal propagation at init, BN and skips on/off ({TIMES['signal']})",
                         description="De & Smith 2020 / Brock et al. 2021: variance of the residual stream after every "
                                     "block at initialisation.")
    s.add_argument("spec", nargs="?", metavar="SPEC",
                   help="a network (preset or spec file; default: a 16-block pre-activation CIFAR net)")
    s.add_argument("--batch", type=bounded_int, default=sig.batch, metavar="N",
                   help=f"Gaussian input images (default {sig.batch})")
    _common(s, sig.seed)
    s.set_defaults(run=cmd_experiment)

    sha = ShatterSettings()
    h = names.add_parser("shatter", help=f"shattered gradients of 1-D input nets ({TIMES['shatter']})",
                         description="Balduzzi et al. 2017: lag-1 autocorrelation of dy/dx along a line of inputs, "
                                     "feed-forward vs residual.")
    h.add_argument("--width", type=bounded_int, default=sha.width, metavar="W", help=f"units per layer (default {sha.width})")
    h.add_argument("--depths", type=int_list, default=sha.depths, metavar="D,D,…",
                   help=f"depths to measure, at most {MAX_LIST} (default {','.join(map(str, sha.depths))})")
    h.add_argument("--seeds", type=bounded_int, default=sha.seeds, metavar="N",
                   help=f"networks averaged per point (default {sha.seeds})")
    h.add_argument("--points", type=bounded_int, default=sha.points, metavar="N",
                   help=f"inputs along the line (default {sha.points})")
    h.add_argument("--no-bn", action="store_true", help="without batch norm")
    h.add_argument("--no-bias", action="store_true", help="without biases")
    _common(h, sha.seed)
    h.set_defaults(run=cmd_experiment)

    erf = ErfSettings()
    e = names.add_parser("erf", help=f"effective receptive field of conv stacks ({TIMES['erf']})",
                         description="Luo et al. 2016: |∂y_centre/∂x| of plain and residual 3×3 conv stacks at init, "
                                     "and of SPEC if given.")
    e.add_argument("spec", nargs="?", metavar="SPEC", help="also measure this network's ERF (preset or spec file)")
    e.add_argument("--depths", type=int_list, default=erf.depths, metavar="D,D,…",
                   help=f"conv layers of the stacks, even, at most {MAX_LIST} (default {','.join(map(str, erf.depths))})")
    e.add_argument("--channels", type=bounded_int, default=erf.channels, metavar="C",
                   help=f"width of the stacks (default {erf.channels})")
    e.add_argument("--samples", type=bounded_int, default=erf.samples, metavar="N",
                   help=f"input images per network (default {erf.samples})")
    e.add_argument("--seeds", type=bounded_int, default=erf.seeds, metavar="N",
                   help=f"random networks per depth (default {erf.seeds})")
    _common(e, erf.seed)
    e.set_defaults(run=cmd_experiment)

    les = LesionSettings()
    le = names.add_parser("lesion", help=f"delete blocks of a trained ResNet and its plain twin ({TIMES['lesion']})",
                          description="Veit et al. 2016: held-out accuracy after deleting each block, and k random "
                                      f"blocks. Default run: {TIMES['lesion']}; its expected time on this "
                                      "machine is printed before it starts.")
    _pair_options(le, les.pair)
    le.add_argument("--draws", type=bounded_int, default=les.draws, metavar="N",
                    help=f"random deletion sets per k (default {les.draws})")
    _common(le, les.seed)
    le.set_defaults(run=cmd_experiment)

    lan = LandscapeSettings()
    la = names.add_parser("landscape", help=f"filter-normalised loss slices ({TIMES['landscape']})",
                          description="Li et al. 2018: 1-D and 2-D loss slices around trained weights. "
                                      f"Default run: {TIMES['landscape']}; its expected time on this machine is "
                                      "printed before it starts.")
    _pair_options(la, lan.pair)
    la.add_argument("--points-1d", type=bounded_int, default=lan.points_1d, metavar="N",
                    help=f"points of the 1-D slice (default {lan.points_1d})")
    la.add_argument("--points-2d", type=bounded_int, default=lan.points_2d, metavar="N",
                    help=f"grid side of the 2-D slice (default {lan.points_2d})")
    la.add_argument("--span", type=finite_float, default=lan.span, metavar="X",
                    help=f"slices cover [−X, X] (default {lan.span:g})")
    la.add_argument("--images", type=bounded_int, default=lan.images, metavar="N",
                    help=f"training images for the loss (default {lan.images})")
    _common(la, lan.seed)
    la.set_defaults(run=cmd_experiment)


# ------------------------------------------------------------------------------------------- running

def _spec(text: str | None):
    if text is None:
        return None
    from resnet_core.cli.common import resolve_spec
    return resolve_spec(text)


def _pair(args):
    from resnet_core.experiments.pair import PairSettings
    return PairSettings(residual=args.spec, data=args.data, steps=args.steps, batch_size=args.batch,
                        input_size=args.input_size, lr=args.lr, seed=args.seed, processes=args.processes)


def run_experiment(args, should_stop, on_progress):
    """The library call for args.experiment; ExperimentError and its kin propagate."""
    name = args.experiment
    if name == "signal":
        from resnet_core.experiments import signal
        return signal.run(signal.SignalSettings(spec=_spec(args.spec), batch=args.batch, seed=args.seed),
                          should_stop, on_progress)
    if name == "shatter":
        from resnet_core.experiments import shatter
        return shatter.run(shatter.ShatterSettings(width=args.width, depths=args.depths, seeds=args.seeds,
                                                   points=args.points, bn=not args.no_bn, bias=not args.no_bias,
                                                   seed=args.seed), should_stop, on_progress)
    if name == "erf":
        from resnet_core.experiments import erf
        return erf.run(erf.ErfSettings(depths=args.depths, channels=args.channels, samples=args.samples,
                                       seeds=args.seeds, seed=args.seed), should_stop, on_progress,
                       spec=_spec(args.spec))
    if name == "lesion":
        from resnet_core.experiments import lesion
        return lesion.run(lesion.LesionSettings(pair=_pair(args), draws=args.draws, seed=args.seed),
                          should_stop=should_stop, on_progress=on_progress)
    from resnet_core.experiments import landscape
    return landscape.run(landscape.LandscapeSettings(pair=_pair(args), points_1d=args.points_1d,
                                                     points_2d=args.points_2d, span=args.span, images=args.images,
                                                     seed=args.seed), should_stop=should_stop, on_progress=on_progress)


def expected_time(args) -> str:
    """'expected on this machine: about 1.5–2.5 min (…)', from this machine's measurements (training/estimate.py)."""
    from resnet_core.experiments import landscape, lesion, timing
    from resnet_core.experiments.settings import LandscapeSettings, LesionSettings
    try:
        module, settings = (lesion, LesionSettings(pair=_pair(args), draws=args.draws)) if args.experiment == "lesion" \
            else (landscape, LandscapeSettings(pair=_pair(args), points_1d=args.points_1d, points_2d=args.points_2d,
                                               span=args.span, images=args.images))
        est = timing.estimate(module, settings)
    except Exception as e:  # noqa: BLE001 - the run itself says what is wrong with its settings
        return f"no estimate ({str(e).splitlines()[0][:120]})"
    if est is None:
        return "no estimate"
    return f"expected on this machine: {est.total.text()} ({est.note()})"


def cmd_experiment(args: argparse.Namespace) -> int:
    from resnet_core.errors import ExplorerError
    from resnet_core.structure.spec_text import SpecError

    last = [0.0]

    def progress(fraction: float, text: str) -> None:
        now = time.monotonic()
        if args.quiet or (now - last[0] < 2.0 and fraction < 1.0):
            return
        last[0] = now
        print(f"{args.experiment}: {100 * fraction:3.0f} % · {text}", file=sys.stderr, flush=True)

    if args.experiment in ("lesion", "landscape") and not args.quiet:
        print(f"{args.experiment}: {expected_time(args)}", file=sys.stderr, flush=True)
    try:
        result = run_experiment(args, None, progress)
    except SpecError as e:
        raise CliError(*e.lines()) from None
    except ExplorerError as e:
        raise CliError(f"error: {e}") from None
    if args.format == "json":
        sys.stdout.write(result.to_json() + "\n")
    else:
        sys.stdout.write(format_table(result))
    return 0


# ------------------------------------------------------------------------------------------- tables

def _n(v, digits: int = 3) -> str:
    from resnet_core.experiments.common import fmt
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return fmt(v, digits)
    return str(v)


def _rows(rows: list[dict], keys: list[str]) -> list[str]:
    return text_table(keys, [[_n(r.get(k, "")) for k in keys] for r in rows], right=range(1, len(keys)))


def _pivot(rows: list[dict], row_key: str, col_key: str, value: str) -> tuple[list[str], list[list[str]]]:
    cols = list(dict.fromkeys(r[col_key] for r in rows))
    keys = list(dict.fromkeys(r[row_key] for r in rows))
    cell = {(r[row_key], r[col_key]): r[value] for r in rows}
    return [row_key] + [str(c) for c in cols], [[_n(k)] + [_n(cell.get((k, c), "")) for c in cols] for k in keys]


def body(result) -> list[str]:
    t = result.tables
    out: list[str] = []
    if result.name == "signal":
        head, rows = _pivot(t["stream"], "block", "variant", "variance")
        out += ["variance of the residual stream after each block (block 0: entering block 1)"]
        out += text_table(head + ["ℓ + 1"], [r + [str(int(r[0]) + 1)] for r in rows], right=range(len(head) + 1))
    elif result.name == "shatter":
        out += ["lag-1 autocorrelation of dy/dx along the line (mean over seeds)"]
        out += _rows(t["autocorrelation"], ["toggles", "arch", "depth", "autocorrelation", "sd", "seeds"])
    elif result.name == "erf":
        out += ["effective receptive field of the conv stacks (σ in pixels)"]
        out += _rows(t["stacks"], ["stack", "layers", "erf_std", "std_over_sqrt_n", "theoretical_rf", "share_of_rf"])
        if "network" in t:
            out += ["", "the network"] + _rows(t["network"], ["network", "layer", "theoretical_rf", "erf_std", "share_of_rf"])
    elif result.name == "lesion":
        out += ["held-out accuracy after deleting one block"]
        out += _rows(t["single"], ["index", "block", "downsampling", "residual", "plain"])
        out += ["", f"after k random deletions (mean of {result.settings.get('draws')} draws)"]
        head, rows = _pivot(t["random"], "k", "net", "mean")
        out += text_table(head, rows, right=range(len(head)))
    elif result.name == "landscape":
        out += ["1-D slice: training loss at θ + α·δ"]
        head, rows = _pivot(t["slice_1d"], "alpha", "net", "loss")
        out += text_table(head, rows, right=range(len(head)))
        out += ["", "summary"] + _rows(t["summary"], ["net", "loss_at_0", "loss_at_distance_1", "convex_share_2d",
                                                      "max_loss_2d"])
    return out


def format_table(result) -> str:
    v = result.verdict
    out = [f"{result.title} — {result.paper.citation}", f"claim: {result.paper.claim}", ""]
    out.append("settings: " + " · ".join(f"{k} {_n(val) if not isinstance(val, (list, dict)) else val}"
                                         for k, val in result.settings.items()))
    out.append("")
    out += body(result)
    out.append("")
    out.append(("REPRODUCED" if v.reproduced else "NOT REPRODUCED") + f" · acceptance: {v.claim}")
    out += [f"  {'✓' if ok else '✗'} {text}" for text, ok in v.checks]
    out.append("")
    out += result.findings
    out.append(f"({result.seconds:.1f} s{', stopped early' if result.stopped else ''}; --format json for every number)")
    return "\n".join(out) + "\n"
