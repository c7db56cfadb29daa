"""Lesion study: a deleted block computes exactly its shortcut (or passes its input on), the model is
restored afterwards, the path counts are the binomial ones, and the study runs end to end on a tiny pair."""

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

import resnet_core as rc
from resnet_core.experiments import lesion
from resnet_core.experiments.common import ExperimentError
from resnet_core.structure.build import build_model


def block_io(model, name, x):
    """The block's input and output in one eval-mode forward."""
    seen = {}
    block = model.get_submodule(name)
    h = block.register_forward_hook(lambda m, a, out: seen.update(x=a[0], y=out))
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        h.remove()
    return seen["x"], seen["y"]


def small(name, **changes):
    return rc.get_preset(name).replace(input_size=(16, 16), **changes)


def test_identity_block_becomes_its_input():
    model = build_model(small("resnet20"), seed=0)
    x = torch.randn(2, 3, 16, 16)
    with lesion.lesioned(model, ["layer1.1"]):
        bx, by = block_io(model, "layer1.1", x)
    assert torch.equal(by, bx)


def test_option_a_block_becomes_subsample_and_zero_pad():
    model = build_model(small("resnet20"), seed=0)
    x = torch.randn(2, 3, 16, 16)
    with lesion.lesioned(model, ["layer2.0"]):
        bx, by = block_io(model, "layer2.0", x)
    expected = F.pad(bx[:, :, ::2, ::2], (0, 0, 0, 0, 0, 16))  # 16 → 32 channels, stride 2, by hand
    assert torch.equal(by, expected)


def test_projection_block_becomes_act_of_its_projection():
    model = build_model(small("resnet18", num_classes=10), seed=0)
    x = torch.randn(2, 3, 16, 16)
    with lesion.lesioned(model, ["layer2.0"]):
        bx, by = block_io(model, "layer2.0", x)
    block = model.layer2[0]
    with torch.no_grad():
        expected = torch.relu(block.downsample[1](block.downsample[0](bx)))  # conv 1×1/2 then BN, then ReLU
    assert torch.allclose(by, expected)


def test_preact_projection_block_becomes_projection_of_the_activated_input():
    model = build_model(small("preact_resnet18", num_classes=10), seed=0)
    x = torch.randn(2, 3, 16, 16)
    with lesion.lesioned(model, ["layer2.0"]):
        bx, by = block_io(model, "layer2.0", x)
    block = model.layer2[0]
    with torch.no_grad():
        expected = block.downsample(torch.relu(block.bn1(bx)))  # no activation after a pre-activation add
    assert torch.allclose(by, expected)


def test_plain_block_passes_its_input_and_the_whole_net_equals_a_hand_run():
    model = build_model(small("plain20"), seed=1).eval()
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        h = model.relu(model.bn1(model.conv1(x)))
        for name in ("layer1", "layer2", "layer3"):
            for i, block in enumerate(getattr(model, name)):
                if (name, i) == ("layer1", 2):
                    continue  # deleted: its input goes on unchanged
                if (name, i) == ("layer3", 0):
                    h = F.pad(h[:, :, ::2, ::2], (0, 0, 0, 0, 0, 32))  # deleted across a shape change
                    continue
                h = block(h)
        expected = model.fc(torch.flatten(model.avgpool(h), 1))
        with lesion.lesioned(model, ["layer1.2", "layer3.0"]):
            got = model(x)
    assert torch.allclose(got, expected, atol=1e-5)


def test_model_is_restored_after_a_lesion():
    model = build_model(small("resnet20"), seed=0).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        before = model(x)
        with lesion.lesioned(model, ["layer1.0", "layer3.2"]):
            during = model(x)
        after = model(x)
    assert torch.equal(before, after) and not torch.equal(before, during)
    with pytest.raises(ExperimentError, match="no block"), lesion.lesioned(model, ["layer9.9"]):
        pass
    with torch.no_grad():
        assert torch.equal(model(x), before)


def test_path_lengths_are_binomial():
    rows = lesion.path_lengths(9)
    assert sum(r["paths"] for r in rows) == 2 ** 9
    assert [r["paths"] for r in rows] == [math.comb(9, k) for k in range(10)]
    assert math.isclose(sum(r["fraction"] for r in rows), 1.0)


def test_end_to_end_on_a_tiny_training():
    """The machinery, not the acceptance: 5 steps at 8×8, every table filled, numbers in range, the verdict
    computed from them."""
    from resnet_core.experiments.trained import PairSettings
    s = lesion.LesionSettings(pair=PairSettings(steps=5, input_size=8, batch_size=16), draws=2, max_k=3)
    r = lesion.run(s)
    assert [row["block"] for row in r.tables["single"]][:2] == ["layer1.0", "layer1.1"]
    assert len(r.tables["single"]) == 9 and len(r.tables["random"]) == 2 * 4
    assert all(0 <= row["residual"] <= 1 and 0 <= row["plain"] <= 1 for row in r.tables["single"])
    # the paper's criterion: every block but the downsampling ones (resnet20: layer2.0 and layer3.0)
    kept = [row for row in r.tables["single"] if row["block"] not in ("layer2.0", "layer3.0")]
    assert [row["downsampling"] for row in r.tables["single"]] == [b in ("layer2.0", "layer3.0") for b in (
        row["block"] for row in r.tables["single"])]
    worst = min(row["residual"] for row in kept)
    assert r.verdict.measured["residual_min"] == worst
    assert r.verdict.reproduced == (worst >= 0.85 and r.verdict.measured["residual_median"] >= 0.9
                                    and r.verdict.measured["plain_max"] <= 0.3)


def test_acceptance_at_a_shorter_training():
    """Veit et al.'s claim, with the paper's exceptions (the downsampling blocks, layer2.0 and layer3.0 here), on
    digits at 8×8, resnet20 and plain20 at 800 steps, one draw of one deletion; the two nets train in two
    processes (the same weights as in one: test_pair.py). Measured (seed 0, the default 1,600 steps): every
    deletion but layer1.0's leaves resnet20 at 94.4–98.3 % (the downsampling blocks 95.5 % and 97.5 %), while
    deleting layer1.0, right after the stem, leaves 52.6 %; every deletion leaves plain20 at ≤ 20.9 %. So the
    claim holds for every block but the first, which the paper does not exempt: the verdict says "not reproduced"
    exactly when a block inside the criterion falls below 85 %, and this test holds it to that."""
    import statistics

    from resnet_core.experiments.pair import LESION_PAIR
    r = lesion.run(lesion.LesionSettings(pair=replace(LESION_PAIR, steps=800, processes=2), draws=1, max_k=1))
    singles = r.tables["single"]
    assert [row["block"] for row in singles] == [f"layer{s}.{b}" for s in (1, 2, 3) for b in (0, 1, 2)]
    inside = [row["residual"] for row in singles if row["block"] not in ("layer2.0", "layer3.0")]  # the paper's criterion
    beyond_first = [row["residual"] for row in singles[1:] if row["block"] not in ("layer2.0", "layer3.0")]
    assert min(beyond_first) >= 0.85, singles  # the ensemble behaviour, every block after the first
    assert statistics.median(inside) >= 0.90, singles
    assert max(row["plain"] for row in singles) <= 0.30, singles
    assert r.verdict.reproduced == (min(inside) >= 0.85), singles  # the first block decides, and is not hidden


def fake_pair(classes=10):
    from types import SimpleNamespace
    return SimpleNamespace(residual_label="resnet20", plain_label="plain20", data=SimpleNamespace(num_classes=classes))


def singles_of(residual, plain):
    names = [f"layer{s}.{b}" for s in (1, 2, 3) for b in (0, 1, 2)]
    return [{"index": i + 1, "block": n, "downsampling": n in ("layer2.0", "layer3.0"), "residual": a, "plain": p}
            for i, (n, a, p) in enumerate(zip(names, residual, plain, strict=True))]


def test_the_criterion_is_the_papers_and_a_first_block_that_hurts_is_not_exempt():
    """Veit et al.'s exceptions are the downsampling blocks: a first block whose deletion leaves 84.4 % fails the
    85 % floor (it is not exempt), while downsampling blocks at 60 % do not count, and every block is reported."""
    full = {"residual": 0.97, "plain": 0.95}
    plain = [0.1] * 9
    hurts_first = singles_of([0.844, 0.95, 0.96, 0.60, 0.95, 0.96, 0.62, 0.97, 0.96], plain)
    v, findings = lesion.judge(hurts_first, full, fake_pair())
    assert not v.reproduced and v.measured["residual_min_block"] == "layer1.0"
    assert "layer1.0" in v.checks[0][0] and not v.checks[0][1]
    every = next(f for f in findings if f.startswith("Every single deletion"))
    assert all(f"layer{s}.{b}" in every for s in (1, 2, 3) for b in (0, 1, 2))
    assert "layer2.0 ↓ 60.0 % / 10.0 %" in every
    assert any(f.startswith("The downsampling blocks, which the paper exempts") and "all below its 85.0 %" in f
               for f in findings)
    assert any("layer1.0 (84.4 %, 12.6 points below" in f for f in findings)  # 97 − 84.4, counted here
    fine = singles_of([0.93, 0.95, 0.96, 0.60, 0.95, 0.96, 0.62, 0.97, 0.96], plain)
    v2, _ = lesion.judge(fine, full, fake_pair())
    assert v2.reproduced and v2.measured["residual_min"] == 0.93  # the 60 % downsampling deletions are outside it
