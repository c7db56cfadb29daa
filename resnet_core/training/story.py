"""What a run shows, in sentences computed from its numbers, true at whatever step it stopped.

`summarise(result, experiment)` compares the nets' final training losses (the mean of the last steps)
the way each experiment asks: plain56 against plain20 (degradation), resnet56 against both, and each
net with batch norm against the same net without. A run stopped before degradation appears says so
instead of repeating the paper. (How long a run takes is estimated in estimate.py, from this server's
measurements.)
"""

from __future__ import annotations

import math

from resnet_core.i18n import _
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


def _g(x: float) -> str:
    return f"{x:.3g}"


def _times(ratio: float) -> str:
    return _("{x}×", x=f"{ratio:.1f}" if ratio < 10 else f"{ratio:.0f}")


def _diverged(r: NetResult) -> str:
    return _("{net} diverged at step {step} (its loss became non-finite) and stopped training.",
             net=r.net, step=r.diverged_at)


def _when(result: TrainResult) -> str:
    total = result.config.steps
    if result.stopped:
        return _("Stopped at step {step} of {total}", step=f"{result.steps_done:,}", total=f"{total:,}")
    return _("After all {steps} steps", steps=f"{result.steps_done:,}")


def _degradation(result: TrainResult, by: dict[str, NetResult]) -> list[str]:
    out = []
    p20, p56, r20, r56 = (by.get(k) for k in ("plain20", "plain56", "resnet20", "resnet56"))
    if p20 and p56:
        how, ratio = _compare(p56, p20)
        f = {"p56": _g(p56.final_loss), "p20": _g(p20.final_loss)}
        if how == "higher":
            out.append(_("plain56's training loss ({p56}) is {times} plain20's ({p20}): the deeper plain net trains "
                         "worse on its own training data, although it could copy plain20 and make its extra layers "
                         "identities — degradation.", times=_times(ratio), **f))
        elif how == "lower":
            out.append(_("plain56's training loss ({p56}) is still below plain20's ({p20}): degradation has not "
                         "appeared yet at this step.", **f))
        elif how == "even":
            out.append(_("plain56 ({p56}) and plain20 ({p20}) are about even so far: no clear degradation yet.", **f))
        else:
            out += [_diverged(r) for r in (p20, p56) if r.diverged_at is not None]
    if r56 and p56:
        how, ratio = _compare(r56, p56)
        f = {"r56": _g(r56.final_loss), "p56": _g(p56.final_loss)}
        if how == "lower":
            out.append(_("resnet56, just as deep as plain56, is at {r56}, {times} lower: the shortcuts make the deep "
                         "net trainable.", r56=f["r56"], times=_times(1 / ratio)))
        elif how == "higher":
            out.append(_("resnet56 ({r56}) is above plain56 ({p56}) at this step: the residual net has not pulled "
                         "ahead yet.", **f))
        elif how == "even":
            out.append(_("resnet56 ({r56}) and plain56 ({p56}) are about even so far.", **f))
        elif r56.diverged_at is not None:
            out.append(_diverged(r56))
    if r56 and r20:
        how, ratio = _compare(r56, r20)
        f = {"r56": _g(r56.final_loss), "r20": _g(r20.final_loss)}
        if how == "even":
            out.append(_("resnet56 ({r56}) trains about as well as resnet20 ({r20}).", **f))
        elif how == "lower":
            out.append(_("resnet56 ({r56}) is below resnet20 ({r20}): with shortcuts, the deeper net trains better.",
                         **f))
        elif how == "higher":
            out.append(_("resnet56 ({r56}) is still {times} resnet20's loss ({r20}): in short runs the deeper "
                         "residual net lags (in the paper's 64,000 iterations it ends ahead).",
                         times=_times(ratio), **f))
    return out


def _batchnorm(result: TrainResult, by: dict[str, NetResult]) -> list[str]:
    out = []
    for name in ("resnet20", "plain20"):
        with_bn, without = by.get(name), by.get(f"{name} no BN")
        if not (with_bn and without):
            continue
        if without.diverged_at is not None:
            out.append(_("{name} without batch norm diverged at step {step}; with it, its loss is {loss}.",
                         name=name, step=without.diverged_at, loss=_g(_loss(with_bn))))
            continue
        how, ratio = _compare(without, with_bn)
        f = {"name": name, "without": _g(without.final_loss), "with_bn": _g(with_bn.final_loss)}
        if how == "higher":
            out.append(_("{name} without batch norm is at {without}, {times} the loss with it ({with_bn}): batch "
                         "norm speeds its training.", times=_times(ratio), **f))
        elif how == "lower":
            out.append(_("{name} without batch norm is at {without}, below the loss with it ({with_bn}) at this "
                         "step.", **f))
        elif how == "even":
            out.append(_("{name} trains about as well without batch norm ({without}) as with it ({with_bn}) so far.",
                         **f))
    return out


def summarise(result: TrainResult, experiment: str | None = None) -> list[str]:
    """Sentences about this result (the first says at which step); each one is computed from its numbers, in the
    language of the run that calls it (call it where the sentences are shown)."""
    by = {r.net: r for r in result.nets}
    live = [r for r in result.nets if r.diverged_at is None and math.isfinite(r.final_loss)]
    when = _when(result)
    if live:
        best, worst = min(live, key=lambda r: r.final_loss), max(live, key=lambda r: r.final_loss)
        if worst is not best:
            head = _("{when}, the lowest training loss is {best}'s ({best_loss}) and the highest {worst}'s "
                     "({worst_loss}).", when=when, best=best.net, best_loss=_g(best.final_loss), worst=worst.net,
                     worst_loss=_g(worst.final_loss))
        else:
            head = _("{when}, the lowest training loss is {best}'s ({best_loss}).", when=when, best=best.net,
                     best_loss=_g(best.final_loss))
    else:
        head = _("{when}: every net diverged.", when=when)
    out = [head]
    if experiment == "degradation":
        out += _degradation(result, by)
    elif experiment == "batchnorm":
        out += _batchnorm(result, by)
    out += [_diverged(r) for r in result.nets if r.diverged_at is not None and experiment is None]
    return out
