"""End to end in headless Chromium: the trace, a preset switch, the graph, a broken network, a link."""

import base64
import re

import pytest

import resnet_core as rc
from resnet_core.structure.spec import to_url_token

from .conftest import shot, wait_idle

pytestmark = pytest.mark.e2e


def choose_preset(page, name: str) -> None:
    box = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first
    box.click()
    page.keyboard.type(name)
    page.get_by_role("option", name=name, exact=True).click()
    wait_idle(page)


def test_trace_shows_the_staircase_then_another_preset(page, app_url):
    page.goto(app_url)
    page.get_by_role("heading", name="resnet18: shape trace").wait_for()
    wait_idle(page)
    main = page.locator('[data-testid="stMain"]')
    text = main.inner_text()
    assert "224 → 112 → 56 → 28 → 14 → 7 → 1" in text
    assert "3 → 64 → 128 → 256 → 512 → 1000" in text
    assert "11.69 M" in text
    assert page.locator('[data-testid="stVegaLiteChart"]').count() >= 4
    shot(page, "01-trace-resnet18")

    choose_preset(page, "resnet50")
    page.get_by_role("heading", name="resnet50: shape trace").wait_for()
    assert "25.56 M" in main.inner_text()
    assert re.search(r"[?&]net=resnet50\b", page.url)
    shot(page, "02-trace-resnet50")


def test_graph_draws_an_svg_with_skip_edges(page, app_url):
    page.goto(app_url)
    wait_idle(page)
    page.get_by_role("link", name="Graph").click()
    page.get_by_role("heading", name="resnet18: computation graph").wait_for()
    img = page.locator(".rx-graph img")  # the SVG the server drew with Graphviz
    img.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
    svg = base64.b64decode(img.get_attribute("src").split(",", 1)[1]).decode()
    assert svg.count('class="node"') >= 20
    # the dashed skip edges are drawn
    edges = re.findall(r'<g id="edge\d+" class="edge">(.*?)</g>', svg, re.S)
    assert sum("stroke-dasharray" in e for e in edges) >= 8
    shot(page, "03-graph-resnet18")

    # a large graph can be zoomed and panned: ResNet-152 at block detail overflows its frame, which scrolls
    page.goto(f"{app_url}/graph?net=resnet152")
    page.get_by_role("heading", name="resnet152: computation graph").wait_for()
    wait_idle(page)
    frame = page.locator(".rx-graph")
    size = frame.evaluate("f => [f.scrollHeight, f.clientHeight, getComputedStyle(f).overflow]")
    assert size[0] > 2 * size[1] and size[2] == "auto"
    width = page.locator(".rx-graph img").evaluate("i => i.getBoundingClientRect().width")
    slider = page.get_by_role("slider", name="Zoom")
    slider.focus()
    for _ in range(3):  # 100 % → 125 → 150 → 200 %
        page.keyboard.press("ArrowRight")
    wait_idle(page)
    zoomed = page.locator(".rx-graph img").evaluate("i => i.getBoundingClientRect().width")
    assert zoomed == pytest.approx(2 * width, rel=0.05)
    frame.evaluate("f => f.scrollTo(0, f.scrollHeight / 2)")
    assert frame.evaluate("f => f.scrollTop") > 0
    shot(page, "03b-graph-resnet152-zoomed")


def test_broken_network_from_a_link_shows_the_located_error(page, app_url):
    token = to_url_token(rc.get_preset("resnet18").replace(shortcut="identity", name="broken"))
    page.goto(f"{app_url}/?spec={token}")
    page.get_by_role("heading", name="broken: shape trace").wait_for()
    wait_idle(page)
    alert = page.locator('[data-testid="stAlert"]').first
    assert "stage 2 · block 0 · shortcut" in alert.inner_text()
    assert "1×1 projection" in alert.inner_text()
    shot(page, "04-broken-link")


def test_live_lab_runs_a_pass_and_draws_the_charts(page, app_url):
    page.goto(f"{app_url}/live?net=resnet20")
    page.get_by_role("heading", name="Live lab").wait_for()
    wait_idle(page)
    main = page.locator('[data-testid="stMain"]')
    page.get_by_role("heading", name=re.compile(r"Feature maps: layer1\.0\.add")).wait_for()
    assert main.locator('[data-testid="stImage"] img').count() >= 2  # the input, the feature maps
    anatomy = main.locator(".rx-figures img")  # x, F(x), F(x)+x, the output: one element, images inline
    assert anatomy.count() >= 4
    page.wait_for_function("() => [...document.querySelectorAll('.rx-figures img')].every(i => i.complete && "
                           "i.naturalWidth > 0 && i.getBoundingClientRect().width > 100)")
    assert main.locator(".rx-figures figcaption").first.inner_text().startswith("x · 16×32×32")
    assert "‖F(x)‖ / ‖x‖" in main.inner_text()
    # the forward view's three charts are the server's SVG, drawn in the page with their tooltips kept
    assert main.locator(".rx-chart svg").count() == 3
    drawn = page.evaluate("() => [...document.querySelectorAll('.rx-chart svg')].map(s => [s.querySelectorAll("
                          "':scope > circle > title, :scope > rect > title, :scope > polygon > title').length, "
                          "s.getBoundingClientRect().width])")
    assert all(n >= 9 and w > 300 for n, w in drawn), drawn  # ResNet-20: 9 blocks, more layers; readable width
    shot(page, "05-live-forward")

    page.get_by_role("tab", name="Backward: gradient flow with and without skips").click()
    page.get_by_role("radiogroup", name="Normalisation", exact=True).get_by_text("off", exact=True).click()
    wait_idle(page)
    page.get_by_role("button", name="Run forward + backward, with and without skips").click()
    wait_idle(page)
    panel = page.get_by_role("tabpanel", name="Backward: gradient flow with and without skips")
    page.get_by_text("First conv ‖∂L/∂W‖, without skips").wait_for()
    charts = panel.locator('[data-testid="stVegaLiteChart"]')
    charts.nth(1).wait_for()  # the results arrive from a background job: both charts, once drawn
    assert charts.count() == 2
    assert charts.first.locator("canvas, svg").count() >= 1
    shot(page, "06-live-gradient-flow")
