"""The Learn page by keyboard alone (issue 24, part 3), in English and in 简体中文: after the page loads, only
page.keyboard (Tab, Shift+Tab, Enter, Space, the arrow keys): the top navigation to Learn, step 1's controls
(a block chosen in the list, the skip connection turned off: the drawing loses its dashed shortcut), the tabs
to step 5, and the first exercise loaded, fixed in the builder's sidebar and reported solved. At every stop of
the focus, the focused element is on screen and shows the app's focus ring (app/ui.py: 3px solid #0072B2 on
:focus-visible)."""

from __future__ import annotations

import base64
import re

import pytest

from .conftest import axe_violations, shot, wait_idle

pytestmark = pytest.mark.e2e

TEXT = {
    "en": {"learn": "Learn", "title": "Learn: how residual networks work", "tab5": "5 · Broken networks",
           "not_solved": "not solved yet", "solved": "Solved: the network builds."},
    "zh": {"learn": "学习", "title": "学习：残差网络是如何工作的", "tab5": "5 · 修复出错的网络",
           "not_solved": "还没有解决", "solved": "已解决：网络可以构建了。"},
}

# what has the focus, and whether a person can see it: on screen, not hidden, the app's ring drawn
_FOCUS = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return null;
  const cs = getComputedStyle(e), r = e.getBoundingClientRect();
  let shown = true;
  for (let a = e; a && a.nodeType === 1; a = a.parentElement) {
    const s = getComputedStyle(a);
    if (s.visibility === 'hidden' || s.display === 'none' || parseFloat(s.opacity) === 0) { shown = false; break; }
  }
  const keyed = e.closest('[class*="st-key-"]');
  return {tag: e.tagName, role: e.getAttribute('role'), label: e.getAttribute('aria-label') || '',
          text: (e.innerText || e.value || '').trim().slice(0, 60), selected: e.getAttribute('aria-selected'),
          key: keyed ? (keyed.className.match(/st-key-[\\w-]+/) || [''])[0] : '',
          focusVisible: e.matches(':focus-visible'), outlineStyle: cs.outlineStyle,
          outlineWidth: parseFloat(cs.outlineWidth), outlineColor: cs.outlineColor,
          inView: r.width > 0 && r.height > 0 && r.bottom > 0 && r.right > 0 &&
                  r.top < window.innerHeight && r.left < window.innerWidth,
          shown: shown};
}"""
RING = "rgb(0, 114, 178)"  # #0072B2


def focused(page) -> dict:
    info = page.evaluate(_FOCUS)
    if info is not None and not info["shown"]:  # a toolbar that fades in when focused: measured once it has
        page.wait_for_timeout(400)
        info = page.evaluate(_FOCUS)
    assert info is not None, "the focus is nowhere (document.body)"
    return info


def assert_visible_focus(info: dict, where: str) -> None:
    seen = (info["focusVisible"] and info["outlineStyle"] == "solid" and info["outlineWidth"] >= 2
            and info["outlineColor"] == RING and info["inView"] and info["shown"])
    assert seen, f"{where}: the focused element shows no visible focus ring: {info}"


def press(page, key: str, where: str, rerun: bool = False) -> dict:
    page.keyboard.press(key)
    if rerun:
        wait_idle(page)
    info = focused(page)
    assert_visible_focus(info, f"{where} ({key})")
    return info


def tab_to(page, want, where: str, back: bool = False, limit: int = 120) -> dict:
    """Tab (Shift+Tab when `back`) until the focused element satisfies `want`, checking the ring at each stop."""
    stops = []
    for _ in range(limit):
        info = press(page, "Shift+Tab" if back else "Tab", where)
        stops.append(f"{info['tag']}[{info['role']}] {info['key']} {info['label'] or info['text']!r}")
        if want(info):
            return info
    raise AssertionError(f"{where}: not reached by keyboard in {limit} stops:\n" + "\n".join(stops[-40:]))


def drawing(page) -> str:
    """The block's drawing on step 1 (an SVG made on the server, shown as an image)."""
    src = page.locator(".st-key-learn-block_graph img, .rx-graph img").first.get_attribute("src") or ""
    m = re.search(r"base64,([A-Za-z0-9+/=]+)", src)
    assert m, "no drawing on step 1"
    return base64.b64decode(m.group(1)).decode()


def dashed(svg: str) -> bool:
    return any("stroke-dasharray" in g for g in re.findall(r'<g id="edge\d+" class="edge">(.*?)</g>', svg, re.S))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_learn_step_1_and_an_exercise_by_keyboard_alone(page, app_url, lang):
    t = TEXT[lang]
    page.goto(f"{app_url}/?lang={lang}&net=resnet18")
    page.wait_for_selector("h1")
    wait_idle(page)
    # from here on: the keyboard only

    # the top navigation to Learn
    tab_to(page, lambda f: f["tag"] == "A" and f["text"] == t["learn"], "the navigation's Learn link")
    press(page, "Enter", "opening Learn", rerun=True)
    page.wait_for_selector(f"h1:has-text('{t['title']}')")
    wait_idle(page)

    # step 1: choose the 1×1 projection block in the list, then turn the skip connection off
    tab_to(page, lambda f: f["key"] == "st-key-learn-block" and f["role"] == "combobox", "step 1's block list")
    before = drawing(page)
    assert dashed(before)
    press(page, "ArrowDown", "opening the block list on the next block")
    chosen = press(page, "Enter", "choosing it", rerun=True)
    assert "layer2.0" in chosen["text"], chosen  # the list (still focused) shows the chosen block
    page.get_by_test_id("stAlert").filter(has_text="layer2.0").first.wait_for()  # and the step describes it
    with_skip = drawing(page)
    assert with_skip != before and dashed(with_skip)
    tab_to(page, lambda f: f["key"] == "st-key-learn-skip" and f["role"] == "switch", "step 1's skip switch")
    press(page, "Space", "turning the skip connection off", rerun=True)
    assert not dashed(drawing(page)), "the plain block still has its dashed shortcut"
    shot(page, f"keyboard-learn-step1-{lang}")

    # the tabs: the arrow keys to step 5
    tab_to(page, lambda f: f["role"] == "tab", "the steps' tabs", back=True)
    # one step at a time, each tab's rerun finished before the next key. On a loaded server the page's rerun
    # can drop the focus to the page itself (Streamlit redraws the tabs): then, as a keyboard user would, Tab
    # back to the tabs and go on
    tab5 = page.get_by_role("tab", name=t["tab5"])
    for _ in range(12):
        if tab5.get_attribute("aria-selected") == "true":
            break
        page.keyboard.press("ArrowRight")
        wait_idle(page)
        if page.evaluate(_FOCUS) is None:
            tab_to(page, lambda f: f["role"] == "tab", "the steps' tabs again, after a rerun dropped the focus")
            continue
        info = focused(page)
        assert_visible_focus(info, "the next step (ArrowRight)")
        if info["role"] == "tab" and info["text"] == t["tab5"] and info["selected"] != "true":
            press(page, "Enter", "opening step 5", rerun=True)
    assert tab5.get_attribute("aria-selected") == "true"

    # the first exercise: load it, fix it in the sidebar (shortcut option B), see it solved
    tab_to(page, lambda f: f["key"] == "st-key-learn-ex-shortcut" and f["tag"] == "BUTTON", "Load into the builder")
    press(page, "Enter", "loading the exercise", rerun=True)
    page.wait_for_selector(f"[data-testid='stAlert']:has-text('{t['not_solved']}')")
    option = tab_to(page, lambda f: f["key"] == "st-key-net-shortcut" and f["role"] == "radio",
                    "the builder's shortcut option", back=True)
    for _ in range(4):
        if option["text"] == "B":
            break
        option = press(page, "ArrowLeft" if option["text"] in ("C", "D") else "ArrowRight", "the next option")
    assert option["text"] == "B"
    press(page, "Space", "choosing option B", rerun=True)
    page.wait_for_selector(f"[data-testid='stAlert']:has-text('{t['solved']}')")
    assert not page.locator(f"[data-testid='stAlert']:has-text('{t['not_solved']}')").count()
    shot(page, f"keyboard-learn-solved-{lang}")
    # after the walk and the exercise, in this language: no serious or critical accessibility violation
    assert not (bad := axe_violations(page)), f"axe-core after the exercise ({lang}): {bad}"
