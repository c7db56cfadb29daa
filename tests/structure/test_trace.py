"""The analytic trace against measurements on the real module."""

import json

import pytest
import torch
from torch import nn

import resnet_core as rc
from resnet_core.structure import build as rbuild
from resnet_core.structure.build import build_model
from resnet_core.structure.plan import plan
from resnet_core.structure.spec import ArchSpec, Stage, Stem
from resnet_core.structure.trace import Trace, trace


def _rf_nets():
    stem = Stem(type="custom", channels=4, kernel=3, stride=1, pool="none")
    yield ArchSpec(name="basic", input_size=(72, 72), stem=stem, stages=(Stage(width=4, blocks=2),), norm="none",
                   num_classes=2)
    yield ArchSpec(name="two-stage", input_size=(96, 96), stem=stem,
                   stages=(Stage(width=4, blocks=1), Stage(width=8, blocks=2, stride=2)), norm="none", num_classes=2)
    yield ArchSpec(name="bottleneck+pool", input_size=(96, 96),
                   stem=Stem(type="custom", channels=4, kernel=5, stride=2, pool="avg", pool_kernel=3, pool_stride=2),
                   stages=(Stage(block="bottleneck", width=2, blocks=2, stride=2),), shortcut="A", norm="none",
                   num_classes=2)
    yield ArchSpec(name="preact-plain", input_size=(80, 80), stem=stem, skip=False,
                   stages=(Stage(block="preact_basic", width=4, blocks=2, stride=2),), norm="none", num_classes=2)


@pytest.mark.parametrize("spec", list(_rf_nets()), ids=lambda s: s.name)
def test_receptive_field_equals_the_measured_gradient_extent(spec):
    """With positive weights and inputs nothing cancels, so the input pixels that get a non-zero
    gradient from one output unit are exactly its receptive field (when it fits in the image)."""
    p = plan(spec)
    t = Trace(p)
    model = build_model(p, seed=0).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0 / m.weight[0].numel())
                m.bias.zero_()
    outputs = {}
    names = {lay.name for lay in p.layers}

    def keep_first(name):
        def hook(mod, inp, out):  # returns None: a hook that returns a value replaces the output
            outputs.setdefault(name, out)
        return hook

    handles = [m.register_forward_hook(keep_first(n))
               for n, m in model.named_modules() if n in names and n.endswith(("add", "conv2", "conv3"))]
    x = torch.ones(1, *p.input_shape, requires_grad=True)
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    checked = 0
    for row in t.layers:
        if row.name not in outputs or row.layer.op not in ("add", "conv"):
            continue
        out = outputs[row.name]
        c = out.shape[-1] // 2
        grad, = torch.autograd.grad(out[0, 0, c, c], x, retain_graph=True)
        rows = torch.nonzero(grad[0].abs().sum(dim=(0, 2)))
        extent = int(rows.max() - rows.min() + 1)
        if extent < p.input_shape[1]:  # not clipped by the image border
            assert extent == row.receptive_field, row.name
            checked += 1
    assert checked >= 2


def test_elementwise_rule_equals_a_recount_on_the_module():
    spec = rc.get_preset("resnet50").replace(input_size=(64, 64))
    p = plan(spec)
    model = build_model(p, seed=0).eval()
    counted = []

    def count(mod, inp, out):
        if isinstance(mod, (nn.ReLU, rbuild.Add)):
            counted.append(out.numel())
        elif isinstance(mod, nn.BatchNorm2d):
            counted.append(2 * out.numel())
        elif isinstance(mod, nn.MaxPool2d):
            counted.append((mod.kernel_size ** 2 - 1) * out.numel())
        elif isinstance(mod, nn.AdaptiveAvgPool2d):
            counted.append(inp[0].numel())

    handles = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(torch.randn(1, *p.input_shape))
    finally:
        for h in handles:
            h.remove()
    assert Trace(p).elementwise == sum(counted)


def test_activation_bytes_are_float32_outputs():
    spec = rc.get_preset("resnet18")
    t = trace(spec)
    model = build_model(spec, seed=0).eval()
    sizes = []
    handles = [m.register_forward_hook(lambda mod, i, o: sizes.append(o.numel() * o.element_size()))
               for m in model.modules() if not list(m.children()) and not isinstance(m, nn.Identity)]
    try:
        with torch.no_grad():
            model(torch.randn(1, 3, 224, 224))
    finally:
        for h in handles:
            h.remove()
    assert t.activation_bytes == sum(sizes)


def test_groups_partition_the_totals():
    t = trace(rc.get_preset("resnet152"))
    groups = t.groups()
    assert [g.name for g in groups] == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert [g.blocks for g in groups] == [0, 3, 8, 36, 3, 0]
    assert sum(g.params for g in groups) == t.total_params
    assert sum(g.mult_adds for g in groups) == t.mult_adds
    assert sum(g.layers for g in groups) == len(t.layers)


def test_json_has_the_documented_fields():
    d = json.loads(json.dumps(trace(rc.get_preset("resnet18")).to_dict()))
    assert {"layers", "total_params", "mult_adds", "output_shape", "errors"} <= set(d)
    layer = d["layers"][0]
    assert {"name", "type", "input_shape", "output_shape", "params", "mult_adds", "receptive_field"} <= set(layer)
    assert d["output_shape"] == [1000] and d["errors"] == []
    sizes = [lay["output_shape"][1] for lay in d["layers"] if lay["type"] in ("Conv2d", "MaxPool2d", "AdaptiveAvgPool2d")
             and not lay["name"].startswith(("layer1.", "layer2.0.downsample"))]
    staircase = sorted(set(sizes), reverse=True)
    assert staircase == [112, 56, 28, 14, 7, 1]


def test_failed_trace_keeps_the_rows_before_the_failure():
    t = trace(rc.get_preset("resnet18").replace(shortcut="identity"))
    assert not t.ok and t.output_shape is None
    assert t.layers[-1].layer.failed and t.layers[-1].params == 0
    assert t.total_params == sum(r.params for r in t.layers[:-1]) > 0
    d = t.to_dict()
    assert d["errors"][0]["where"] == "stage 2 · block 0 · shortcut"
    assert d["errors"][0]["shapes"] == [[128, 28, 28], [64, 56, 56]]


# ---- depth as He et al. count it: the number in the network's name ------------------------------

NUMBERED = [n for n in rc.list_presets() if any(ch.isdigit() for ch in n)]


def _paper_depth(name: str) -> int:
    """The depth a preset's name states: resnet18 → 18, resnext50_32x4d → 50, wide_resnet50_2 → 50,
    plain_preact_resnet164 → 164 (the first number after "resnet"/"resnext"/"plain")."""
    import re
    return int(re.search(r"(?:resnetrs|resnet|resnext|plain)(\d+)", name).group(1))


def test_every_numbered_preset_is_listed():
    # every preset carries its depth in its name, except ConvNeXt's, which its paper names by size (T/S/B)
    assert set(rc.list_presets()) - set(NUMBERED) == set(rc.list_presets("convnext"))
    assert {"resnet18", "plain152", "resnext50_32x4d", "wide_resnet50_2", "resnet1202", "plain1202",
            "preact_resnet164", "plain_preact_resnet18", "resnet50d", "seresnet50", "resnetrs50"} <= set(NUMBERED)


def test_convnext_depth_counts_each_blocks_three_weight_layers():
    """ConvNeXt-T by hand: the stem's patchify conv, 3 + 3 + 9 + 3 blocks of a depthwise conv and two 1×1
    layers, and the FC; its three downsampling layers are not counted (RULES)."""
    assert trace(rc.get_preset("convnext_tiny")).depth == 1 + (3 + 3 + 9 + 3) * 3 + 1


@pytest.mark.parametrize("name", NUMBERED)
def test_depth_is_the_papers(name):
    t = trace(rc.get_preset(name))
    assert t.depth == _paper_depth(name)
    d = t.to_dict()
    assert d["depth"] == t.depth and d["layers_planned"] == len(t.layers) > t.depth


@pytest.mark.parametrize("name", ["resnet34", "resnet50", "resnet20"])
def test_depth_ignores_the_shortcut(name):
    spec = rc.get_preset(name)
    depths = {trace(spec.replace(shortcut=o)).depth for o in ("A", "B", "C")} | {trace(spec.replace(skip=False)).depth}
    assert depths == {_paper_depth(name)}


def test_depth_of_a_broken_network_counts_what_was_planned():
    t = trace(rc.get_preset("resnet18").replace(shortcut="identity"))  # breaks at layer2.0's addition
    assert t.depth == 1 + 2 * 2 + 2  # stem conv, layer1's four convs, layer2.0's two convs
