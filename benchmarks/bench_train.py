"""How fast does the Training lab train? Against a minimal hand-written PyTorch loop, in one run.

Target (issue "Training lab"): training steps/s at least 0.9× that of a minimal hand-written loop on the
same model, data and batch. Both loops train the same seeded models on the same digits batches with the
same SGD settings, in alternating chunks (so a busy neighbour slows both alike); the figures are medians
of the chunks after a warm-up. On CUDA both use bf16 autocast and channels_last, and images/s is printed.

    python benchmarks/bench_train.py [--device cpu|cuda] [--steps 20] [--repeats 7] [--threads N] [--case lab|ddp|all]

The distributed case (--case ddp): steps/s and images/s of N worker processes (DistributedDataParallel,
gloo on CPU, NCCL on CUDA; N = 2 on CPU, the GPUs on CUDA) against one process on the same total batch,
in one run. On CPU the single process gets all the cores as threads and each worker one core's share. The
communication share is 1 − (a worker's step time without DDP, at its own batch, measured while the other
workers do the same) / (its DDP step time): what gradient averaging and waiting for the slowest rank cost.
Target on a GPU machine: N GPUs ≥ 0.85·N × one GPU's images/s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from resnet_core.device import DeviceError, describe, pick_device  # noqa: E402
from resnet_core.structure.build import build_model  # noqa: E402
from resnet_core.structure.presets import get_preset  # noqa: E402
from resnet_core.training.config import TrainConfig, defaults_for  # noqa: E402
from resnet_core.training.data import load_digits  # noqa: E402
from resnet_core.training.run import TrainingRun  # noqa: E402


class HandLoop:
    """The reference: the few lines anyone would write. No records, no schedule, no per-step sync."""

    def __init__(self, nets, data, batch, device, seed, amp, channels_last):
        c, h, w = data.input_shape
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.models, self.opts = [], []
        for name in nets:
            spec = get_preset(name).replace(in_channels=c, input_size=(h, w), num_classes=data.num_classes)
            m = build_model(spec, seed=seed).to(device, memory_format=fmt).train()
            self.models.append(m)
            self.opts.append(torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4))
        self.x, self.y = data.x_train.to(device), data.y_train.to(device)
        self.batch, self.device, self.amp, self.fmt = batch, device, amp, fmt
        self.gen = torch.Generator().manual_seed(seed)
        self.order, self.pos = torch.empty(0, dtype=torch.long), 0

    def steps(self, n):
        for _ in range(n):
            if self.pos + self.batch > len(self.order):
                self.order, self.pos = torch.randperm(len(self.y), generator=self.gen), 0
            idx = self.order[self.pos:self.pos + self.batch].to(self.device)
            self.pos += self.batch
            x, y = self.x[idx].contiguous(memory_format=self.fmt), self.y[idx]
            for model, opt in zip(self.models, self.opts, strict=True):
                with torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else nullcontext():
                    loss = F.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compare(nets, data, batch, device, steps, repeats, seed=0):
    cuda = device.type == "cuda"
    # ours: a run long enough for every chunk; its generator is advanced `steps` steps per chunk
    cfg = TrainConfig(steps=10 ** 7, batch_size=batch, seed=seed, schedule="constant", threads=None,
                      report_every=None)
    run = TrainingRun(list(nets), data, cfg, device)
    it = run.iter()
    hand = HandLoop(nets, data, batch, device, seed, amp=cuda, channels_last=cuda)

    def ours_chunk(n):
        target = run.step + n
        while run.step < target:
            next(it)

    ours_chunk(max(3, steps // 2))  # warm-up: allocator, kernels, lazy imports
    hand.steps(max(3, steps // 2))
    sync(device)
    t_ours, t_hand = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ours_chunk(steps)
        sync(device)
        t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        hand.steps(steps)
        sync(device)
        t_hand.append(time.perf_counter() - t0)
    it.close()
    ours = steps / statistics.median(t_ours)
    ref = steps / statistics.median(t_hand)
    return ours, ref


def _ddp_worker(rank: int, world_size: int, port: int, cfg: dict, out: str) -> None:
    import os

    from resnet_core.training import distributed as D
    from resnet_core.training.data import load_digits as digits
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      LOCAL_WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(cfg["threads"])
    world = D.init_worker(cfg["device"], timeout_s=300)
    try:
        data = digits(input_size=cfg["size"], in_channels=3)
        tc = TrainConfig(steps=10 ** 7, batch_size=cfg["batch"], schedule="constant", threads=None)
        run = TrainingRun([cfg["net"]], data, tc, world.device, world=world)
        it = run.iter()
        local = TrainingRun([cfg["net"]], data, tc, world.device)  # the same per-rank step, no DDP
        lit = local.iter()
        for _ in range(3):
            next(it), next(lit)
        def timed(steps) -> float:  # cfg["steps"] steps of `steps`, every rank starting together
            D.barrier()
            t0 = time.perf_counter()
            for _ in range(cfg["steps"]):
                next(steps)
            sync(world.device)
            return time.perf_counter() - t0

        t_ddp = timed(it)
        t_local = timed(lit)
        D.barrier()
        it.close()
        lit.close()
        if rank == 0:
            Path(out).write_text(f"{t_ddp} {t_local}")
    finally:
        D.shutdown()


def distributed_case(device, net: str, batch: int, size: int, steps: int) -> None:
    """N workers × batch against one process × N·batch, same net, data and total cores, one run."""
    import os
    import socket
    import tempfile

    import torch.multiprocessing as mp
    cuda = device.type == "cuda"
    n = torch.cuda.device_count() if cuda else 2
    cores = os.cpu_count() or 2
    data = load_digits(input_size=size, in_channels=3)
    before = torch.get_num_threads()
    if not cuda:
        torch.set_num_threads(cores)
    run = TrainingRun([net], data, TrainConfig(steps=10 ** 7, batch_size=batch * n, schedule="constant",
                                               threads=None), device)
    it = run.iter()
    for _ in range(3):
        next(it)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        next(it)
    sync(device)
    one = steps / (time.perf_counter() - t0)
    it.close()
    torch.set_num_threads(before)
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "t.txt")
        cfg = {"net": net, "batch": batch, "size": size, "steps": steps, "device": device.type,
               "threads": 1 if not cuda else before}
        mp.start_processes(_ddp_worker, args=(n, port, cfg, out), nprocs=n, start_method="spawn")
        t_ddp, t_local = (float(v) for v in Path(out).read_text().split())
    many = steps / t_ddp
    comm = 1 - t_local / t_ddp
    total = batch * n
    what = f"{n} GPUs" if cuda else f"{n} processes × 1 thread vs 1 process × {cores} threads"
    print(f"distributed ({what}), {net}, total batch {total} ({n} × {batch}), {steps} timed steps:")
    print(f"  one process: {one:.2f} steps/s · {one * total:,.0f} images/s")
    print(f"  {n} workers (DDP): {many:.2f} steps/s · {many * total:,.0f} images/s · ratio {many / one:.3f}"
          + (f" (target ≥ {0.85 * n:.2f} × one GPU's images/s at its own batch)" if cuda else
             " (2 CPU cores: no speed-up is expected; this documents the overhead)"))
    print(f"  communication and waiting: {100 * comm:.0f} % of a worker's step "
          f"(its step without DDP: {t_local / steps * 1000:.1f} ms, with DDP: {t_ddp / steps * 1000:.1f} ms)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    ap.add_argument("--steps", type=int, default=20, help="steps per timed chunk")
    ap.add_argument("--repeats", type=int, default=7, help="timed chunks per loop (median)")
    ap.add_argument("--threads", type=int, help="torch CPU threads for both loops (default: torch's)")
    ap.add_argument("--batch", type=int, help="default: the device's training default")
    ap.add_argument("--input-size", type=int, help="default: the device's training default")
    ap.add_argument("--case", choices=["lab", "ddp", "all"], default="all",
                    help="lab: TrainingRun vs a hand-written loop · ddp: N workers vs one process · all (default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = pick_device(args.device)
    except DeviceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    d = defaults_for(device)
    batch = args.batch or d.batch_size
    size = args.input_size or d.input_size[0]
    data = load_digits(input_size=size, in_channels=3)
    extra = " · bf16 autocast + channels_last" if device.type == "cuda" else ""
    print(f"{describe(device)}{extra} · digits {size}×{size} · batch {batch} · "
          f"{args.steps} steps × {args.repeats} chunks (median)")
    ok = True
    if args.case in ("ddp", "all"):
        for net in ("resnet20", "resnet56"):
            distributed_case(device, net, batch, size, max(args.steps, 30))
    if args.case == "ddp":
        return 0
    for nets in (["resnet20"], ["resnet56"], ["plain20", "plain56", "resnet20", "resnet56"]):
        ours, ref = compare(nets, data, batch, device, args.steps, args.repeats)
        ratio = ours / ref
        ok &= ratio >= 0.9
        label = "+".join(nets) if len(nets) < 4 else "default experiment (4 nets)"
        imgs = f" · {ours * batch * len(nets):,.0f} vs {ref * batch * len(nets):,.0f} images/s" \
            if device.type == "cuda" else ""
        print(f"{label}: TrainingRun {ours:.2f} steps/s · hand-written loop {ref:.2f} steps/s{imgs} · "
              f"ratio {ratio:.3f} (target ≥ 0.9) {'PASS' if ratio >= 0.9 else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
