"""Training on two processes (gloo, loopback): DDP equals one process on the concatenated batch, the ranks
stay identical, and only rank 0 writes. The references are plain single-process runs in this process.

Two spawned workers run every case (one start-up for all, bounded by a timeout); each case saves its
state_dicts for the parent to compare.
"""

from __future__ import annotations

import os
import socket
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from resnet_core.training import distributed as D
from resnet_core.training.config import TrainConfig
from resnet_core.training.data import load_digits
from resnet_core.training.ops import EpochOrder
from resnet_core.training.run import TrainingRun

PER_RANK = 8  # images per worker; the reference trains one process on 2 × 8
LR = 0.05


def _config(batch: int, steps: int) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=batch, lr=LR, schedule="constant", threads=1, seed=3)


def _freeze_bn(model: torch.nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()  # running statistics: each image is normalised alone, whatever the batch split


CASES = {  # name: (net, steps, BN in eval mode)
    "nobn": ("resnet20-nobn", 1, False),
    "bn_eval": ("resnet20", 1, True),
    "bn_train": ("resnet20", 1, False),
    "k_steps": ("resnet20", 4, False),
}


def _train(net: str, steps: int, freeze: bool, batch: int, world=None) -> TrainingRun:
    data = load_digits(input_size=8, in_channels=3, seed=0)
    run = TrainingRun([net], data, _config(batch, steps), "cpu", world=world)
    if freeze:
        _freeze_bn(run.models[run.labels[0]])
    for _ in run.iter():
        pass
    return run


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    world = D.init_worker("cpu", timeout_s=120)
    try:
        for name, (net, steps, freeze) in CASES.items():
            run = _train(net, steps, freeze, PER_RANK, world)
            label = run.labels[0]
            torch.save({"state": run.models[label].state_dict(), "losses": [r.loss for r in run.records],
                        "global_batch": run.global_batch},
                       Path(out) / f"{name}_rank{rank}.pt")
        _cli_as_worker(rank, Path(out))
    finally:
        D.shutdown()


def _cli_as_worker(rank: int, out: Path) -> None:
    """The train command inside this worker, with every file it writes recorded (and what it prints)."""
    import contextlib
    import io

    from resnet_core.cli.main import main
    written: list[str] = []
    save, write_text = torch.save, Path.write_text

    def rec_save(obj, f, *a, **k):
        written.append(str(f))
        return save(obj, f, *a, **k)

    def rec_write(self, *a, **k):
        written.append(str(self))
        return write_text(self, *a, **k)

    (out / "cli").mkdir(exist_ok=True)
    D.barrier()
    torch.save, Path.write_text = rec_save, rec_write
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(["train", "--nets", "resnet20", "--steps", "3", "--input-size", "8", "--batch", "4",
                         "--threads", "1", "--device", "cpu", "--csv", str(out / "cli" / "curves.csv"),
                         "--save-dir", str(out / "cli" / "ckpt"), "--checkpoint-every", "2"])
    finally:
        torch.save, Path.write_text = save, write_text
    save({"code": code, "written": written, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()},
         out / f"cli_rank{rank}.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    # spawn re-imports the parent's __main__ in each worker; after an AppTest in the same session that is the
    # Streamlit script, so the workers start from a bare __main__ instead
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        ctx = mp.start_processes(_worker, args=(_free_port(), str(out)), nprocs=2, start_method="spawn", join=False)
    finally:
        sys.modules["__main__"] = main
    try:
        while not ctx.join(timeout=240):
            pass
    except mp.ProcessExitedException as e:
        pytest.fail(f"a worker failed: {e}")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    return {f.stem: torch.load(f, weights_only=False) for f in out.glob("*.pt")}


def _max_diff(a: dict, b: dict) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a if a[k].is_floating_point())


@pytest.mark.parametrize("case", ["nobn", "bn_eval"])
def test_one_ddp_step_equals_one_process_on_the_concatenated_batch(two_workers, case):
    net, steps, freeze = CASES[case]
    ref = _train(net, steps, freeze, 2 * PER_RANK)  # one process, the batch of both workers
    ours = two_workers[f"{case}_rank0"]
    assert ours["global_batch"] == 2 * PER_RANK
    state = ref.models[ref.labels[0]].state_dict()
    assert _max_diff(state, _initial(net)) > 1e-4  # the step really changed the weights, so equality below means something
    assert _max_diff(ours["state"], state) < 1e-5
    # the loss each process reports is the mean over the global batch
    assert ours["losses"][0] == pytest.approx(ref.records[0].loss, abs=1e-5)


def _model(net: str) -> torch.nn.Module:
    from resnet_core.structure.build import build_model
    from resnet_core.training.config import resolve_net
    spec = resolve_net(net).replace(in_channels=3, input_size=(8, 8), num_classes=10)
    return build_model(spec, seed=3)


def _initial(net: str) -> dict:
    return _model(net).state_dict()


def test_train_mode_batch_norm_differs_by_a_measured_amount(two_workers, capsys):
    """Per-worker batch statistics (8 images each) are not those of the 16-image batch: the step differs."""
    net, steps, freeze = CASES["bn_train"]
    ref = _train(net, steps, freeze, 2 * PER_RANK)
    ours, theirs = two_workers["bn_train_rank0"]["state"], ref.models[ref.labels[0]].state_dict()
    params = {name for name, _ in _model(net).named_parameters()}
    diff = _max_diff({k: ours[k] for k in params}, theirs)
    stats = _max_diff({k: v for k, v in ours.items() if k.endswith(("running_mean", "running_var"))}, theirs)
    with capsys.disabled():
        print(f"\n[measured] one step, train-mode BN, 2 workers × 8 vs 1 process × 16: max |Δweight| = {diff:.3g}, "
              f"max |Δrunning statistic| = {stats:.3g}")
    assert diff > 1e-5 and stats > 1e-5  # larger than the rounding the eval-mode case stays within


def test_parameters_are_identical_on_both_ranks_after_k_steps(two_workers):
    a, b = two_workers["k_steps_rank0"], two_workers["k_steps_rank1"]
    assert set(a["state"]) == set(b["state"])
    params = {name for name, _ in _model("resnet20").named_parameters()}
    assert params and all(torch.equal(a["state"][k], b["state"][k]) for k in params)
    assert a["losses"] == b["losses"] and len(a["losses"]) == 4  # both ranks saw the same (averaged) records
    assert _max_diff(a["state"], _initial("resnet20")) > 1e-4
    # BN running statistics are rank-local after the last forward (DDP broadcasts rank 0's at the start of
    # each forward): they differ, and the checkpoint keeps rank 0's
    stats = [k for k in a["state"] if k.endswith(("running_mean", "running_var"))]
    assert any(not torch.equal(a["state"][k], b["state"][k]) for k in stats)


def test_only_rank_0_prints_writes_the_csv_and_saves_checkpoints(two_workers, tmp_path):
    r0, r1 = two_workers["cli_rank0"], two_workers["cli_rank1"]
    assert r0["code"] == r1["code"] == 0
    assert r1["written"] == [] and r1["stdout"] == "" and r1["stderr"] == ""
    names = sorted(Path(w).name for w in r0["written"])
    # the periodic checkpoint at step 2 (weights + spec, written beside and renamed), then the final pair and CSVs
    assert names == sorted(["resnet20.pt.tmp", "resnet20.json.tmp"] * 2 + ["curves.csv", "curves_results.csv"])
    assert "effective batch 8" in r0["stderr"] and "learning rate 0.05 × 2 = 0.1" in r0["stderr"]
    assert "SyncBatchNorm is not available on CPU" in r0["stderr"]
    assert "batch 4 per worker × 2 = 8" in r0["stdout"]
    ckpt = next(Path(w) for w in r0["written"] if w.endswith(".pt.tmp")).with_name("resnet20.pt")
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["resnet20.json", "resnet20.pt"]
    # a torchvision-format state_dict the Live lab loads as it is (no DDP 'module.' prefix)
    from resnet_core.lab.weights import load_checkpoint as live_load
    from resnet_core.training.results import load_saved_net
    model, spec, meta = load_saved_net(ckpt)
    assert meta["steps"] == 3 and spec.input_size == (8, 8)
    report = live_load(_model("resnet20"), ckpt)
    assert report.complete and report.stripped_prefix is None


def test_the_per_epoch_order_is_the_same_on_every_rank_and_the_ranks_split_it():
    n = 100
    ranks = [EpochOrder(n, 8, seed=5, world_size=2, rank=r) for r in (0, 1)]
    whole = EpochOrder(n, 16, seed=5)
    for step in range(n // 16 + 3):  # across an epoch boundary
        a, b, ref = ranks[0].next(), ranks[1].next(), whole.next()
        assert torch.equal(torch.cat([a, b]), ref) and not set(a.tolist()) & set(b.tolist())
        if step == 0:  # the reference itself: torch's seeded permutation, first 16
            assert torch.equal(ref, torch.randperm(n, generator=torch.Generator().manual_seed(5))[:16])
    assert ranks[0].epoch == ranks[1].epoch == whole.epoch == 2


def test_launch_refuses_a_port_in_use_and_more_workers_than_cores():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(D.DistError, match=f"--port {port} is already in use"):
            D.check_launch(2, "cpu", port)
    with pytest.raises(D.DistError, match="this machine has"):
        D.check_launch((os.cpu_count() or 1) + 1, "cpu", None)
    D.check_launch(1, "cpu", None)


def test_the_lr_scaling_and_the_command_line():
    assert D.scaled_lr(0.1, 4, "linear") == pytest.approx(0.4) and D.scaled_lr(0.1, 4, "none") == 0.1
    args = D.train_args({"nets": "resnet20", "steps": 100, "seed": 0, "no_bn": True, "lr": None})
    assert args == ["train", "--nets", "resnet20", "--steps", "100", "--no-bn"]
    one = D.command_line(args, 4)
    assert one == "torchrun --standalone --nproc-per-node 4 -m resnet_core train --nets resnet20 --steps 100 --no-bn"
    many = D.command_line(args, 8, nnodes=2, endpoint="node0:29400")
    assert "--nnodes 2" in many and "--rdzv-endpoint node0:29400" in many
    assert D.command_line(["train", "--nets", "a b;rm"], 2).endswith("--nets 'a b;rm'")  # quoted for the shell
