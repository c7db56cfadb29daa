"""Side-by-side training: repeatable curves, shared batches, the schedule, stopping, exports, checkpoints,
and the degradation problem itself (plain56 trains worse than plain20) in a short run."""

import csv
import io
import math
import threading

import pytest
import torch
import torch.nn.functional as F

import resnet_core as rc
from resnet_core import device as dev
from resnet_core.training import config as tconfig
from resnet_core.training import results
from resnet_core.training import run as trun
from resnet_core.training.data import load_digits

# every run here uses one intra-op thread: as fast as two for these tiny nets, and steady when other
# processes share the cores
FAST = dict(threads=1)


@pytest.fixture(scope="module")
def digits8():
    return load_digits(input_size=8, in_channels=3, seed=0)


def run_of(nets, data, **config):
    cfg = tconfig.TrainConfig(**{"batch_size": 32, "seed": 0, **FAST, **config})
    return trun.TrainingRun(nets, data, cfg, device="cpu")


def curve(records, net):
    return [(r.step, r.loss, r.accuracy, r.lr) for r in records if r.net == net]


# ------------------------------------------------------------------------------------ repeatability

def test_same_seed_gives_identical_curves_and_weights(digits8):
    a = run_of(["plain20", "resnet20"], digits8, steps=12, seed=3).run()
    b = run_of(["plain20", "resnet20"], digits8, steps=12, seed=3).run()
    c = run_of(["plain20", "resnet20"], digits8, steps=12, seed=4).run()
    for net in ("plain20", "resnet20"):
        assert len(curve(a.records, net)) == 12
        assert curve(a.records, net) == curve(b.records, net)
        assert curve(a.records, net) != curve(c.records, net)
        sa, sb = a.state_dict(net), b.state_dict(net)
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [r.heldout_accuracy for r in a.nets] == [r.heldout_accuracy for r in b.nets]


def test_every_net_sees_the_same_batches_in_the_same_order(digits8):
    # two copies of one net start from the same weights: only identical batches keep their curves equal
    r = run_of(["resnet20", "resnet20"], digits8, steps=10).run()
    assert [n.net for n in r.nets] == ["resnet20", "resnet20 #2"]
    assert curve(r.records, "resnet20") == [(s, loss, a, lr) for s, loss, a, lr in curve(r.records, "resnet20 #2")]


def test_batches_walk_seeded_permutations_and_drop_the_remainder(digits8):
    run = run_of(["resnet20"], digits8, steps=1, batch_size=500)
    per_epoch = digits8.n_train // 500
    first = [run.batch_indices() for _ in range(per_epoch)]
    seen = torch.cat(first)
    assert len(seen.unique()) == len(seen) == per_epoch * 500  # no image twice within an epoch
    again = run_of(["resnet20"], digits8, steps=1, batch_size=500)
    assert all(torch.equal(x, again.batch_indices()) for x in first)


# ------------------------------------------------------------------------------------ learning

def test_loss_falls_on_digits_within_a_few_dozen_steps(digits8):
    r = run_of(["resnet20"], digits8, steps=40, lr=0.05).run()
    losses = [x.loss for x in r.records]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert abs(first - math.log(10)) < 0.6  # starts near chance: -ln(1/10)
    assert last < 0.5 * first
    assert r.nets[0].train_accuracy > 0.7 and r.nets[0].heldout_accuracy > 0.6


def test_short_default_experiment_shows_degradation(digits8):
    """He et al.'s headline result in ~10 s: plain56 ends with a higher training loss than plain20.

    Measured over seeds 0-5 (8×8 digits, batch 32, 150 steps): plain56 2.04-2.27, plain20 0.08-0.21,
    a margin of at least 1.8; resnet56 0.40-1.96, always below plain56.
    """
    r = trun.make_run("degradation", digits8, steps=150, batch_size=32, seed=0, device="cpu", **FAST).run()
    loss = {n.net: n.final_loss for n in r.nets}
    assert list(loss) == ["plain20", "plain56", "resnet20", "resnet56"]
    assert loss["plain56"] > loss["plain20"] + 1.0
    assert loss["resnet56"] < loss["plain56"]
    assert loss["resnet20"] < loss["plain20"]
    # the deep nets warmed up, the shallow ones did not
    assert {n.net: n.warmup for n in r.nets} == {"plain20": False, "plain56": True, "resnet20": False,
                                                 "resnet56": True}


def test_short_batchnorm_experiment_shows_batch_norm_speeds_training(digits8):
    """Measured over seeds 0-3 (8×8 digits, batch 32, 150 steps, the experiment's lr 0.02): plain20
    0.10-0.15, plain20 without batch norm 0.39-0.85."""
    run = trun.make_run("batchnorm", digits8, steps=150, batch_size=32, seed=0, device="cpu", **FAST)
    assert run.config.lr == 0.02
    r = run.run()
    assert r.net("plain20 no BN").final_loss > r.net("plain20").final_loss + 0.2
    assert r.net("plain20 no BN").spec.norm == "none" and r.net("plain20").spec.norm == "batch"


# ------------------------------------------------------------------------------------ schedule

def test_learning_rate_schedules():
    cfg = tconfig.TrainConfig(steps=100, lr=0.2, warmup_steps=10, schedule="cosine", warmup_mode="linear")
    assert tconfig.lr_at(0, cfg, warmup=True) == pytest.approx(0.02)
    assert tconfig.lr_at(5, cfg, warmup=True) == pytest.approx(0.02 + 0.18 * 0.5)
    assert tconfig.lr_at(10, cfg, warmup=True) == pytest.approx(0.2)
    assert tconfig.lr_at(0, cfg, warmup=False) == pytest.approx(0.2)
    assert tconfig.lr_at(55, cfg, warmup=True) == pytest.approx(0.1)  # halfway through the cosine after warm-up
    assert tconfig.lr_at(99, cfg, warmup=False) < 0.001
    step = tconfig.TrainConfig(steps=100, lr=0.1, schedule="step", warmup_steps=0)
    assert [tconfig.lr_at(s, step, False) for s in (0, 49, 50, 74, 75, 99)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    const = tconfig.TrainConfig(steps=100, lr=0.1, schedule="constant")
    assert tconfig.lr_at(99, const, False) == 0.1


def test_warm_up_only_for_deep_nets(digits8):
    r = run_of(["plain20", "plain56"], digits8, steps=6, warmup_steps=4, lr=0.1, schedule="constant",
               warmup_mode="linear").run()
    assert [x.lr for x in r.records if x.net == "plain20"] == pytest.approx([0.1] * 6)
    assert [x.lr for x in r.records if x.net == "plain56"] == pytest.approx([0.01, 0.0325, 0.055, 0.0775, 0.1, 0.1])
    assert tconfig.weighted_depth(rc.get_preset("plain56")) == 56 and tconfig.weighted_depth(rc.get_preset("resnet20")) == 20


# ------------------------------------------------------------------------------------ stopping

def test_stopping_keeps_a_usable_model(digits8):
    run = run_of(["resnet20", "plain20"], digits8, steps=200, lr=0.05)
    updates = []
    for u in run.iter():
        updates.append(u)
        if u.step == 30:
            run.stop()
    r = run.result()
    assert r.stopped and r.steps_done == 30 and updates[-1].progress.stopped and updates[-1].progress.done
    assert len(curve(r.records, "resnet20")) == 30 and r.net("resnet20").steps == 30
    model = r.trained_model("resnet20")
    assert model is not r.models["resnet20"] and not model.training
    with torch.no_grad():
        pred = model(digits8.x_test).argmax(1)
    acc = (pred == digits8.y_test).float().mean().item()
    assert acc == pytest.approx(r.net("resnet20").heldout_accuracy, abs=1e-6)
    assert acc > 0.5  # chance is 0.1
    # the copy is private: changing it leaves the run's model alone
    with torch.no_grad():
        model.fc.weight.zero_()
    assert r.models["resnet20"].fc.weight.abs().sum() > 0
    # iterating again resumes where it stopped
    for _u in run.iter(should_stop=lambda: run.step >= 35):
        pass
    assert run.step == 35 and run.stopped


def test_stop_from_another_thread_with_an_event(digits8):
    run = run_of(["resnet20"], digits8, steps=10_000)
    stop = threading.Event()
    seen = []

    def watch(u):
        seen.append(u.step)
        if u.step == 5:
            threading.Thread(target=stop.set).start()

    r = run.run(should_stop=stop, on_update=watch)
    assert r.stopped and 5 <= r.steps_done < 50 and r.nets[0].heldout_accuracy > 0.0


def test_updates_carry_records_and_progress(digits8):
    run = run_of(["plain20", "resnet20"], digits8, steps=6, eval_every=3)
    updates = list(run.iter())
    assert [u.step for u in updates] == [1, 2, 3, 4, 5, 6]
    assert all([r.net for r in u.records] == ["plain20", "resnet20"] for u in updates)
    assert [r.step for u in updates for r in u.records] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]
    last = updates[-1].progress
    assert last.done and not last.stopped and last.fraction == 1.0 and last.eta_s == 0.0
    mid = updates[2].progress
    assert mid.steps_per_s > 0 and math.isfinite(mid.eta_s) and mid.step == 3 and not mid.done
    assert [(e.step, e.net) for u in updates for e in u.evals] == [(3, "plain20"), (3, "resnet20"),
                                                                  (6, "plain20"), (6, "resnet20")]
    times = [r.time_s for r in run.records]
    assert times == sorted(times)


def test_a_diverging_net_stops_and_the_others_go_on(digits8):
    r = run_of(["resnet20", "resnet56-nobn"], digits8, steps=15).run()
    bad, good = r.net("resnet56-nobn"), r.net("resnet20")
    assert bad.diverged_at is not None and bad.steps < 15 and math.isnan(bad.final_loss)
    assert good.diverged_at is None and good.steps == 15 and math.isfinite(good.final_loss)
    assert all(math.isfinite(x.loss) for x in r.records)
    assert r.to_dict()["nets"][1]["final_loss"] is None  # JSON-safe


def test_the_library_never_prints(digits8, capsys):
    run_of(["resnet20"], digits8, steps=3).run()
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


# ------------------------------------------------------------------------------------ exports

def test_curves_and_table_export_as_csv(digits8):
    r = run_of(["plain20", "resnet20"], digits8, steps=5, eval_every=5).run()
    rows = list(csv.DictReader(io.StringIO(results.curves_csv(r.records, r.evals))))
    train = [x for x in rows if x["split"] == "train"]
    assert len(train) == 10 and len(rows) == 12
    for row, rec in zip(train, r.records, strict=True):
        assert int(row["step"]) == rec.step and row["net"] == rec.net
        assert float(row["loss"]) == pytest.approx(rec.loss, rel=1e-5)
        assert float(row["lr"]) == pytest.approx(rec.lr, rel=1e-5)
    table = list(csv.DictReader(io.StringIO(results.results_csv(r))))
    assert [x["net"] for x in table] == ["plain20", "resnet20"]
    assert float(table[1]["heldout_accuracy"]) == pytest.approx(r.nets[1].heldout_accuracy, rel=1e-5)
    assert int(table[0]["params"]) == rc.trace(r.nets[0].spec).total_params


def test_checkpoint_round_trip(digits8, tmp_path):
    r = run_of(["resnet20"], digits8, steps=5).run()
    pt, side = r.save_checkpoint("resnet20", tmp_path / "resnet20")
    assert pt.name == "resnet20.pt" and side.name == "resnet20.json"
    state = torch.load(pt, weights_only=True)  # a bare torchvision-format state_dict
    assert set(state) == set(rc.build_model(r.nets[0].spec).state_dict())
    assert "layer1.0.conv1.weight" in state and "fc.bias" in state
    model, spec, meta = results.load_saved_net(pt)
    assert spec == r.nets[0].spec and spec.input_size == (8, 8) and meta["steps"] == 5
    x = digits8.x_test[:7]
    with torch.no_grad():
        assert torch.equal(model(x), r.trained_model("resnet20")(x))
    side.unlink()
    with pytest.raises(tconfig.TrainError, match="no spec beside it"):
        results.load_saved_net(pt)
    with pytest.raises(tconfig.TrainError, match="no checkpoint"):
        results.load_saved_net(tmp_path / "missing.pt")


# ------------------------------------------------------------------------------------ bad runs

def test_bad_runs_are_refused_with_a_reason(digits8, monkeypatch):
    with pytest.raises(tconfig.TrainError, match="at most 4"):
        run_of(["resnet20"] * 5, digits8, steps=1)
    with pytest.raises(tconfig.TrainError, match="steps must be between 1 and"):
        run_of(["resnet20"], digits8, steps=0)
    broken = rc.get_preset("resnet20").with_stage(1, groups=3)
    with pytest.raises(tconfig.TrainError, match="cannot take 3×8×8 inputs"):
        run_of([broken], digits8, steps=1)
    with pytest.raises(tconfig.TrainError, match="neither a preset nor a file"):
        run_of(["resnet21"], digits8, steps=1)
    with pytest.raises(tconfig.TrainError, match="unknown experiment"):
        tconfig.experiment_specs("depth")
    monkeypatch.setattr(dev, "free_memory", lambda device: 10 << 20)
    with pytest.raises(dev.MemoryGuardError, match="training 1 nets at batch 32 needs about"):
        run_of(["resnet20"], digits8, steps=1)


# ------------------------------------------------------------------------------------ defaults

def test_experiments_and_defaults():
    deg = tconfig.experiment_specs("degradation")
    assert [label for label, _ in deg] == ["plain20", "plain56", "resnet20", "resnet56"]
    assert [s.skip for _, s in deg] == [False, False, True, True]
    bn = dict(tconfig.experiment_specs("batchnorm"))
    assert bn["resnet20"].norm == "batch" and bn["resnet20 no BN"].norm == "none"
    assert bn["resnet20 no BN"].stages == bn["resnet20"].stages
    run = trun.make_run("degradation", device="cpu")
    assert run.config.steps == tconfig.CPU_DEFAULTS.steps and run.data.input_shape == (3, *tconfig.CPU_DEFAULTS.input_size)
    assert run.config.batch_size == tconfig.CPU_DEFAULTS.batch_size and not run.amp and not run.channels_last
    assert all(s.input_size == tconfig.CPU_DEFAULTS.input_size and s.num_classes == 10 for s in run.specs.values())
    assert tconfig.defaults_for("cuda").input_size == (32, 32)
    nobn = trun.make_run(["resnet20"], steps=1, input_size=8, no_bn=True, device="cpu")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in nobn.models["resnet20-nobn"].modules())


def test_evaluate_restores_the_mode(digits8):
    model = rc.build_model(rc.get_preset("resnet20").replace(input_size=(8, 8)), seed=0).train()
    loss, acc = trun.evaluate(model, digits8.x_test[:64], digits8.y_test[:64])
    assert model.training
    with torch.no_grad():
        out = model.eval()(digits8.x_test[:64])
    assert loss == pytest.approx(F.cross_entropy(out, digits8.y_test[:64]).item(), rel=1e-5)
    assert acc == pytest.approx((out.argmax(1) == digits8.y_test[:64]).float().mean().item())


def test_the_gpu_settings_run_on_cpu_too(digits8):
    """bf16 autocast, channels_last and deferred reads (an Update every 4 steps), as on a GPU."""
    run = run_of(["resnet20", "resnet56-nobn"], digits8, steps=10, amp=True, channels_last=True, report_every=4,
                 lr=0.05)
    assert run.amp and run.channels_last
    assert run.models["resnet20"].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    updates = list(run.iter())
    assert [u.step for u in updates] == [4, 8, 10]
    r = run.result()
    assert [x.step for x in r.records if x.net == "resnet20"] == list(range(1, 11))
    assert r.net("resnet56-nobn").diverged_at is not None  # found at a deferred read, and it stops there
    assert all(x.step < r.net("resnet56-nobn").diverged_at for x in r.records if x.net == "resnet56-nobn")
    assert math.isfinite(r.net("resnet20").final_loss) and 0 <= r.net("resnet20").heldout_accuracy <= 1
