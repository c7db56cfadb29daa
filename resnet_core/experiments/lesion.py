"""Lesion study (Veit, Wilber, Belongie, NeurIPS 2016): residual networks behave like ensembles of
relatively shallow networks.

Delete one block at a time at test time from a trained residual net and from its trained plain twin,
and measure held-out accuracy. In the residual net a deleted block becomes its shortcut (its residual
branch F is removed: out = act(shortcut(x)) for a post-activation block, shortcut(x) for a
pre-activation one); in the plain twin the block's input passes unchanged (where the block changes the
shape, by the parameter-free option-A mapping: subsample by the stride, pad the new channels with zeros).
Also: the accuracy after k random deletions (several draws each), and the distribution of path lengths —
a net of n blocks unrolls into 2ⁿ paths whose lengths follow Binomial(n, ½).
"""

from __future__ import annotations

import math
import random
import statistics
import time
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

import torch
from torch import nn

from resnet_core.device import CPU_THREADS, estimate_forward
from resnet_core.experiments.common import (
    Cost,
    ExperimentError,
    ExperimentResult,
    OnProgress,
    Paper,
    Stopped,
    Verdict,
    admitted,
    check_settings,
    halve,
    no_progress,
    pct,
    said,
    said_all,
    stop_fn,
    threads,
)
from resnet_core.experiments.pair_cost import pair_cost, pair_shrinks, trained_pair_figures
from resnet_core.experiments.settings import LESION_BOUNDS as BOUNDS
from resnet_core.experiments.settings import LesionSettings
from resnet_core.experiments.trained import TrainedPair, accuracy, ensure_pair
from resnet_core.i18n import N_
from resnet_core.lab.probes import blocks_of
from resnet_core.structure.build import PadShortcut, PreActBasicBlock, PreActBottleneck, ResidualBlock

PAPER = Paper(
    citation=N_("Veit, Wilber, Belongie, \"Residual Networks Behave Like Ensembles of Relatively Shallow Networks\", "
             "NeurIPS 2016"),
    claim=N_("Deleting a single block from a trained residual network at test time barely changes its accuracy — "
          "the exceptions are the downsampling blocks, whose deletion costs noticeably more — while deleting a "
          "layer of a plain network ruins it: residual nets behave like ensembles of many paths of different "
          "lengths."),
    url="https://arxiv.org/abs/1605.06431")
TITLE = N_("Lesion study")

RESIDUAL_MIN = 0.85  # every single deletion of a block that does not downsample: the residual net keeps at least this
RESIDUAL_MEDIAN = 0.90  # … and at least this in the median
PLAIN_MAX = 0.30  # every single deletion: the plain twin falls to at most this


# ------------------------------------------------------------------------------------------- lesion

def shortcut_only(block: ResidualBlock, x: torch.Tensor) -> torch.Tensor:
    """What a deleted block computes: its shortcut alone (residual), or its input passed on (plain)."""
    act = getattr(block, block.act_name)
    # no activation after the addition: pre-activation blocks, and ConvNeXt's (post_act False)
    preact = isinstance(block, (PreActBasicBlock, PreActBottleneck)) or not getattr(block, "post_act", True)
    if block.skip and block.add is not None:
        if block.downsample is None:
            s = x
        elif block.project_preact and isinstance(block, (PreActBasicBlock, PreActBottleneck)):
            s = block.downsample(act(block.bn1(x)))
        else:
            s = block.downsample(x)
        return s if preact else act(s)
    return pass_through(block, x)


def block_shape(block: nn.Module) -> tuple[int, int, int]:
    """(in channels, out channels, stride) of a block, read off its first and last convs."""
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d) and m not in set(
        block.downsample.modules() if isinstance(block.downsample, nn.Module) else [])]
    stride = max(max(c.stride) for c in convs)
    return convs[0].in_channels, convs[-1].out_channels, stride


def pass_through(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The plain block's input, unchanged where the shapes allow; subsampled and zero-padded where they do not."""
    c_in, c_out, stride = block_shape(block)
    if c_in == c_out and stride == 1:
        return x
    if c_out < c_in:
        raise ExperimentError("a block that reduces channels cannot pass its input on unchanged")
    return PadShortcut(c_out, stride)(x)


@contextmanager
def lesioned(model: nn.Module, blocks: Sequence[str]) -> Iterator[nn.Module]:
    """The model with the named blocks deleted (each runs `shortcut_only`); restored on exit."""
    named = dict(blocks_of(model))
    missing = [b for b in blocks if b not in named]
    if missing:
        raise ExperimentError(f"no block {missing[0]!r} in this network; it has {', '.join(named)}")
    patched = []
    try:
        for name in blocks:
            block = named[name]
            block.forward = types.MethodType(shortcut_only, block)
            patched.append(block)
        yield model
    finally:
        for block in patched:
            del block.forward


def block_names(model: nn.Module) -> list[str]:
    return [n for n, m in blocks_of(model) if isinstance(m, ResidualBlock)]


def path_lengths(n: int) -> list[dict]:
    """The 2ⁿ paths of an unrolled residual net of n blocks by length: Binomial(n, ½)."""
    return [{"length": k, "paths": math.comb(n, k), "fraction": math.comb(n, k) / 2 ** n} for k in range(n + 1)]


# ------------------------------------------------------------------------------------------- the run

EVAL_BATCH = 512  # held-out images per forward pass (trained.accuracy)


def cost(settings: LesionSettings, pair: TrainedPair | None = None) -> Cost:
    """Training the pair (unless `pair` is given), then 2 + 2n + 2·k_max·draws evaluations of the held-out
    set (n blocks), one net at a time in batches of EVAL_BATCH."""
    if pair is None:
        pc = pair_cost(settings.pair)
    else:
        specs, n_train, n_test = trained_pair_figures(pair)
        pc = pair_cost(settings.pair, specs, n_train, n_test)
    n = pc.blocks
    max_k = max(1, min(settings.max_k or n - 1, n - 1))
    evals = 2 + 2 * n + 2 * max_k * settings.draws
    batch = max(1, min(EVAL_BATCH, pc.n_test))
    eval_memory = estimate_forward(pc.param_bytes, pc.largest_activation_bytes, batch).total
    trains = "" if pair is not None else f"training {settings.pair.residual} and its twin ({settings.pair.steps} steps " \
        f"at batch {settings.pair.batch_size}, {settings.pair.input_size}×{settings.pair.input_size}), then "
    return Cost(f"the lesion study: {trains}{evals} evaluations of {pc.n_test:,} held-out images",
                max(pc.memory, eval_memory), pc.work + evals * pc.n_test * pc.mult_adds)


SHRINKS = (lambda s: None if halve(s.draws, 1) is None else replace(s, draws=halve(s.draws, 1)), *pair_shrinks())


def run(settings: LesionSettings = LesionSettings(), pair: TrainedPair | None = None, should_stop=None,
        on_progress: OnProgress = no_progress, make_pair: Callable[[], TrainedPair] | None = None) -> ExperimentResult:
    """Lesion `pair` (or train one from settings.pair first) and judge the result. Refused before it starts
    when its cost (training included) does not fit (`cost`). `make_pair()`, if given, supplies the pair
    inside the admission (the app trains its pair so: its training is counted and booked)."""
    check_settings(settings, BOUNDS)
    if make_pair is not None:  # the caller trains (or finds) the pair: inside the admission, counted as training
        with admitted(settings, cost, SHRINKS):
            return _run(settings, make_pair(), should_stop, on_progress)
    with admitted(settings, lambda s: cost(s, pair), SHRINKS if pair is None else SHRINKS[:1]):
        return _run(settings, pair, should_stop, on_progress)


def _run(settings: LesionSettings, pair: TrainedPair | None, should_stop, on_progress: OnProgress) -> ExperimentResult:
    stop = stop_fn(should_stop)
    t0 = time.perf_counter()
    pair, base = ensure_pair(pair, settings.pair, stop, on_progress, 0.8, said(N_("the lesion study needs trained networks")))
    res_m, plain_m = pair.models[pair.residual_label], pair.models[pair.plain_label]
    names = block_names(res_m)
    if names != block_names(plain_m):
        raise ExperimentError(f"{pair.residual_label} and {pair.plain_label} do not have the same blocks")
    if len(names) < 2:
        raise ExperimentError("the lesion study needs a network of at least two blocks")
    x, y = pair.data.x_test, pair.data.y_test
    n = len(names)
    max_k = min(settings.max_k or n - 1, n - 1)
    if max_k < 1:
        raise ExperimentError(f"max_k must be at least 1, got {settings.max_k}")
    total = n + max_k * settings.draws + 1
    done = [0]

    def tick(text: str) -> None:
        done[0] += 1
        on_progress(base + (1 - base) * done[0] / total, text)
        if stop():
            raise Stopped

    singles, curve = [], []
    stopped = False
    full = {"residual": accuracy(res_m, x, y), "plain": accuracy(plain_m, x, y)}
    try:
        with threads(CPU_THREADS):
            for i, name in enumerate(names):
                with lesioned(res_m, [name]):
                    a_res = accuracy(res_m, x, y)
                with lesioned(plain_m, [name]):
                    a_plain = accuracy(plain_m, x, y)
                c_in, c_out, stride = block_shape(dict(blocks_of(res_m))[name])
                singles.append({"index": i + 1, "block": name, "downsampling": stride != 1 or c_in != c_out,
                                "residual": a_res, "plain": a_plain})
                tick(said(N_("deleting {name}"), name=name))
            rng = random.Random(settings.seed)
            curve.append({"k": 0, "net": "residual", "mean": full["residual"], "min": full["residual"],
                          "max": full["residual"], "draws": 1})
            curve.append({"k": 0, "net": "plain", "mean": full["plain"], "min": full["plain"], "max": full["plain"],
                          "draws": 1})
            for k in range(1, max_k + 1):
                accs: dict[str, list[float]] = {"residual": [], "plain": []}
                for _ in range(settings.draws):
                    chosen = rng.sample(names, k)
                    with lesioned(res_m, chosen):
                        accs["residual"].append(accuracy(res_m, x, y))
                    with lesioned(plain_m, chosen):
                        accs["plain"].append(accuracy(plain_m, x, y))
                    tick(said(N_("{k} random deletions"), k=k))
                for net, values in accs.items():
                    curve.append({"k": k, "net": net, "mean": statistics.fmean(values), "min": min(values),
                                  "max": max(values), "draws": len(values)})
    except Stopped:
        stopped = True
    on_progress(1.0, said(N_("done")))
    verdict, findings = judge(singles, full, pair)
    settings_out = {**settings.describe(), "networks": [pair.residual_label, pair.plain_label], "source": pair.source,
                    "held_out_images": int(len(y)), "blocks": n}
    return ExperimentResult("lesion", TITLE, PAPER, settings_out,
                            {"single": singles, "random": curve, "paths": path_lengths(n),
                             "baseline": [{"net": k, "accuracy": v} for k, v in full.items()]},
                            verdict, findings, EXPLANATION, time.perf_counter() - t0, stopped,
                            extra={"pair": pair})


def judge(singles: list[dict], full: dict, pair: TrainedPair) -> tuple[Verdict, list[str]]:
    """The paper's criterion: single deletions of the blocks that do not downsample (Veit et al.'s exceptions
    are the downsampling blocks, whose shortcut changes the representation itself). Every block's result is
    reported, the exempted ones included, so that nothing that hurts is hidden by the criterion."""
    kept = [r for r in singles if not r["downsampling"]]
    exempt = [r for r in singles if r["downsampling"]]
    checks: list[tuple[str, bool]] = []
    findings: list[str] = []
    measured = {"residual_full": full["residual"], "plain_full": full["plain"]}
    res, plain = pair.residual_label, pair.plain_label
    if kept:
        worst = min(kept, key=lambda r: r["residual"])
        median = statistics.median(r["residual"] for r in kept)
        measured.update(residual_min=worst["residual"], residual_min_block=worst["block"], residual_median=median)
        checks.append((said(N_("{net}: the worst single deletion of a block that does not downsample ({block}) leaves "
                               "{acc} (needs ≥ {need})"), net=res, block=worst["block"], acc=pct(worst["residual"]),
                            need=pct(RESIDUAL_MIN)), worst["residual"] >= RESIDUAL_MIN))
        checks.append((said(N_("{net}: median over those {n} deletions {acc} (needs ≥ {need})"), net=res, n=len(kept),
                            acc=pct(median), need=pct(RESIDUAL_MEDIAN)), median >= RESIDUAL_MEDIAN))
    if singles:
        best = max(singles, key=lambda r: r["plain"])
        measured.update(plain_max=best["plain"], plain_max_block=best["block"],
                        first_block_residual=singles[0]["residual"])
        checks.append((said(N_("{net}: the least harmful single deletion ({block}) leaves {acc} (needs ≤ {need})"),
                            net=plain, block=best["block"], acc=pct(best["plain"]), need=pct(PLAIN_MAX)),
                       best["plain"] <= PLAIN_MAX))
        findings.append(said(N_("Unlesioned: {res} {res_acc}, {plain} {plain_acc} held-out accuracy (chance is "
                                "{chance})."), res=res, res_acc=pct(full["residual"]), plain=plain,
                             plain_acc=pct(full["plain"]), chance=pct(1 / pair.data.num_classes)))
        findings.append(said(N_("Every single deletion ({res} / {plain}; ↓ a downsampling block): {deletions}."),
                             res=res, plain=plain, deletions=", ".join(
                                 f"{r['block']}{' ↓' if r['downsampling'] else ''} {pct(r['residual'])} / "
                                 f"{pct(r['plain'])}" for r in singles)))
        if exempt:
            where = ", ".join(f"{pct(r['residual'])} ({r['block']})" for r in exempt)
            if all(r["residual"] >= RESIDUAL_MIN for r in exempt):
                findings.append(said(N_("The downsampling blocks, which the paper exempts, leave {net} at {where}: "
                                        "here they would pass the criterion too."), net=res, where=where))
            elif any(r["residual"] >= RESIDUAL_MIN for r in exempt):
                findings.append(said(N_("The downsampling blocks, which the paper exempts, leave {net} at {where}: "
                                        "some below its {need}, as the paper found them costlier."), net=res,
                                     where=where, need=pct(RESIDUAL_MIN)))
            else:
                findings.append(said(N_("The downsampling blocks, which the paper exempts, leave {net} at {where}: "
                                        "all below its {need}, as the paper found them costlier."), net=res,
                                     where=where, need=pct(RESIDUAL_MIN)))
        costly = [r for r in sorted(kept, key=lambda r: r["residual"]) if r["residual"] < RESIDUAL_MIN]
        if costly:
            hurt = said_all([said(N_("{block} ({acc}, {points} points below the unlesioned net)"), block=r["block"],
                     acc=pct(r["residual"]), points=f"{100 * (full['residual'] - r['residual']):.1f}") for r in costly])
            first = all(r["block"].startswith("layer1.") for r in costly)
            if len(costly) > 1:
                message = (N_("Inside the criterion, the deletions that hurt: {hurt}: the first stage, right after the "
                              "stem, which every path passes.") if first else
                           N_("Inside the criterion, the deletions that hurt: {hurt}."))
            else:
                message = (N_("Inside the criterion, the deletion that hurt: {hurt}: the first stage, right after the "
                              "stem, which every path passes.") if first else
                           N_("Inside the criterion, the deletion that hurt: {hurt}."))
            findings.append(said(message, hurt=hurt))
    ok = len(checks) == 3 and all(c[1] for c in checks)
    claim = said(N_("trained residual net and plain twin: deleting any single block that does not downsample (the "
                    "paper's exceptions are the downsampling blocks) leaves the residual net at ≥ {min} held-out "
                    "accuracy (median ≥ {median}); deleting any single block of the plain twin drops it to ≤ {max}"),
                 min=pct(RESIDUAL_MIN), median=pct(RESIDUAL_MEDIAN), max=pct(PLAIN_MAX))
    return Verdict(ok, claim, measured, tuple(checks)), findings


EXPLANATION = N_(
    "Write a residual block as x + F(x) and expand the whole network: every block either takes its branch or "
    "skips it, so n blocks make 2ⁿ paths from input to output, most of them of middling length (the "
    "histogram: Binomial(n, ½)). Deleting one block removes only the paths through its branch — half of them "
    "— and leaves every other path intact, so the ensemble keeps working, a little worse. A plain network has "
    "a single path; deleting any layer breaks it, and the layers after it receive inputs unlike anything they "
    "were trained on. Veit et al.'s exceptions are the downsampling blocks: there the shortcut itself changes the "
    "representation (halves the size, changes the channels), so every path is changed by the deletion. In a short "
    "training the first block, right after the stem, can also matter more than the paper's nets trained for 64,000 "
    "iterations found; the criterion does not exempt it, and every block's result is listed.")
