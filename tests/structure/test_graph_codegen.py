"""The computation graph's DOT and the generated PyTorch code."""

import re
import shutil

import pytest
import torch

import resnet_core as rc
from resnet_core.structure.build import build_model
from resnet_core.structure.codegen import generate_code
from resnet_core.structure.graph import RenderUnavailable, build_graph, render, to_dot
from resnet_core.structure.plan import plan

from .small import small_input

SKIP_EDGE = re.compile(r'style=dashed')


def count_nodes(dot: str) -> int:
    return len(re.findall(r"^\s*n\d+ \[", dot, flags=re.M))


def test_block_graph_has_one_skip_edge_per_residual_block_and_projection_nodes():
    p = plan(rc.get_preset("resnet18"))
    dot = to_dot(p, "block")
    # each block: one dashed edge into its ⊕; a projection block has one more (input → projection)
    projections = sum(1 for b in p.blocks if b.shortcut == "projection")
    assert len(SKIP_EDGE.findall(dot)) == len(p.blocks) + projections == 8 + 3
    assert dot.count("1×1 projection/2") == 3
    assert dot.count('label="+"') == 8
    for shape in ("64×56×56", "128×28×28", "256×14×14", "512×7×7"):
        assert shape in dot


def test_plain_net_graph_has_no_skip_edges():
    dot = to_dot(plan(rc.get_preset("plain18")), "block")
    assert not SKIP_EDGE.search(dot) and 'label="+"' not in dot


def test_layer_graph_has_a_node_per_layer():
    p = plan(rc.get_preset("resnet20"))
    dot = to_dot(p, "layer", max_blocks=100)
    assert count_nodes(dot) == len(p.layers) + 2  # + input and output
    assert dot.count("cluster_layer") == len(p.blocks)


def test_layer_graph_draws_each_use_of_a_module_under_its_own_label():
    """A basic block calls its `relu` twice: layer detail draws two nodes, "(1)" and "(2)"; nothing unnumbered."""
    dot = to_dot(plan(rc.get_preset("resnet18")), "layer")
    for block in ("layer1.0", "layer3.1"):
        assert dot.count(f'label="{block}.relu (1)\n') == 1 and dot.count(f'label="{block}.relu (2)\n') == 1
        assert f'label="{block}.relu\n' not in dot
    assert 'label="layer1.0.conv1\n' in dot  # a module used once keeps its plain name


def test_huge_networks_stay_readable():
    p = plan(rc.get_preset("resnet1202"))
    for detail, expand in (("stage", None), ("block", 1), ("layer", 2), ("block", None)):
        dot = to_dot(p, detail, expand)
        assert count_nodes(dot) < 150, (detail, expand)
    assert "basic × 200" in to_dot(p, "block", 1)  # collapsed stages
    assert "⋯ 193 more blocks" in to_dot(p, "block", 1)


def test_failure_is_marked_and_nothing_after_it_is_drawn():
    p = plan(rc.get_preset("resnet18").replace(shortcut="identity"))
    dot = to_dot(p, "block")
    assert "✗ +" in dot and "128×28×28 ≠ 64×56×56" in dot
    assert "stops at stage 2 · block 0 · shortcut" in dot
    assert "layer3" not in dot and "output" not in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_svg_render():
    svg = render(plan(rc.get_preset("resnet18")), "svg").decode()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "layer4.1" in svg


def test_render_without_dot_says_so(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RenderUnavailable, match="graphviz"):
        render(plan(rc.get_preset("resnet18")), "svg")


def test_graph_rejects_unknown_detail():
    with pytest.raises(ValueError, match="detail"):
        build_graph(plan(rc.get_preset("resnet18")), "blocks")


@pytest.mark.parametrize("name", rc.list_presets())
def test_generated_code_builds_the_same_network(name, tmp_path):
    spec = rc.get_preset(name)
    source = generate_code(spec)
    assert "resnet_core" not in source.replace("ResNet Explorer", "")  # standalone: torch only
    namespace: dict = {"__name__": "generated"}
    exec(compile(source, f"{name}.py", "exec"), namespace)
    generated = namespace["build_model"](seed=5)
    ours = build_model(spec, seed=5)
    g_sd, o_sd = generated.state_dict(), ours.state_dict()
    assert list(g_sd) == list(o_sd)
    assert all(g_sd[k].shape == o_sd[k].shape and torch.equal(g_sd[k], o_sd[k]) for k in g_sd)
    x = torch.randn(1, *plan(small_input(spec)).input_shape)  # same weights, so the outputs agree at any size
    with torch.no_grad():  # (resnet1202's eval output at initialisation overflows to NaN in both)
        torch.testing.assert_close(generated.eval()(x), ours.eval()(x), rtol=0, atol=0, equal_nan=True)


@pytest.mark.slow  # a Python process that imports torch
def test_generated_code_runs_as_a_script(tmp_path):
    import subprocess
    import sys
    f = tmp_path / "net.py"
    f.write_text(generate_code(rc.get_preset("resnet20")))
    out = subprocess.run([sys.executable, str(f)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "269,722 parameters; output (1, 10)" in out.stdout


def test_generated_code_refuses_a_broken_network():
    with pytest.raises(rc.BuildError, match="stage 2 · block 0 · shortcut"):
        generate_code(rc.get_preset("resnet18").replace(shortcut="identity"))
