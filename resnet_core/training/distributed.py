"""Training past one process: PyTorch's own torchrun + DistributedDataParallel, gloo on CPU, NCCL on CUDA.

A worker is an ordinary `train` command started by torchrun (which sets RANK, WORLD_SIZE, LOCAL_RANK, ...):

    world = init_worker("auto")                 # the process group; cuda:LOCAL_RANK or the CPU
    run = make_run(..., world=world)             # each net wrapped in DistributedDataParallel
    ...
    shutdown()

`launch` starts N such workers on this machine through torchrun's own engine (`torch.distributed.run`,
in this process: its elastic agent watches the workers, ends every rank when one fails, and reports why).

What is the same on every rank, and what is not:
- the weights at the start (the same seed; DDP also broadcasts rank 0's at wrapping), the data order
  (one seeded permutation per epoch, the same on every rank), and so every step's global batch: rank r
  trains on the r-th slice of it, so N workers at batch b see exactly the batch b×N of one process;
- the gradients (DDP averages them), so the weights stay identical on every rank;
- batch-norm statistics are NOT shared unless SyncBatchNorm (CUDA only): each worker normalises with its
  own b images, and the running statistics are rank 0's (DDP broadcasts its buffers at each forward);
- the random augmentation is seeded per rank (seed + rank), so the ranks do not crop alike.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from resnet_core.errors import ExplorerError
from resnet_core.training import lifecycle
from resnet_core.training.lifecycle import launched_by_torchrun  # noqa: F401 (its home is lifecycle)
from resnet_core.training.options import LAUNCHER_ONLY, train_args  # noqa: F401 (the app's names)

LR_SCALINGS = ("linear", "none")
MAX_PORT = 65_535


class DistError(ExplorerError):
    """A distributed run that cannot start: a port in use, more workers than devices, a bad setting."""


class WorkerFailure(ExplorerError):
    """A distributed run that ended because a worker died or was interrupted; the message says which and why.
    `exit_code`: 1, or 128 + the signal that interrupted the run (`signum`, else None)."""

    def __init__(self, message: str, exit_code: int = 1, signum: int | None = None):
        super().__init__(message)
        self.exit_code, self.signum = exit_code, signum


@dataclass(frozen=True)
class World:
    """This worker's place in the run."""

    rank: int  # 0 … size-1; rank 0 alone prints and writes
    size: int  # the number of workers (processes) in the whole run
    local_rank: int  # its index on this machine (its GPU when on CUDA)
    backend: str  # "gloo" (CPU) | "nccl" (CUDA)
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self) -> str:
        return f"{self.size} worker{'s' if self.size != 1 else ''} ({self.backend}, {self.device.type.upper()})"


# --------------------------------------------------------------------------------------------
# inside a worker
# --------------------------------------------------------------------------------------------

def _env_int(name: str) -> int:
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        raise DistError(f"torchrun's {name} is missing or not an integer") from None


def init_worker(device: str = "auto", timeout_s: float = 600.0) -> World:
    """Join the process group torchrun set up: NCCL on cuda:LOCAL_RANK, or gloo on the CPU.

    `timeout_s` bounds every collective: a rank that stops answering ends the others' wait with an error.
    """
    rank, size, local = _env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise DistError("CUDA was asked for, but this machine has no usable GPU; use --device cpu")
        n = torch.cuda.device_count()
        if local >= n:
            raise DistError(f"worker {local} on this machine has no GPU of its own: {n} GPU(s), "
                            f"{os.environ.get('LOCAL_WORLD_SIZE', '?')} workers per machine")
        torch.cuda.set_device(local)
        d, backend = torch.device("cuda", local), "nccl"
    elif device == "cpu":
        d, backend = torch.device("cpu"), "gloo"
    else:
        raise DistError(f"unknown device {device!r}; use auto, cpu or cuda")
    if not os.environ.get(lifecycle.PARENT_ENV) and os.getppid() > 1:  # a plain torchrun: die with its agent
        lifecycle.die_with_parent(os.getppid())
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {"device_id": d} if backend == "nccl" else {}
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s), **kwargs)
    return World(rank, size, local, backend, d)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over every rank, in place (and returned)."""
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def scaled_lr(lr: float, world_size: int, rule: str) -> float:
    """The learning rate for an effective batch world_size× larger: linear (Goyal et al. 2017) or none."""
    if rule not in LR_SCALINGS:
        raise DistError(f"unknown learning-rate scaling {rule!r}; use linear or none")
    return lr * world_size if rule == "linear" else lr


def sync_bn_note(device: torch.device, asked: bool, has_bn: bool, per_rank_batch: int) -> str | None:
    """What the run does about batch norm across workers, in one sentence (None when there is no BN)."""
    if not has_bn:
        return None
    if device.type == "cuda":
        if asked:
            return "batch norm: SyncBatchNorm, statistics over every worker's images (the effective batch)"
        return (f"batch norm: statistics per worker, over its {per_rank_batch} images (--sync-bn shares them); "
                "running statistics are rank 0's")
    return (f"batch norm: SyncBatchNorm is not available on CPU in PyTorch{' (--sync-bn ignored)' if asked else ''}, "
            f"so each worker normalises with its own {per_rank_batch} images' statistics: noisier than one process "
            "on the whole batch, and the running statistics kept are rank 0's")


# --------------------------------------------------------------------------------------------
# launching on this machine
# --------------------------------------------------------------------------------------------

def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def local_capacity(device: str) -> tuple[int, str]:
    """How many workers this machine can give a device each: (GPUs, "GPU") on CUDA, (cores, "CPU core")."""
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return torch.cuda.device_count(), "GPU"
    return max(1, os.cpu_count() or 1), "CPU core"


def check_launch(nproc: int, device: str, port: int | None) -> None:
    """DistError (one line) for a run that cannot start here: too many workers, a port in use."""
    cap, what = local_capacity(device)
    if device == "cuda" and not torch.cuda.is_available():
        raise DistError("--device cuda was asked for, but this machine has no usable GPU")
    if not 1 <= nproc <= cap:
        raise DistError(f"--nproc {nproc}: this machine has {cap} {what}{'s' if cap != 1 else ''}; "
                        f"use 1 to {cap} (or torchrun across machines)")
    if port is not None:
        if not 1024 <= port <= MAX_PORT:
            raise DistError(f"--port must be between 1024 and {MAX_PORT}, got {port}")
        if not port_free(port):
            raise DistError(f"--port {port} is already in use on 127.0.0.1; choose another or leave it out")


def torchrun_argv(worker_args: Sequence[str], nproc: int, port: int | None = None) -> list[str]:
    """torchrun's own arguments for N workers here, rendezvous on loopback (standalone, or at `port`)."""
    rdzv = (["--standalone"] if port is None else
            ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", uuid.uuid4().hex,
             "--nnodes", "1"])
    return [*rdzv, "--nproc-per-node", str(nproc), "--max-restarts", "0", "--monitor-interval", "0.2",
            "--signals-to-handle", "SIGTERM,SIGHUP,SIGQUIT",  # SIGINT: launch's own handler (see there)
            "-m", "resnet_core", *worker_args]


def command_line(worker_args: Sequence[str], nproc: int, nnodes: int = 1, endpoint: str | None = None) -> str:
    """The command a user types to run the same training with torchrun (several GPUs, or machines)."""
    import shlex
    if nnodes > 1:
        head = ["torchrun", "--nnodes", str(nnodes), "--nproc-per-node", str(nproc), "--rdzv-backend", "c10d",
                "--rdzv-endpoint", endpoint or "HOST:29400", "--rdzv-id", "resnet-explorer"]
    else:
        head = ["torchrun", "--standalone", "--nproc-per-node", str(nproc)]
    return " ".join(shlex.quote(a) for a in [*head, "-m", "resnet_core", *worker_args])


def local_command_line(worker_args: Sequence[str], nproc: int) -> str:
    """The same run through this project's launcher: `python -m resnet_core train … --nproc N`."""
    import shlex
    return " ".join(shlex.quote(a) for a in ["python", "-m", "resnet_core", *worker_args, "--nproc", str(nproc)])


@contextlib.contextmanager
def _quiet_elastic() -> Iterator[None]:
    """torchrun's agent logs at WARNING (and a big report on failure): the caller reports in one line."""
    names = [n for n in logging.root.manager.loggerDict if n.startswith("torch.distributed")]
    loggers = [logging.getLogger(n) for n in names]
    before = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR + 10)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, before, strict=True):
            lg.setLevel(lv)


def _failure_reason(failures: dict) -> tuple[str, int, int | None]:
    """One line for torchrun's failures: which rank, killed by which signal or exited with what; the exit
    code (128 + the signal when every worker was interrupted, else 1) and that signal."""
    def interrupted(f) -> int | None:  # SIGINT/SIGTERM: how the agent (or the terminal) stops every rank
        sig = lifecycle.signal_of_status(getattr(f, "exitcode", None))
        return sig if sig in (signal.SIGINT, signal.SIGTERM) else None

    items = sorted(failures.items(), key=lambda kv: (interrupted(kv[1]) is not None,
                                                     getattr(kv[1], "timestamp", 0), kv[0]))
    parts = []
    for rank, f in items:
        ec = getattr(f, "exitcode", None)
        sig = lifecycle.signal_of_status(ec)
        if ec is not None and ec < 0:
            parts.append(f"worker rank {rank} was killed by {lifecycle.signal_name(-ec)}")
        elif sig is not None:
            parts.append(f"worker rank {rank} was interrupted ({lifecycle.signal_name(sig)})")
        else:
            parts.append(f"worker rank {rank} exited with status {ec}")
    sigs = {interrupted(f) for f in failures.values()}
    text = "; ".join(parts[:2]) + ("" if len(parts) <= 2 else f" (and {len(parts) - 2} more)")
    if None in sigs:
        return text, 1, None
    sig = signal.SIGTERM if signal.SIGTERM in sigs else signal.SIGINT
    return text, lifecycle.exit_status(sig), int(sig)


_ELASTIC_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT")


def launch(worker_args: Sequence[str], nproc: int, port: int | None = None, env: dict | None = None) -> None:
    """Run `python -m resnet_core WORKER_ARGS` on `nproc` workers here through torchrun; wait for the end.

    Returns when every worker exited 0. Raises WorkerFailure (exit_code 128 + the signal if interrupted)
    when a worker died, failed or was interrupted: torchrun's agent has then ended every other rank
    (SIGTERM, also for a SIGINT here: a worker stops at its next step; SIGKILL after the agent's timeout). Each worker carries the run's marker and dies
    with this process whatever ends it (lifecycle.die_with_parent). `env`: more variables for the workers.
    """
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    args = torchrun.parse_args(torchrun_argv(worker_args, nproc, port))
    env_before = os.environ.get("OMP_NUM_THREADS")
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # what torchrun would set (and warn about) for each worker
    handlers = {name: signal.getsignal(getattr(signal, name)) for name in _ELASTIC_SIGNALS if hasattr(signal, name)}
    received: list[int] = []

    def on_sigint(signum, frame):  # Ctrl-C: the agent stops every worker with SIGTERM, whatever it is doing (a
        received.append(signum)    # worker still importing would print a KeyboardInterrupt traceback)
        raise SignalException(f"the launcher received {lifecycle.signal_name(signum)}", sigval=signal.SIGTERM)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_sigint)
        signal.signal(signal.SIGTERM, on_sigint)  # until the agent starts its workers and installs its own
    try:
        with _quiet_elastic(), lifecycle.marked_children(**{lifecycle.LAUNCHER_ENV: str(os.getpid()), **(env or {})}):
            torchrun.run(args)
    except ChildFailedError as e:
        reason, code, sig = _failure_reason(e.failures)
        if received:  # the launcher was told to stop: its status says so, whatever the workers' said
            code, sig = lifecycle.exit_status(received[0]), received[0]
        raise WorkerFailure(reason, code, sig) from None
    except SignalException as e:
        sig = received[0] if received else getattr(e, "sigval", signal.SIGTERM)
        raise WorkerFailure(f"the launcher received {lifecycle.signal_name(sig)}; every worker was stopped",
                            lifecycle.exit_status(sig), int(sig)) from None
    except Exception as e:  # noqa: BLE001 - a rendezvous or agent error: one line, never a traceback
        if received:  # stopped by a signal while the agent was starting
            raise WorkerFailure(f"the launcher received {lifecycle.signal_name(received[0])}; every worker was "
                                "stopped", lifecycle.exit_status(received[0]), received[0]) from None
        raise WorkerFailure(f"torchrun could not run the workers: {type(e).__name__}: {e}", 1) from None
    finally:
        for name, handler in handlers.items():  # torchrun's agent leaves its own handlers behind
            if handler is not None and threading.current_thread() is threading.main_thread():
                signal.signal(getattr(signal, name), handler)
        if env_before is None:
            os.environ.pop("OMP_NUM_THREADS", None)
