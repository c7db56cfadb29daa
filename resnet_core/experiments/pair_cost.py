"""What training a pair (a residual net and its plain twin) costs, and the figures of a trained pair the
lesion study and the loss landscape need for their own cost: the shared part of their admission."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from resnet_core.device import estimate_pass
from resnet_core.experiments.common import ExperimentError, Shrink, check_settings, halve
from resnet_core.experiments.pair import PAIR_BOUNDS
from resnet_core.experiments.trained import twin_of
from resnet_core.structure.plan import plan as make_plan
from resnet_core.structure.presets import get_preset
from resnet_core.structure.spec import ArchSpec
from resnet_core.structure.trace import trace

# images in each data source (train + held-out) and the held-out share: what a pair trains and is judged on
DATA_IMAGES = {"digits": (1797, 0.2), "synthetic": (3000, 0.2), "cifar": (60000, 1 / 6)}


@dataclass(frozen=True)
class PairCost:
    """What training a pair takes, and the numbers the experiments after it need."""

    memory: int  # bytes while training (both nets, their gradients and momentum, a batch's activations, the data)
    work: int  # multiply-adds of the training
    param_bytes: int  # both nets' weights
    activation_bytes: int  # the larger net's layer outputs per image (float32)
    largest_activation_bytes: int  # the largest single layer output per image, of either net
    mult_adds: int  # the larger net's multiply-adds per image
    blocks: int  # residual blocks of the residual net
    n_train: int
    n_test: int


def _traces(specs: Sequence[Any]) -> list[Any]:
    return [_trace(s) for s in specs]


@functools.lru_cache(maxsize=16)
def _trace(spec: Any) -> Any:
    return trace(spec)


def pair_cost(ps: Any, specs: Sequence[Any] | None = None, n_train: int | None = None, n_test: int | None = None
              ) -> PairCost:
    """The cost of training the pair of PairSettings `ps` (specs: the residual preset and its twin at the
    pair's input size), or, given the `specs` and data sizes of a pair trained elsewhere, the figures the
    experiments need (memory and work of training then 0)."""
    check_settings(ps, PAIR_BOUNDS)
    trained_here = specs is None
    if specs is None:
        specs = pair_specs(ps.residual, ps.input_size)
    traces = _traces(specs)
    bad = [t for t in traces if t.errors]
    if bad:
        raise ExperimentError(f"{bad[0].spec.name} cannot take {ps.input_size}×{ps.input_size} inputs: {bad[0].errors[0]}")
    if n_train is None or n_test is None:
        total, held = DATA_IMAGES.get(str(ps.data).split(":")[0], DATA_IMAGES["cifar"])
        n_test = int(total * held)
        n_train = total - n_test
    memory = work = 0
    if trained_here:
        memory = sum(estimate_pass(t.param_bytes, t.activation_bytes, ps.batch_size, backward=True, optimizer=True).total
                     for t in traces)
        memory += 2 * ps.processes * (n_train + n_test) * 3 * ps.input_size ** 2 * 4  # the data, raw and fitted
        work = 3 * sum(t.mult_adds for t in traces) * ps.batch_size * ps.steps
    blocks = len(make_plan(specs[0]).blocks)
    largest = max((r.activation_bytes for t in traces for r in t.layers), default=0)
    return PairCost(memory, work, sum(t.param_bytes for t in traces), max(t.activation_bytes for t in traces),
                    largest, max(t.mult_adds for t in traces), blocks, n_train, n_test)


def pair_specs(residual: str, input_size: int) -> tuple[ArchSpec, ArchSpec]:
    """The residual preset and its plain twin, CIFAR-like (3 channels, 10 classes) at this input size."""
    return _pair_specs_cached(residual, int(input_size))


@functools.lru_cache(maxsize=64)
def _pair_specs_cached(residual: str, input_size: int) -> tuple[ArchSpec, ArchSpec]:
    def cifar_like(name: str) -> ArchSpec:
        return get_preset(name).replace(in_channels=3, input_size=(input_size, input_size), num_classes=10)
    plain = twin_of(residual)
    return cifar_like(residual), cifar_like(plain)


def pair_shrinks(least_input: int = 8) -> tuple[Shrink, ...]:
    """Knobs of the pair's training to shrink (settings with a `pair` field): steps, batch, input size."""
    def knob(name: str, least: int) -> Shrink:
        def shrink(s: Any) -> Any:
            v = halve(getattr(s.pair, name), least)
            return None if v is None else replace(s, pair=replace(s.pair, **{name: v}))
        return shrink
    return (knob("steps", 50), knob("batch_size", 2), knob("input_size", least_input))


def trained_pair_figures(pair: Any) -> tuple[list[Any], int, int]:
    """(specs, n_train, n_test) of a pair trained elsewhere (a TrainedPair)."""
    return ([pair.specs[pair.residual_label], pair.specs[pair.plain_label]], int(pair.data.n_train),
            int(pair.data.n_test))
