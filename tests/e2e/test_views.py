"""What the class sees, in a real Chromium: graphs that keep every box, nothing cut at 1024×768 or 1920×1080,
navigation that keeps the place, share links that open the page they were shared from.

Screenshots of every page at both sizes are kept in artifacts/e2e/ (look at them)."""

import base64
import re
import xml.etree.ElementTree as ET

import pytest

import resnet_core as rc
from resnet_core.structure.graph import to_dot
from resnet_core.structure.plan import plan

from .conftest import CUT_CHECK, shot, wait_idle
from .test_browser import choose_preset

pytestmark = pytest.mark.e2e

SVG = "{http://www.w3.org/2000/svg}"
SHAPES = {SVG + "polygon", SVG + "ellipse", SVG + "path", SVG + "polyline"}


def dot_nodes(dot: str) -> int:
    return len(re.findall(r"(?m)^\s*n\d+ \[", dot))


def drawn_nodes(page, index: int = 0) -> list[tuple[str, bool]]:
    """(label, has a visible shape) for every node of the graph on the page: from the SVG image the server
    drew (checked to have loaded in the browser), or from the browser's own SVG (st.graphviz_chart)."""
    page.wait_for_selector('.rx-graph img, [data-testid="stGraphVizChart"] svg')
    imgs = page.locator(".rx-graph img")
    if imgs.count():
        img = imgs.nth(index)
        img.wait_for()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
        src = img.get_attribute("src")
        root = ET.fromstring(base64.b64decode(src.split(",", 1)[1]))
        out = []
        for g in root.iter(SVG + "g"):
            if g.get("class") != "node":
                continue
            label = " ".join((t.text or "") for t in g.iter(SVG + "text"))
            shapes = [e for e in g.iter() if e.tag in SHAPES and e.get("stroke") not in (None, "none", "transparent")]
            out.append((label, bool(shapes)))
        return out
    svg = page.locator('[data-testid="stGraphVizChart"] svg').nth(index)
    return page.evaluate("""svg => [...svg.querySelectorAll('g.node')].map(g => [g.textContent.trim(),
        [...g.querySelectorAll('polygon, ellipse, path, polyline')].some(e => {
            const s = getComputedStyle(e).stroke; return s && s !== 'none' && e.getBBox().width > 0; })])""",
                         svg.element_handle())


def assert_every_node_has_its_box(page, dot: str, index: int = 0) -> None:
    nodes = drawn_nodes(page, index)
    assert len(nodes) == dot_nodes(dot), (len(nodes), dot_nodes(dot))
    missing = [label for label, ok in nodes if not ok]
    assert not missing, f"nodes drawn without their shape: {missing[:5]}"


def sidebar_toggle(page, label: str) -> None:
    page.locator('[data-testid="stSidebar"]').get_by_text(label, exact=True).click()
    wait_idle(page)


def test_graph_keeps_every_box_after_a_skip_toggle_a_stage_expansion_and_a_preset_switch(page, app_url):
    page.goto(f"{app_url}/graph?net=resnet18")
    page.get_by_role("heading", name="resnet18: computation graph").wait_for()
    wait_idle(page)
    r18 = rc.get_preset("resnet18")
    assert_every_node_has_its_box(page, to_dot(plan(r18), "block"))

    sidebar_toggle(page, "Skip connections")  # off: every ⊕ goes, boxes move up into their places
    page.get_by_role("heading", name="resnet18 (edited): computation graph").wait_for()
    assert_every_node_has_its_box(page, to_dot(plan(r18.replace(skip=False, name="resnet18 (edited)")), "block"))
    shot(page, "10-graph-skips-off")
    sidebar_toggle(page, "Skip connections")
    page.get_by_role("heading", name="resnet18: computation graph").wait_for()
    assert_every_node_has_its_box(page, to_dot(plan(r18), "block"))

    choose_preset(page, "resnet152")  # a preset switch
    page.get_by_role("heading", name="resnet152: computation graph").wait_for()
    r152 = rc.get_preset("resnet152")
    assert_every_node_has_its_box(page, to_dot(plan(r152), "block"))
    page.get_by_role("combobox", name=re.compile("Show in detail")).click()  # a stage expansion
    page.get_by_role("option", name=re.compile(r"^stage 3 only")).click()
    wait_idle(page)
    assert_every_node_has_its_box(page, to_dot(plan(r152), "block", 2))
    shot(page, "11-graph-resnet152-stage3")


def test_learn_block_keeps_every_box_after_a_skip_toggle(page, app_url):
    page.goto(f"{app_url}/learn?net=resnet18")
    page.get_by_role("heading", name=re.compile("^Learn")).wait_for()
    wait_idle(page)
    from resnet_core.structure.graph import block_dot
    r18 = rc.get_preset("resnet18")
    assert_every_node_has_its_box(page, block_dot(plan(r18), "layer1.0"))
    page.locator('[data-testid="stMain"]').get_by_text("Skip connection", exact=True).click()
    wait_idle(page)
    assert_every_node_has_its_box(page, block_dot(plan(r18.replace(skip=False)), "layer1.0"))
    page.locator('[data-testid="stMain"]').get_by_text("Skip connection", exact=True).click()
    wait_idle(page)
    assert_every_node_has_its_box(page, block_dot(plan(r18), "layer1.0"))


def test_presentation_setting_makes_the_text_large(page, app_url):
    page.goto(f"{app_url}/?net=resnet18")
    page.get_by_role("heading", name="resnet18: shape trace").wait_for()
    wait_idle(page)
    text = page.locator('[data-testid="stMain"] p', has_text="Spatial size:").first  # a line of the page's text
    size = "p => parseFloat(getComputedStyle(p).fontSize)"
    before = text.evaluate(size)
    sidebar_toggle(page, "Projector mode")  # projector mode (tests/e2e/test_projector.py measures it)
    page.locator(".st-key-ui-chip button").first.wait_for()
    after = text.evaluate(size)
    assert after >= 1.25 * before and after >= 19
    # the page, without the collapsed sidebar (its controls, off the screen, lie outside its zero-width box)
    hide = "d => { document.querySelector('[data-testid=\"stSidebar\"]').style.display = d; }"
    page.evaluate(hide, "none")
    assert not page.evaluate(CUT_CHECK)
    page.evaluate(hide, "")
    shot(page, "12-presentation-trace")
    page.get_by_role("link", name="Graph").click()
    page.get_by_role("heading", name="resnet18: computation graph").wait_for()
    wait_idle(page)
    shot(page, "13-presentation-graph")


def test_learn_returns_to_the_step_after_an_exercise(page, app_url):
    page.goto(f"{app_url}/learn?net=resnet18")
    page.get_by_role("heading", name=re.compile("^Learn")).wait_for()
    wait_idle(page)
    page.get_by_role("tab", name="5 · Broken networks").click()
    wait_idle(page)
    page.get_by_role("button", name="Load into the builder").first.click()
    wait_idle(page)
    page.get_by_role("link", name="Shape trace").click()
    page.get_by_role("heading", name="exercise-1: shape trace").wait_for()
    wait_idle(page)
    page.get_by_role("link", name="Learn").click()
    page.get_by_role("heading", name=re.compile("^Learn")).wait_for()
    wait_idle(page)
    assert page.get_by_role("tab", name="5 · Broken networks").get_attribute("aria-selected") == "true"
    assert page.get_by_text("not solved yet").first.is_visible()


def test_a_share_link_opens_the_page_it_was_shared_from(page, app_url):
    page.goto(f"{app_url}/graph?net=resnet34")
    page.get_by_role("heading", name="resnet34: computation graph").wait_for()
    wait_idle(page)
    sidebar_toggle(page, "Skip connections")
    page.get_by_role("link", name="Share", exact=True).click()
    page.get_by_role("heading", name="Share & export").wait_for()
    wait_idle(page)
    link = page.locator('[data-testid="stCode"]').first.inner_text().strip()
    assert "/graph?spec=" in link
    page.goto(link)
    page.get_by_role("heading", name="resnet34 (edited): computation graph").wait_for()
