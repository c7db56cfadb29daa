"""The library's structural texts in 简体中文: every located error of the planner (the corpus in broken_specs.py),
the spec reader's field problems, the trace's table and the graph's labels.

In Chinese a message and its fix hold no run of three English words and still name where the problem is (the
stage and block numbers, a layer's name, a spec's field path, verbatim); in English each says exactly what it
said before the messages were marked for translation (messages_en.json, written by the code of that commit).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import resnet_core as rc
from resnet_core import i18n
from resnet_core.structure.graph import to_dot
from resnet_core.structure.plan import plan
from resnet_core.structure.records import Location
from resnet_core.structure.report import (
    column_label,
    compare_rows,
    compare_totals,
    depth_text,
    part_text,
    table_rows,
    to_table,
)
from resnet_core.structure.spec import SHORTCUT_HELP, parse_spec_text
from resnet_core.structure.spec_text import SpecError
from resnet_core.structure.trace import trace
from tests.i18n_check import english_in
from tests.structure.broken_specs import BROKEN, BROKEN_TEXTS, english_messages

HERE = Path(__file__).parent
BEFORE = json.loads((HERE / "messages_en.json").read_text(encoding="utf-8"))
ROOT = HERE.parents[1]
# texts that come from a parser (json's and PyYAML's own words): shown as they are, in any language
PARSER_WORDS = {"text:bad_json", "text:bad_yaml"}


def _cjk(text: str) -> bool:
    return re.search(r"[\u4e00-\u9fff]", text) is not None


def test_the_corpus_reaches_every_kind_of_located_error():
    codes = {plan(make()).errors[0].code for make in BROKEN.values()}
    from resnet_core.structure.records import PROBLEM_CODES
    assert codes == set(PROBLEM_CODES)


def test_in_english_every_message_is_what_it_was_before():
    assert english_messages() == BEFORE


@pytest.mark.parametrize("key", sorted(BROKEN))
def test_a_located_error_in_chinese_names_its_place_and_has_no_english(key):
    e = plan(BROKEN[key]()).errors[0]
    with i18n.use("zh"):
        e = plan(BROKEN[key]()).errors[0]
        where, text = str(e.where), str(e)
    assert _cjk(e.message) and _cjk(e.fix) and _cjk(where), (e.message, e.fix, where)
    for part in (e.message, e.fix, where, text):
        assert english_in(part) == [], part
    assert text.startswith(where + "：")
    if e.where.stage is not None:
        assert f"阶段 {e.where.stage + 1}" in where
    if e.where.block is not None:
        assert f"块 {e.where.block}" in where
    for bit in (e.where.part or "").split(" · "):  # a layer's name (conv1, fc) is kept as it is
        if re.fullmatch(r"[a-z]+[0-9]+", bit):
            assert bit in where
    # and the English is back once the Chinese block ends: nothing was cached in Chinese
    assert str(plan(BROKEN[key]()).errors[0]) == BEFORE[key]["str"]


@pytest.mark.parametrize("key", sorted(BROKEN_TEXTS))
def test_a_spec_problem_in_chinese_keeps_the_field_path(key):
    with i18n.use("zh"), pytest.raises(SpecError) as info:
        parse_spec_text(BROKEN_TEXTS[key])
    text = str(info.value)
    assert _cjk(text), text
    if "text:" + key not in PARSER_WORDS:
        assert english_in(text) == [], text
    for problem in info.value.problems:
        assert problem.where in text  # "stages[0].widht", "num_classes": the spec's own words


def test_a_location_translates_its_words_and_keeps_layer_names():
    with i18n.use("zh"):
        assert str(Location(1, 0, "shortcut · 1×1 projection")) == "阶段 2 · 块 0 · 捷径 · 1×1 投影"
        assert str(Location(None, None, "stem · conv1")) == "起始层 · conv1"
        assert str(Location(2, None, "layer2.0.conv9")) == "阶段 3 · layer2.0.conv9"
        assert str(Location()) == "网络"
    assert str(Location(1, 0, "shortcut · 1×1 projection")) == "stage 2 · block 0 · shortcut · 1×1 projection"


@pytest.fixture(scope="module")
def broken_trace():
    with i18n.use("zh"):
        return trace(rc.get_preset("resnet18").replace(shortcut="identity"))


def test_the_text_table_in_chinese_has_no_english_and_aligns(broken_trace):
    with i18n.use("zh"):
        text = to_table(broken_trace)
    assert english_in(text) == [], english_in(text)
    for word in ("各阶段：", "参数总量：", "感受野：", "错误：阶段 2 · 块 0 · 捷径"):
        assert word in text
    # the totals' values start in one column, counting a Chinese character as two
    from resnet_core.formatting import _width
    totals = [line for line in text.splitlines() if line.startswith(("参数总量", "感受野", "深度"))]
    starts = {_width(re.match(r"\S+\s+", line).group(0)) for line in totals}  # type: ignore[union-attr]
    assert starts == {20}, totals


def test_table_rows_and_headers_in_chinese(broken_trace):
    with i18n.use("zh"):
        for depth in ("stage", "block", "layer"):
            rows = table_rows(broken_trace, depth)
            headers = [column_label(k) for k in rows[0]]
            assert all(_cjk(h) or h == "RF" for h in headers), headers
            for row in rows:
                for v in row.values():
                    if isinstance(v, str):
                        assert english_in(v) == [], v
        assert column_label("Output A") == "输出 A" and column_label("Δ params") == "Δ 参数量"
        assert part_text("stage 2 (layer2)") == "阶段 2（layer2）" and part_text("head") == "分类头"
        assert depth_text(broken_trace) == "7 个权重层（共规划 24 层），截至出错处"
        other = trace(rc.get_preset("resnet34"))
        for measure, *values in compare_totals(broken_trace, other):
            assert _cjk(measure) and english_in(" ".join(values)) == []
        assert [column_label(k) for k in compare_rows(broken_trace, other)[0]][:3] == ["部分", "输出 A", "输出 B"]
    # the rows' keys stay English: code reads them
    assert "Params" in table_rows(broken_trace, "stage")[0]


@pytest.mark.parametrize("preset", ["resnet18", "resnet50", "seresnet20", "convnext_tiny", "resnet20"])
@pytest.mark.parametrize("detail", ["stage", "block", "layer"])
def test_the_graph_labels_in_chinese_have_no_english(preset, detail):
    spec = rc.get_preset(preset)
    with i18n.use("zh"):
        dot = to_dot(plan(spec), detail)
    labels = [s.replace("\\n", " ") for s in re.findall(r'label="((?:[^"\\]|\\.)*)"', dot)]
    assert labels
    assert [lab for lab in labels if english_in(lab)] == []
    assert any(_cjk(lab) for lab in labels)


def test_the_graph_of_a_broken_network_says_where_it_stops_in_chinese():
    with i18n.use("zh"):
        dot = to_dot(plan(rc.get_preset("resnet18").replace(shortcut="identity")), "block")
    assert "✗ 停在 阶段 2 · 块 0 · 捷径：" in dot


def test_builder_tables_are_marked_not_translated_at_import():
    from resnet_core.structure.parts import REASONS
    from resnet_core.structure.presets import preset_info
    assert SHORTCUT_HELP["B"].startswith("1×1 projection")  # English where they are kept
    assert REASONS["norm.none"].startswith("No normalisation")
    with i18n.use("zh"):
        assert english_in(i18n._(SHORTCUT_HELP["A"])) == []
        assert english_in(i18n._(REASONS["attention.se"])) == []
        for name in ("resnet18", "plain18", "resnet56", "resnet20d", "convnext_tiny", "plain_resnet50d"):
            shown = preset_info(name).shown_summary
            assert _cjk(shown) and english_in(shown) == [], shown
    assert preset_info("resnet56").shown_summary == preset_info("resnet56").summary


def test_the_command_line_says_byte_for_byte_what_it_said_before(tmp_path):
    """The command line never sets a language: its output for broken specs (and a good trace) is the output of
    the commit before the messages were marked (cli_en.json), also in a shell whose locale is Chinese."""
    before = json.loads((HERE / "cli_en.json").read_text(encoding="utf-8"))
    (tmp_path / "broken.json").write_text(json.dumps(
        rc.get_preset("resnet18").replace(shortcut="identity").to_dict()), encoding="utf-8")
    (tmp_path / "bad.json").write_text('{"stages": [{"widht": 64}], "num_classes": "ten"}', encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LANG": "zh_CN.UTF-8", "LANGUAGE": "zh_CN"}
    for command, want in before.items():
        out = subprocess.run([sys.executable, "-m", "resnet_core", *command.split()], capture_output=True,
                             text=True, cwd=tmp_path, env=env, timeout=300)
        assert (out.returncode, out.stdout, out.stderr) == (want["rc"], want["stdout"], want["stderr"]), command


# ---- a model of your own (resnet_core/modules): the located errors' fixes, the notes and the graph ----

def _own_models():
    from torch import nn

    from tests.modules.test_own_models import Tiny, ValueDependent
    return {"unprojected_shortcut": (Tiny(project=False), (3, 16, 16)),
            "linear_size": (Tiny(fc_in=64), (3, 16, 16)),
            "conv_channels": (nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(16, 8, 3)), (3, 12, 12)),
            "norm_features": (nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(4)), (3, 12, 12)),
            "hooks": (ValueDependent(), (3, 8, 8))}


def test_an_own_models_errors_and_notes_in_chinese():
    from resnet_core.modules import inspect_module
    from resnet_core.modules.graph import module_dot
    for key, (model, shape) in _own_models().items():
        english = inspect_module(model, shape)
        with i18n.use("zh"):
            t = inspect_module(model, shape)
            dot = module_dot(t, "block")
            shown = [str(e) for e in t.errors]
        for note in t.notes:  # less torch.fx's own reason, quoted in （…）
            assert _cjk(note) and english_in(re.sub(r"（[^）\u4e00-\u9fff]*）", "", note)) == [], note
        for e, text, before in zip(t.errors, shown, english.errors, strict=True):
            assert _cjk(e.fix) and english_in(e.fix) == [], e.fix
            assert text.startswith(e.where + "（") and "修改方法：" in text, text  # the module path, verbatim
            assert str(before).startswith(f"{before.where} ({before.op}): ")  # English as it was
        if key == "unprojected_shortcut":
            assert t.errors[0].message == "两个操作数无法相加：32×8×8 与 16×16×16 不同"
        raw = [e.message for e in t.errors]  # PyTorch's own words, shown as they are in any language
        labels = [s.replace("\\n", " ") for s in re.findall(r'label="((?:[^"\\]|\\.)*)"', dot)]
        labels = [lab.replace(m, "") for lab in labels for m in raw or [""]]
        assert [lab for lab in labels if english_in(lab)] == [], key
