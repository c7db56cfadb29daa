"""The train command's run as a library object: TrainSession, its progress file and the reader the app uses,
the worker's argv derived from the one parser, and the memory booking of a training run."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from resnet_core import device as dev
from resnet_core.training import lifecycle, options
from resnet_core.training.session import ProgressReader, TrainSession, checkpoint_path

TINY = {"nets": "plain20,resnet20", "data": "synthetic", "steps": 5, "batch": 8, "input_size": 8, "threads": 1,
        "device": "cpu", "seed": 4}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    options.add_arguments(p)
    return p


def test_train_args_round_trip_through_the_parser():
    settings = {"nets": "resnet20", "data": "digits", "steps": 100, "seed": 3, "batch": 16, "lr": 0.05,
                "schedule": "step", "no_bn": True, "sync_bn": False, "format": "json", "checkpoint_every": 7,
                "progress_file": "p.jsonl", "quiet": True, "nproc": 4, "port": 29555}
    argv = options.train_args(settings)
    assert argv[0] == "train" and "--nproc" not in argv and "--port" not in argv  # the launcher's own
    assert "--sync-bn" not in argv and "--seed" in argv  # a default is left out; a store_true only when set
    parsed = vars(_parser().parse_args(argv[1:]))
    for key, value in settings.items():
        if key not in options.LAUNCHER_ONLY:
            assert parsed[key] == value, key
    # every option of the parser is one train_args knows: a new flag needs no second list
    every = {a.dest for a in _parser()._actions if a.option_strings and a.dest != "help"}
    assert every - set(options.LAUNCHER_ONLY) == {k for k in vars(_parser().parse_args([]))} - set(
        options.LAUNCHER_ONLY)


@pytest.mark.parametrize("text", ["a,,b", "resnet20,", ",resnet20", " , "])
def test_malformed_net_lists_are_refused(text):
    with pytest.raises(ValueError, match="empty name"):
        options.split_nets(text)


@pytest.mark.slow
def test_the_progress_file_read_back_is_the_run(tmp_path):
    progress, save = tmp_path / "p.jsonl", tmp_path / "ckpt"
    session = TrainSession({**TINY, "progress_file": str(progress), "save_dir": str(save),
                            "checkpoint_every": 2})
    reader = ProgressReader(progress)
    seen = 0
    try:
        for _ in session.iter():
            reader.poll()  # the reader follows the file while the run writes it
            seen = max(seen, reader.progress.step if reader.progress else 0)
        result = session.finish()
    finally:
        session.close()
    reader.poll()
    assert seen >= 1 and reader.labels == ["plain20", "resnet20"] and reader.steps == 5
    assert [(r.step, r.net, r.loss) for r in reader.records] == [(r.step, r.net, r.loss) for r in result.records]
    assert reader.progress.done and reader.progress.step == 5
    back = reader.result(save)
    assert json.dumps(back.to_dict(), sort_keys=True) == json.dumps(result.to_dict(), sort_keys=True)
    for label in ("plain20", "resnet20"):  # the weights saved are the weights trained
        a, b = back.models[label].state_dict(), result.models[label].state_dict()
        assert all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)
    assert checkpoint_path(save, "resnet20 no BN").name == "resnet20_no_BN.pt"
    assert any(line.startswith("saved ") for line in session.written)


def test_a_partial_line_is_left_for_the_next_poll(tmp_path):
    path = tmp_path / "p.jsonl"
    start = {"kind": "start", "labels": ["a"], "steps": 3, "device": "CPU", "data": "d", "world_size": 2,
             "effective_batch": 16}
    update = {"kind": "update", "step": 1, "records": [[1, "a", 2.0, 0.5, 0.1, 0.01], [1, "b", None, 0.0, 0.1, 0.0]],
              "evals": [], "diverged": ["b"],
              "progress": {"step": 1, "total": 3, "elapsed_s": 0.1, "steps_per_s": 10, "eta_s": None,
                           "stopped": False, "done": False}}
    text = json.dumps(start) + "\n" + json.dumps(update)
    path.write_text(text[:-5])
    r = ProgressReader(path)
    assert r.poll() and r.labels == ["a"] and r.records == [] and r.device == "CPU · effective batch 16"
    path.write_text(text + "\n")
    assert r.poll() and len(r.records) == 1 and r.records[0].loss == 2.0  # a diverged (null) loss is left out
    assert math.isinf(r.progress.eta_s) and r.result() is None and not r.poll()


def test_a_run_over_the_memory_budget_is_refused_with_a_batch_that_fits(monkeypatch):
    big = {**TINY, "nets": "resnet20", "batch": 4096, "input_size": 32}
    monkeypatch.setenv("RESNET_EXPLORER_MEMORY_BUDGET", "300M")
    with pytest.raises(dev.MemoryGuardError, match="RESNET_EXPLORER_MEMORY_BUDGET") as e:
        TrainSession(big)
    fits = int(str(e.value).rsplit("batch ", 1)[1].split()[0])
    assert 1 <= fits < 4096
    session = TrainSession({**big, "batch": fits, "steps": 1})  # the batch it names does fit
    try:
        assert dev.reserved("cpu") >= session.run.memory_estimate  # booked while the run is alive
    finally:
        session.close()
    assert dev.reserved("cpu") == 0  # and given back


def test_the_launcher_books_every_worker_once(monkeypatch):
    from resnet_core.training.session import book_workers
    hold, per_worker = book_workers(TINY, 2)
    try:
        assert dev.reserved("cpu") == 2 * per_worker > 0
        # its workers (children of this process, told by the environment) book nothing of their own
        monkeypatch.setenv(lifecycle.BOOKED_ENV, str(per_worker))
        monkeypatch.setenv(lifecycle.PARENT_ENV, str(__import__("os").getppid()))
        session = TrainSession(TINY)
        assert dev.reserved("cpu") == 2 * per_worker
        session.close()
    finally:
        hold.close()
    assert dev.reserved("cpu") == 0
    monkeypatch.delenv(lifecycle.BOOKED_ENV)
    monkeypatch.setenv("RESNET_EXPLORER_MEMORY_BUDGET", str(int(1.5 * per_worker)))
    with pytest.raises(dev.MemoryGuardError, match="on 2 workers"):
        book_workers(TINY, 2)  # one worker's share fits the budget, two do not
    TrainSession(TINY).close()  # the same run on one process fits
