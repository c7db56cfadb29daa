"""`resnet-explorer prepare`: train, once for the whole server, what every session of a lesson would train.

    resnet-explorer prepare                      # the Training lab's default run and the experiments' pairs
    resnet-explorer prepare --training           # only the Training lab's default four nets
    resnet-explorer prepare --experiments        # only the lesion study's and the landscape's pairs
    resnet-explorer prepare --class-length       # also the class-length versions (≤ 3 minutes each here)
    resnet-explorer prepare --list               # what is prepared: when, how, settings, device, wall time

Runs go under the operator's data folder ($RESNET_EXPLORER_DATA_DIR/resnet-explorer/prepared, or
$RESNET_EXPLORER_STATE_DIR/prepared; see resnet_core/training/prepared.py) and survive a restart; the app's
sessions reuse them. Before each run its time on this server is estimated; progress goes to stderr, one
line per prepared run to stdout. Exit status 0 done, 2 bad input, 130/143 interrupted (nothing half-written
is kept).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any


def _progress(quiet: bool):
    last = [0.0]

    def report(fraction: float, text: str) -> None:
        now = time.monotonic()
        if not quiet and (now - last[0] > 2 or fraction >= 1):
            last[0] = now
            print(f"  {fraction:5.0%} {text}", file=sys.stderr, flush=True)
    return report


def what_to_prepare(args: argparse.Namespace, device: str) -> list[tuple[str, str, Any]]:
    """(kind, title, settings) of every run asked for: ("training", …, dict) or ("pair", …, PairSettings)."""
    from resnet_core.experiments import settings as xs
    from resnet_core.experiments.pair import CLASS_LENGTH_PAIRS
    from resnet_core.training import prepared
    from resnet_core.training.config import CLASS_LENGTH
    both = not (args.training or args.experiments)
    out: list[tuple[str, str, Any]] = []
    if args.training or both:
        out.append(("training", "the Training lab's default run", prepared.lab_settings(device)))
        if args.class_length:
            out.append(("training", "the Training lab's class-length run",
                        prepared.lab_settings(device, **CLASS_LENGTH)))
    if args.experiments or both:
        pairs = {"the lesion study's pair": xs.LesionSettings().pair,
                 "the loss landscape's pair": xs.LandscapeSettings().pair}
        if args.class_length:
            for name, ps in CLASS_LENGTH_PAIRS.items():
                pairs[f"the {name} experiment's class-length pair"] = ps
        seen = set()
        for title, ps in pairs.items():
            canon = repr(prepared.pair_settings(ps))
            if canon not in seen:
                seen.add(canon)
                out.append(("pair", title, ps))
    return out


def cmd_prepare(args: argparse.Namespace) -> int:
    from resnet_core.device import pick_device
    from resnet_core.training import prepared
    root = args.data_dir
    if args.list:
        entries = prepared.listing(root)
        if not entries:
            print(f"nothing prepared in {prepared.folder(root)}")
        for e in entries:
            print(prepared.describe(e))
        return 0
    from dataclasses import replace

    device = pick_device(args.device).type
    stop = threading.Event()
    report = _progress(args.quiet)
    for kind, title, settings in what_to_prepare(args, device):
        if args.steps is not None:
            settings = {**settings, "steps": args.steps} if kind == "training" else replace(settings, steps=args.steps)

        if not args.quiet:
            print(f"{title}: {_estimate(kind, settings, device, root)}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            if kind == "training":
                result, place = prepared.prepare_training(settings, "the command line (prepare)", stop.is_set, report,
                                                          root)
            else:
                result, place = prepared.prepare_pair(settings, "the command line (prepare)", stop.is_set, report, root)
        except KeyboardInterrupt:
            stop.set()
            raise
        except OSError as e:
            from resnet_core.cli.common import CliError
            raise CliError(f"error: cannot keep the prepared runs in {prepared.folder(root)}: "
                           f"{e.strerror or e}") from None
        wall = time.perf_counter() - t0
        print(f"prepared {title} in {wall:.0f} s: {place}")
    return 0


def _estimate(kind: str, settings, device: str, root) -> str:
    """'about 3–4 min on this server (…)' before a run."""
    try:
        if kind == "training":
            from resnet_core.training.estimate import estimate_run
            from resnet_core.training.run import make_run
            s = settings
            run = make_run(s["nets"], s["data"], steps=s["steps"], batch_size=s["batch"], input_size=s["input_size"],
                           seed=s["seed"], lr=s["lr"], device=device)
            est = estimate_run(run, root)
            run.close()
            assert est is not None
            return f"{est.total.text()} ({est.note()})"
        from resnet_core.experiments import lesion, timing
        from resnet_core.experiments.settings import LesionSettings
        t = timing.estimate(lesion, LesionSettings(pair=settings), device=device, data_root=root)
        assert t is not None  # measured when it was not yet
        return f"{t.training.text()} ({t.training_note})"
    except Exception as e:  # noqa: BLE001 - an estimate that cannot be made is said, the run still goes
        return f"no estimate ({e})"


def register(sub) -> None:
    p = sub.add_parser("prepare", help="train once, for every session of the server, what a lesson would train",
                       description=__doc__.split("\n\n")[0] + " Saved under the operator's data folder; the app's "
                       "sessions reuse them, also after a restart.")
    p.add_argument("--training", action="store_true", help="the Training lab's default run (four nets)")
    p.add_argument("--experiments", action="store_true", help="the lesion study's and the loss landscape's pairs")
    p.add_argument("--class-length", action="store_true", help="also the class-length versions of each")
    p.add_argument("--list", action="store_true", help="list what is prepared, with when and how it was trained")
    p.add_argument("--data-dir", metavar="DIR", default=None,
                   help="the operator's data folder (default $RESNET_EXPLORER_DATA_DIR; the runs go in its "
                        "resnet-explorer/prepared folder)")
    p.add_argument("--steps", type=int, metavar="N", default=None,
                   help="train every run for N steps instead of its default (the app reuses a run only for the "
                        "same settings: its steps too)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--quiet", action="store_true", help="no estimates or progress on stderr")
    p.set_defaults(run=cmd_prepare)
