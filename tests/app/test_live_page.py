"""The Live lab page through AppTest: forward views, uploads, checkpoints, gradient flow."""

import io

import pytest
import torch
from PIL import Image

import resnet_core as rc

from .test_app import new_app, no_exception, spec_of


def live(**query):
    at = new_app(**query)
    at.switch_page("app_pages/live.py").run()
    no_exception(at)
    return at


def metric_value(at, label_start: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(label_start))


def subheaders(at) -> list[str]:
    return [s.value for s in at.subheader]


@pytest.fixture(scope="module")
def resnet20_link():
    return {"net": "resnet20"}


def test_forward_view_of_the_default_network():
    at = live()
    assert "Feature maps: layer1.0.add (64 channels, 56×56)" in subheaders(at)
    assert "Inside layer1.0: x, F(x) and F(x) + x" in subheaders(at)
    assert float(metric_value(at, "‖F(x)‖ / ‖x‖")) > 0
    assert metric_value(at, "Shortcut") == "identity"


def test_choosing_a_layer_and_a_projection_block(resnet20_link):
    at = live(**resnet20_link)
    plan = rc.plan(rc.get_preset("resnet20"))
    conv = next(lay for lay in plan.layers if lay.name == "layer3.0.conv2")
    at.selectbox(key="live.layer").set_value(conv.index).run()
    at.selectbox(key="live.block").set_value("layer3.0").run()
    no_exception(at)
    assert "Feature maps: layer3.0.conv2 (64 channels, 8×8)" in subheaders(at)
    assert metric_value(at, "Shortcut") == "pad"  # option A: subsampled and zero-padded


def png(size, mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("name,data,expected", [
    ("broken.png", png((64, 64))[:60], "damaged"),
    ("notes.png", b"just some text, not an image", "not a PNG, JPEG or WebP"),
    ("huge.png", png((10_000, 10_000), "1"), "pixels"),
])
def test_bad_uploads_get_a_clear_message(resnet20_link, name, data, expected):
    at = live(**resnet20_link)
    at.selectbox(key="live.input").set_value("upload").run()
    at.file_uploader(key="live.image").set_value((name, data, "image/png")).run()
    no_exception(at)
    errors = [e.value for e in at.error]
    assert errors and errors[0].startswith("This image cannot be used") and expected in errors[0], errors


def test_a_good_upload_is_used(resnet20_link):
    at = live(**resnet20_link)
    at.selectbox(key="live.input").set_value("upload").run()
    at.file_uploader(key="live.image").set_value(("cat.png", png((300, 200)), "image/png")).run()
    no_exception(at)
    assert not at.error
    captions = [c for img in at.get("image") for c in img.captions]
    assert any(c.startswith("upload cat.png") for c in captions), captions


def checkpoint_bytes(state) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def test_checkpoint_with_missing_and_extra_keys_is_reported_by_name(resnet20_link):
    state = rc.build_model(rc.get_preset("resnet20"), seed=3).state_dict()
    del state["layer2.1.conv1.weight"]
    state["layer9.0.conv1.weight"] = torch.zeros(1)
    at = live(**resnet20_link)
    at.selectbox(key="live.weights").set_value("checkpoint").run()
    at.file_uploader(key="live.ckpt").set_value(("ckpt.pth", checkpoint_bytes(state), "application/octet-stream")).run()
    no_exception(at)
    text = " ".join(c.value for c in at.caption)
    assert "layer2.1.conv1.weight" in text and "layer9.0.conv1.weight" in text


def test_a_file_that_is_not_a_checkpoint(resnet20_link):
    at = live(**resnet20_link)
    at.selectbox(key="live.weights").set_value("checkpoint").run()
    at.file_uploader(key="live.ckpt").set_value(("x.pth", b"not a checkpoint", "application/octet-stream")).run()
    no_exception(at)
    assert at.error and at.error[0].value.startswith("These weights could not be used")


def finish_gradflow(at, timeout=600):
    """Wait for the session's gradient-flow job (a thread of its own), then rerun to show its result."""
    job = at.session_state["live.gf_job"]
    assert job.wait(timeout), "the gradient flow did not finish in time"
    at.run()
    no_exception(at)
    return job


BACKWARD = "Backward: gradient flow with and without skips"


def open_backward(at):
    """Select the Backward tab (only the open tab runs)."""
    at.session_state["live.tab"] = BACKWARD
    at.run()
    no_exception(at)
    return at


def run_gradflow(at, net: str, norm: str, init: str):
    open_backward(at)
    at.selectbox(key="live.gf_net").set_value(net).run()
    at.segmented_control(key=f"live.gf_norm.{net}").set_value(norm).run()
    at.selectbox(key=f"live.gf_init.{net}").set_value(init).run()
    at.button(key="live.gf_run").click().run()
    no_exception(at)
    finish_gradflow(at)
    assert not at.error, [e.value for e in at.error]


def test_gradient_flow_without_batch_norm_vanishes_without_skips():
    at = live()
    run_gradflow(at, "resnet56", "none", "pytorch_default")
    with_skips = float(metric_value(at, "First conv ‖∂L/∂W‖, with skips"))
    without = float(metric_value(at, "First conv ‖∂L/∂W‖, without skips"))
    assert with_skips > 1e-3 and without < 1e-10 * with_skips
    flow = at.session_state["live.gf_job"].result
    without = flow.variant(False)
    w_vanished = sum(1 for g in without.weights if g.norm is not None and g.norm < 1e-8)  # counted here
    i_vanished = sum(1 for g in without.inputs if g.norm is not None and g.norm < 1e-8)
    line = next(m.value for m in at.markdown if m.value.startswith("**without skips**: "))
    assert line == (f"**without skips**: {w_vanished} of 56 weight gradients vanished, 0 exploded; "
                    f"{i_vanished} of 27 block-input gradients vanished, 0 exploded")


def test_gradient_flow_with_batch_norm_explodes_without_skips():
    at = live()
    run_gradflow(at, "resnet56", "batch", "kaiming_fan_in")
    with_skips = float(metric_value(at, "First conv ‖∂L/∂W‖, with skips"))
    without = float(metric_value(at, "First conv ‖∂L/∂W‖, without skips"))
    assert without > 50 * with_skips


def test_the_default_gradient_flow_shows_the_effect_and_says_so():
    """The Backward tab's default is CIFAR resnet56 with batch norm: the plain net's gradient explodes on its way
    back, and the sentence under the result says so with the measured numbers."""
    at = open_backward(live())
    assert at.selectbox(key="live.gf_net").value == "resnet56"
    at.button(key="live.gf_run").click().run()
    job = finish_gradflow(at)
    on, off = (job.result.variant(s).weights[0].norm for s in (True, False))
    assert off > 50 * on  # measured here, from the result itself
    shows = next(m.value for m in at.markdown if m.value.startswith("**What this run shows.**"))
    assert "explodes" in shows and "vanishes" not in shows


def test_broken_network_is_not_run():
    from resnet_core.structure.spec import to_url_token
    at = live(spec=to_url_token(rc.get_preset("resnet18").replace(shortcut="identity")))
    assert at.error and "stage 2 · block 0 · shortcut" in at.error[0].value
    assert any("Fix the network" in i.value for i in at.info)
    assert spec_of(at).shortcut == "identity"


def test_imagenet_weights_offline_fall_back_to_random_with_a_message(monkeypatch):
    from resnet_core.lab import weights

    calls = []

    def offline(model, name, *args, **kwargs):
        calls.append(name)
        raise weights.WeightsUnavailable(f"could not download {name}'s ImageNet weights: the network is unreachable.")

    monkeypatch.setattr(weights, "load_imagenet_weights", offline)
    at = live()
    at.selectbox(key="live.weights").set_value("imagenet").run()
    no_exception(at)
    assert calls == ["resnet18"]
    assert any("ImageNet weights could not be had" in w.value and "random weights (seed 0" in w.value
               for w in at.warning)
    assert any("could not download resnet18" in c.value for c in at.caption)  # the reason, under "Why"
    assert any(m.value.replace("\\", "").startswith("**Views of random weights (seed 0") for m in at.markdown), \
        [m.value for m in at.markdown]
    assert not at.error
    assert "Feature maps: layer1.0.add (64 channels, 56×56)" in subheaders(at)  # the page still runs
    assert not any("Top predictions" in m.value for m in at.markdown)  # random weights: no predictions


def test_imagenet_weights_are_offered_only_for_torchvision_presets():
    at = live(net="resnet20")
    assert "ImageNet (torchvision)" not in at.selectbox(key="live.weights").options
    at = live(net="resnet50")
    assert "ImageNet (torchvision)" in at.selectbox(key="live.weights").options


def test_a_network_too_large_for_free_memory_is_refused_before_it_is_built(monkeypatch):
    from app import live_session
    from resnet_core import device

    monkeypatch.setattr(device, "free_memory", lambda dev: 50 * 2**20)  # 50 MiB free
    built = []
    monkeypatch.setattr(live_session, "build_model", lambda *a, **k: built.append(a))
    at = live(net="resnet50")  # ~100 MiB of weights
    assert not built
    assert at.error and at.error[0].value.startswith("This network is too large to run here")
    assert "MiB" in at.error[0].value


# ------------------------------------------------------------------------------------------------
# one pass, every view; the anatomy's defaults; labels; the gradient flow's Stop; several sessions
# ------------------------------------------------------------------------------------------------

def test_changing_the_layer_the_block_or_top_k_runs_no_forward_pass(monkeypatch, resnet20_link):
    from resnet_core.lab import forward
    real = forward.forward_record
    calls = []

    def counted(*args, **kwargs):
        calls.append(kwargs.get("train"))
        return real(*args, **kwargs)

    monkeypatch.setattr(forward, "forward_record", counted)
    at = live(**resnet20_link)
    assert len(calls) == 1
    plan = rc.plan(rc.get_preset("resnet20"))
    conv = next(lay for lay in plan.layers if lay.name == "layer3.0.conv2")
    at.selectbox(key="live.layer").set_value(conv.index).run()
    at.selectbox(key="live.block").set_value("layer2.0").run()
    at.number_input(key="live.topk").set_value(5).run()
    no_exception(at)
    assert "Feature maps: layer3.0.conv2 (64 channels, 8×8)" in subheaders(at)
    assert "Inside layer2.0: x, F(x) and F(x) + x" in subheaders(at)
    assert len(calls) == 1, "a view change ran the network again"
    at.segmented_control(key="live.mode").set_value("train").run()  # the BN mode: a new pass
    at.number_input(key="live.seed").set_value(1).run()  # the weights: a new pass
    no_exception(at)
    assert calls == [False, True, True]


def test_the_default_block_anatomy_uses_running_statistics_and_depends_on_the_weights(resnet20_link):
    at = live(**resnet20_link)
    assert at.segmented_control(key="live.mode").value == "eval"
    text = " ".join(m.value for m in at.markdown) + " ".join(c.value for c in at.caption)
    assert "batch norm: running statistics (eval mode)" in text and "random weights still have the initial" in text
    ratio0 = float(metric_value(at, "‖F(x)‖ / ‖x‖"))
    at.number_input(key="live.seed").set_value(1).run()
    ratio1 = float(metric_value(at, "‖F(x)‖ / ‖x‖"))
    assert ratio0 > 0 and ratio1 > 0 and abs(ratio0 - ratio1) > 1e-3 * max(ratio0, ratio1)
    assert "‖F(x)‖ / ‖x‖ of every block through the depth" in subheaders(at)
    rec = at.session_state["live.record"][1]
    ratios = [r["ratio"] for r in rec.block_ratios()]
    assert len(ratios) == 9
    caption = next(c.value for c in at.caption if "the ratio " in c.value)
    assert f"{ratios[0]:.3g}" in caption and f"{ratios[-1]:.3g}" in caption  # the sentence quotes the numbers
    # batch statistics: a batch of 8, said on the page
    at.segmented_control(key="live.mode").set_value("train").run()
    no_exception(at)
    assert at.session_state["live.record"][1].batch == 8
    assert any("a batch of 8: this image and" in m.value for m in at.markdown)


def test_the_two_uses_of_a_blocks_relu_are_listed_apart():
    at = live(net="resnet20")
    options = at.selectbox(key="live.layer").options
    assert any(o.startswith("layer1.0.relu (1) · ") for o in options)
    assert any(o.startswith("layer1.0.relu (2) · ") for o in options)
    assert not any(o.startswith("layer1.0.relu · ") for o in options)


def test_a_gradient_flow_can_be_stopped_and_the_page_stays_usable():
    at = open_backward(live())
    at.selectbox(key="live.gf_net").set_value("resnet110").run()
    at.number_input(key="live.gf_batch").set_value(64).run()
    at.button(key="live.gf_run").click().run()
    no_exception(at)
    job = at.session_state["live.gf_job"]
    assert at.button(key="live.gf_stop").disabled is False and at.button(key="live.gf_run").disabled is True
    at.button(key="live.gf_stop").click().run()
    no_exception(at)
    assert job.finished and job.result is not None and job.result.stopped
    at.run()
    assert any(w.value.startswith("Stopped: ") for w in at.warning), [w.value for w in at.warning]
    assert at.button(key="live.gf_run").disabled is False and at.button(key="live.gf_stop").disabled is True
    at.selectbox(key="live.gf_net").set_value("resnet20").run()  # and it runs again
    at.button(key="live.gf_run").click().run()
    job = finish_gradflow(at)
    assert not job.result.stopped and len(job.result.variants) == 2
    assert metric_value(at, "First conv ‖∂L/∂W‖, without skips")


def test_a_network_too_large_says_why_in_both_tabs(monkeypatch):
    from resnet_core import device
    monkeypatch.setattr(device, "free_memory", lambda dev: 50 * 2**20)
    at = live(net="resnet50")
    errors = [e.value for e in at.error]
    assert any(e.startswith("This network is too large to run here") for e in errors)
    open_backward(at)
    at.selectbox(key="live.gf_net").set_value("builder").run()
    errors = [e.value for e in at.error]
    assert any(e.startswith("This gradient flow cannot run here") and "resnet50" in e for e in errors), errors
    assert at.button(key="live.gf_run").disabled


def test_a_gradient_flow_stops_by_itself_when_its_session_is_gone():
    """The job checks its session's liveness at every layer: once the tab is closed (the check turns
    false) the run ends at the next layer, as a Stop would end it."""
    import threading
    import time

    from app import live_session
    gone = threading.Event()
    job = live_session.gradflow_job(rc.get_preset("resnet110"), seed=0, batch=32, request=())
    job.start(alive=lambda: not gone.is_set())
    deadline = time.monotonic() + 120
    while job.progress is None and not job.finished and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.progress is not None, "the run never began"
    gone.set()  # the tab closes while the first variant runs
    assert job.wait(300), "the job kept running after its session was gone"
    assert job.error is None and job.result is not None and job.result.stopped
    assert len(job.result.variants) < 2


def test_only_the_open_tab_runs(monkeypatch):
    """A first view draws the forward views alone (the Backward tab's controls are not made, so neither the
    server nor the browser spends time on them); opening Backward runs no forward pass."""
    from app import live_session
    at = live(net="resnet20")
    keys = {b.key for b in at.button}
    assert "live.gf_run" not in keys and any(h.startswith("Feature maps: ") for h in subheaders(at))
    calls = []
    real = live_session.record_for
    monkeypatch.setattr(live_session, "record_for", lambda *a, **k: calls.append(1) or real(*a, **k))
    open_backward(at)
    assert "live.gf_run" in {b.key for b in at.button}
    assert not any(h.startswith("Feature maps: ") for h in subheaders(at)) and calls == []


@pytest.mark.slow
def test_a_convnext_runs_in_the_live_lab_with_its_layer_norm_and_its_maps():
    """ConvNeXt-T (issue 21): the feature-map list holds only (C, H, W) maps (the layers between a block's
    permutes are (H, W, C)), and the gradient flow's normalisation control offers the layer norm it has."""
    at = live(net="convnext_tiny")
    plan = rc.plan(rc.get_preset("convnext_tiny"))
    options = at.selectbox(key="live.layer").options
    channels_last = [lay for lay in plan.layers if lay.channels_last and lay.out_shape is not None]
    assert channels_last and not any(o.startswith(f"{lay.label} ·") for lay in channels_last for o in options)
    open_backward(at)
    at.selectbox(key="live.gf_net").set_value("builder").run()
    no_exception(at)
    assert at.segmented_control(key="live.gf_norm.builder").options == ["batch norm", "layer norm", "off"]
    assert at.segmented_control(key="live.gf_norm.builder").value == "layer"
