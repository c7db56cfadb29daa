"""The Live lab in 简体中文 (`?lang=zh`): every view it opens — the feature maps, the block anatomy (x, F(x),
F(x) + x and the ratio through the depth), the activation statistics, with running and with batch statistics,
and the gradient flow with and without skips before and after a run — shows no run of English words
(tests/i18n_check.py), while the widgets keep their English keys and values."""

from types import SimpleNamespace

import pytest

from resnet_core import i18n
from tests.i18n_check import english_shown

from .test_app import new_app, no_exception
from .test_live_page import finish_gradflow, subheaders


def english_in_the_page(at) -> list[str]:
    """The English runs in the page itself (the main area: this page's own texts)."""
    return english_shown(SimpleNamespace(main=at.main, sidebar=None, dataframe=at.main.dataframe))


def no_english(at, where: str) -> None:
    no_exception(at)
    assert english_in_the_page(at) == [], where  # the Live lab's own texts
    assert english_shown(at) == [], where  # and the whole app around it (the sidebar's builder too)


@pytest.fixture(autouse=True)
def _chinese_harness():
    """AppTest formats a widget's value with its format_func in the test's thread (to find the option it
    sends back): the test speaks Chinese there too, as the page's run does."""
    with i18n.use("zh"):
        yield


def live_zh(**query):
    at = new_app(lang="zh", **query)
    at.switch_page("app_pages/live.py").run()
    no_exception(at)
    assert at.session_state["ui.lang"] == "zh"
    return at


@pytest.mark.slow
def test_the_forward_views_in_chinese():
    at = live_zh(net="resnet20")
    heads = subheaders(at)
    assert any(h.startswith("特征图：") for h in heads) and any(h.endswith("内部：x、F(x) 与 F(x) + x") for h in heads)
    assert "各层的激活" in heads
    no_english(at, "the forward views: feature maps, anatomy, activation statistics (running statistics)")
    # another layer and a block with a zero-padded shortcut (option A)
    at.selectbox(key="live.block").set_value("layer3.0").run()
    assert next(m.value for m in at.metric if m.label == "捷径") == "零填充"
    no_english(at, "a block with a padded shortcut")
    # batch statistics: the other sentences of the anatomy and the activations
    at.segmented_control(key="live.mode").set_value("train").run()
    assert at.segmented_control(key="live.mode").value == "train"  # the option's value stays English
    no_english(at, "batch statistics")
    # noise input instead of a sample image
    at.selectbox(key="live.input").set_value("noise").run()
    no_english(at, "noise input")


@pytest.mark.slow
def test_the_image_and_checkpoint_messages_in_chinese():
    at = live_zh(net="resnet20")
    at.selectbox(key="live.input").set_value("upload").run()
    no_english(at, "no image chosen yet")
    at.file_uploader(key="live.image").set_value(("notes.png", b"just some text, not an image", "image/png")).run()
    errors = [e.value for e in at.error]
    assert errors and errors[0].startswith("无法使用这张图像：'notes.png' 是一个文本文件"), errors
    no_english(at, "a text file uploaded as an image")
    at.selectbox(key="live.input").set_value("sample").run()
    at.selectbox(key="live.weights").set_value("checkpoint").run()
    no_english(at, "no checkpoint chosen yet")
    at.file_uploader(key="live.ckpt").set_value(("broken.pth", b"PK\x03\x04 not really a checkpoint",
                                                 "application/octet-stream")).run()
    errors = [e.value for e in at.error]
    assert errors and errors[0].startswith("无法使用这些权重：上传的检查点"), errors
    no_english(at, "a broken checkpoint")


@pytest.mark.slow
def test_the_gradient_flow_in_chinese():
    at = live_zh()
    at.session_state["live.tab"] = "Backward: gradient flow with and without skips"  # a guide's link: English
    at.run()
    assert "live.gf_run" in {b.key for b in at.button}  # the Backward tab opened under its Chinese label
    assert at.session_state["live.tab"] == "反向传播：有/无跳跃连接的梯度流"
    no_english(at, "the Backward tab before a run")
    at.selectbox(key="live.gf_net").set_value("resnet20").run()
    at.button(key="live.gf_run").click().run()
    no_exception(at)
    finish_gradflow(at)
    assert any(m.value.startswith("**这次运行显示了什么**：") for m in at.markdown)
    assert any(m.label.startswith("第一个卷积层的 ‖∂L/∂W‖，无跳跃连接") for m in at.metric)
    no_english(at, "a gradient flow with and without skips (batch norm)")
    # without normalisation, PyTorch-default initialisation: the plain net's gradient vanishes
    at.selectbox(key="live.gf_net").set_value("resnet56").run()
    at.segmented_control(key="live.gf_norm.resnet56").set_value("none").run()
    at.selectbox(key="live.gf_init.resnet56").set_value("pytorch_default").run()
    at.button(key="live.gf_run").click().run()
    finish_gradflow(at)
    no_english(at, "a gradient flow without normalisation")
