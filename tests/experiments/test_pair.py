"""The trained pair: two processes (one per net) give exactly the weights of the side-by-side run in one."""

from dataclasses import replace

import torch

from resnet_core.experiments.pair import PairSettings
from resnet_core.experiments.trained import train_pair


def test_two_processes_train_exactly_the_weights_of_one():
    s = PairSettings(steps=20, input_size=8, batch_size=16)
    one = train_pair(s)
    two = train_pair(replace(s, processes=2))
    assert "two processes" in two.source and not two.stopped
    assert list(one.models) == list(two.models) == ["resnet20", "plain20"]
    for net in one.models:
        a, b = one.models[net].state_dict(), two.models[net].state_dict()
        assert list(a) == list(b)
        assert all(torch.equal(a[k], b[k]) for k in a), net
        assert one.heldout[net] == two.heldout[net]


def test_a_stop_ends_both_processes():
    calls = []
    pair = train_pair(PairSettings(steps=5000, input_size=8, processes=2),
                      should_stop=lambda: calls.append(1) or len(calls) > 25)
    assert pair.stopped and not pair.models


def test_the_processes_do_not_rerun_the_callers_main_script(monkeypatch, tmp_path):
    """After an AppTest the process's __main__ is a Streamlit page; spawned children must not run it."""
    import sys
    import types
    script = tmp_path / "page.py"
    script.write_text("raise SystemExit('the caller main script ran in a training process')\n")
    fake = types.ModuleType("__main__")
    fake.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", fake)
    pair = train_pair(PairSettings(steps=3, input_size=8, batch_size=8, processes=2))
    assert not pair.stopped and set(pair.models) == {"resnet20", "plain20"}
