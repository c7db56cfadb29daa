"""The paper's full CIFAR-10 recipe (He et al. 2015, §4.2) and its Table 6, to compare a run against.

    SGD, momentum 0.9, weight decay 1e-4, mini-batch 128 (over every worker), learning rate 0.1 divided
    by 10 at 32k and 48k iterations, stop at 64k; a 45k/5k train/validation split; 4 pixels of zero
    padding, a random 32×32 crop and a horizontal flip; for ResNet-110, lr 0.01 until the training error
    is below 80 % (about 400 iterations), then 0.1.

The paper subtracts the per-pixel mean; this project normalises per channel (mean and std of the train
split), which the networks absorb in their first convolution and batch norm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from resnet_core.training.config import TrainError

# He et al. 2015, Table 6: test error (%) on CIFAR-10 (ResNet-110: best of 5 runs; mean 6.61 ± 0.16)
PAPER_TABLE6_ERROR = {"resnet20": 8.75, "resnet32": 7.51, "resnet44": 7.17, "resnet56": 6.97,
                      "resnet110": 6.43, "resnet1202": 7.93}


@dataclass(frozen=True)
class Recipe:
    name: str
    title: str
    batch_size: int  # images per step over every worker (divided among them)
    lr: float  # not scaled with the number of workers: the batch is the paper's whatever N is
    momentum: float
    weight_decay: float
    milestones: tuple[int, ...]  # ÷10 at these iterations
    steps: int  # where the paper stops
    val_fraction: float  # of the 50k train images held out for validation (5k)
    augment: bool  # pad 4, random crop, flip
    warmup_depth: int  # nets this deep warm up at lr/10 until the training error is below 80 %
    input_size: int
    eval_every: int  # validation every this many steps

    def train_config(self, steps: int | None = None) -> dict[str, Any]:
        """TrainConfig fields (and the step count) of this recipe; `steps` shortens it (a short check)."""
        return {"steps": self.steps if steps is None else steps, "lr": self.lr, "momentum": self.momentum,
                "weight_decay": self.weight_decay, "schedule": "step", "milestones": self.milestones,
                "augment": self.augment, "warmup_mode": "error80", "warmup_depth": self.warmup_depth,
                "eval_every": self.eval_every}

    def describe(self) -> str:
        marks = " and ".join(f"{m // 1000}k" for m in self.milestones)
        return (f"{self.title}: batch {self.batch_size}, SGD momentum {self.momentum}, weight decay "
                f"{self.weight_decay:g}, lr {self.lr} ÷10 at {marks}, stop at {self.steps // 1000}k, "
                f"{round(50 * (1 - self.val_fraction))}k/{round(50 * self.val_fraction)}k split, "
                f"pad 4 + random crop + flip, warm-up at lr {self.lr / 10:g} for depth ≥ {self.warmup_depth} "
                "until training error < 80 %")


RECIPES = {
    "he2015-cifar": Recipe("he2015-cifar", "He et al. 2015 (§4.2) CIFAR-10", batch_size=128, lr=0.1, momentum=0.9,
                           weight_decay=1e-4, milestones=(32_000, 48_000), steps=64_000, val_fraction=0.1,
                           augment=True, warmup_depth=110, input_size=32, eval_every=2000),
}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise TrainError(f"unknown recipe {name!r}; use {', '.join(RECIPES)}") from None


def paper_error(net_name: str) -> float | None:
    """Table 6's test error (%) for a preset name (ignoring a '-nobn' or label suffix), or None."""
    return PAPER_TABLE6_ERROR.get(net_name.split()[0])
