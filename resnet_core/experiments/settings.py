"""Every experiment's settings, their defaults and their legal ranges: one definition, without torch (the
command line reads its defaults and bounds from here to print its help; each experiment's module
re-exports its own)."""

from __future__ import annotations

from dataclasses import dataclass

from resnet_core.experiments.pair import LANDSCAPE_PAIR, LESION_PAIR, PairSettings
from resnet_core.structure.spec import ArchSpec, Stage, Stem

SEED_BOUND = (0, 2**31 - 1)  # an experiment's own seeds (the pair's training seed has the same range)
MAX_DEPTHS = 16  # depths listed in one run (shatter, erf)


# ------------------------------------------------------------------------------------------- signal

def reference_spec(blocks: int = 16, width: int = 16, size: int = 32) -> ArchSpec:
    """The acceptance network: a CIFAR-style pre-activation ResNet, one stage of `blocks` basic blocks.

    One stage, so that every block's shortcut is the identity (a projection or option A's zero channels
    would reset the stream's variance at a stage change, as the paper's plots show).
    """
    return ArchSpec(name=f"preact CIFAR {blocks} blocks", input_size=(size, size), stem=Stem(type="cifar", channels=width),
                    stages=(Stage(block="preact_basic", blocks=blocks, width=width),), shortcut="B",
                    num_classes=10, init="kaiming_fan_in")


@dataclass(frozen=True)
class SignalSettings:
    spec: ArchSpec | None = None  # the network (None: reference_spec(); its input shape is used)
    batch: int = 32  # Gaussian input images (batch statistics need more than one)
    seed: int = 0  # weights and inputs

    def describe(self) -> dict:
        s = self.spec or reference_spec()
        return {"network": s.name, "blocks": sum(st.blocks for st in s.stages), "input": list(s.input_shape),
                "batch": self.batch, "seed": self.seed, "init": s.init, "mode": "train (batch statistics)"}


SIGNAL_BOUNDS = {"batch": (2, 512), "seed": SEED_BOUND}


# ------------------------------------------------------------------------------------------- shatter

@dataclass(frozen=True)
class ShatterSettings:
    width: int = 200  # units per layer (the paper: 200)
    depths: tuple[int, ...] = (1, 2, 5, 10, 20, 30, 50)  # layers (feed-forward) or blocks (residual)
    seeds: int = 10  # networks per point, averaged (seeds seed … seed + seeds − 1)
    points: int = 256  # inputs along the line (the paper: 256)
    low: float = -2.0  # the line's ends
    high: float = 2.0
    bn: bool = True  # batch norm (the paper's nets have it)
    bias: bool = True  # biases
    seed: int = 0

    def describe(self) -> dict:
        return {"width": self.width, "depths": list(self.depths), "seeds": self.seeds, "points": self.points,
                "line": [self.low, self.high], "bn": self.bn, "bias": self.bias, "seed": self.seed,
                "init": "He (fan-in) weights; biases uniform ±1/√fan_in",
                "batch norm": "statistics of the line's points, held fixed"}


SHATTER_BOUNDS = {"width": (1, 2048), "depths": (1, 200), "seeds": (1, 100), "points": (8, 4096), "low": (-1e3, 1e3),
                  "high": (-1e3, 1e3), "seed": SEED_BOUND}
SHATTER_MAX_UNITS = 200_000  # width × the largest depth


# ------------------------------------------------------------------------------------------- erf

@dataclass(frozen=True)
class ErfSettings:
    depths: tuple[int, ...] = (4, 8, 16, 32)  # conv layers in the stacks (even: the residual stack pairs them)
    channels: int = 16  # width of every layer
    samples: int = 8  # input images per network (unit Gaussian)
    seeds: int = 4  # random networks per depth; the map is the mean over samples × seeds
    seed: int = 0

    def describe(self) -> dict:
        return {"depths": list(self.depths), "channels": self.channels, "samples": self.samples,
                "seeds": self.seeds, "seed": self.seed, "kernel": 3, "init": "He (fan-in), no normalisation",
                "input": "unit Gaussian, (2n + 1)² pixels: exactly the theoretical receptive field"}


ERF_BOUNDS = {"depths": (2, 64), "channels": (1, 128), "samples": (1, 64), "seeds": (1, 32), "seed": SEED_BOUND}


# ------------------------------------------------------------------------------------------- lesion

@dataclass(frozen=True)
class LesionSettings:
    pair: PairSettings = LESION_PAIR  # what to train when no trained pair is given
    draws: int = 5  # random deletion sets per k
    max_k: int | None = None  # largest k of the random deletions (None: every block but one)
    seed: int = 0  # the random deletion sets

    def describe(self) -> dict:
        return {**self.pair.describe(), "draws": self.draws, "max_k": self.max_k, "lesion_seed": self.seed}


LESION_BOUNDS = {"draws": (1, 100), "seed": SEED_BOUND}


# ------------------------------------------------------------------------------------------- landscape

@dataclass(frozen=True)
class LandscapeSettings:
    pair: PairSettings = LANDSCAPE_PAIR  # what to train when no trained pair is given (see pair.py)
    points_1d: int = 11  # α values in [−span, span] (steps of 0.2 at span 1)
    points_2d: int = 7  # grid side of the 2-D slice (points_2d² evaluations per net)
    span: float = 1.0  # the slices cover [−span, span] in filter-normalised units
    images: int = 64  # training images the loss is measured on (a seeded subset); the slices then take
    # well under a minute and training the 56-layer pair is most of the default run
    seed: int = 0  # the random directions and the subset

    def describe(self) -> dict:
        return {**self.pair.describe(), "points_1d": self.points_1d, "points_2d": self.points_2d, "span": self.span,
                "images": self.images, "direction_seed": self.seed,
                "normalisation": "filter-wise; biases and batch-norm parameters not moved; eval mode"}


LANDSCAPE_BOUNDS = {"points_1d": (3, 101), "points_2d": (3, 41), "span": (0.01, 10.0), "images": (8, 10_000),
                    "seed": SEED_BOUND}
