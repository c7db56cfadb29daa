"""The app's shell and the builder in 简体中文: every section of the builder open, settings changed (the skips off, a
network that breaks, so that the located error shows), and nothing the shell draws left in English.

The library's own texts (the shortcut options' help, the preset descriptions, located errors, table cells) are
translated by the library's catalogue (domain `structure`, another helper's): the strict test below checks
every English run that is not the library's; the full check (`english_shown(at) == []`) waits for that
catalogue."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.test_app import APP, SECTIONS
from tests.i18n_check import english_in, english_shown, shown_texts

ROOT = Path(__file__).resolve().parents[2]


def _zh_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["lang"] = "zh"
    for key in SECTIONS + ["ui.exp.family"]:
        at.session_state[key + ".open"] = True
    return at.run()


@pytest.fixture(scope="module")
def edited() -> AppTest:
    """In Chinese: every builder section open, the skips off and on again, batch norm off, then the identity
    shortcut where the shape changes (the network breaks at stage 2: the located error shows)."""
    at = _zh_app()
    assert not at.exception, [e.value for e in at.exception]
    at.toggle(key="net.skip").set_value(False).run()
    at.toggle(key="net.skip").set_value(True).run()
    at.toggle(key="net.batch_norm").set_value(False).run()
    at.segmented_control(key="net.shortcut").set_value("identity").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["ui.lang"] == "zh"
    return at


@cache
def _library_words() -> str:
    """Every source text of the library (resnet_core/), where its own English sentences are written, as its words
    only: each run of punctuation, spaces or a `{field}` one space."""
    source = "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "resnet_core").rglob("*.py")))
    return " " + re.sub(r"[\W_]+", " ", re.sub(r"\{[^{}\s]{0,60}\}", " ", source)) + " "


def _in_library(words: tuple[str, ...]) -> bool:
    """Whether these words are written in the library in this order, with only punctuation, spaces or a `{field}`
    between them."""
    return " " + re.sub(r"[\W_]+", " ", " ".join(words)).strip() + " " in _library_words()


def from_library(run: str) -> bool:
    """Whether an English run is the library's text (the `structure` catalogue translates it, not the shell): the
    run is one or more pieces of two words or more, each written in the library (a sentence the library puts
    together from two strings, "… layers planned)" + ", up to the failure", is two pieces)."""
    words = tuple(run.split())
    ok = [True] + [False] * len(words)  # ok[i]: words[:i] splits into library pieces
    for end in range(2, len(words) + 1):
        ok[end] = any(ok[start] and _in_library(words[start:end]) for start in range(0, end - 1))
    return ok[len(words)]


def shell_english(at: AppTest) -> list[str]:
    """The English runs shown that the library did not write."""
    return sorted({f"{run!r} in {text[:100]!r}" for text in shown_texts(at) for run in english_in(text)
                   if not from_library(run)})


def test_the_check_tells_the_shell_from_the_library():
    assert from_library("zero-padded identity no parameters subsample and pad channels with zeros")
    assert from_library("layers planned up to the failure")  # two strings of the library's depth_text
    assert not from_library("Undo all edits")  # the builder's button: the shell's own
    assert not from_library("The trace and graph show the network")  # the shell's error panel


def test_the_edited_builder_shows_its_located_error_in_chinese(edited):
    errors = [e.value for e in edited.error]
    assert len(errors) == 1 and "网络在" in errors[0] and "修正方法" in errors[0]
    assert edited.toggle(key="net.batch_norm").label == "批量归一化"
    assert edited.button(key="ui.reset").label == "撤销全部修改"
    assert {w.key for w in edited.number_input} >= {"net.input_h", "net.s0.blocks", "net.s1.width"}


def test_the_shell_shows_no_english_in_chinese(edited):
    found = shell_english(edited)
    assert not found, f"{len(found)} English runs:\n" + "\n".join(found[:40])


def test_every_page_of_the_shell_in_chinese(edited):
    for page in ("graph", "compare", "export"):
        edited.switch_page(f"app_pages/{page}.py").run()
        assert not edited.exception, [e.value for e in edited.exception]
        found = shell_english(edited)
        assert not found, f"{len(found)} English runs on {page}:\n" + "\n".join(found[:40])
    edited.switch_page("app_pages/trace.py").run()


def test_nothing_in_english_at_all(edited):
    found = english_shown(edited)
    assert not found, f"{len(found)} English runs:\n" + "\n".join(found[:40])


def test_the_trace_csv_has_chinese_headers_in_chinese_and_the_librarys_in_english():
    import csv
    import io

    import resnet_core as rc
    from app import ui
    from resnet_core.i18n import catalogue
    from resnet_core.structure.report import CSV_COLUMNS, to_csv
    t = rc.trace(rc.get_preset("resnet18"))
    assert ui.trace_csv(t, "en") == to_csv(t)  # the command line's file, byte for byte
    zh = list(csv.reader(io.StringIO(ui.trace_csv(t, "zh"))))
    en = list(csv.reader(io.StringIO(to_csv(t))))
    assert zh[0] == [catalogue("zh")[c] for c in CSV_COLUMNS]  # every column, as the catalogue says it
    assert all(re.search(r"[\u4e00-\u9fff]", h) for h in zh[0])
    assert zh[1:] == en[1:] and len(zh) == len(t.layers) + 1  # the rows as they are


def test_the_model_page_in_chinese(monkeypatch):
    """A server started with --model: the Your model page (its trace, blocks, graph and forward views, every tab
    drawn) in Chinese."""
    fixtures = Path(__file__).parent / "fixtures"
    monkeypatch.setenv("RESNET_EXPLORER_MODEL", f"{fixtures / 'own_model.py'}:ResNetSE")
    monkeypatch.setenv("RESNET_EXPLORER_MODEL_INPUT", "3,32,32")
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["lang"] = "zh"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "你的模型：ResNetSE"
    assert "块" in at.dataframe[1].value.columns and "捷径" in at.dataframe[1].value.columns
    found = shell_english(at)
    assert not found, f"{len(found)} English runs:\n" + "\n".join(found[:40])
