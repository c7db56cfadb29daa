"""Projector mode in a real Chromium, measured: rendered text sizes, element boxes, one-click navigation, at
1024×768 and 1920×1080, with and without `?present=1` (issue 22, item 1): nothing cut (with a stage open in the
sidebar, and Learn's step 3), nothing off the screen. At 1024×768 every page, in both modes, is also checked
by axe-core (issue 24: no serious or critical accessibility violation). The same in Chinese: test_zh.py.

Screenshots of every page in both modes at both sizes are kept in artifacts/e2e/projector-*.png."""

import re

import pytest

from .conftest import CUT_CHECK, axe_violations, shot, wait_idle

pytestmark = pytest.mark.e2e

PAGES = [("", "shape trace"), ("graph", "computation graph"), ("compare", "Compare two networks"),
         ("export", "Share & export"), ("learn", "Learn"), ("roadmap", "From ResNet to ConvNeXt"), ("live", "Live lab"),
         ("train", "Training lab"), ("why", "Why it works"), ("classroom", "Class")]
SIZES = [(1024, 768), (1920, 1080)]

# What the page looks like, measured in the browser. Sizes on the screen: a chart's text is its font size times
# the scale its SVG is drawn at (getScreenCTM: a viewBox drawn wider than it is draws its text larger).
MEASURE = """() => {
  const W = document.documentElement.clientWidth;
  const visible = e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const nav = [...document.querySelectorAll('[data-testid="stTopNavLink"]')];
  const shown = nav.filter(a => { for (let e = a; e; e = e.parentElement) {
      if (e.getAttribute('aria-hidden') === 'true' || getComputedStyle(e).opacity === '0') return false; }
    return visible(a); });
  const more = [...document.querySelectorAll('[data-testid="stTopNavSection"]')].filter(visible)
    .map(b => b.innerText.trim());
  const chartText = [...document.querySelectorAll('[data-testid="stMain"] .vega-embed svg text, '
                                                + '[data-testid="stMain"] .rx-chart svg text')]
    .filter(t => t.textContent.trim() && visible(t)).map(t => {
      const m = t.getScreenCTM(); return parseFloat(getComputedStyle(t).fontSize) * Math.hypot(m.a, m.b); });
  const cells = [...document.querySelectorAll('[data-testid="stMain"] .rx-table td')].filter(visible)
    .map(td => parseFloat(getComputedStyle(td).fontSize));
  const boxes = '[data-testid="stMain"] :is(.vega-embed, .rx-chart svg, .rx-graph, .rx-table, .rx-figures, '
              + '[data-testid="stDataFrame"], [data-testid="stImage"], [data-testid="stMetric"], '
              + '[data-testid="stHeading"], button, [data-testid="stMarkdownContainer"])';
  const outside = [...document.querySelectorAll(boxes)].filter(visible).filter(e => {
      const r = e.getBoundingClientRect(); return r.left < -1 || r.right > W + 1; })
    .map(e => (e.getAttribute('data-testid') || e.className.baseVal || e.className) + ': '
              + (e.innerText || '').slice(0, 30));
  const sidebar = document.querySelector('[data-testid="stSidebar"]');
  const sb = sidebar ? sidebar.getBoundingClientRect() : {left: 0, right: 0};
  const main = document.querySelector('[data-testid="stMainBlockContainer"]').getBoundingClientRect();
  const p = document.querySelector('[data-testid="stMain"] [data-testid="stMarkdownContainer"] p');
  return {W, pages: nav.length, shown: shown.length, more, chartText, cells,
          grids: document.querySelectorAll('[data-testid="stMain"] [data-testid="stDataFrame"]').length,
          outside, pageScroll: document.documentElement.scrollWidth - W,
          sidebarShown: Math.max(0, Math.min(sb.right, W) - Math.max(sb.left, 0)), mainWidth: main.width,
          text: p ? parseFloat(getComputedStyle(p).fontSize) : 0};
}"""


def open_page(page, app_url: str, path: str, heading: str, present: bool) -> None:
    page.goto(f"{app_url}/{path}?net=resnet18" + ("&present=1" if present else ""))
    page.get_by_role("heading", name=re.compile(re.escape(heading))).first.wait_for()
    wait_idle(page)
    if present:  # the sidebar slides shut on the first run: measure the page once it has the screen's width
        page.wait_for_function("""() => { const s = document.querySelector('[data-testid="stSidebar"]');
            return !s || s.getBoundingClientRect().right <= 0; }""")
        page.wait_for_timeout(600)


def assert_page(m: dict, where: str) -> None:
    """What holds in both modes: every page one click away in the top bar, nothing wider than the screen."""
    assert m["shown"] == m["pages"] == len(PAGES) and not m["more"], \
        f"{where}: {m['shown']} of {m['pages']} pages in the navigation, behind it: {m['more']}"
    assert not m["outside"], f"{where}: outside the screen: {m['outside'][:5]}"
    assert m["pageScroll"] <= 1, f"{where}: the page scrolls sideways by {m['pageScroll']} px"


@pytest.mark.parametrize("size", SIZES, ids=["1024x768", "1920x1080"])
def test_projector_mode_lays_every_page_out_for_the_room(browser, app_url, size):
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = context.new_page()
    page.set_default_timeout(120_000)
    seen = {}
    try:
        for path, heading in PAGES:
            open_page(page, app_url, path, heading, present=True)
            if path == "live":  # the feature maps drawn (the view runs after the controls)
                page.locator('[data-testid="stMain"] [data-testid="stImage"] img').nth(1).wait_for()
                page.wait_for_timeout(500)
            m = page.evaluate(MEASURE)
            seen[path] = m
            where = f"{path or 'trace'} at {size[0]}×{size[1]}, projector"
            shot(page, f"projector-{path or 'trace'}-{size[0]}x{size[1]}-present")
            assert_page(m, where)
            assert not (cut := page.evaluate(CUT_CHECK)), f"{where}: cut {cut}"
            if size == SIZES[0]:  # accessibility on the same page (issue 24): no serious or critical violation
                assert not (bad := axe_violations(page)), f"{where}: axe-core: {bad}"
            # the sidebar collapsed to the chip: the page has the screen's width
            assert m["sidebarShown"] == 0, f"{where}: the sidebar takes {m['sidebarShown']} px"
            assert m["mainWidth"] >= 0.9 * size[0], f"{where}: the page is {m['mainWidth']} px wide"
            chip = page.locator(".st-key-ui-chip button").first
            assert chip.is_visible() and "resnet18" in chip.inner_text() and "11.69 M" in chip.inner_text()
            assert m["text"] >= 18, f"{where}: text at {m['text']} px"
            if m["chartText"]:
                assert min(m["chartText"]) >= 16, f"{where}: chart text at {min(m['chartText']):.1f} px"
            assert m["grids"] == 0 or path in ("learn", "live", "train", "why"), f"{where}: a 13-px grid table"
            if m["cells"]:
                assert min(m["cells"]) >= 17, f"{where}: table text at {min(m['cells'])} px"
        # the pages that always show charts and tables did show them, large
        assert len(seen[""]["chartText"]) > 20 and len(seen[""]["cells"]) > 10
        assert seen["compare"]["cells"] and seen["live"]["chartText"]
        # feature maps: four tiles a row across the page, each ≥ 120 px
        page.goto(f"{app_url}/live?net=resnet18&present=1")
        page.get_by_role("heading", name="Live lab").wait_for()
        wait_idle(page)
        grid = page.locator('[data-testid="stMain"] img[alt^="Feature maps of"]')  # its text alternative names it
        grid.first.wait_for()
        width = grid.first.bounding_box()["width"]
        assert width / 4 >= 120, f"feature-map tiles {width / 4:.0f} px wide"
    finally:
        context.close()


@pytest.mark.parametrize("size", SIZES, ids=["1024x768", "1920x1080"])
def test_without_projector_mode_every_page_is_in_the_navigation_and_learns_block_is_whole(browser, app_url, size):
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        for path, heading in PAGES:
            open_page(page, app_url, path, heading, present=False)
            if path == "":  # the headline numbers, whole; then the sidebar's stage buttons: open a stage
                main = page.locator('[data-testid="stMain"]')
                for text in ("11.69 M", "31.4 MiB", "depth 18 weight layers"):
                    main.get_by_text(text).first.wait_for()
                page.locator('[data-testid="stSidebar"]').get_by_text("Stage 2 · basic × 2 · width 128 · /2").click()
                wait_idle(page)
                page.locator('[data-testid="stSidebar"]').get_by_role("button", name="Remove").first.wait_for()
                main.get_by_text("11.69 M").first.wait_for()
            m = page.evaluate(MEASURE)
            where = f"{path or 'trace'} at {size[0]}×{size[1]}"
            shot(page, f"projector-{path or 'trace'}-{size[0]}x{size[1]}-plain")
            assert_page(m, where)
            if size == SIZES[0]:  # accessibility on the same page (issue 24): no serious or critical violation
                assert not (bad := axe_violations(page)), f"{where}: axe-core: {bad}"
            assert m["sidebarShown"] > 200, f"{where}: the builder is not shown ({m['sidebarShown']} px)"
            if path == "learn":  # the residual block's diagram whole: inside its frame, nothing to scroll
                fit = page.evaluate("""() => { const f = document.querySelector('.rx-graph');
                    const i = f.querySelector('img'); const r = i.getBoundingClientRect(), fr = f.getBoundingClientRect();
                    return {inside: r.left >= fr.left - 1 && r.right <= fr.right + 1 && r.bottom <= fr.bottom + 1,
                            scrolls: f.scrollWidth > f.clientWidth + 1 || f.scrollHeight > f.clientHeight + 1,
                            width: r.width, natural: i.naturalWidth}; }""")
                assert fit["inside"] and not fit["scrolls"], f"{where}: the block diagram is cut: {fit}"
                assert fit["width"] >= 200, f"{where}: the block diagram is {fit['width']} px wide"
                page.get_by_role("tab", name="3 · ResNet-18, shape by shape").click()
                wait_idle(page)  # the tabs rerun the page on a change: measure once it is drawn (a table's toolbar
                page.wait_for_timeout(800)  # sat left of its box while the tab was still being laid out)
            assert not (cut := page.evaluate(CUT_CHECK)), f"{where}: cut {cut}"
    finally:
        context.close()


def test_the_switch_turns_projector_mode_on_and_off_and_the_link_carries_it(page, app_url):
    page.set_viewport_size({"width": 1024, "height": 768})
    page.goto(f"{app_url}/graph?net=resnet34")
    page.get_by_role("heading", name="resnet34: computation graph").wait_for()
    wait_idle(page)
    page.locator('[data-testid="stSidebar"]').get_by_text("Projector mode", exact=True).click()
    wait_idle(page)
    page.locator(".st-key-ui-chip button").first.wait_for()
    page.wait_for_timeout(800)  # the sidebar's slide
    assert "present=1" in page.url and "net=resnet34" in page.url
    m = page.evaluate(MEASURE)
    assert m["sidebarShown"] == 0 and m["shown"] == len(PAGES)
    # the chip opens the builder; the share link opens in projector mode
    page.locator(".st-key-ui-chip button").first.click()
    wait_idle(page)
    page.wait_for_timeout(800)
    assert page.evaluate(MEASURE)["sidebarShown"] > 200
    page.get_by_role("link", name="Share", exact=True).click()
    page.get_by_role("heading", name="Share & export").wait_for()
    wait_idle(page)
    link = page.locator('[data-testid="stCode"]').first.inner_text().strip()
    assert "/graph?" in link and "present=1" in link and "net=resnet34" in link
    shot(page, "projector-switch-share")
    page.get_by_role("button", name="Leave projector mode").click()
    wait_idle(page)
    page.wait_for_timeout(800)
    assert "present" not in page.url
    m = page.evaluate(MEASURE)
    assert m["sidebarShown"] > 200 and not page.locator(".st-key-ui-chip button").count()
