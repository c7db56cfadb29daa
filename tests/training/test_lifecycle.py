"""lifecycle: a child whose parent is already gone ends at once; exit statuses and signals."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from resnet_core.training import lifecycle

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG")
def test_a_child_whose_parent_died_before_it_asked_ends_at_once():
    code = ("import os; from resnet_core.training.lifecycle import die_with_parent; "
            "die_with_parent({}); print('alive')")
    gone = subprocess.run([sys.executable, "-c", code.format(2**22 + 12345)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)  # a parent pid that is not this child's parent
    assert gone.returncode == 143 and "alive" not in gone.stdout
    here = subprocess.run([sys.executable, "-c", code.format("os.getppid()")], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert here.returncode == 0 and here.stdout.strip() == "alive"


def test_exit_statuses_follow_the_shell():
    assert lifecycle.exit_status(signal.SIGINT) == 130 and lifecycle.exit_status(signal.SIGTERM) == 143
    assert lifecycle.signal_of_status(-9) == 9 and lifecycle.signal_of_status(130) == signal.SIGINT
    assert lifecycle.signal_of_status(1) is None and lifecycle.signal_of_status(2) is None


def test_marked_children_set_and_restore_the_environment(monkeypatch):
    import os
    monkeypatch.delenv(lifecycle.RUN_ID_ENV, raising=False)
    with lifecycle.marked_children(**{lifecycle.BOOKED_ENV: "7"}) as run_id:
        assert os.environ[lifecycle.RUN_ID_ENV] == run_id and os.environ[lifecycle.PARENT_ENV] == str(os.getpid())
        assert os.environ[lifecycle.BOOKED_ENV] == "7"
    assert lifecycle.RUN_ID_ENV not in os.environ and lifecycle.BOOKED_ENV not in os.environ
