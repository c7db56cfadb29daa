"""The explorer's numeric limits that several rooms check (the library, the command line, the app): one
home each. Without torch, so the command line's help reads them fast."""

from __future__ import annotations

import os

SEED_MAX = 2**64 - 1  # torch's generators take seeds in 0…2**64-1
MAX_NETS = 4  # networks trained side by side (make_run, TrainingRun, `train --nets`, the Training lab)
MAX_STEPS = 10_000_000  # optimiser steps of one training run
MAX_BATCH = 65_536  # images per step per worker
MAX_LR = 10.0  # the largest peak learning rate accepted
MAX_INPUT_SIZE = 512  # training input height and width
MAX_NPROC = 1024  # worker processes of one training run


def max_threads() -> int:
    """The most CPU threads a run may ask for: this machine's cores (more only makes the threads queue)."""
    return max(1, os.cpu_count() or 1)
