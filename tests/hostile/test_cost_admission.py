"""Every experiment and every live pass is admitted by its cost before it starts (issue 25, item 1).

From the command line, each experiment at its largest legal options, and on a large network from a spec
(wide layers, many classes, large inputs), must be refused at once: exit 2, one line naming the numbers
and a smaller setting, no traceback, well within the subprocess's time limit — where the code before
this admission ran until the process was killed for memory or time. Each child runs under an address-space
limit, so a run that starts anyway dies quickly of memory (an "internal error", exit 1) rather than taking
the machine. A run that fits still runs. An allocation failure is a one-line error, never "internal error".
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUDGET = "256M"
CHILD_TIMEOUT_S = 120  # a refused run ends in seconds; one that starts runs for many minutes
ADDRESS_LIMIT = 3 << 30  # bytes of address space for each child (torch imports in well under this)


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_LIMIT, ADDRESS_LIMIT))


def cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    e = {**os.environ, "RESNET_EXPLORER_MEMORY_BUDGET": BUDGET, "PYTHONPATH": str(ROOT)}
    e.pop("RESNET_EXPLORER_DEBUG", None)
    e.pop("RESNET_EXPLORER_WORK_LIMIT", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "resnet_core", *argv], capture_output=True, text=True, cwd=ROOT,
                          env=e, timeout=CHILD_TIMEOUT_S, preexec_fn=_limit)


def refused(r: subprocess.CompletedProcess, *words: str) -> str:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    assert r.stdout == ""
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def huge_spec(tmp_path_factory) -> str:
    """resnet18 with wide layers, many classes and large inputs: every stage within the planner's limits."""
    from dataclasses import replace

    from resnet_core.structure.presets import get_preset
    spec = get_preset("resnet18")
    spec = spec.replace(name="huge", input_size=(256, 256), num_classes=200_000,
                        stages=tuple(replace(st, width=st.width * 4) for st in spec.stages))
    path = tmp_path_factory.mktemp("specs") / "huge.json"
    path.write_text(json.dumps(spec.to_dict()))
    return str(path)


# ------------------------------------------------------------------------ the extremes, refused at once

EXTREMES = {
    "signal": ["--batch", "512", "resnet152"],
    "shatter": ["--width", "2048", "--depths", "97", "--seeds", "100", "--points", "4096"],
    "erf": ["--depths", "64,62", "--channels", "128", "--samples", "64", "--seeds", "32"],
    "lesion": ["--steps", "100000", "--batch", "4096", "--input-size", "64", "--draws", "100"],
    "landscape": ["--steps", "100000", "--batch", "4096", "--input-size", "64", "--images", "10000",
                  "--points-1d", "101", "--points-2d", "41"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXTREMES))
def test_an_experiment_at_its_largest_legal_options_is_refused_with_the_numbers_and_a_smaller_setting(name):
    line = refused(cli("experiment", name, *EXTREMES[name], "--quiet"))
    assert "needs about" in line or "multiply-adds" in line
    assert "a smaller setting that fits:" in line or "no smaller setting of this experiment fits" in line


@pytest.mark.slow
@pytest.mark.parametrize("name", ["signal", "erf"])
def test_an_experiment_on_a_huge_network_from_a_spec_is_refused(name, huge_spec):
    extra = ["--depths", "2,4", "--samples", "4"] if name == "erf" else ["--batch", "8"]
    line = refused(cli("experiment", name, huge_spec, *extra, "--quiet"), "huge")
    assert "RESNET_EXPLORER_MEMORY_BUDGET" in line or "RESNET_EXPLORER_WORK_LIMIT" in line


@pytest.mark.slow
def test_the_work_of_a_run_is_bounded_not_only_its_memory():
    # 2 × 3 × resnet20's 41 M mult-adds × 64 images is above a 1 G limit, and well within the memory
    import re

    from resnet_core.structure.presets import get_preset
    from resnet_core.structure.trace import trace
    # forward + backward ≈ 3 × the trace's mult-adds per image, twice (with and without skips): 64 images of
    # resnet20 are ~16 G, far above a 1 G limit, and far within the memory
    line = refused(cli("gradflow", "resnet20", "--batch", "64", "--compare-skip",
                       env={"RESNET_EXPLORER_WORK_LIMIT": "1G"}), "multiply-adds", "limit of 1 G")
    batch = int(re.search(r"a batch of (\d+) would fit", line).group(1))
    per_image = 2 * 3 * trace(get_preset("resnet20")).mult_adds
    assert 1 <= batch < 64 and batch * per_image <= 10**9 < 64 * per_image
    refused(cli("experiment", "shatter", "--quiet", env={"RESNET_EXPLORER_WORK_LIMIT": "1G"}),
            "multiply-adds", "a smaller setting that fits:")


@pytest.mark.slow
def test_gradflow_on_a_huge_network_is_refused(huge_spec):
    line = refused(cli("gradflow", huge_spec, "--batch", "4096"), "huge")
    assert "RESNET_EXPLORER_MEMORY_BUDGET" in line or "RESNET_EXPLORER_WORK_LIMIT" in line


MALFORMED = ["1,,2", "2,4,", " ", ",", "2,x", "2," * 20 + "2", "9" * 40, "2;4", "0x10"]


@pytest.mark.parametrize("text", MALFORMED)
def test_a_malformed_or_overlong_list_is_refused_by_the_parser(text):
    import argparse

    from resnet_core.cli.experiment import int_list
    with pytest.raises(argparse.ArgumentTypeError, match="item|at most"):
        int_list(text)


@pytest.mark.slow
@pytest.mark.parametrize("name,text", [("erf", "1,,2"), ("shatter", "2,4,"), ("erf", " ")])
def test_a_malformed_list_exits_2_in_one_line(name, text):
    refused(cli("experiment", name, "--depths", text, "--quiet"), "--depths", "item")


def test_more_depths_than_the_library_takes_are_refused_by_the_library_too():
    from resnet_core.experiments import erf, shatter
    from resnet_core.experiments.common import ExperimentError
    from resnet_core.experiments.settings import MAX_DEPTHS
    with pytest.raises(ExperimentError, match=f"at most {MAX_DEPTHS} depths"):
        shatter.check(shatter.ShatterSettings(depths=tuple(range(1, MAX_DEPTHS + 2))))
    with pytest.raises(ExperimentError, match=f"at most {MAX_DEPTHS} depths"):
        erf.check(erf.ErfSettings(depths=tuple(range(2, 2 * MAX_DEPTHS + 4, 2))))


# ------------------------------------------------------------------------ what fits still runs

@pytest.mark.slow
@pytest.mark.parametrize("argv", [
    ["erf", "--depths", "2,4", "--channels", "4", "--samples", "1", "--seeds", "1"],
    ["shatter", "--width", "16", "--depths", "1,2", "--seeds", "1", "--points", "16"],
    ["signal", "--batch", "4"],
])
def test_a_run_that_fits_the_small_budget_still_runs(argv):
    r = cli("experiment", *argv, "--quiet", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["experiment"] == argv[0]


# ------------------------------------------------------------------------ in the library

def test_the_admission_counts_what_other_runs_have_booked(monkeypatch):
    from resnet_core import device
    from resnet_core.experiments import erf
    monkeypatch.setenv("RESNET_EXPLORER_MEMORY_BUDGET", "256M")
    small = erf.ErfSettings(depths=(2, 4), channels=4, samples=1, seeds=1)
    need = erf.cost(small).memory
    assert need < 256 << 20
    with device.reserve((256 << 20) - need // 2, "cpu", what="another session's pass"), \
            pytest.raises(device.MemoryGuardError, match="booked by passes running now"):
        erf.run(small)
    assert erf.run(small).tables["stacks"]  # the booking was released: it runs now


def test_an_admitted_run_books_its_memory_while_it_runs(monkeypatch):
    from resnet_core import device
    from resnet_core.experiments import erf
    seen = []
    real = erf.stack_erf

    def watching(*a, **k):
        seen.append(device.reserved("cpu"))
        return real(*a, **k)

    monkeypatch.setattr(erf, "stack_erf", watching)
    small = erf.ErfSettings(depths=(2, 4), channels=4, samples=1, seeds=1)
    before = device.reserved("cpu")
    erf.run(small)
    assert seen and all(b - before == erf.cost(small).memory for b in seen)
    assert device.reserved("cpu") == before


OOM_MESSAGES = ["[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried to "
                "allocate 85899345920 bytes. Error code 12 (Cannot allocate memory)",
                "CUDA out of memory. Tried to allocate 20.00 GiB"]


@pytest.mark.parametrize("message", OOM_MESSAGES)
def test_an_allocation_failure_in_an_experiment_is_a_one_line_error(monkeypatch, message):
    from resnet_core.device import OutOfMemoryError
    from resnet_core.experiments import erf

    def fail(*a, **k):
        raise RuntimeError(message)

    monkeypatch.setattr(erf, "stack_erf", fail)
    with pytest.raises(OutOfMemoryError, match="ran out of memory") as e:
        erf.run(erf.ErfSettings(depths=(2, 4), channels=4, samples=1, seeds=1))
    assert "\n" not in str(e.value)


def test_an_allocation_failure_in_a_live_pass_is_a_one_line_error_at_the_command_line(monkeypatch, capsys):
    from resnet_core.cli.main import main
    from resnet_core.lab import gradients

    def fail(*a, **k):
        raise RuntimeError(OOM_MESSAGES[0])

    monkeypatch.setattr(gradients, "build_seeded", fail)
    assert main(["gradflow", "resnet20", "--batch", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ran out of memory" in err[0] and "internal error" not in err[0]


def test_a_forward_record_above_the_work_limit_is_refused(monkeypatch):
    import torch

    from resnet_core import device
    from resnet_core.lab import forward_record
    from resnet_core.structure.build import build_model
    from resnet_core.structure.plan import plan
    from resnet_core.structure.presets import get_preset
    monkeypatch.setenv("RESNET_EXPLORER_WORK_LIMIT", "1M")
    p = plan(get_preset("resnet20"))
    with pytest.raises(device.WorkLimitError, match="multiply-adds"):
        forward_record(build_model(p), torch.zeros(2, *p.input_shape), p)


def test_other_errors_pass_through_the_allocation_guard():
    from resnet_core.device import allocation_guard
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"), allocation_guard("a pass"):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)")


@pytest.mark.parametrize("name", ["lesion", "landscape"])
def test_a_pair_the_caller_trains_is_not_trained_when_the_run_is_refused(name, monkeypatch):
    import importlib
    from dataclasses import replace

    from resnet_core import device
    module = importlib.import_module(f"resnet_core.experiments.{name}")
    monkeypatch.setenv("RESNET_EXPLORER_MEMORY_BUDGET", "256M")
    big = module.run.__defaults__[0]
    big = replace(big, pair=replace(big.pair, steps=100_000, batch_size=4096, input_size=64))

    def never():
        raise AssertionError("the pair was trained although the run does not fit")

    with pytest.raises((device.MemoryGuardError, device.WorkLimitError), match="a smaller setting that fits"):
        module.run(big, make_pair=never)
