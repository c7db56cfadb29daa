"""Accessibility, measured by axe-core (Deque's engine, the standard one; installed from npm by
scripts/setup.sh dev) in a real Chromium over every page, in the normal and the projector setting, after the
typical interactions: no serious or critical violation (WCAG 2.1 A/AA rules: contrast, text alternatives,
names of controls, keyboard access to scrolling frames). Issue 24, item 3 (in English; the Chinese pages
are not built yet)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import ROOT, wait_idle

pytestmark = pytest.mark.e2e

AXE = ROOT / ".cache" / "npm" / "node_modules" / "axe-core" / "axe.min.js"
PAGES = ["", "graph", "compare", "export", "learn", "roadmap", "live", "train", "why"]
RUN_AXE = """async () => {
  const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},
                                     resultTypes: ['violations']});
  return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical').map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 3).map(n => n.html.slice(0, 120) + ' :: ' + n.failureSummary.slice(0, 160))}));
}"""


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.exists():
        message = f"{AXE} is missing: `bash scripts/setup.sh dev` installs axe-core from npm"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return AXE.read_text()


def violations(page, axe_source: str) -> list[dict]:
    page.add_script_tag(content=axe_source)
    return page.evaluate(RUN_AXE)


@pytest.mark.parametrize("present", [False, True], ids=["normal", "projector"])
def test_every_page_has_no_serious_or_critical_violation(page, app_url, axe_source, present):
    found = {}
    for path in PAGES:
        page.goto(f"{app_url}/{path}?net=resnet18" + ("&present=1" if present else ""))
        page.wait_for_selector("h1")
        wait_idle(page)
        bad = violations(page, axe_source)
        if bad:
            found[path or "trace"] = bad
    assert not found, found


def test_after_the_typical_interactions_too(page, app_url, axe_source):
    """Learn's tabs opened one by one, the Graph at layer detail, a broken network's located error."""
    page.goto(f"{app_url}/learn?net=resnet18")
    page.wait_for_selector("h1")
    wait_idle(page)
    found = {}
    for tab in page.get_by_role("tab").all()[:5]:
        tab.click()
        wait_idle(page)
        bad = violations(page, axe_source)
        if bad:
            found[f"learn: {tab.inner_text()}"] = bad
    page.goto(f"{app_url}/graph?net=resnet18")
    page.wait_for_selector("h1")
    wait_idle(page)
    page.locator(".st-key-graph-controls").get_by_text("layer", exact=True).click()
    wait_idle(page)
    if bad := violations(page, axe_source):
        found["graph: layer detail"] = bad
    assert not found, found


def test_the_graph_frame_is_reachable_by_keyboard_and_says_what_it_shows(page, app_url):
    page.goto(f"{app_url}/graph?net=resnet18")
    page.wait_for_selector(".rx-graph img")
    frame = page.locator(".rx-graph").first
    assert frame.get_attribute("tabindex") == "0"
    alt = page.locator(".rx-graph img").first.get_attribute("alt")
    assert "resnet18" in alt and "8 residual additions" in alt  # ResNet-18: 8 basic blocks, one addition each


def test_axe_finds_what_it_should(page, axe_source, tmp_path):
    """The check can fail: a page with grey-on-white text and an image without alt text has both flagged."""
    bad_page = Path(tmp_path) / "bad.html"
    bad_page.write_text('<html lang="en"><body><p style="color:#aaa">faint</p><img src="x.png"></body></html>')
    page.goto(bad_page.as_uri())
    ids = {v["id"] for v in violations(page, axe_source)}
    assert {"color-contrast", "image-alt"} <= ids
