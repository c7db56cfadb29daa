"""End to end in headless Chromium: the trace, a preset switch, the graph, a broken network, a link."""

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
    svg = page.locator('[data-testid="stGraphVizChart"] svg')
    svg.wait_for()
    assert svg.locator("g.node").count() >= 20
    # the dashed skip edges are drawn
    assert svg.locator('g.edge path[stroke-dasharray]').count() >= 8
    shot(page, "03-graph-resnet18")


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
    assert main.locator('[data-testid="stImage"] img').count() >= 5  # input, feature maps, block anatomy
    assert "‖F(x)‖ / ‖x‖" in main.inner_text()
    shot(page, "05-live-forward")

    page.get_by_role("tab", name="Backward: gradient flow with and without skips").click()
    page.get_by_role("radiogroup", name="Batch norm", exact=True).get_by_text("off", exact=True).click()
    wait_idle(page)
    page.get_by_role("button", name="Run forward + backward, with and without skips").click()
    wait_idle(page)
    panel = page.get_by_role("tabpanel", name="Backward: gradient flow with and without skips")
    page.get_by_text("First conv ‖∂L/∂W‖, without skips").wait_for()
    charts = panel.locator('[data-testid="stVegaLiteChart"]')
    assert charts.count() == 2
    assert charts.first.locator("canvas, svg").count() >= 1
    shot(page, "06-live-gradient-flow")
