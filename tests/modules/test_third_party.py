"""Exactness against code nobody here wrote (issue 20, item 6): timm's ResNet family and torchvision's
classification models, traced from their own code.

For each model: parameters = sum(p.numel()) over its unique parameters; the output shape = its forward's;
mult-adds = torch.utils.flop_counter.FlopCounterMode's FLOPs / 2; the residual additions found = the
residual blocks its own classes declare. A representative set runs in the base lane, the whole families
in the slow lane.
"""

from __future__ import annotations

import pytest
import torch

from resnet_core.modules import inspect_module
from tests.modules import references as R

# Every suite runs the models below: the fast lane the first set, the full run also the second (the first
# model of each torchvision family, and timm's ResNet variants: deep and tiered stems, ResNet-D, SE, ECA,
# ResNet-RS, pre-activation, EvoNorm, ByobNet, CLIP attention pooling). The whole families (~190 models) are
# the `refs` lane: `REFS=1 bash scripts/test.sh -m refs`.
BASE = {("torchvision", n) for n in ("resnet18", "convnext_tiny", "mobilenet_v2", "regnet_x_400mf", "vit_b_32",
                                     "swin_t")}
BASE |= {("timm", n) for n in ("resnet50d", "resnet26t", "seresnet50", "ecaresnet50d", "resnetv2_50")}
SAMPLE = {("torchvision", n) for n in ("alexnet", "efficientnet_b0", "googlenet", "inception_v3", "maxvit_t",
                                       "mnasnet0_5", "mobilenet_v3_small", "resnet50", "shufflenet_v2_x0_5",
                                       "squeezenet1_0", "vgg11")}
SAMPLE |= {("timm", n) for n in ("resnet18d", "resnetrs50", "resnetv2_50d_evos", "resnet50_clip", "resnet32ts",
                                 "resnet61q")}


# models whose forward branches on a traced value, so torch.fx cannot trace them: traced by hooks (exact
# counts; no functional rows and no residual additions, which the trace says)
FX_UNTRACEABLE = {n for n in R.TIMM_FAMILY if n.endswith("_clip")}


def cases():
    for source, names in (("torchvision", R.TORCHVISION_CLASSIFICATION), ("timm", R.TIMM_FAMILY)):
        for name in names:
            key = (source, name)
            marks = () if key in BASE else (pytest.mark.slow,) if key in SAMPLE else (pytest.mark.slow, pytest.mark.refs)
            yield pytest.param(source, name, id=f"{source}:{name}", marks=marks)


@pytest.mark.parametrize("source, name", list(cases()))
def test_a_third_party_model_is_traced_exactly(source, name):
    build = R.builder(source, name)
    size = R.input_size(name)
    reference = R.on_meta(build)
    expected_mult_adds, expected_out = R.flop_counter_mult_adds(reference, size)

    t = inspect_module(build, (3, size, size), name=name)

    assert t.ok, t.errors
    assert t.total_params == sum(p.numel() for p in reference.parameters())
    assert t.output_shape == expected_out
    assert t.mult_adds == expected_mult_adds
    assert sum(r.params for r in t.rows) == t.total_params - R.unused_params(reference, size)  # the rest on rows
    if t.method == "hooks":  # fx cannot trace it (timm's CLIP attention pool branches on a traced value)
        assert name in FX_UNTRACEABLE and any("forward hooks" in n for n in t.notes)
    else:
        assert t.method == "fx" and name not in FX_UNTRACEABLE
        assert len(t.residual_adds) == R.residual_blocks(reference)


@pytest.mark.parametrize("source, name", [("torchvision", "resnet18"), ("timm", "resnet18d"),
                                          ("torchvision", "mobilenet_v3_small")])
def test_the_output_shape_is_a_real_forwards(source, name):
    """A real forward on the CPU with random weights, not the meta device's."""
    model = R.builder(source, name)().eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224))
    assert inspect_module(model, (3, 224, 224)).output_shape == tuple(out.shape[1:])


def test_the_residual_structure_of_a_downsampling_block_is_branch_and_projection():
    t = inspect_module(R.builder("torchvision", "resnet50"), (3, 224, 224))
    first = next(r for r in t.residual_adds if r.block == "layer2.0")
    assert first.branch == ["layer2.0.conv1", "layer2.0.bn1", "layer2.0.relu (1)", "layer2.0.conv2", "layer2.0.bn2",
                            "layer2.0.relu (2)", "layer2.0.conv3", "layer2.0.bn3"]
    assert first.shortcut == ["layer2.0.downsample.0", "layer2.0.downsample.1"]
    timm_d = inspect_module(R.builder("timm", "resnet50d"), (3, 224, 224))
    d = next(r for r in timm_d.residual_adds if r.block == "layer2.0")
    assert [p.rsplit(".", 1)[-1] for p in d.shortcut] == ["0", "1", "2"]  # ResNet-D: avg pool, 1×1 conv, BN
