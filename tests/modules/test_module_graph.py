"""A model from code: its residual blocks are named by the modules that hold them, and its graph collapses
stages as the presets' graph does. References: the models' own module trees (torchvision's blocks, and our
built ResNet whose addition is a module of its own)."""

from __future__ import annotations

import re

import pytest
import torch

import resnet_core as rc
from resnet_core.modules.graph import block_stages, module_dot

from .references import builder, on_meta


def _models():
    yield "torchvision resnet50 (addition in forward)", on_meta(builder("torchvision", "resnet50"))
    with torch.device("meta"):
        yield "built resnet50 (addition module)", rc.build_model(rc.get_preset("resnet50"))


@pytest.mark.parametrize("label,model", list(_models()), ids=lambda v: v if isinstance(v, str) else "")
def test_each_residual_addition_is_named_by_its_block_module(label, model):
    t = rc.inspect_module(model, (3, 64, 64))
    expected = [f"layer{i}.{j}" for i in range(1, 5) for j in range(len(getattr(model, f"layer{i}")))]
    assert [b.block for b in t.residual_adds] == expected
    assert block_stages(t) == ["layer1", "layer2", "layer3", "layer4"]


@pytest.mark.parametrize("label,model", list(_models()), ids=lambda v: v if isinstance(v, str) else "")
def test_the_stage_graph_draws_each_stage_as_one_node_with_its_blocks_and_parameters(label, model):
    t = rc.inspect_module(model, (3, 64, 64))
    dot = module_dot(t, "stage")
    for i in range(1, 5):
        stage = getattr(model, f"layer{i}")
        params = sum(p.numel() for p in stage.parameters())
        assert f'label="layer{i}\n{len(stage)} residual blocks · {params:,} params' in dot
    assert "+" not in re.findall(r'label="([^"]*)"', dot)  # no ⊕ is drawn inside a collapsed stage


def test_expanding_one_stage_draws_its_blocks_and_collapses_the_others():
    with torch.device("meta"):
        model = rc.build_model(rc.get_preset("resnet50"))
    t = rc.inspect_module(model, (3, 64, 64))
    dot = module_dot(t, "block", expand="layer3")
    assert len(re.findall(r'label="layer3\.\d+\nF\(x\)', dot)) == len(model.layer3)
    for other in ("layer1", "layer2", "layer4"):
        assert f'label="{other}\n' in dot and f'label="{other}.0\n' not in dot
    assert dot.count("style=dashed") == len(model.layer3)  # only the expanded stage's skip edges


def test_the_notebook_display_is_the_graph_and_the_table():
    """In Jupyter a traced model shows its block graph (one dashed skip edge per block) and a row per operation."""
    from resnet_core.structure.graph import dot_available
    with torch.device("meta"):
        model = rc.build_model(rc.get_preset("resnet18"))
    t = rc.inspect_module(model, (3, 64, 64))
    page = t._repr_html_()
    assert page.count("<tr") == len(t.rows) + 1  # the head and a row per operation
    blocks = sum(len(getattr(model, f"layer{i}")) for i in range(1, 5))
    if dot_available():
        assert page.count("<svg") == 1 and page.count("stroke-dasharray") == blocks
    else:
        assert "No graph drawn" in page
