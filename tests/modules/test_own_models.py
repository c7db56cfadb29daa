"""A practitioner's own model (issue 20): hand-written models, each checked against what a person can
count by hand or against PyTorch itself.

- broken models, one per error class: the located error names the module path, the operation, both
  shapes and what produced each, with a fix; the rows before the failure are kept;
- shared weights counted once; a data-dependent branch traced by hooks and said so;
- a model far larger than this machine's memory traces (nothing is allocated);
- skips off equals a hand-built plain twin on the same weights, forward and backward;
- the caller's model is left as it was (device, values, hooks, mode).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_core.modules import inspect_module, skips_off


class Block(nn.Module):
    """torchvision's BasicBlock, written out: the shortcut is projected only when `project`."""

    def __init__(self, cin: int, cout: int, stride: int = 1, project: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if project and (stride != 1 or cin != cout) else None)

    def forward(self, x):
        identity = x if self.down is None else self.down(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class Tiny(nn.Module):
    def __init__(self, project: bool = True, fc_in: int = 32, classes: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.b1 = Block(16, 16)
        self.b2 = Block(16, 32, stride=2, project=project)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(fc_in, classes)

    def forward(self, x):
        x = self.b2(self.b1(F.relu(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


class TinyPlain(nn.Module):
    """Tiny's forward without its two additions, written by hand; it runs Tiny's own modules."""

    def __init__(self, net: Tiny):
        super().__init__()
        self.net = net

    def forward(self, x):
        n = self.net
        x = F.relu(n.stem(x))
        for b in (n.b1, n.b2):
            x = F.relu(b.bn2(b.conv2(F.relu(b.bn1(b.conv1(x))))))
        return n.fc(torch.flatten(n.pool(x), 1))


def hand_count_tiny() -> int:
    conv = 3 * 16 * 9 + 2 * (16 * 16 * 9) + (16 * 32 * 9) + (32 * 32 * 9) + 16 * 32
    bn = 2 * (16 + 16 + 32 + 32 + 32)
    return conv + bn + 32 * 10 + 10


def test_a_small_residual_model_is_counted_by_hand():
    t = inspect_module(Tiny(), (3, 16, 16))
    assert t.ok and t.method == "fx"
    assert t.total_params == hand_count_tiny() == sum(p.numel() for p in Tiny().parameters())
    assert t.output_shape == (10,)
    # mult-adds by hand: stem 16×16×16 positions × 27; b1 two convs at 16×16; b2 at 8×8; the 1×1 projection; fc
    hand = 16 * 16 * 16 * 27 + 2 * (16 * 16 * 16 * 144) + 8 * 8 * 32 * 144 + 8 * 8 * 32 * 288 + 8 * 8 * 32 * 16 + 320
    assert t.mult_adds == hand
    assert [r.add for r in t.residual_adds] == ["b1:add", "b2:add"]
    b1, b2 = t.residual_adds
    assert b1.shortcut == [] and b1.branch == ["b1.conv1", "b1.bn1", "b1:relu", "b1.conv2", "b1.bn2"]
    assert b2.shortcut == ["b2.down.0", "b2.down.1"]
    paths = [r.path for r in t.rows]
    assert "b1:add" in paths and "flatten" in paths and "b2:relu#2" in paths  # functional operations are rows
    rf = {r.path: r.rf for r in t.rows}
    assert rf["stem"] == 3 and rf["b1.conv1"] == 5 and rf["b1.conv2"] == 7 and rf["fc"] is None


def test_an_unprojected_stride_2_shortcut_is_located_with_both_shapes_and_a_fix():
    t = inspect_module(Tiny(project=False), (3, 16, 16))
    assert not t.ok and len(t.errors) == 1
    e = t.errors[0]
    assert e.where == "b2:add" and e.op == "add"
    assert e.shapes == [(1, 32, 8, 8), (1, 16, 16, 16)]
    assert e.produced_by == ["b2.bn2", "b1:relu#2"]
    assert "1×1 conv from 16 to 32 channels with stride 2" in e.fix
    assert t.rows[-1].failed and t.rows[-1].path == "b2:add"
    assert [r.path for r in t.rows[:3]] == ["stem", "relu", "b1.conv1"]  # the trace before it is kept
    assert "Traceback" not in str(e)


def test_a_linear_layer_that_does_not_match_the_flattened_size_is_located():
    t = inspect_module(Tiny(fc_in=64), (3, 16, 16))
    e = t.errors[0]
    assert e.where == "fc" and e.op == "Linear" and e.shapes == [(1, 32)] and e.produced_by == ["flatten"]
    assert "nn.Linear(32, 10)" in e.fix


def test_a_convolution_that_gets_the_wrong_number_of_channels_is_located():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(16, 8, 3))
    t = inspect_module(net, (3, 12, 12))
    e = t.errors[0]
    assert e.where == "2" and e.op == "Conv2d" and e.shapes == [(1, 8, 10, 10)] and e.produced_by == ["1"]
    assert "in_channels=8" in e.fix


def test_a_norm_with_the_wrong_number_of_features_is_located():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(4))
    e = inspect_module(net, (3, 12, 12)).errors[0]
    assert e.where == "1" and e.op == "BatchNorm2d" and "num_features=8" in e.fix


def test_a_feature_map_smaller_than_the_kernel_is_located():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.Conv2d(8, 8, 7))
    e = inspect_module(net, (3, 8, 8)).errors[0]
    assert e.where == "1" and e.shapes == [(1, 8, 3, 3)]


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.b = self.a  # the same layer under a second name
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.b(torch.relu(self.a(x))))


def test_shared_weights_are_counted_once_and_said_so():
    t = inspect_module(Shared(), (8,))
    assert t.total_params == 8 * 8 + 8 + 8 * 2 + 2
    assert t.shared_params == 8 * 8 + 8
    assert sum(r.params for r in t.rows) == t.total_params
    assert any("counted once" in n for n in t.notes)
    assert t.mult_adds == 64 + 64 + 16  # the shared layer's work is done twice


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.other = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        if x.shape[-1] > 8:  # fx traces shapes symbolically and cannot take this branch
            return self.conv(x)
        return self.other(x)


class ValueDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        if len(torch.nonzero(y)) >= 0:  # a branch on values: no symbolic trace
            y = y * 2
        return y


def test_a_model_fx_cannot_trace_is_traced_with_hooks_and_says_so():
    t = inspect_module(ValueDependent(), (3, 8, 8))
    assert t.method == "hooks"
    assert [r.path for r in t.rows] == ["conv"]
    assert t.total_params == 3 * 4 * 9 + 4
    assert any("forward hooks" in n for n in t.notes)


def test_the_hooks_method_locates_a_failure_in_its_module():
    class Broken(ValueDependent):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 2)

        def forward(self, x):
            return self.fc(torch.flatten(super().forward(x), 1))

    t = inspect_module(Broken(), (3, 8, 8), method="hooks")
    assert t.errors and t.errors[0].where == "fc" and t.errors[0].op == "Linear"


def test_a_model_far_larger_than_memory_traces_without_allocating():
    def huge():  # 16 × 2**30 parameters: 64 GiB in float32, on a 24 GB machine
        return nn.Sequential(*[nn.Linear(32768, 32768, bias=False) for _ in range(16)])

    t = inspect_module(huge, (32768,))
    assert t.total_params == 16 * 2**30 and t.output_shape == (32768,) and t.ok


def test_the_callers_model_is_left_as_it_was():
    net = Tiny().train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    inspect_module(net, (3, 16, 16))
    assert net.training
    assert all(p.device.type == "cpu" for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


def test_skips_off_is_the_plain_twin_on_the_same_weights():
    torch.manual_seed(0)
    net = Tiny().eval()
    plain = skips_off(net)
    twin = TinyPlain(net).eval()
    x = torch.randn(4, 3, 16, 16)
    assert torch.equal(plain(x), twin(x))
    assert not torch.allclose(plain(x), net(x))  # the skips did something
    assert plain.get_submodule("b1.conv1").weight is net.b1.conv1.weight  # the same tensors, not copies
    # backward: the same gradients as the hand-built twin
    plain(x).sum().backward()
    g_plain = net.b1.conv1.weight.grad.clone()
    net.zero_grad()
    twin(x).sum().backward()
    assert torch.equal(g_plain, net.b1.conv1.weight.grad)


@pytest.mark.parametrize("shape", [(), (0, 8, 8), (3, -1, 8)])
def test_a_bad_input_shape_is_one_clear_error(shape):
    from resnet_core.modules import ModuleTraceError
    with pytest.raises(ModuleTraceError, match="input shape"):
        inspect_module(Tiny(), shape)


def test_forward_views_read_each_block_as_the_hand_built_forward_computes_it():
    """x, F(x), the shortcut and F(x) + x of every block equal the same model's modules run by hand."""
    from resnet_core.modules.views import module_forward
    torch.manual_seed(0)
    net = Tiny().eval()
    x = torch.randn(1, 3, 16, 16)
    views = module_forward(net, (3, 16, 16), x=x, layers=("b1.conv2",))
    with torch.no_grad():
        x1 = F.relu(net.stem(x))
        f1 = net.b1.bn2(net.b1.conv2(F.relu(net.b1.bn1(net.b1.conv1(x1)))))
        x2 = F.relu(f1 + x1)
        f2 = net.b2.bn2(net.b2.conv2(F.relu(net.b2.bn1(net.b2.conv1(x2)))))
        s2 = net.b2.down(x2)
        conv2 = net.b1.conv2(F.relu(net.b1.bn1(net.b1.conv1(x1))))
    b1, b2 = views.blocks
    assert b1.block == "b1" and torch.allclose(b1.x, x1[0]) and torch.allclose(b1.branch, f1[0])
    assert torch.allclose(b1.shortcut, x1[0]) and torch.allclose(b1.out, (f1 + x1)[0])
    assert torch.allclose(b2.branch, f2[0]) and torch.allclose(b2.shortcut, s2[0])
    assert b1.ratio == pytest.approx(float(f1.norm() / x1.norm()), rel=1e-5)
    assert torch.allclose(views.maps["b1.conv2"], conv2[0])
    top = views.top_channels("b1.conv2", 3)
    means = conv2[0].flatten(1).mean(1)
    assert [c for c, _ in top] == means.argsort(descending=True)[:3].tolist()
    assert torch.allclose(views.logits, net(x)[0])
