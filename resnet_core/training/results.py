"""What a training run produced: per-step and held-out records, per-net results, CSV, checkpoints."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnet_core.i18n import N_, _
from resnet_core.structure.build import build_model
from resnet_core.structure.spec import ArchSpec, spec_from_dict
from resnet_core.training.config import TrainConfig, TrainError

# --------------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StepRecord:
    step: int  # 1-based step just taken
    net: str  # the net's label
    loss: float  # training loss on this step's batch (train mode, before the update)
    accuracy: float  # fraction of this batch classified correctly
    lr: float  # the learning rate this step used
    time_s: float  # seconds since the run started, when the step ended


@dataclass(frozen=True)
class EvalRecord:
    step: int
    net: str
    split: str  # "heldout"
    loss: float
    accuracy: float


@dataclass(frozen=True)
class TrainProgress:
    step: int  # steps done
    total: int  # steps asked for
    elapsed_s: float  # wall seconds since the run started
    steps_per_s: float  # over the last few dozen steps
    eta_s: float  # estimated seconds left
    stopped: bool = False  # stopped before `total`
    done: bool = False  # no more steps will come

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 1.0

    def text(self) -> str:
        left = _("{s} s left", s=f"{self.eta_s:.0f}") if not self.done else (_("stopped") if self.stopped else
                                                                              _("done"))
        return _("step {step}/{total} · {rate} steps/s · {left}", step=self.step, total=self.total,
                 rate=f"{self.steps_per_s:.1f}", left=left)


@dataclass(frozen=True)
class Update:
    """What one iteration of `TrainingRun.iter` yields."""

    step: int  # steps done
    records: tuple[StepRecord, ...]  # the new step records since the last update (every net, in order)
    evals: tuple[EvalRecord, ...]  # held-out evaluations made in this update (eval_every)
    progress: TrainProgress
    diverged: tuple[str, ...] = ()  # nets whose loss became non-finite in this update (they stop training)


@dataclass(frozen=True)
class NetResult:
    net: str  # label
    spec: ArchSpec  # the spec trained: input size, channels and classes fitted to the data
    depth: int  # weighted layers
    params: int
    steps: int  # steps this net trained (fewer if stopped or diverged)
    final_loss: float  # mean training loss over the last `window` steps (the curve's end)
    train_loss: float  # loss on the train split, eval mode (running batch-norm statistics)
    train_accuracy: float
    heldout_loss: float
    heldout_accuracy: float
    time_s: float  # seconds of this net's own training steps
    warmup: bool  # whether this net warmed up
    diverged_at: int | None = None  # step at which its loss became non-finite
    val_loss: float = float("nan")  # on the validation split, when the data has one (the recipe's 5k)
    val_accuracy: float = float("nan")
    warmup_until: int | None = None  # error80 warm-up: the step its training error fell below 80 %


@dataclass
class TrainResult:
    nets: list[NetResult]
    records: list[StepRecord]
    evals: list[EvalRecord]
    config: TrainConfig
    data: str  # Dataset.describe()
    device: str  # device.describe()
    steps_done: int
    stopped: bool
    wall_s: float
    models: dict[str, nn.Module] = field(default_factory=dict, repr=False)  # the live trained models
    world_size: int = 1  # worker processes that trained it (torchrun)
    global_batch: int = 0  # images per step over every worker (0: the config's batch_size)

    @property
    def effective_batch(self) -> int:
        return self.global_batch or self.config.batch_size

    def net(self, label: str) -> NetResult:
        for r in self.nets:
            if r.net == label:
                return r
        raise KeyError(f"no net {label!r} in this run; it has {', '.join(r.net for r in self.nets)}")

    def state_dict(self, label: str) -> dict[str, torch.Tensor]:
        """The trained weights (torchvision-format keys) as CPU tensors, a copy."""
        self.net(label)
        return {k: v.detach().to("cpu", copy=True) for k, v in self.models[label].state_dict().items()}

    def trained_model(self, label: str, device: torch.device | str = "cpu") -> nn.Module:
        """A private copy of the trained model in eval mode, for the live lab (hooks may go on it)."""
        spec = self.net(label).spec
        model = build_model(spec)
        model.load_state_dict(self.state_dict(label))
        return model.to(device).eval()

    def save_checkpoint(self, label: str, path: str | Path) -> tuple[Path, Path]:
        r = self.net(label)
        meta = {"net": label, "steps": r.steps, "final_loss": r.final_loss, "train_accuracy": r.train_accuracy,
                "heldout_accuracy": r.heldout_accuracy, "data": self.data, "config": asdict(self.config)}
        return save_checkpoint(path, self.state_dict(label), r.spec, meta)

    def table_rows(self) -> list[dict[str, Any]]:
        return [{"net": r.net, "depth": r.depth, "params": r.params, "steps": r.steps,
                 "final_loss": r.final_loss, "train_loss": r.train_loss, "train_accuracy": r.train_accuracy,
                 "heldout_loss": r.heldout_loss, "heldout_accuracy": r.heldout_accuracy, "time_s": r.time_s,
                 "warmup": r.warmup, "diverged_at": r.diverged_at, "val_loss": r.val_loss,
                 "val_accuracy": r.val_accuracy, "warmup_until": r.warmup_until} for r in self.nets]

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data, "device": self.device, "steps_done": self.steps_done,
                "steps": self.config.steps, "stopped": self.stopped, "wall_s": self.wall_s,
                "world_size": self.world_size, "effective_batch": self.effective_batch,
                "config": asdict(self.config), "nets": [_json_safe(r) for r in self.table_rows()],
                "specs": {r.net: r.spec.to_dict() for r in self.nets}}


def _json_safe(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


CURVE_COLUMNS = ["step", "net", "loss", "accuracy", "lr", "time_s"]
# the columns' names as a person reads them (marked for the catalogue; English keeps the names)
COLUMN_TITLES = {"step": N_("step"), "net": N_("net"), "loss": N_("loss"), "accuracy": N_("accuracy"), "lr": N_("lr"),
                 "time_s": N_("time_s"), "split": N_("split"), "depth": N_("depth"), "params": N_("params"),
                 "steps": N_("steps"), "final_loss": N_("final_loss"), "train_loss": N_("train_loss"),
                 "train_accuracy": N_("train_accuracy"), "heldout_loss": N_("heldout_loss"),
                 "heldout_accuracy": N_("heldout_accuracy"), "warmup": N_("warmup"), "diverged_at": N_("diverged_at"),
                 "val_loss": N_("val_loss"), "val_accuracy": N_("val_accuracy"), "warmup_until": N_("warmup_until")}
RESULT_COLUMNS = ["net", "depth", "params", "steps", "final_loss", "train_loss", "train_accuracy", "heldout_loss",
                  "heldout_accuracy", "time_s", "warmup", "diverged_at", "val_loss", "val_accuracy", "warmup_until"]


def column_titles(columns: Sequence[str]) -> list[str]:
    """The CSV columns' titles in this run's language (English: the names themselves, as the CLI writes them)."""
    return [_(COLUMN_TITLES.get(c, c)) for c in columns]


def curves_csv(records: Sequence[StepRecord], evals: Sequence[EvalRecord] = (), titles: bool = False) -> str:
    """Training curves as CSV: one row per step and net; held-out evaluations as rows with split=heldout.
    `titles`: the header row in this run's language (column_titles), for a person's download."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    header = CURVE_COLUMNS + ["split"]
    w.writerow(column_titles(header) if titles else header)
    for r in records:
        w.writerow([r.step, r.net, f"{r.loss:.6g}", f"{r.accuracy:.6g}", f"{r.lr:.6g}", f"{r.time_s:.4f}", "train"])
    for e in evals:
        w.writerow([e.step, e.net, f"{e.loss:.6g}", f"{e.accuracy:.6g}", "", "", e.split])
    return buf.getvalue()


def results_csv(result: TrainResult, titles: bool = False) -> str:
    """The final table as CSV, one row per net (`titles`: the header row in this run's language)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, RESULT_COLUMNS, lineterminator="\n")
    if titles:
        w.writerow(dict(zip(RESULT_COLUMNS, column_titles(RESULT_COLUMNS), strict=True)))
    else:
        w.writeheader()
    for row in result.table_rows():
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else ("" if v is None else v)) for k, v in row.items()})
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------

def save_checkpoint(path: str | Path, model_or_state: nn.Module | Mapping[str, torch.Tensor], spec: ArchSpec,
                    meta: Mapping[str, Any] | None = None) -> tuple[Path, Path]:
    """Write the weights as a bare torchvision-format state_dict (`torch.save`) at `path` and the spec
    (with `meta`) beside it as `path` with the suffix .json. Returns both paths."""
    p = Path(path)
    if p.suffix not in (".pt", ".pth"):
        p = p.with_name(p.name + ".pt")
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    state = {k: v.detach().to("cpu") for k, v in state.items()}
    side = p.with_suffix(".json")
    # each file is written beside itself and renamed into place: a run killed mid-save keeps the last pair
    tmp_pt, tmp_side = p.with_name(p.name + ".tmp"), side.with_name(side.name + ".tmp")
    torch.save(state, tmp_pt)
    tmp_side.write_text(json.dumps({"spec": spec.to_dict(), "meta": dict(meta or {})}, indent=2, default=str),
                        encoding="utf-8")
    os.replace(tmp_pt, p)
    os.replace(tmp_side, side)
    return p, side


def load_saved_net(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, ArchSpec, dict]:
    """The model (eval mode), its spec and the saved meta, from save_checkpoint's files."""
    p = Path(path)
    side = p.with_suffix(".json")
    if not p.is_file():
        raise TrainError(f"no checkpoint at {p}")
    if not side.is_file():
        raise TrainError(f"the checkpoint {p} has no spec beside it ({side.name})")
    try:
        info = json.loads(side.read_text(encoding="utf-8"))
        spec = spec_from_dict(info["spec"], source=str(side))
        state = torch.load(p, map_location="cpu", weights_only=True)
    except (OSError, ValueError, KeyError, RuntimeError, EOFError) as e:
        raise TrainError(f"cannot read the checkpoint {p}: {e}") from None
    model = build_model(spec)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise TrainError(f"the weights in {p} do not fit its spec: {str(e).splitlines()[0]}") from None
    return model.to(device).eval(), spec, dict(info.get("meta", {}))
