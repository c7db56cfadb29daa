"""Your model (issue 20): the page a server started with `--model FILE.py:NAME` has, and no other server has.

The model is the person's own code (tests/app/fixtures/own_model.py: a small SE-ResNet written by hand),
checked against what a person counts: 4 residual additions, the parameters PyTorch counts, the located
error of its broken variant. A server started without --model never imports code a visitor names.
"""

import time
from pathlib import Path

import pytest
import torch

from tests.app.fixtures import own_model
from tests.app.test_app import new_app, no_exception

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture()
def with_model(monkeypatch):
    def start(name: str = "ResNetSE", shape: str = "3,32,32"):
        monkeypatch.setenv("RESNET_EXPLORER_MODEL", f"{FIXTURES / 'own_model.py'}:{name}")
        monkeypatch.setenv("RESNET_EXPLORER_MODEL_INPUT", shape)
        at = new_app()
        at.run()
        no_exception(at)
        return at
    return start


def test_the_model_page_opens_first_with_its_trace_and_blocks(with_model):
    at = with_model()
    assert at.title[0].value == "Your model: ResNetSE"
    params = sum(p.numel() for p in own_model.ResNetSE().parameters())
    caption = at.caption[0].value
    assert f"{params:,} parameters" in caption and "4 residual additions" in caption and "fx" in caption
    blocks = at.dataframe[1].value
    assert list(blocks["block"]) == ["blocks.0", "blocks.1", "blocks.2", "blocks.3"]
    assert list(blocks["shortcut"])[:2] == ["identity", "blocks.1.down.0, blocks.1.down.1"]


def test_the_gradient_flow_runs_with_and_without_skips(with_model):
    at = with_model()
    at.button(key="model.run").click().run()
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.5)
        at.run()
        job = at.session_state["model.job"]
        if job.finished:
            at.run()
            break
    no_exception(at)
    flow = at.session_state["model.job"].result
    assert flow is not None and flow.residual_adds == 4
    rows = {r["layer"]: r for r in flow.rows()}
    assert rows["blocks.1.down.0"]["without_skips"] == 0  # the projection is off the path without its addition
    assert rows["stem.0"]["with_skips"] > 0 and rows["stem.0"]["without_skips"] > 0
    assert any("First layer" in m.value for m in at.markdown)


def test_a_broken_model_shows_its_located_error_and_fix(with_model):
    at = with_model("broken")
    from resnet_core.text import md
    errors = [e.value for e in at.error]
    assert any(md("blocks.1:add") in e and "1×1 conv from 16 to 32 channels with stride 2" in e for e in errors), errors


def test_without_model_the_server_has_no_model_page_and_imports_nothing(monkeypatch, tmp_path):
    mark = tmp_path / "mark"
    monkeypatch.delenv("RESNET_EXPLORER_MODEL", raising=False)
    monkeypatch.setenv("RESNET_EXPLORER_TEST_MARK", str(mark))
    at = new_app()
    evil = f"{FIXTURES / 'evil_model.py'}:Evil"
    for key in ("model", "spec", "net", "source"):
        at.query_params[key] = evil
    at.run()
    no_exception(at)
    assert not any(t.value.startswith("Your model") for t in at.title)
    with pytest.raises(ValueError, match="Could not find a navigation page"):  # not registered at all
        at.switch_page("app_pages/model.py")
    assert not mark.exists(), "a visitor's link made the server import code"


def test_the_model_is_traced_without_allocating_its_weights(with_model, monkeypatch):
    """The page's trace runs on the meta device: a 4 GiB-parameter model opens at once."""
    at = with_model("huge", "1024")
    assert at.title[0].value == "Your model: huge"
    assert f"{2**30:,} parameters" in at.caption[0].value
    assert torch.empty(0).device.type == "cpu"


def test_the_forward_views_show_each_blocks_anatomy_with_its_ratio(with_model):
    at = with_model()
    assert any("‖F(x)‖ / ‖shortcut‖" in m.value for m in at.markdown)
    views = at.session_state["model.forward"][1]
    assert len(views.blocks) == 4 and len(at.image) >= 4 + 8  # x, F(x), shortcut, sum; 8 feature maps
    shown = next(m.value for m in at.markdown if "‖F(x)‖ / ‖shortcut‖" in m.value)
    lo = min(b.ratio for b in views.blocks)
    assert f"{lo:.3g}" in shown  # the sentence is computed from the numbers it shows


def test_the_sidebar_says_the_model_came_from_code_and_starts_the_builder_from_the_closest_preset(with_model):
    at = with_model()
    side = " ".join(m.value for m in at.sidebar.markdown)
    from resnet_core.text import md
    assert "came from code" in side and md("own_model.py:ResNetSE") in side  # the source as text, not Markdown
    button = at.sidebar.button(key="model.to_preset")
    preset = button.label.removeprefix("Start the builder from ")
    import resnet_core as rc
    assert preset in rc.list_presets()
    button.click().run()
    no_exception(at)
    assert at.session_state["model.explore"] == "the builder's network"
    assert at.session_state["spec"].name == rc.get_preset(preset).name


def test_the_shape_trace_and_graph_pages_show_the_model_while_explore_is_on_it(with_model):
    from tests.app.test_app import dot_of
    at = with_model()
    at.switch_page("app_pages/trace.py").run()
    no_exception(at)
    assert at.title[0].value == "ResNetSE: shape trace"
    table = at.dataframe[0].value
    assert list(table["path"])[:2] == ["stem.0", "stem.1"] and sum(table["params"]) == sum(
        p.numel() for p in own_model.ResNetSE().parameters())
    at.switch_page("app_pages/graph.py").run()
    no_exception(at)
    assert at.title[0].value == "ResNetSE: computation graph"
    assert "F(x):" in dot_of(at)  # block detail: each block one F(x) node
    at.segmented_control(key="graph.model.detail").set_value("stage").run()
    assert "4 residual blocks" in dot_of(at)  # the model's one stage of blocks as one node
    at.segmented_control(key="model.explore").set_value("the builder's network").run()
    no_exception(at)
    assert at.title[0].value.endswith(": computation graph") and not at.title[0].value.startswith("ResNetSE")


def test_the_live_lab_shows_the_models_forward_views_and_gradient_flow(with_model):
    at = with_model()
    at.switch_page("app_pages/live.py").run()
    no_exception(at)
    assert at.title[0].value == "ResNetSE: live lab"
    views = at.session_state["model.forward"][1]
    assert len(views.blocks) == 4  # the four residual blocks' anatomy, as on the model's own page
    assert at.button(key="model.run").label.startswith("Run forward + backward, with and without skips")
