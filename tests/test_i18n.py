"""English and 简体中文: the catalogues are complete, every message the app shows is in them, and a page in
Chinese shows no English sentence (issue 24). The catalogues are resnet_core/locale/zh/LC_MESSAGES/*.po."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from resnet_core import i18n
from tests.i18n_check import english_in, english_shown

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import i18n as tool  # noqa: E402  (scripts/i18n.py)


@pytest.fixture(scope="module")
def cats():
    return tool.catalogues()


@pytest.fixture(scope="module")
def marked():
    return tool.messages(tool.sources())


def test_every_marked_message_has_its_translation(cats, marked):
    done = tool.translated(cats)
    missing = [f"{where[0]}: {key!r}" for key, where in marked.items() if key not in done]
    assert not missing, f"{len(missing)} messages without a Chinese translation:\n" + "\n".join(missing[:40])


def test_no_entry_is_empty_fuzzy_or_unused(cats, marked):
    bad = []
    for name, cat in cats.items():
        for m in cat:
            if not m.id:
                continue
            key = tuple(m.id[:2]) if isinstance(m.id, (tuple, list)) else m.id
            strings = m.string if isinstance(m.string, (tuple, list)) else [m.string]
            if m.fuzzy or not all(strings):
                bad.append(f"{name}.po: untranslated or fuzzy {key!r}")
            elif key not in marked:
                bad.append(f"{name}.po: no source uses {key!r}")
    assert not bad, "\n".join(bad[:40])


def test_each_message_is_in_one_catalogue(cats):
    seen: dict = {}
    twice = []
    for name, cat in cats.items():
        for m in cat:
            key = tuple(m.id[:2]) if isinstance(m.id, (tuple, list)) else m.id
            if m.id and key in seen:
                twice.append(f"{key!r} in {seen[key]}.po and {name}.po")
            seen.setdefault(key, name)
    assert not twice, "\n".join(twice[:20])


def test_translations_keep_the_fields_and_the_markup(cats):
    """A translation with another {field} would fail at .format (or drop a number); unbalanced ** or ` would
    break the Markdown."""
    bad = []
    for name, cat in cats.items():
        for m in cat:
            if not m.id or not m.string:
                continue
            ids = list(m.id) if isinstance(m.id, (tuple, list)) else [m.id]
            strings = list(m.string) if isinstance(m.string, (tuple, list)) else [m.string]
            want = set().union(*(i18n.fields_of(i) for i in ids))
            for s in strings:
                if s and i18n.fields_of(s) != want:
                    bad.append(f"{name}.po {ids[0]!r}: fields {sorted(i18n.fields_of(s))} != {sorted(want)}")
                for mark in ("**", "`", "\n\n"):
                    if s and ids[0].count(mark) != s.count(mark):
                        bad.append(f"{name}.po {ids[0][:60]!r}: {mark!r} {ids[0].count(mark)} → {s.count(mark)}")
    assert not bad, "\n".join(bad[:30])


def test_the_chinese_uses_the_textbooks_terms(cats):
    """The terms of Chinese textbooks and the seed tutorials, where the English says the concept."""
    terms = {"residual block": "残差块", "identity mapping": "恒等映射", "vanishing gradient": "梯度消失",
             "degradation problem": "退化问题", "batch norm": "批量归一化"}
    wrong = []
    for cat in cats.values():
        for m in cat:
            if not isinstance(m.id, str) or not m.string:
                continue
            for en, zh in terms.items():
                if en in m.id.lower() and zh not in m.string:
                    wrong.append(f"{m.id[:60]!r}: says {en!r} but not {zh}")
    assert not wrong, "\n".join(wrong[:20])


# ---- the app marks what it shows ----

def test_the_app_marks_every_message_it_shows():
    found = [hit for f in sorted((ROOT / "app").rglob("*.py")) for hit in tool.unmarked(f)]
    assert not found, f"{len(found)} unmarked English strings in app/:\n" + "\n".join(found[:60])


def test_the_check_finds_an_unmarked_message(tmp_path):
    bad = tmp_path / "page.py"
    bad.write_text('import streamlit as st\nst.button("Undo all edits")\nst.caption(_("Marked here"))\n'
                   'st.markdown(f"**Stages ({n})**")\n', encoding="utf-8")
    hits = tool.unmarked(bad, root=tmp_path)
    assert len(hits) == 1 and "Undo all edits" in hits[0]


# ---- the language itself ----

def test_english_by_default_and_chinese_when_asked(cats):
    some = next(m for c in cats.values() for m in c if isinstance(m.id, str) and m.id and m.string and not m.fuzzy)
    assert i18n.gettext(some.id) == some.id if not i18n.fields_of(some.id) else True
    with i18n.use("zh"):
        if not i18n.fields_of(some.id):
            assert i18n._(some.id) == some.string
        assert i18n.language() == "zh"
    assert i18n.language() == "en"
    assert i18n._("{n} layers", n=3) == "3 layers"
    assert i18n.ngettext("{n} block", "{n} blocks", 1, n=1) == "1 block"
    assert i18n.ngettext("{n} block", "{n} blocks", 2, n=2) == "2 blocks"


@pytest.mark.parametrize("header, want", [("zh-CN,zh;q=0.9,en;q=0.8", "zh"), ("en-US,en;q=0.9,zh;q=0.5", "en"),
                                          ("zh-Hant-TW", "zh"), ("fr-FR,de", "en"), (None, "en"), ("", "en")])
def test_the_browser_language(header, want):
    assert i18n.pick(header) == want


def test_the_detector_finds_english_and_spares_names():
    assert english_in("跳跃连接关闭：论文的 plain 网络 — the same layers with no shortcut")
    assert not english_in("ResNet-50 的 layer3.2 有 1,024 个通道（He et al. 2016），`torch.nn.Conv2d`")


# ---- every page, in Chinese ----

PAGES = ["trace", "graph", "compare", "export", "learn", "roadmap", "live", "train", "why", "classroom"]


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_every_page_in_chinese_shows_no_english(page, fresh_state):
    """The page as a `?lang=zh` link opens it: no run of three English words anywhere it shows (numbers, layer
    names, code and the names in tests/i18n_check.py stay)."""
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=180)
    at.query_params["lang"] = "zh"
    at.run()
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["ui.lang"] == "zh"
    found = english_shown(at)
    assert not found, f"{len(found)} English runs on {page}:\n" + "\n".join(found[:40])


def test_no_module_that_translates_reuses_the_name_underscore():
    """`for _ in ...` or `_, x = ...` in a function makes `_` local there: a later `_("...")` would call a
    number, or raise UnboundLocalError, only on the path that translates."""
    import ast
    bad = []
    for f in tool.sources():
        tree = ast.parse(f.read_text(encoding="utf-8"))
        if not any(isinstance(n, ast.ImportFrom) and n.module == "resnet_core.i18n"
                   and any(a.name == "_" for a in n.names) for n in ast.walk(tree)):
            continue
        for n in ast.walk(tree):
            if isinstance(n, ast.Name) and n.id == "_" and isinstance(n.ctx, ast.Store):
                bad.append(f"{f.relative_to(ROOT)}:{n.lineno}")
    assert not bad, "assigns to `_` where `_` translates: " + ", ".join(bad)


@pytest.mark.parametrize("value, want", [("zh", "zh"), ("zh-CN", "zh"), ("ZH-hans", "zh"), ("en", "en"),
                                         ("en-GB", "en"), ("fr", None), ("", None), (None, None),
                                         ("<script>alert(1)</script>", None), ("../../etc/passwd", None),
                                         ("zh\x00" + "x" * 100_000, "zh"), ("\u202ezh", None)])
def test_a_links_lang_value(value, want):
    from app.lang import from_link
    assert from_link(value) == want


@pytest.mark.parametrize("value", ["<b>zh</b>", "x" * 100_000, "zh;DROP TABLE", "%00", "ja"])
def test_a_hostile_lang_link_opens_the_app_in_a_language_it_has(value, fresh_state):
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=120)
    at.query_params["lang"] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["ui.lang"] in i18n.LANGUAGES


def test_where_no_language_was_set_the_apps_resolver_answers():
    """A Streamlit fragment's rerun runs in a thread where the app's first lines (which set the language) did not
    run: the session's language comes from the resolver app/lang.py installs."""
    import threading
    saved = i18n._resolver
    try:
        i18n.set_resolver(lambda: "zh")
        seen = []
        t = threading.Thread(target=lambda: seen.append(i18n.language()))  # a fresh context, as a fragment's
        t.start()
        t.join()
        assert seen == ["zh"]
        with i18n.use("en"):  # a run that set its language keeps it
            assert i18n.language() == "en"
        i18n.set_resolver(lambda: "klingon")
        assert i18n.language() == "en"
        i18n.set_resolver(lambda: 1 / 0)
        assert i18n.language() == "en"
    finally:
        i18n.set_resolver(saved)
