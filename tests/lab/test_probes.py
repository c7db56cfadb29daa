"""Live-lab probes: hooks leave no trace, the skip comparison shares weights and batch, every number
against a slow obvious path (manual forward, autograd.grad, param.grad, numpy), and the physics.

Physics numbers measured first (CIFAR nets, batch 8 of 3×32×32 seeded noise, train mode, seeds 0–4):
- no batch norm, PyTorch default init: the first conv's ‖∂L/∂W‖ with skips 0.056–0.073, without skips
  exactly 0 on resnet56 (float32 underflow); on resnet20 4.6e-2–6.0e-2 with, 1.7e-9–8.8e-9 without
  (ratio > 5e6).
- batch norm (the preset's kaiming fan-in init): without skips the first conv's gradient grows with
  depth, 1.45–1.87 (plain20) → 470–1396 (plain56) → 6e6 (plain110, seed 0); with skips 0.55–0.71
  (resnet20) → 2.3–2.8 (resnet56).
"""

import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import resnet_core as rc
from resnet_core import device as devmod
from resnet_core.device import BusyError, MemoryGuardError
from resnet_core.lab import flow, forward, gradients, probes, views
from resnet_core.structure.build import build_model, set_skip
from resnet_core.structure.plan import plan

# small nets: a CIFAR-style net with a projection (B) and one with option A padding
SMALL_B = rc.ArchSpec(name="small_b", input_size=(16, 16), stem=rc.Stem(type="cifar", channels=8),
                      stages=(rc.Stage(blocks=2, width=8), rc.Stage(blocks=1, width=16, stride=2)),
                      shortcut="B", num_classes=5, init="kaiming_fan_in")
SMALL_A = SMALL_B.replace(name="small_a", shortcut="A")


def _hook_count(model):
    from torch.nn.modules import module as nn_module
    n = len(nn_module._global_forward_hooks) + len(nn_module._global_forward_pre_hooks)
    n += len(nn_module._global_backward_hooks) + len(getattr(nn_module, "_global_backward_pre_hooks", {}))
    for m in model.modules():
        n += len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        n += len(getattr(m, "_backward_pre_hooks", {})) + len(getattr(m, "_forward_hooks_with_kwargs", {}))
    return n


def _batch(spec, n=4, seed=0):
    return gradients.seeded_batch(spec.input_shape, n, spec.num_classes, seed)


def _manual_forward(model, x):
    """The network's forward written out, with every block's input kept: the reference path."""
    inputs = []
    h = model.relu(model.bn1(model.conv1(x)))
    for name in model.stage_names:
        for blk in getattr(model, name):
            inputs.append(h)
            h = blk(h)
    return model.fc(torch.flatten(model.avgpool(h), 1)), inputs


# --------------------------------------------------------------------------------------------
# hooks and state
# --------------------------------------------------------------------------------------------

def test_every_probe_leaves_no_hooks_and_restores_mode_skips_buffers_and_grads():
    p = plan(SMALL_B)
    model = build_model(p, seed=0)
    model.train()
    model.layer1[1].eval()  # a mixed state must come back mixed
    model.layer1[0].skip = False  # one block's switch off must stay off
    marker = torch.full_like(model.fc.weight, 7.0)
    model.fc.weight.grad = marker
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    weights = {k: v.clone() for k, v in model.named_parameters()}
    x, y = _batch(SMALL_B)

    forward.feature_maps(model, x, "layer1.0.relu", p)
    forward.block_anatomy(model, x, "layer2.0", p)
    forward.activation_stats(model, x, p, train=True)
    forward.forward_view(model, x, p, layer=3, block="layer1.1", device="cpu")
    gradients.gradient_pass(model, x, y, p, skip=True)
    gradients.compare_skips(model, x, y, p)

    assert _hook_count(model) == 0
    assert model.training and model.layer1[0].training and not model.layer1[1].training
    assert model.layer1[0].skip is False and model.layer1[1].skip is True and model.layer2[0].skip is True
    assert model.fc.weight.grad is marker and model.conv1.weight.grad is None
    for k, v in model.named_buffers():
        assert torch.equal(v, buffers[k]), k  # train-mode passes updated the running stats: restored
    for k, v in model.named_parameters():
        assert torch.equal(v, weights[k]), k


def test_hooks_are_removed_and_state_restored_when_the_pass_fails():
    p = plan(SMALL_B)
    model = build_model(p, seed=0).eval()
    x, y = _batch(SMALL_B)

    def boom(mod, inputs, output):
        raise RuntimeError("boom")

    mine = model.fc.register_forward_hook(boom)
    with pytest.raises(RuntimeError, match="boom"):
        gradients.gradient_pass(model, x, y, p, skip=False, train=True)
    with pytest.raises(RuntimeError, match="boom"):
        forward.forward_view(model, x, p, layer="conv1", block="layer2.0", device="cpu")
    mine.remove()
    assert _hook_count(model) == 0
    assert not any(m.training for m in model.modules())
    assert all(b.skip for _, b in probes.blocks_of(model))
    assert all(prm.grad is None for prm in model.parameters())


def test_bad_requests_are_clear_errors():
    p = plan(SMALL_B)
    model = build_model(p, seed=0)
    x, y = _batch(SMALL_B)
    with pytest.raises(probes.ProbeError, match="no layer named 'layer1.0.conv9' in this network; did you mean layer1.0.conv2"):
        forward.feature_maps(model, x, "layer1.0.conv9", p)
    with pytest.raises(probes.ProbeError, match="not C×H×W maps"):
        forward.feature_maps(model, x, "fc", p)
    with pytest.raises(probes.ProbeError, match="not a residual block"):
        forward.block_anatomy(model, x, "layer1.0.conv1", p)
    with pytest.raises(probes.ProbeError, match="planned for 3×16×16"):
        forward.feature_maps(model, torch.randn(1, 3, 8, 8), "conv1", p)
    with pytest.raises(probes.ProbeError, match="labels must lie in 0..4"):
        gradients.gradient_pass(model, x, y + 10, p)
    with pytest.raises(probes.ProbeError, match="more than one value per channel"):
        gradients.gradient_flow(rc.get_preset("resnet18").replace(input_size=(32, 32)), batch=1, device="cpu")
    plain = build_model(SMALL_A.replace(skip=False), seed=0)
    with pytest.raises(probes.ProbeError, match="built without shortcuts"):
        gradients.gradient_pass(plain, x, y, plan(SMALL_A.replace(skip=False)), skip=True)
    assert _hook_count(model) == 0 and _hook_count(plain) == 0


# --------------------------------------------------------------------------------------------
# the forward view against numpy
# --------------------------------------------------------------------------------------------

def test_feature_maps_match_a_numpy_reduction_of_the_manual_forward():
    p = plan(SMALL_B)
    model = build_model(p, seed=1).eval()
    x, _ = _batch(SMALL_B, n=3, seed=2)
    fm = forward.feature_maps(model, x, "layer1.0.conv1", p, top_k=5, sample=1)
    with torch.no_grad():
        _, inputs = _manual_forward(model, x)  # inputs[0]: the stem's output, layer1.0's input
        a = model.layer1[0].conv1(inputs[0])[1].numpy().astype(np.float64)  # (C, H, W) of image 1
    energy = (a ** 2).mean(axis=(1, 2))
    order = np.argsort(-energy)[:5]
    assert list(fm.channels) == order.tolist()
    np.testing.assert_allclose(fm.all_energy, energy, rtol=1e-5)
    np.testing.assert_allclose(fm.energy, energy[order], rtol=1e-5)
    sel = a[order]
    lo, hi = sel.min(axis=(1, 2)), sel.max(axis=(1, 2))
    np.testing.assert_allclose(fm.minimum, lo, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fm.maximum, hi, rtol=1e-5, atol=1e-6)
    # the maps are kept as the page draws them, 8 bits per pixel: within half a grey level of the exact scaling
    np.testing.assert_allclose(fm.maps, (sel - lo[:, None, None]) / (hi - lo)[:, None, None], atol=0.5 / 255 + 1e-6)
    assert fm.shape == (8, 16, 16) and fm.maps.shape == (5, 16, 16) and "its own" in fm.scaling
    grid = fm.grid(cols=3, pad=1)
    assert grid.shape == (2 * 17 - 1, 3 * 17 - 1) and grid.dtype == np.uint8


def test_a_reused_relu_is_addressed_by_call_and_a_flat_channel_is_flagged():
    p = plan(SMALL_A)
    model = build_model(p, seed=0).eval()
    x, _ = _batch(SMALL_A, n=2)
    with torch.no_grad():
        stem = model.relu(model.bn1(model.conv1(x)))
        blk = model.layer1[0]
        first = blk.relu(blk.bn1(blk.conv1(stem)))[0].numpy()
        out = blk(stem)[0].numpy()
    first_call = forward.feature_maps(model, x, "layer1.0.relu", p, call=0, top_k=8)
    last_call = forward.feature_maps(model, x, "layer1.0.relu", p, top_k=8)  # default: the block's output
    by_index = forward.feature_maps(model, x, [lay.index for lay in p.layers if lay.name == "layer1.0.relu"][0], p,
                                   top_k=8)
    assert (first_call.call, last_call.call) == (0, 1)
    np.testing.assert_allclose(first_call.all_energy, (first.astype(np.float64) ** 2).mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(last_call.all_energy, (out.astype(np.float64) ** 2).mean(axis=(1, 2)), rtol=1e-5)
    assert by_index.channels == first_call.channels
    # a dead channel: with γ = 0 the norm outputs β = 0 everywhere, and the ReLU keeps the zeros
    with torch.no_grad():
        model.layer1[0].bn1.weight[3] = 0.0
    fm = forward.feature_maps(model, x, "layer1.0.relu", p, call=0, top_k=8)
    i = fm.channels.index(3)
    assert fm.flat[i] and fm.energy[i] == 0.0 and not fm.maps[i].any()


def test_block_anatomy_with_a_projection_matches_the_block_computed_by_hand():
    p = plan(SMALL_B)
    model = build_model(p, seed=3).eval()
    x, _ = _batch(SMALL_B, n=2, seed=1)
    an = forward.block_anatomy(model, x, "layer2.0", p, sample=1)
    with torch.no_grad():
        _, inputs = _manual_forward(model, x)
        xin = inputs[2]
        blk = model.layer2[0]
        fx = blk.bn2(blk.conv2(blk.relu(blk.bn1(blk.conv1(xin)))))
        sc = blk.downsample(xin)
        out = blk.relu(fx + sc)
    assert an.shortcut == "projection" and an.skip and an.kind == "BasicBlock" and (an.stage, an.index) == (1, 0)
    for view, ref in ((an.x, xin), (an.fx, fx), (an.shortcut_x, sc), (an.sum, fx + sc), (an.output, out)):
        assert view.shape == tuple(ref.shape[1:])
        assert view.norm == pytest.approx(float(ref.double().norm()), rel=1e-5)
        assert view.sample_norm == pytest.approx(float(ref[1].double().norm()), rel=1e-5)
        np.testing.assert_allclose(view.mean_map, ref[1].mean(0).numpy(), atol=1e-5)
    assert an.ratio == pytest.approx(float(fx.norm() / xin.norm()), rel=1e-5)
    assert an.ratio_to_shortcut == pytest.approx(float(fx.norm() / sc.norm()), rel=1e-5)
    assert [t.name for t in an.tensors()] == ["x", "shortcut(x)", "F(x)", "F(x)+x", "output"]


def test_block_anatomy_identity_pad_and_skip_off():
    p = plan(SMALL_A)
    model = build_model(p, seed=0).eval()
    x, _ = _batch(SMALL_A, n=2)
    ident = forward.block_anatomy(model, x, "layer1.1", p)
    assert ident.shortcut == "identity" and ident.shortcut_x is None
    assert ident.sum.norm == pytest.approx(float(_sum_ref(model, x, 1)), rel=1e-5)
    pad = forward.block_anatomy(model, x, "layer2.0", p)
    assert pad.shortcut == "pad" and pad.shortcut_x.shape == (16, 8, 8)
    assert pad.shortcut_x.norm == pytest.approx(float(_stage_input(model, x, 2)[:, :, ::2, ::2].norm()), rel=1e-5)
    set_skip(model, False)
    off = forward.block_anatomy(model, x, "layer1.1", p)
    assert not off.skip and off.sum is None and off.shortcut_x is None
    with torch.no_grad():
        xin = _stage_input(model, x, 1)
        fx = model.layer1[1].bn2(model.layer1[1].conv2(model.layer1[1].relu(model.layer1[1].bn1(model.layer1[1].conv1(xin)))))
    assert off.output.norm == pytest.approx(float(fx.relu().norm()), rel=1e-5)
    assert off.ratio == pytest.approx(float(fx.norm() / xin.norm()), rel=1e-5)


def _stage_input(model, x, k):
    with torch.no_grad():
        return _manual_forward(model, x)[1][k]


def _sum_ref(model, x, k):
    with torch.no_grad():
        xin = _stage_input(model, x, k)
        blk = model.layer1[k]
        return (blk.bn2(blk.conv2(blk.relu(blk.bn1(blk.conv1(xin))))) + xin).norm()


def test_activation_stats_follow_the_plan_and_match_numpy():
    p = plan(SMALL_A)
    model = build_model(p, seed=0).eval()
    x, _ = _batch(SMALL_A, n=3)
    rows = forward.activation_stats(model, x, p)
    assert [(r.index, r.name) for r in rows] == [(lay.index, lay.name) for lay in p.layers]
    with torch.no_grad():
        conv1 = model.conv1(x)
        stem = model.relu(model.bn1(conv1))
        logits, inputs = _manual_forward(model, x)
    refs = {0: conv1, 2: stem, len(p.layers) - 1: logits}
    for i, ref in refs.items():
        a = ref.numpy().astype(np.float64)
        r = rows[i]
        assert r.ran and r.finite
        assert r.mean == pytest.approx(a.mean(), rel=1e-4, abs=1e-6)
        assert r.std == pytest.approx(a.std(), rel=1e-4)
        assert r.zeros == pytest.approx((a == 0).mean())
    assert rows[2].zeros > 0.2  # ReLU zeroes part of its input
    set_skip(model, False)
    off = forward.activation_stats(model, x, p)
    assert {r.name for r in off if not r.ran} == {lay.name for lay in p.layers if lay.op in ("add", "pad")}


def test_forward_view_runs_everything_in_one_pass_and_reports_the_device():
    p = plan(SMALL_B)
    model = build_model(p, seed=0).eval()
    x, _ = _batch(SMALL_B, n=2)
    fv = forward.forward_view(model, x, p, layer="layer2.0.add", block="layer2.0", device="cpu")
    assert fv.device.startswith("CPU") and fv.mode == "eval" and fv.logits.shape == (2, 5)
    with torch.no_grad():
        assert torch.allclose(fv.logits, model(x), atol=1e-6)
    assert fv.feature_maps.layer == "layer2.0.add" and fv.anatomy.block == "layer2.0"
    # two reductions of the same tensor agree: Σ_c (mean square of channel c) · H·W = ‖image 0‖²
    assert fv.anatomy.sum.sample_norm ** 2 == pytest.approx(float(fv.feature_maps.all_energy.sum() * 8 * 8), rel=1e-5)
    assert len(fv.stats) == len(p.layers)


# --------------------------------------------------------------------------------------------
# gradients against autograd and param.grad
# --------------------------------------------------------------------------------------------

def test_gradient_norms_match_param_grad_and_autograd_on_block_inputs():
    p = plan(SMALL_B)
    model = build_model(p, seed=0)
    x, y = _batch(SMALL_B, n=4)
    v = gradients.gradient_pass(model, x, y, p, skip=True, train=True)
    ref = build_model(p, seed=0).train()
    logits, inputs = _manual_forward(ref, x)
    loss = F.cross_entropy(logits, y)
    grads_in = torch.autograd.grad(loss, inputs, retain_graph=True)
    loss.backward()
    assert v.loss == pytest.approx(loss.item(), rel=1e-6)
    for g, gi in zip(v.inputs, grads_in, strict=True):
        assert g.norm == pytest.approx(float(gi.norm()), rel=1e-5)
    weighted = [(n, m) for n, m in ref.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    by_name = {n: float(m.weight.grad.norm()) for n, m in weighted}
    assert [g.name for g in v.weights] == [lay.name for lay in p.layers if lay.op in ("conv", "linear")]
    assert {g.name for g in v.weights} == set(by_name)
    for g in v.weights:
        assert g.norm == pytest.approx(by_name[g.name], rel=1e-5)
        assert g.status == "ok"
    # depth along the main path: stem conv 1, two convs per block, fc last; the projection at its block's start
    depth = {g.name: g.depth for g in v.weights}
    assert depth["conv1"] == 1 and depth["layer1.1.conv2"] == 5 and depth["layer2.0.conv1"] == 6
    assert depth["layer2.0.downsample.0"] == 6 and depth["fc"] == 8
    assert [g.depth for g in v.inputs] == [2, 4, 6]


def test_the_skip_comparison_uses_the_same_weights_and_batch_and_equals_separate_nets():
    spec = rc.get_preset("resnet20").replace(input_size=(16, 16))
    gf = gradients.gradient_flow(spec, seed=3, batch=4, device="cpu")
    assert [v.label for v in gf.variants] == ["with skips", "without skips"]
    assert gf.same_weights and gf.same_batch
    # the references: a residual net and its plain twin built separately from the same seed (option A: the
    # twins have the same parameters, so the same seed gives the same values), run by the obvious path
    x, y = gradients.seeded_batch(spec.input_shape, 4, 10, 3)
    for skip, variant in ((True, gf.variants[0]), (False, gf.variants[1])):
        ref = build_model(spec.replace(skip=skip), seed=3).train()
        ref_pl = build_model(spec.replace(skip=not skip), seed=3)
        assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), ref_pl.state_dict().values(), strict=True))
        loss = F.cross_entropy(ref(x), y)
        loss.backward()
        assert variant.loss == pytest.approx(loss.item(), rel=1e-6)
        norms = {n: float(m.weight.grad.norm()) for n, m in ref.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
        for g in variant.weights:
            assert g.norm == pytest.approx(norms[g.name], rel=1e-5)


def test_projection_shortcuts_are_unused_without_skips_and_a_plain_spec_runs_alone():
    gf = gradients.gradient_flow(SMALL_B, seed=0, batch=4, device="cpu")
    with_skips, without = gf.variants
    ds = [g for g in without.weights if g.part == "shortcut"]
    assert ds and all(g.norm is None and g.status == "unused" for g in ds)
    assert all(g.status == "ok" for g in with_skips.weights)
    solo = gradients.gradient_flow(SMALL_A.replace(skip=False), seed=0, batch=4, compare_skip=False, device="cpu")
    assert [v.label for v in solo.variants] == ["without skips"]
    both = gradients.gradient_flow(SMALL_A.replace(skip=False), seed=0, batch=4, device="cpu")
    assert both.spec.skip and [v.skip for v in both.variants] == [True, False]
    for a, b in zip(solo.variants[0].weights, both.variants[1].weights, strict=True):  # option A: the same weights either way
        assert a.norm == pytest.approx(b.norm, rel=1e-6)


def test_same_seed_same_numbers_and_the_global_rng_is_left_alone():
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    a = gradients.gradient_flow(SMALL_A, seed=5, batch=4, device="cpu")
    assert torch.equal(before, torch.get_rng_state())
    b = gradients.gradient_flow(SMALL_A, seed=5, batch=4, device="cpu")
    c = gradients.gradient_flow(SMALL_A, seed=6, batch=4, device="cpu")
    assert a.to_dict() == {**b.to_dict(), "device": a.device}
    assert a.variants[0].weights_fingerprint != c.variants[0].weights_fingerprint
    assert a.variants[0].weights[0].norm != c.variants[0].weights[0].norm
    d = gradients.gradient_flow(SMALL_A, seed=5, data_seed=9, batch=4, device="cpu")
    assert d.variants[0].weights_fingerprint == a.variants[0].weights_fingerprint
    assert d.variants[0].batch_fingerprint != a.variants[0].batch_fingerprint


def test_concurrent_sessions_do_not_interfere(monkeypatch):
    """Three sessions at once, really concurrent (the CPU slot widened to 3): seeded builds and passes
    in parallel threads give exactly what each gives alone."""
    from resnet_core import device
    spec = rc.get_preset("resnet20").replace(input_size=(16, 16))
    expected = {s: gradients.gradient_flow(spec, seed=s, batch=4, device="cpu").to_dict() for s in (1, 2)}
    monkeypatch.setattr(device, "_CPU_SLOTS", device.FairSlots(3))
    results, errors = [], []
    start = threading.Barrier(3)

    def run(seed):
        try:
            start.wait()
            for _ in range(3):
                results.append((seed, gradients.gradient_flow(spec, seed=seed, batch=4, device="cpu").to_dict()))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run, args=(s,)) for s in (1, 2, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 9
    for seed, d in results:
        assert d == expected[seed]


# --------------------------------------------------------------------------------------------
# NaN, Inf and zeros: shown, never raised
# --------------------------------------------------------------------------------------------

def test_classify():
    assert gradients.classify(None) == "unused"
    assert gradients.classify(0.0) == "vanished" and gradients.classify(1e-9) == "vanished"
    assert gradients.classify(float("nan")) == "exploded" and gradients.classify(float("inf")) == "exploded"
    assert gradients.classify(1e4) == "exploded" and gradients.classify(0.5) == "ok"


def test_nan_weights_and_zero_gradients_are_classified_not_raised():
    p = plan(SMALL_A)
    model = build_model(p, seed=0)
    with torch.no_grad():
        model.layer1[0].conv1.weight[0, 0, 0, 0] = float("nan")
    x, y = _batch(SMALL_A)
    v = gradients.gradient_pass(model, x, y, p)
    assert v.loss != v.loss  # NaN
    assert all(g.status == "exploded" for g in v.weights)
    assert all(g.status == "exploded" for g in v.inputs)
    rows = flow.GradientFlow(spec=SMALL_A, seed=0, data_seed=0, batch=4, input_shape=(3, 16, 16), train=True,
                               device="cpu", variants=(v,)).chart_rows()
    assert all(np.isfinite(r["plot_norm"]) for r in rows) and rows[0]["norm"] == "nan"
    # zero-init residual without skips: every block outputs relu(0) = 0, so nothing reaches the early layers
    zero = gradients.gradient_flow(SMALL_A.replace(zero_init_residual=True, norm="none"), seed=0, batch=4, device="cpu")
    without = zero.variant(False)
    assert without.weights[0].norm == 0.0 and without.weights[0].status == "vanished"
    assert zero.variant(True).weights[0].status == "ok"
    rows = zero.chart_rows()
    floor = [r["plot_norm"] for r in rows if r["norm"] == 0.0]
    assert floor and all(f < min(r["plot_norm"] for r in rows if r["norm"] not in (0.0, None)) for f in floor)


def test_feature_maps_of_nan_activations_do_not_raise():
    p = plan(SMALL_A)
    model = build_model(p, seed=0).eval()
    with torch.no_grad():
        model.conv1.weight.fill_(float("inf"))
    x, _ = _batch(SMALL_A, n=1)
    fm = forward.feature_maps(model, x, "layer1.0.conv1", p)
    assert np.isfinite(fm.maps).all()
    stats = forward.activation_stats(model, x, p)
    assert not stats[0].finite


# --------------------------------------------------------------------------------------------
# resources: the memory guard and the device slot
# --------------------------------------------------------------------------------------------

def test_a_run_too_large_for_free_memory_is_refused_with_the_numbers(monkeypatch):
    monkeypatch.setattr(devmod, "free_memory", lambda device: 10 << 20)
    built = []
    monkeypatch.setattr(gradients, "build_seeded", lambda *a, **k: built.append(1))
    with pytest.raises(MemoryGuardError, match=r"needs about .* but CPU .* has 10(\.0)? MiB free"):
        gradients.gradient_flow(rc.get_preset("resnet18"), batch=64, device="cpu")
    assert not built
    p = plan(SMALL_A)
    with pytest.raises(MemoryGuardError):
        forward.forward_view(build_model(p, seed=0), torch.zeros(1, 3, 16, 16), p, device="cpu")


def test_a_busy_device_is_reported_not_waited_on_forever(monkeypatch):
    """The real fair slot, held by 'another session': the pass gives up after its timeout with BusyError.
    It runs in a worker whose outcome is collected and checked here, and the join is bounded, so a slot
    that ignored its timeout fails this test instead of hanging it."""
    slots = devmod.FairSlots(1)
    monkeypatch.setattr(devmod, "_CPU_SLOTS", slots)
    assert slots.acquire(timeout=1)
    outcome = []

    def session():
        try:
            gradients.gradient_flow(SMALL_A, batch=2, device="cpu", slot_timeout=0.2)
            outcome.append("ran")
        except BaseException as e:  # noqa: BLE001 - collected for the main thread
            outcome.append(e)

    worker = threading.Thread(target=session, daemon=True)
    worker.start()
    worker.join(30)
    gave_up = not worker.is_alive()
    slots.release()
    worker.join(60)
    assert gave_up, "the pass kept waiting for the slot past its timeout"
    assert len(outcome) == 1 and isinstance(outcome[0], BusyError) and "busy" in str(outcome[0]), outcome


# --------------------------------------------------------------------------------------------
# the physics
# --------------------------------------------------------------------------------------------

def _first(gf, skip):
    return gf.variant(skip).weights[0].norm


def test_without_batch_norm_and_default_init_the_plain_nets_first_gradient_vanishes():
    spec56 = rc.get_preset("resnet56").replace(norm="none", init="pytorch_default")
    gf = gradients.gradient_flow(spec56, seed=0, batch=8, device="cpu")
    assert gf.same_weights and gf.same_batch
    assert _first(gf, True) > 1e-2 and gf.variant(True).weights[0].status == "ok"
    assert _first(gf, False) < 1e-8 and gf.variant(False).weights[0].status == "vanished"  # measured: exactly 0
    assert gf.variant(False).inputs[0].status == "vanished" and gf.variant(True).inputs[0].status == "ok"
    assert gf.variant(True).counts()["vanished"] == 0
    # already at depth 20 the plain net's first gradient is six orders of magnitude down (measured 6.9e6)
    gf20 = gradients.gradient_flow(rc.get_preset("resnet20").replace(norm="none", init="pytorch_default"), seed=0,
                                batch=8, device="cpu")
    assert gf20.weight_rows()[0]["ratio"] > 1e5
    # through the depth the plain net's gradient falls monotonically towards the input, the residual's does not
    plain = [g.norm for g in gf20.variant(False).weights if g.part == "main"]
    assert plain[0] < plain[len(plain) // 2] < plain[-1]
    res = [g.norm for g in gf20.variant(True).weights if g.part == "main"]
    assert max(res) / min(res) < 100


def test_with_batch_norm_the_plain_nets_early_gradients_explode_with_depth():
    g20 = gradients.gradient_flow(rc.get_preset("resnet20"), seed=0, batch=8, device="cpu")
    g56 = gradients.gradient_flow(rc.get_preset("resnet56"), seed=0, batch=8, device="cpu")
    plain20, plain56 = _first(g20, False), _first(g56, False)
    res20, res56 = _first(g20, True), _first(g56, True)
    assert plain56 / plain20 > 100  # measured 690 (1.45 → 1003)
    assert plain56 / res56 > 100  # measured 440
    assert res56 < 10 and res20 < 10  # with skips the first gradient stays of order one (0.55, 2.3)
    assert g56.variant(False).inputs[0].norm / g56.variant(True).inputs[0].norm > 100  # measured 451


# --------------------------------------------------------------------------------------------
# one pass, every view
# --------------------------------------------------------------------------------------------

def test_one_record_holds_every_view_and_equals_the_single_view_probes():
    p = plan(SMALL_A)
    model = build_model(p, seed=4).eval()
    x, _ = _batch(SMALL_A, n=2, seed=3)
    rec = forward.forward_record(model, x, p, device="cpu")
    spatial = [lay for lay in p.layers if lay.out_shape is not None and len(lay.out_shape) == 3]
    assert set(rec.layers) == {lay.index for lay in spatial} and rec.max_k == views.MAX_TOP_K
    for lay in spatial:  # every layer's maps, at two top-k, against a pass of its own
        for k in (3, 16):
            one = forward.feature_maps(model, x, lay.index, p, top_k=k)
            got = rec.feature_maps(lay.index, k)
            assert got.channels == one.channels and got.label == lay.label, lay.label
            np.testing.assert_array_equal(got.maps, one.maps)
            np.testing.assert_allclose(got.all_energy, one.all_energy, rtol=1e-6)
    for b in p.blocks:
        one = forward.block_anatomy(model, x, b.name, p)
        got = rec.anatomy(b.name)
        assert got.ratio == pytest.approx(one.ratio, rel=1e-6) and got.shortcut == one.shortcut
    assert [r["block"] for r in rec.block_ratios()] == [b.name for b in p.blocks]
    assert [r["ratio"] for r in rec.block_ratios()] == [rec.anatomy(b.name).ratio for b in p.blocks]
    assert [s.std for s in rec.stats] == pytest.approx([s.std for s in forward.activation_stats(model, x, p)])
    # the two uses of a block's relu are two rows, told apart by their labels
    relus = [lay for lay in spatial if lay.name == "layer1.0.relu"]
    assert [lay.label for lay in relus] == ["layer1.0.relu (1)", "layer1.0.relu (2)"]
    assert rec.feature_maps(relus[0].index).label != rec.feature_maps(relus[1].index).label


def test_the_record_keeps_its_memory_bound():
    big = plan(rc.get_preset("resnet50").replace(input_size=(512, 512)))  # maps too many for 64 channels each
    k = forward.kept_channels(big)
    sizes = [(lay.out_shape[0], lay.out_shape[1] * lay.out_shape[2]) for lay in big.layers
             if lay.out_shape is not None and len(lay.out_shape) == 3]
    assert 1 <= k < views.MAX_TOP_K
    assert sum(min(k, c) * hw for c, hw in sizes) <= views.RECORD_BUDGET < sum(min(k + 1, c) * hw for c, hw in sizes)
    for name in ("resnet18", "resnet152", "resnet1202"):  # every preset at its own input keeps all 64
        assert forward.kept_channels(plan(rc.get_preset(name))) == views.MAX_TOP_K
    p = plan(SMALL_B)
    model = build_model(p, seed=0).eval()
    x, _ = _batch(SMALL_B, n=2)
    rec = forward.forward_record(model, x, p, device="cpu")
    maps = sum(m.maps.nbytes for m in rec.layers.values())
    assert maps == sum(min(views.MAX_TOP_K, c) * hw for c, hw in
                       [(lay.out_shape[0], lay.out_shape[1] * lay.out_shape[2]) for lay in p.layers
                        if lay.out_shape is not None and len(lay.out_shape) == 3])
    assert maps <= rec.nbytes <= maps + 200_000


def test_the_default_anatomy_ratio_is_not_a_constant_of_the_shape():
    """With batch statistics of one image every BN output has unit variance per channel, so ‖F(x)‖ after the
    branch's last BN is √(C·H·W) whatever the weights (448 at layer1.0 of ResNet-18). The default, running
    statistics, gives a ratio that depends on the weights: other seeds, and trained weights, give others."""
    r18 = rc.get_preset("resnet18")
    p18 = plan(r18)
    x = gradients.seeded_batch(r18.input_shape, 1, 1000, 0)[0]
    for seed in (0, 1):
        one_image = forward.forward_record(build_model(p18, seed=seed), x, p18, train=True, device="cpu")
        assert one_image.anatomy("layer1.0").fx.norm == pytest.approx((64 * 56 * 56) ** 0.5, rel=1e-3)  # 448
        assert one_image.anatomy("layer2.0").fx.norm == pytest.approx((128 * 28 * 28) ** 0.5, rel=1e-3)  # 317
    p = plan(SMALL_B)
    x, y = _batch(SMALL_B, n=8, seed=1)
    default = {s: forward.forward_record(build_model(p, seed=s), x[:1], p, device="cpu") for s in (0, 1)}
    assert default[0].mode == "eval"
    r0 = [r["ratio"] for r in default[0].block_ratios()]
    r1 = [r["ratio"] for r in default[1].block_ratios()]
    assert all(abs(a - b) > 1e-3 * max(a, b) for a, b in zip(r0, r1, strict=True)), (r0, r1)
    # trained weights (a few SGD steps, which also move BN's running statistics): other ratios again
    model = build_model(p, seed=0).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(20):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    trained = [r["ratio"] for r in forward.forward_record(model.eval(), x[:1], p, device="cpu").block_ratios()]
    assert all(abs(a - b) > 1e-3 * max(a, b) for a, b in zip(r0, trained, strict=True)), (r0, trained)
    # zero-init residual: every branch ends in a BN with γ = 0, so at initialisation every ratio is exactly 0
    pz = plan(SMALL_B.replace(zero_init_residual=True))
    zero = forward.forward_record(build_model(pz, seed=0), x[:1], pz, device="cpu")
    assert [r["ratio"] for r in zero.block_ratios()] == [0.0] * len(pz.blocks)


# --------------------------------------------------------------------------------------------
# gradient flow: progress, stop, counts, seeds
# --------------------------------------------------------------------------------------------

def test_gradient_flow_reports_progress_per_variant_with_layer_counts():
    seen = []
    gf = gradients.gradient_flow(SMALL_B, seed=0, batch=4, device="cpu", progress=seen.append)
    n_weights = len([lay for lay in plan(SMALL_B).layers if lay.op in ("conv", "linear")])  # 8 + 1 projection
    assert not gf.stopped and len(gf.variants) == 2
    assert [v.label for v in seen[0].variants] == ["with skips", "without skips"]
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    last = seen[-1].variants
    assert [(v.phase, v.total) for v in last] == [("done", n_weights), ("done", n_weights - 1)]  # no projection
    assert seen[-1].text() == (f"2/2 variants done · with skips: done ({n_weights} weight layers) · "
                               f"without skips: done ({n_weights - 1} weight layers)")
    mid = next(p for p in seen if p.variants[1].phase == "backward")
    assert mid.variants[1].total == n_weights - 1 and 1 <= mid.variants[1].done <= n_weights - 1
    assert "without skips: backward" in mid.text() and "weight layers" in mid.text()


def test_a_stopped_gradient_flow_keeps_the_finished_variants_and_leaves_no_trace():
    calls = []

    def stop_in_second_variant():
        calls.append(1)
        return len(calls) > 25  # a SMALL_B variant passes 2 × 9 weighted layers: the stop lands in the second

    gf = gradients.gradient_flow(SMALL_B, seed=0, batch=4, device="cpu", should_stop=stop_in_second_variant)
    assert gf.stopped and [v.label for v in gf.variants] == ["with skips"] and gf.asked == ("with skips",
                                                                                              "without skips")
    full = gradients.gradient_flow(SMALL_B, seed=0, batch=4, device="cpu")
    assert gf.variants[0].to_dict() == full.variants[0].to_dict()
    assert gf.to_dict()["stopped"] is True
    # on a model of one's own: stopped mid-backward, the hooks are gone and the grads and mode are back
    p = plan(SMALL_B)
    model = build_model(p, seed=0).eval()
    x, y = _batch(SMALL_B)
    n = []
    with pytest.raises(gradients.Stopped):
        gradients.gradient_pass(model, x, y, p, should_stop=lambda: n.append(1) or len(n) > 12)
    assert _hook_count(model) == 0 and not model.training and all(q.grad is None for q in model.parameters())
    # a stop asked while waiting for the device: the slot's line is left, nothing runs
    assert gradients.gradient_flow(SMALL_B, seed=0, batch=4, device="cpu", should_stop=lambda: True).variants == ()


def test_summary_counts_weight_gradients_apart_from_block_input_gradients():
    spec = rc.get_preset("resnet56").replace(norm="none", init="pytorch_default")
    gf = gradients.gradient_flow(spec, seed=0, batch=4, device="cpu")
    without = gf.variant(False)
    # counted here from the norms themselves, by the thresholds' definitions
    w_vanished = sum(1 for g in without.weights if g.norm is not None and g.norm < gradients.VANISHED_BELOW)
    i_vanished = sum(1 for g in without.inputs if g.norm is not None and g.norm < gradients.VANISHED_BELOW)
    assert len(without.weights) == 56 and len(without.inputs) == 27  # 55 convs + fc (option A: no projections)
    assert without.counts("weights")["vanished"] == w_vanished and without.counts("inputs")["vanished"] == i_vanished
    assert sum(without.counts("weights").values()) == 56 and sum(without.counts("inputs").values()) == 27
    assert 0 < w_vanished <= 56 and 0 < i_vanished <= 27
    assert without.summary() == (f"without skips: {w_vanished} of 56 weight gradients vanished, 0 exploded; "
                                 f"{i_vanished} of 27 block-input gradients vanished, 0 exploded")
    assert gf.to_dict()["variants"][1]["counts"]["weights"]["vanished"] == w_vanished


def test_seeds_cover_the_generators_range_and_no_more():
    top = 2**64 - 1
    x1, y1 = gradients.seeded_batch((3, 8, 8), 2, 10, top)
    x2, y2 = gradients.seeded_batch((3, 8, 8), 2, 10, top)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    for bad in (-1, 2**64, 1.5, True):
        with pytest.raises(probes.ProbeError, match="from 0 to 2"):
            gradients.gradient_flow(SMALL_A, seed=bad, batch=2, device="cpu")
