"""The family since 2016 in the app (Streamlit's AppTest): every new preset and a roadmap step survive the
builder (its widgets give back exactly the spec loaded, newer fields included) and a share link; the builder's
new widgets change the spec; the roadmap page opens a step in the builder."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import resnet_core as rc
from resnet_core.structure.roadmap import STEPS
from resnet_core.structure.spec import to_url_token

APP = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")
SECTIONS = ["ui.exp.input", "ui.exp.stem", "ui.exp.blocks", "ui.exp.family"] + [f"ui.stage_exp.{i}" for i in range(4)]
FAMILY = [n for n in rc.list_presets() if rc.preset_info(n).family in ("timm", "convnext")
          and rc.preset_info(n).plain_of is None]


def new_app(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    for key in SECTIONS:
        at.session_state[key + ".open"] = True
    return at.run()


def ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


@pytest.mark.parametrize("name", [n if n in ("resnet50d", "convnext_tiny") else pytest.param(n, marks=pytest.mark.slow)
                                  for n in FAMILY])
def test_a_preset_link_comes_back_from_the_builder_unchanged(name):
    at = new_app(net=name)
    ok(at)
    assert at.session_state["spec"] == rc.get_preset(name)
    assert at.query_params["net"] == name


def test_a_roadmap_step_link_round_trips_with_its_newer_fields():
    step = STEPS[6].spec  # ConvNeXt blocks with kernel 3, batch norm, every norm and activation
    at = new_app(spec=to_url_token(step))
    ok(at)
    assert at.session_state["spec"] == step
    assert at.query_params["spec"] == to_url_token(step)


def test_the_new_widgets_change_the_spec_and_an_invalid_combination_is_located():
    at = new_app(net="resnet50")
    at.selectbox(key="net.attention").set_value("se").run()
    ok(at)
    assert at.session_state["spec"].attention == "se"
    at.segmented_control(key="net.shortcut").set_value("D").run()
    assert rc.trace(at.session_state["spec"]).total_params == 28_088_024  # seresnet50: D adds no parameters
    at.selectbox(key="net.s0.block").set_value("convnext").run()
    ok(at)
    (e,) = rc.plan(at.session_state["spec"]).errors
    assert str(e.where) == "stage 1 · attention"
    assert any("stage 1 · attention" in m.value and "Fix:" in m.value for m in at.error)  # located, as today


def test_the_roadmap_page_opens_a_step_in_the_builder():
    at = new_app()
    at.switch_page("app_pages/roadmap.py").run()
    ok(at)
    at.radio(key="roadmap.step").set_value(at.radio(key="roadmap.step").options[5]).run()
    at.button(key="roadmap.open.5").click().run()
    ok(at)
    assert at.session_state["spec"] == STEPS[5].spec


def test_stage_edits_carry_each_stages_kernel_and_depthwise():
    at = new_app(spec=to_url_token(STEPS[3].spec))  # depthwise stages
    at.button(key="ui.rm.0").click().run()
    ok(at)
    assert all(s.depthwise for s in at.session_state["spec"].stages)
    at2 = new_app(net="convnext_tiny")
    at2.selectbox(key="net.s3.kernel").set_value(5).run()
    at2.button(key="ui.up.3").click().run()
    assert [s.kernel for s in at2.session_state["spec"].stages] == [None, None, 5, None]
    at2.button(key="ui.add_stage").click().run()
    assert [s.kernel for s in at2.session_state["spec"].stages] == [None, None, 5, None, None]  # a copy of the last
