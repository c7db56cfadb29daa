"""What a run shows, in sentences computed from its numbers, true at whatever step it stopped.

`summarise(result, experiment)` compares the nets' final training losses (the mean of the last steps)
the way each experiment asks: plain56 against plain20 (degradation), resnet56 against both, and each
net with batch norm against the same net without. A run stopped before degradation appears says so
instead of repeating the paper. (How long a run takes is estimated in estimate.py, from this server's
measurements.)
"""

from __future__ import annotations

import math

from resnet_core.training.results import NetResult, TrainResult

CLEAR = 1.25  # a loss this many times another's is a clear difference; closer is "about even"


def _loss(r: NetResult) -> float:
    return r.final_loss if r.diverged_at is None else float("nan")


def _compare(a: NetResult, b: NetResult) -> tuple[str, float]:
    """'higher' | 'lower' | 'even' | 'diverged', and the ratio a/b of their final training losses."""
    la, lb = _loss(a), _loss(b)
    if not (math.isfinite(la) and math.isfinite(lb)):
        return "diverged", float("nan")
    ratio = la / lb if lb > 0 else float("inf")
    if ratio >= CLEAR:
        return "higher", ratio
    if ratio <= 1 / CLEAR:
        return "lower", ratio
    return "even", ratio


def _times(ratio: float) -> str:
    return f"{ratio:.1f}×" if ratio < 10 else f"{ratio:.0f}×"


def _diverged(r: NetResult) -> str:
    return f"{r.net} diverged at step {r.diverged_at} (its loss became non-finite) and stopped training."


def _when(result: TrainResult) -> str:
    total = result.config.steps
    if result.stopped:
        return f"Stopped at step {result.steps_done:,} of {total:,}"
    return f"After all {result.steps_done:,} steps"


def _degradation(result: TrainResult, by: dict[str, NetResult]) -> list[str]:
    out = []
    p20, p56, r20, r56 = (by.get(k) for k in ("plain20", "plain56", "resnet20", "resnet56"))
    if p20 and p56:
        how, ratio = _compare(p56, p20)
        if how == "higher":
            out.append(f"plain56's training loss ({p56.final_loss:.3g}) is {_times(ratio)} plain20's "
                       f"({p20.final_loss:.3g}): the deeper plain net trains worse on its own training data, "
                       "although it could copy plain20 and make its extra layers identities — degradation.")
        elif how == "lower":
            out.append(f"plain56's training loss ({p56.final_loss:.3g}) is still below plain20's "
                       f"({p20.final_loss:.3g}): degradation has not appeared yet at this step.")
        elif how == "even":
            out.append(f"plain56 ({p56.final_loss:.3g}) and plain20 ({p20.final_loss:.3g}) are about even so far: "
                       "no clear degradation yet.")
        else:
            out += [_diverged(r) for r in (p20, p56) if r.diverged_at is not None]
    if r56 and p56:
        how, ratio = _compare(r56, p56)
        if how == "lower":
            out.append(f"resnet56, just as deep as plain56, is at {r56.final_loss:.3g}, {_times(1 / ratio)} lower: "
                       "the shortcuts make the deep net trainable.")
        elif how == "higher":
            out.append(f"resnet56 ({r56.final_loss:.3g}) is above plain56 ({p56.final_loss:.3g}) at this step: "
                       "the residual net has not pulled ahead yet.")
        elif how == "even":
            out.append(f"resnet56 ({r56.final_loss:.3g}) and plain56 ({p56.final_loss:.3g}) are about even so far.")
        elif r56.diverged_at is not None:
            out.append(_diverged(r56))
    if r56 and r20:
        how, ratio = _compare(r56, r20)
        if how == "even":
            out.append(f"resnet56 ({r56.final_loss:.3g}) trains about as well as resnet20 ({r20.final_loss:.3g}).")
        elif how == "lower":
            out.append(f"resnet56 ({r56.final_loss:.3g}) is below resnet20 ({r20.final_loss:.3g}): with shortcuts, "
                       "the deeper net trains better.")
        elif how == "higher":
            out.append(f"resnet56 ({r56.final_loss:.3g}) is still {_times(ratio)} resnet20's loss "
                       f"({r20.final_loss:.3g}): in short runs the deeper residual net lags (in the paper's "
                       "64,000 iterations it ends ahead).")
    return out


def _batchnorm(result: TrainResult, by: dict[str, NetResult]) -> list[str]:
    out = []
    for name in ("resnet20", "plain20"):
        with_bn, without = by.get(name), by.get(f"{name} no BN")
        if not (with_bn and without):
            continue
        if without.diverged_at is not None:
            out.append(f"{name} without batch norm diverged at step {without.diverged_at}; with it, its loss is "
                       f"{_loss(with_bn):.3g}.")
            continue
        how, ratio = _compare(without, with_bn)
        if how == "higher":
            out.append(f"{name} without batch norm is at {without.final_loss:.3g}, {_times(ratio)} the loss with it "
                       f"({with_bn.final_loss:.3g}): batch norm speeds its training.")
        elif how == "lower":
            out.append(f"{name} without batch norm is at {without.final_loss:.3g}, below the loss with it "
                       f"({with_bn.final_loss:.3g}) at this step.")
        elif how == "even":
            out.append(f"{name} trains about as well without batch norm ({without.final_loss:.3g}) as with it "
                       f"({with_bn.final_loss:.3g}) so far.")
    return out


def summarise(result: TrainResult, experiment: str | None = None) -> list[str]:
    """Sentences about this result (the first says at which step); each one is computed from its numbers."""
    by = {r.net: r for r in result.nets}
    live = [r for r in result.nets if r.diverged_at is None and math.isfinite(r.final_loss)]
    head = _when(result)
    if live:
        best, worst = min(live, key=lambda r: r.final_loss), max(live, key=lambda r: r.final_loss)
        head += (f", the lowest training loss is {best.net}'s ({best.final_loss:.3g})" +
                 (f" and the highest {worst.net}'s ({worst.final_loss:.3g})." if worst is not best else "."))
    else:
        head += ": every net diverged."
    out = [head]
    if experiment == "degradation":
        out += _degradation(result, by)
    elif experiment == "batchnorm":
        out += _batchnorm(result, by)
    out += [_diverged(r) for r in result.nets if r.diverged_at is not None and experiment is None]
    return out
