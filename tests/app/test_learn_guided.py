"""The guided path: following a Learn step's link lands on the right page with the right settings, read once."""

import pytest

import resnet_core as rc
from app import guided, handoff, live_session

from .test_app import new_app, no_exception, spec_of

TITLES = {"live": "Live lab", "train": "Training lab", "why": "Why it works"}


def learn():
    at = new_app()
    at.switch_page("app_pages/learn.py").run()
    no_exception(at)
    return at


def follow(at, step: int, label_start: str):
    """Click the step's link whose label starts with `label_start`; returns the guide it carried."""
    buttons = [b for b in at.button if b.key and b.key.startswith(f"learn.go.{step}.")]
    button = next(b for b in buttons if b.label.startswith(label_start))
    guide = guided.path()[step][int(button.key.rsplit(".", 1)[1])]
    button.click().run()
    no_exception(at)
    assert [t.value for t in at.title] == [TITLES[guide.page]]  # the script switched to the guide's page
    at.switch_page(guide.path)  # AppTest's later runs stay on its own page: follow the switch, as the browser's URL does
    return guide


def test_every_step_but_the_exercises_links_to_its_views():
    at = learn()
    keys = [b.key for b in at.button if b.key and b.key.startswith("learn.go.")]
    assert {k.split(".")[2] for k in keys} == {"0", "1", "2", "3"}
    pages = {g.page for links in guided.path().values() for g in links}
    assert pages == {"live", "train", "why"}


def test_the_gradient_flow_link_opens_backward_on_resnet56_and_runs_it():
    at = learn()
    follow(at, 0, "Live lab · the gradient with and without skips")
    # the Live lab: the Backward tab open, its controls set as the step says, the run started by itself
    assert at.session_state["live.tab"] == live_session.TAB_BACKWARD
    assert at.selectbox(key="live.gf_net").value == "resnet56"
    assert at.segmented_control(key="live.gf_norm.resnet56").value == "batch"
    assert at.selectbox(key="live.gf_init.resnet56").value == "kaiming_fan_in"
    assert any(i.value.startswith("From Learn, step 1: CIFAR resnet56 with batch norm") for i in at.info)
    job = at.session_state["live.gf_job"]
    assert job.wait(300)
    # AppTest does not report a tab's state back as a browser does (its Tab is no widget): say it, as the browser would
    at.session_state["live.tab"] = live_session.TAB_BACKWARD
    at.run()
    no_exception(at)
    flow = job.result
    assert flow.spec.name == "resnet56" and flow.spec.norm == "batch" and len(flow.variants) == 2
    # read once: the teacher's change afterwards stays, and no second run starts by itself
    assert handoff.GUIDE not in at.session_state
    at.segmented_control(key="live.gf_norm.resnet56").set_value("none").run()
    no_exception(at)
    assert at.segmented_control(key="live.gf_norm.resnet56").value == "none"
    assert at.session_state["live.gf_job"] is job


def test_the_projection_link_loads_resnet18_and_opens_the_block():
    at = learn()
    follow(at, 1, "Live lab · a 1×1 projection shortcut")
    assert spec_of(at) == rc.get_preset("resnet18")  # the builder holds the step's network
    assert at.selectbox(key="live.block").value == "layer2.0"
    assert any(s.value == "Inside layer2.0: x, F(x) and F(x) + x" for s in at.subheader)
    assert next(m.value for m in at.metric if m.label == "Shortcut") == "projection"


def test_the_batch_norm_link_opens_batch_statistics_on_resnet56():
    at = learn()
    follow(at, 3, "Live lab · batch norm with batch statistics")
    assert spec_of(at).name == "resnet56"
    assert at.segmented_control(key="live.mode").value == "train"
    assert at.selectbox(key="live.block").value == "layer3.8"


@pytest.mark.parametrize("step,label,page_key,value", [
    (0, "Training lab · degradation", "train.experiment", "degradation"),
    (3, "Training lab · batch norm", "train.experiment", "batchnorm"),
    (0, "Why it works · the lesion study", "why.experiment", "lesion"),
])
def test_training_and_why_links_set_their_page(step, label, page_key, value):
    at = learn()
    follow(at, step, label)
    assert at.session_state[page_key] == value
    assert any(i.value.startswith("From Learn, step") for i in at.info)


def test_the_signal_link_opens_why_on_the_reference_net_and_runs_it():
    at = learn()
    follow(at, 3, "Why it works · signal propagation")
    assert at.session_state["why.experiment"] == "signal"
    assert at.radio(key="why.signal.net").value == "reference"
    job = at.session_state["why.job"]
    assert job.name == "signal"
    assert job.wait(300)
    at.run()
    no_exception(at)
    assert any("Acceptance:" in s.value for s in [*at.success, *at.error]), "the signal verdict is shown"


def test_the_shape_link_opens_the_stems_feature_maps_of_the_builders_resnet18():
    at = learn()
    follow(at, 2, "Live lab · ResNet-18's feature maps")
    assert spec_of(at) == rc.get_preset("resnet18")  # 1,000 classes: the same network the walk-through traces
    # 224 → ⌊(224 + 2·3 − 7) / 2⌋ + 1 = 112, 64 filters: the walk-through's first step, drawn live
    assert "Feature maps: conv1 (64 channels, 112×112)" in [s.value for s in at.subheader]
