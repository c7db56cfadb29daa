"""`python -m resnet_core train`: table and JSON output, CSV and checkpoints, one clear line per bad input,
and Ctrl-C that stops and still prints what was learned."""

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from resnet_core.cli.main import main
from resnet_core.training.results import load_saved_net

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--input-size", "8", "--batch", "16", "--threads", "1"]


def call(capsys, *args):
    try:
        code = main(["train", *args])
    except SystemExit as e:  # argparse's own refusals (not a number, not a choice): exit 2 too
        code = e.code
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out, out.err


def test_json_output(capsys):
    code, out, err = call(capsys, "--nets", "plain20,resnet20", "--data", "digits", "--steps", "4", "--seed", "2",
                          "--device", "cpu", "--format", "json", *SMALL)
    assert code == 0
    d = json.loads(out)
    assert [n["net"] for n in d["nets"]] == ["plain20", "resnet20"]
    assert d["steps_done"] == 4 and d["stopped"] is False and d["config"]["seed"] == 2
    assert d["config"]["batch_size"] == 16 and d["specs"]["plain20"]["input_size"] == [8, 8]
    assert all(0 <= n["heldout_accuracy"] <= 1 and n["steps"] == 4 for n in d["nets"])
    assert "training plain20, resnet20 on digits" in err and "step 4/4" in err


def test_table_output_same_seed_same_numbers(capsys):
    args = ("--nets", "resnet20", "--steps", "3", "--device", "cpu", "--data", "synthetic", *SMALL)
    code, out, _ = call(capsys, *args)
    _, again, _ = call(capsys, *args)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("synthetic:") and "3 steps" in lines[1]
    header = next(line for line in lines if line.startswith("net"))
    for col in ("depth", "params", "final loss", "train acc", "held-out acc", "time"):
        assert col in header
    row = next(line for line in lines if line.startswith("resnet20"))
    assert "272," in row or "269," in row  # the CIFAR resnet20's parameter count (3 or 1 input channels)
    strip_time = lambda text: [line.rsplit("  ", 1)[0] for line in text.splitlines()[2:]]  # noqa: E731
    assert strip_time(out) == strip_time(again)


def test_csv_and_checkpoints(capsys, tmp_path):
    curves = tmp_path / "curves.csv"
    code, out, err = call(capsys, "--nets", "plain20,resnet20-nobn", "--steps", "3", "--device", "cpu",
                          "--csv", str(curves), "--save-dir", str(tmp_path / "ckpt"), "--format", "json", *SMALL)
    assert code == 0
    rows = list(csv.DictReader(curves.open()))
    assert len(rows) == 6 and {r["net"] for r in rows} == {"plain20", "resnet20-nobn"}
    table = list(csv.DictReader((tmp_path / "curves_results.csv").open()))
    assert [r["net"] for r in table] == ["plain20", "resnet20-nobn"]
    model, spec, meta = load_saved_net(tmp_path / "ckpt" / "resnet20-nobn.pt")
    assert spec.norm == "none" and spec.input_size == (8, 8) and meta["steps"] == 3
    assert isinstance(model, torch.nn.Module) and (tmp_path / "ckpt" / "plain20.json").is_file()
    assert f"wrote {curves}" in err


def test_no_bn_flag_and_experiment_names(capsys):
    code, out, _ = call(capsys, "--nets", "resnet20", "--no-bn", "--steps", "2", "--device", "cpu",
                        "--format", "json", *SMALL)
    d = json.loads(out)
    assert code == 0 and d["specs"]["resnet20-nobn"]["norm"] == "none"


@pytest.mark.parametrize("args, message", [
    (["--nets", "resnet20,resnet21"], "error: --nets: 'resnet21' is neither a preset nor a file"),
    (["--nets", "plain20,plain56,resnet20,resnet56,resnet32"], "at most 4 networks train side by side; --nets gave 5"),
    (["--steps", "0"], "error: --steps must be between 1 and 10,000,000, got 0"),
    (["--steps", "1e3"], "error: argument --steps: expected an integer, got '1e3'"),
    (["--batch", "-3"], "error: --batch must be between 1 and 65,536, got -3"),
    (["--seed", "-1"], "error: --seed must be between 0 and 2**64-1, got -1"),
    (["--seed", str(2**64)], "error: --seed must be between 0 and 2**64-1"),
    (["--lr", "nan"], "error: argument --lr: expected a finite number, got 'nan'"),
    (["--lr", "inf"], "error: argument --lr: expected a finite number, got 'inf'"),
    (["--lr", "0"], "error: --lr must be in (0, 10], got 0.0"),
    (["--threads", "5000"], "error: --threads must be between 1 and"),
    (["--input-size", "100000"], "error: --input-size must be between 4 and 512"),
    (["--nproc", "0"], "error: --nproc must be between 1 and 1,024, got 0"),
    (["--nproc", "64"], "error: --nproc 64: this machine has"),
    (["--nproc", "2", "--port", "80"], "error: --port must be between 1024 and 65535, got 80"),
    (["--port", "29500"], "error: --port is for --nproc"),
    (["--checkpoint-every", "5"], "error: --checkpoint-every needs --save-dir"),
    (["--recipe", "he2015"], "error: argument --recipe: invalid choice"),
    (["--data", "cifar:/no/such/folder"], "error: no such folder: /no/such/folder"),
    (["--data", "imagenet"], "error: unknown data 'imagenet'; use digits, synthetic or cifar:PATH"),
    (["--nets", ""], "error: --nets is empty"),
    (["--nets", "degradation,resnet20"], "stands alone"),
    (["--csv", "/no/such/folder/x.csv"], "the folder /no/such/folder does not exist"),
    (["--threads", "0"], "error: --threads must be between 1 and"),
    (["--nets", "plain20,,resnet20"], "error: --nets 'plain20,,resnet20' has an empty name between commas"),
    (["--nets", "resnet20,"], "has an empty name between commas"),
])
def test_bad_input_exits_2_with_one_clear_line(capsys, args, message):
    code, out, err = call(capsys, *args, "--device", "cpu")
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_wrong_cifar_folder_is_named(capsys, tmp_path):
    (tmp_path / "data_batch_1").write_bytes(b"x")
    code, _, err = call(capsys, "--data", f"cifar:{tmp_path}", "--device", "cpu")
    assert code == 2 and "the CIFAR-10 folder is incomplete, missing data_batch_2" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_cuda_without_a_gpu(capsys):
    code, _, err = call(capsys, "--device", "cuda", "--steps", "1")
    assert code == 2 and "CUDA was asked for" in err


def test_train_is_listed_in_help():
    p = subprocess.run([sys.executable, "-m", "resnet_core", "--help"], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert p.returncode == 0 and "train" in p.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_ctrl_c_stops_and_prints_what_was_learned():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen([sys.executable, "-m", "resnet_core", "train", "--nets", "resnet20", "--steps", "100000",
                          "--device", "cpu", *SMALL], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        for line in p.stderr:  # wait until it is training
            if line.startswith("step "):
                break
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err  # 128 + SIGINT, with what was learned printed
    assert "Traceback" not in err and "stopping after this step" in err
    assert sum("SIGINT" in line for line in err.splitlines()) == 1
    assert "stopped at step" in out and "of 100000" in out
    assert any(line.startswith("resnet20") for line in out.splitlines())


def test_the_top_seed_trains(capsys):
    code, out, err = call(capsys, "--nets", "resnet20", "--steps", "1", "--device", "cpu", "--seed", str(2**64 - 1),
                          "--format", "json", *SMALL)
    assert code == 0, err
    assert json.loads(out)["config"]["seed"] == 2**64 - 1


def test_a_port_in_use_exits_2_with_one_line(capsys):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, out, err = call(capsys, "--nproc", "2", "--port", str(port), "--device", "cpu", "--steps", "1")
    assert code == 2 and out == ""
    assert err.strip() == f"error: --port {port} is already in use on 127.0.0.1; choose another or leave it out"


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                st = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            fields = st[st.rindex(")") + 2:].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(d))
    return out


def _rank(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    return next((int(e[5:]) for e in env if e.startswith(b"RANK=")), None)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_worker_ends_the_run_on_every_rank_and_keeps_the_last_checkpoint(tmp_path):
    save = tmp_path / "ckpt"
    p = subprocess.Popen([sys.executable, "-m", "resnet_core", "train", "--nets", "resnet20", "--steps", "100000",
                          "--device", "cpu", "--nproc", "2", "--save-dir", str(save), "--checkpoint-every", "3",
                          *SMALL], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    workers: list[int] = []
    try:
        lines = []
        for line in p.stderr:  # the launcher's first progress line: both workers are training
            lines.append(line)
            if line.startswith("step "):
                break
        assert "effective batch 32" in "".join(lines)
        workers = [q for q in _children(p.pid) if _rank(q) is not None]
        assert sorted(_rank(q) for q in workers) == [0, 1]
        os.kill(next(q for q in workers if _rank(q) == 1), signal.SIGKILL)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        for q in workers:
            if _alive(q):
                os.kill(q, signal.SIGKILL)
    assert p.returncode == 1
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: worker rank 1 was killed by SIGKILL") and "the run ended on every rank" in last
    assert not any(_alive(q) for q in workers)  # no orphan
    meta = json.loads((save / "resnet20.json").read_text())["meta"]
    assert meta["steps"] >= 3 and meta["steps"] % 3 == 0 and f"at step {meta['steps']}" in last
    model, spec, _ = load_saved_net(save / "resnet20.pt")  # the kept checkpoint is whole
    assert spec.input_size == (8, 8)
    assert not list(save.glob("*.tmp"))


@pytest.mark.slow
def test_a_run_over_the_memory_budget_exits_2_with_a_batch_that_fits(capsys, monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_MEMORY_BUDGET", "300M")
    code, out, err = call(capsys, "--nets", "resnet20", "--batch", "4096", "--input-size", "32", "--steps", "1",
                          "--device", "cpu", "--data", "synthetic")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "needs about" in err and "RESNET_EXPLORER_MEMORY_BUDGET caps runs at 300.0 MiB" in err
    fits = int(err.rsplit("batch ", 1)[1].split()[0])
    code, out, err = call(capsys, "--nets", "resnet20", "--batch", str(fits), "--input-size", "32", "--steps", "1",
                          "--device", "cpu", "--data", "synthetic", "--threads", "1", "--format", "json")
    assert code == 0, err


def _torchrun(*args, env=None):
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "resnet_core", "train", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


@pytest.mark.slow
def test_a_bad_input_found_in_the_workers_is_said_once_with_exit_2(tmp_path):
    (tmp_path / "data_batch_1").write_bytes(b"x")
    bad = ["--data", f"cifar:{tmp_path}", "--device", "cpu", "--steps", "1", *SMALL]
    want = "the CIFAR-10 folder is incomplete, missing data_batch_2"
    p = subprocess.run([sys.executable, "-m", "resnet_core", "train", "--nproc", "2", *bad], cwd=ROOT,
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 2 and p.stdout == "" and "Traceback" not in p.stderr
    errors = [line for line in p.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and want in errors[0], p.stderr
    # started by torchrun itself: the line once too (torchrun's own exit status and report are its own)
    p = _torchrun(*bad)
    assert p.returncode != 0 and sum(want in line for line in p.stderr.splitlines()) == 1, p.stderr


@pytest.mark.slow
def test_under_torchrun_a_bad_option_is_said_once_and_nproc_is_refused():
    p = _torchrun("--steps", "abc", "--device", "cpu")
    assert sum("error: argument --steps: expected an integer, got 'abc'" in line
               for line in p.stderr.splitlines()) == 1, p.stderr
    # torchrun's own parser takes --nproc for its --nproc-per-node: a worker sees it with torchrun's environment
    env = {**os.environ, "RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "TORCHELASTIC_RUN_ID": "x"}
    p = subprocess.run([sys.executable, "-m", "resnet_core", "train", "--nproc", "2", "--device", "cpu"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 2 and p.stderr.startswith("error: --nproc/--port start torchrun here; this process is "
                                                     "already a torchrun worker") and len(p.stderr.splitlines()) == 1
