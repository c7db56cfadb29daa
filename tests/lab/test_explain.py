"""The live views' sentences (resnet_core/lab/explain.py): two different results give two different true
sentences. Every result here is built by hand from numbers whose meaning is known (a plain net whose first
conv gets 0 gradient has vanished; one at 1,037 against 2.6 has exploded; 19.9 against 10.2 is no effect),
and each sentence is checked against those numbers, recomputed here, never against the module's own."""

import math
import re

import pytest

import resnet_core as rc
from resnet_core.lab import explain
from resnet_core.lab.flow import GradientFlow, GradVariant, InputGrad, WeightGrad, classify
from resnet_core.lab.views import LayerStats

SPEC = rc.get_preset("resnet56")


def variant(skip: bool, weight_norms, input_norms, loss: float = 2.3) -> GradVariant:
    ws = tuple(WeightGrad(index=i, depth=i + 1, name=f"w{i}", op="conv", part="main", stage=0, block=0, shape=(1,),
                          norm=n, status=classify(n)) for i, n in enumerate(weight_norms))
    xs = tuple(InputGrad(block=f"b{i}", position=i, depth=2 * i + 2, stage=0, index=i, shape=(16, 32, 32), norm=n,
                         status=classify(n)) for i, n in enumerate(input_norms))
    return GradVariant(label="with skips" if skip else "without skips", skip=skip, loss=loss, weights=ws, inputs=xs,
                       weights_fingerprint="w", batch_fingerprint="b")


def flow(on: GradVariant, off: GradVariant, spec=SPEC) -> GradientFlow:
    return GradientFlow(spec=spec, seed=0, data_seed=0, batch=8, input_shape=(3, 32, 32), train=True, device="CPU",
                        variants=(on, off), asked=("with skips", "without skips"))


def factor_in(text: str, after: str) -> float:
    """The number before '×' in the clause that follows `after`."""
    m = re.search(re.escape(after) + r".*?([\d,.e+]+)×", text)
    assert m, (after, text)
    return float(m.group(1).replace(",", ""))


def test_a_plain_net_whose_gradient_vanishes_is_said_to_vanish():
    # resnet56 without BN, PyTorch-default init: the plain net's first layers get 0 (float32 underflow)
    off_w = [0.0] * 40 + [1e-3] * 16
    f = flow(variant(True, [0.067] + [0.05] * 55, [0.012, 0.02, 0.022]), variant(False, off_w, [0.0, 1e-4, 3.2e-3]),
             spec=SPEC.replace(norm="none", init="pytorch_default"))
    s = explain.gradient_story(f)
    vanished = sum(1 for n in off_w if n < 1e-8)  # counted here: 40
    assert s.shows.startswith("Without skips the gradient vanishes on its way back")
    assert f"{vanished} of {len(off_w)} weight gradients of the plain net are below 1e-08" in s.shows
    assert "0.067 with skips and 0 without" in s.shows
    assert "explode" not in s.shows
    assert "falls to exactly 0 without skips" in s.text()  # the block-input gradient reaching the first block
    assert "batch norm on" in s.try_next  # no BN here: the other failure is with it


def test_a_plain_net_whose_gradient_explodes_is_said_to_explode():
    # resnet56 with BN: the plain net's first conv gets 1,037 against 2.61 with skips
    off_w = [1037.0, 1200.0, 1100.0, 1010.0] + [5.0] * 52
    f = flow(variant(True, [2.61] + [1.0] * 55, [0.886, 0.1, 0.0262]), variant(False, off_w, [348.0, 10.0, 0.0311]),
             spec=SPEC.replace(norm="batch"))
    s = explain.gradient_story(f)
    assert s.shows.startswith("Without skips the gradient explodes on its way back")
    assert factor_in(s.shows, "without (") == pytest.approx(1037.0 / 2.61, rel=0.005)  # 397×
    exploded = sum(1 for n in off_w if n > 1e3)
    assert f"{exploded} of 56 weight gradients of the plain net are above 1000" in s.shows
    # through the depth: first block's input / last block's, recomputed
    assert factor_in(s.text(), "‖∂L/∂x‖ grows") == pytest.approx(0.886 / 0.0262, rel=0.02)
    assert factor_in(s.text(), "with skips and grows") == pytest.approx(348.0 / 0.0311, rel=0.001)
    assert "batch norm off" in s.try_next


def test_a_shallow_net_where_the_skips_change_little_says_so_and_what_to_try():
    # the builder's ResNet-18 with BN: 10.2 with skips, 19.9 without: 1.9×, nothing vanished or exploded
    spec = rc.get_preset("resnet18")
    f = flow(variant(True, [10.2] + [1.0] * 17, [0.256, 0.0386]), variant(False, [19.9] + [1.0] * 17, [0.495, 0.0369]),
             spec=spec)
    s = explain.gradient_story(f)
    assert "make little difference" in s.shows and "vanishes" not in s.shows and "explodes" not in s.shows
    assert factor_in(s.shows, "without (") == pytest.approx(19.9 / 10.2, abs=0.05)
    assert "larger without skips" in s.shows
    assert "18 weight layers" in s.shows
    assert "resnet56" in s.try_next  # a deeper net is what to try


def test_a_residual_net_that_explodes_is_not_blamed_on_the_plain_one():
    # resnet56 without BN at He init: the stream doubles per block, the net WITH skips explodes
    on_w = [5245.0] * 56
    f = flow(variant(True, on_w, [633.0, 1.0, 0.0405], loss=21363.0), variant(False, [0.0553] * 56, [0.0156, 0.023]),
             spec=SPEC.replace(norm="none"))
    s = explain.gradient_story(f)
    assert s.shows.startswith("Here the network WITH skips explodes")
    assert "56 of 56" in s.shows
    assert f"{math.log(10):.2f}" in s.text()  # the uniform guess's loss, ln 10
    assert "2.14e+04" in s.text()


def test_two_results_give_two_different_sentences():
    a = explain.gradient_story(flow(variant(True, [2.61], [1.0, 0.1]), variant(False, [1037.0], [300.0, 0.1])))
    b = explain.gradient_story(flow(variant(True, [10.2], [1.0, 0.1]), variant(False, [19.9], [2.0, 0.1])))
    assert a.shows != b.shows and a.try_next != b.try_next


def test_one_variant_only_tells_nothing():
    on = variant(True, [1.0], [1.0, 1.0])
    f = GradientFlow(spec=SPEC, seed=0, data_seed=0, batch=8, input_shape=(3, 32, 32), train=True, device="CPU",
                     variants=(on,), stopped=True, asked=("with skips", "without skips"))
    assert explain.gradient_story(f) is None


# ------------------------------------------------------------------------------- block anatomy

def rows(ratios, x_norms, fx_norms):
    return [{"position": i, "block": f"layer{i}", "stage": 1, "shortcut": "identity", "ratio": r, "x_norm": x,
             "fx_norm": fx, "ratio_to_shortcut": None} for i, (r, x, fx) in enumerate(zip(ratios, x_norms, fx_norms, strict=True))]


def test_anatomy_with_branches_as_large_as_their_input():
    ratios = [1.23, 1.27, 0.59, 1.41, 0.71, 1.29, 0.66, 1.28]
    s = explain.anatomy_story(rows(ratios, [10.0] * 8, [12.0] * 8), has_bn=True, batch_stats=False, trained=False)
    at_least = sum(r >= 1 for r in ratios)  # 5
    assert f"in {at_least} of 8 blocks F(x) is at least as large as x" in s.shows
    assert "not small corrections" in s.shows
    assert "of a batch of 8" in s.try_next  # running statistics of random weights: what to switch


def test_anatomy_falling_through_the_depth_is_said_to_fall():
    ratios = [1.41, 0.94, 0.73, 0.62, 0.54, 0.49, 0.31, 0.29]
    x = [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.8]
    fx = [r * v for r, v in zip(ratios, x, strict=True)]
    s = explain.anatomy_story(rows(ratios, x, fx), has_bn=True, batch_stats=True, trained=False)
    assert s.shows.startswith("The ratio falls from 1.41 (layer0) to 0.29 (layer7)")
    assert f"{sum(r < 1 for r in ratios)} of 8 blocks add a correction smaller than their input" in s.shows
    assert f"‖x‖ grows {4.8:.1f}×" in s.text() and "stream grows while each branch stays" in s.text()
    other = explain.anatomy_story(rows([1.2] * 8, x, x), has_bn=True, batch_stats=True, trained=False)
    assert other.shows != s.shows and "falls" not in other.shows


# ------------------------------------------------------------------------------- activation statistics

def stat(i, op, std, zeros=0.0, finite=True):
    return LayerStats(index=i, name=f"l{i}", op=op, part="main", stage=0, block=0, shape=(16, 8, 8), ran=True,
                      mean=0.0, std=std, zeros=zeros, finite=finite)


def test_activations_growing_geometrically_and_slowly_are_told_apart():
    stds = [1.5 * 1.45 ** k for k in range(27)]  # resnet56, running statistics of random weights
    geo = explain.activation_story([stat(k, "add", v) for k, v in enumerate(stds)] + [stat(99, "act", 1.0, 0.5)],
                                   has_bn=True, batch_stats=False, trained=False)
    assert "grows geometrically" in geo.shows
    assert factor_in(geo.shows, "at the last, ") == pytest.approx(stds[-1] / stds[0], rel=0.001)
    assert "×1.45 per block" in geo.shows
    slow = [1.15 * (1 + k / 26 * 1.3) for k in range(27)]  # 1.15 → 2.65: ×2.3, close to √27 = 5.2? no: less
    s2 = explain.activation_story([stat(k, "add", v) for k, v in enumerate(slow)], has_bn=True, batch_stats=True,
                                  trained=False)
    assert "grows slowly" in s2.shows and "less than √27 = 5.20" in s2.shows
    assert s2.shows != geo.shows


def test_dead_and_non_finite_layers_are_named():
    s = explain.activation_story([stat(0, "add", 1.0), stat(1, "act", 1.0, 1.0), stat(2, "act", 1.0, 0.5),
                                  stat(3, "add", 1.1)], has_bn=False, batch_stats=False, trained=False)
    assert "1 layer is dead" in s.text() and "l1" in s.text()
    bad = explain.activation_story([stat(0, "add", 1.0), stat(1, "conv", math.inf, finite=False)], has_bn=False,
                                   batch_stats=False, trained=False)
    assert "NaN or Inf from l1 on" in bad.shows
