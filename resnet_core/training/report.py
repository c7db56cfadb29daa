"""A finished (or stopped) run as text: the results table, the distributed and batch-norm lines, progress lines.

Text for the command line and the app alike; nothing here prints.
"""

from __future__ import annotations

import math

from resnet_core.formatting import fmt_pct, text_table
from resnet_core.training.recipe import paper_error
from resnet_core.training.results import TrainResult


def _fmt(v, pct: bool = False) -> str:
    if pct:
        return fmt_pct(v, 1)
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.4f}"


def _err(acc: float) -> str:
    return fmt_pct(None if acc is None else 1 - acc, 2)


def format_table(result: TrainResult, recipe: bool = False) -> str:
    """The results table. With `recipe`: validation and test error beside He et al.'s Table 6 error."""
    if recipe:
        head = ["net", "depth", "params", "steps", "final loss", "train err", "val err", "test err",
                "paper test err (Table 6)", "time"]
        rows = []
        for r in result.nets:
            paper = paper_error(r.net)
            rows.append([r.net, str(r.depth), f"{r.params:,}", str(r.steps) + (" (diverged)" if r.diverged_at else ""),
                         _fmt(r.final_loss), _err(r.train_accuracy), _err(r.val_accuracy), _err(r.heldout_accuracy),
                         "—" if paper is None else f"{paper:.2f}%", f"{r.time_s:.1f} s"])
    else:
        head = ["net", "depth", "params", "steps", "final loss", "train acc", "held-out acc", "time"]
        rows = [[r.net, str(r.depth), f"{r.params:,}", str(r.steps) + (" (diverged)" if r.diverged_at else ""),
                 _fmt(r.final_loss), _fmt(r.train_accuracy, True), _fmt(r.heldout_accuracy, True), f"{r.time_s:.1f} s"]
                for r in result.nets]
    status = (f"stopped at step {result.steps_done} of {result.config.steps}" if result.stopped
              else f"{result.steps_done} steps")
    batch = f"batch {result.config.batch_size}"
    if result.world_size > 1:
        batch = f"batch {result.config.batch_size} per worker × {result.world_size} = {result.effective_batch}"
    out = [f"{result.data}", f"{result.device} · {batch} · lr {result.config.lr:g} · {status} · {result.wall_s:.1f} s",
           ""]
    out += text_table(head, rows, right=range(1, len(head)))
    if recipe and result.stopped is False and result.steps_done < 64_000:
        out += ["", f"(a short check: {result.steps_done:,} of the recipe's 64,000 iterations; the paper's errors "
                    "are for the full run)"]
    elif recipe and result.steps_done < 64_000:
        out += ["", f"(stopped after {result.steps_done:,} of the recipe's 64,000 iterations; the paper's errors "
                    "are for the full run)"]
    return "\n".join(out) + "\n"


def world_line(world_size: int, backend: str, device: str, per_rank: int, base_lr: float, lr: float,
               scaling: str) -> str:
    """'2 workers (gloo, CPU) · batch 16 per worker × 2 = effective batch 32 · lr 0.1 × 2 = 0.2 (linear …)'."""
    eff = per_rank * world_size
    if scaling == "linear" and world_size > 1:
        how = (f"learning rate {base_lr:g} × {world_size} = {lr:g} (linear scaling with the batch, Goyal et al. "
               "2017; --lr-scaling none keeps it)")
    elif scaling == "recipe":
        how = f"learning rate {lr:g} (the recipe's, for its batch of {eff}: not scaled)"
    else:
        how = f"learning rate {lr:g} (not scaled)"
    return (f"{world_size} workers ({backend}, {device.upper()}) · batch {per_rank} per worker × {world_size} = "
            f"effective batch {eff} · {how}")
