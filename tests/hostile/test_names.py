"""A name is data, never code: hostile names into generated Python, DOT, CSV, Markdown and file names.

Each test holds a class of hostile input (not one example): quotes, triple quotes, backslashes,
line breaks, braces, HTML-like labels, Markdown links and images, formula starts.
"""

import ast
import re
import runpy
import shutil
import string
import subprocess

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from resnet_core.structure.build import build_model
from resnet_core.structure.codegen import generate_code
from resnet_core.structure.graph import to_dot
from resnet_core.structure.plan import plan
from resnet_core.structure.spec import ArchSpec, Stage, Stem, parse_spec_text
from resnet_core.text import WORD_JOINER, csv_cell, md, plain, safe_filename

HOSTILE_NAMES = [
    '"""', "'''", 'x"""; import os; os.system("touch PWNED"); """',
    "x\\", "\\", 'a\\"b', "\\n\\x00", "line1\nline2", "tab\there", "nul\x00byte",
    "{braces}", "}{", "{{}}", "<b>bold</b>", "<", ">", "<<x>>", '"]; evil [label="x',
    "![x](http://evil.example/p.png)", "[click](http://evil.example)", "<img src=http://evil.example/x>",
    "=HYPERLINK(\"http://evil.example\")", "+1", "-2", "@SUM(A1)", "\u202eevil", "\ud800", "ünïcødé ✓ 名前",
    "%s %d {0}", "$x^2$", ":red[alarm] :material/warning:", "# heading", "*bold* _it_ `code`", "a" * 300,
]

# every character class above, for the property tests
NAME_ALPHABET = st.sampled_from(list('"\'\\\n\r\t\x00{}[]()<>!#$%&*+-=@:;,.?/|`~^_ aZ9é名\u2028\ud800'))
names = st.text(NAME_ALPHABET, max_size=24)


def small_specs():
    stage = st.builds(Stage, block=st.sampled_from(["basic", "bottleneck", "preact_basic", "preact_bottleneck"]),
                      blocks=st.integers(1, 2), width=st.sampled_from([4, 8]), stride=st.integers(1, 2),
                      groups=st.just(1), width_per_group=st.just(64))
    return st.builds(
        ArchSpec, name=names, in_channels=st.integers(1, 3), input_size=st.just((8, 8)),
        stem=st.builds(Stem, type=st.just("cifar"), channels=st.sampled_from([4, 8])),
        stages=st.lists(stage, min_size=1, max_size=2).map(tuple), shortcut=st.sampled_from(["A", "B", "C"]),
        skip=st.booleans(), norm=st.sampled_from(["batch", "none"]),
        activation=st.sampled_from(["relu", "gelu"]), num_classes=st.integers(2, 5),
        init=st.sampled_from(["kaiming_fan_out", "xavier", "pytorch_default"]))


def _exec_generated(source: str) -> dict:
    ast.parse(source)  # it parses...
    namespace: dict = {"__name__": "generated"}
    exec(compile(source, "generated.py", "exec"), namespace)  # ...and runs (as an import, not as __main__)
    return namespace


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_specs())
def test_exported_code_of_any_spec_parses_runs_and_builds_the_same_weights(spec):
    p = plan(spec)
    assume(p.ok)
    ns = _exec_generated(generate_code(spec))
    generated = ns["build_model"](seed=3).state_dict()
    ours = build_model(spec, seed=3).state_dict()
    assert list(generated) == list(ours)
    assert all(torch.equal(generated[k], ours[k]) for k in ours)
    # the name is shown, as data, in the docstring: the module's docstring starts with it
    assert ast.get_docstring(ast.parse(generate_code(spec)), clean=False).startswith(spec.name + ":")


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_name_never_runs_in_the_exported_file(name, tmp_path, monkeypatch, capsys):
    spec = ArchSpec(name=name, input_size=(8, 8), stem=Stem(type="cifar", channels=4),
                    stages=(Stage(blocks=1, width=4),), num_classes=2)
    source = generate_code(spec)
    f = tmp_path / "net.py"
    f.write_text(source, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(f), run_name="__main__")  # as a student runs it: python net.py
    assert "parameters; output (1, 2)" in capsys.readouterr().out
    assert not (tmp_path / "PWNED").exists()
    assert ast.get_docstring(ast.parse(source), clean=False).startswith(name + ":")


def _dot_is_valid(dot: str) -> tuple[bool, str]:
    out = subprocess.run(["dot", "-Tcanon"], input=dot, capture_output=True, text=True, timeout=60)
    return out.returncode == 0 and "syntax error" not in out.stderr, out.stderr


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot checks the DOT syntax")
@pytest.mark.parametrize("detail", ["stage", "block", "layer"])
def test_dot_stays_valid_with_hostile_names_and_values(detail):
    import warnings
    for name in HOSTILE_NAMES:
        # a name, and a block type that reaches the graph's error label (an unknown value is quoted back)
        for spec in (ArchSpec(name=name, input_size=(8, 8), stem=Stem(type="cifar", channels=4),
                              stages=(Stage(blocks=1, width=4),), num_classes=2),
                     ArchSpec(name=name, stages=(Stage(block=name),))):
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # the graphviz package warns on a string it cannot quote
                dot = to_dot(plan(spec), detail)
            ok, err = _dot_is_valid(dot)
            assert ok, f"{name!r}: {err[:300]}"
            assert "=<" not in dot  # never an HTML-like label (label=<...>): every label is a quoted string


def test_csv_cells_that_start_a_formula_are_text():
    for cell in ("=1+1", "+1", "-1", "@A1", "\t=1", "\r=1", '=HYPERLINK("http://evil.example")'):
        assert csv_cell(cell) == "'" + cell
    for safe in ("layer1.0.conv1", "64×56×56", "", "a=b"):
        assert csv_cell(safe) == safe
    assert csv_cell(-1) == -1 and csv_cell(2.5) == 2.5  # numbers stay numbers


def test_trace_csv_has_no_formula_cells():
    import csv
    import io

    from resnet_core.structure.report import to_csv
    from resnet_core.structure.trace import trace
    spec = ArchSpec(name="=cmd|' /C calc'!A0", stages=(Stage(block="=1+2"),))
    rows = list(csv.reader(io.StringIO(to_csv(trace(spec)))))
    assert rows and all(not c.startswith(("=", "+", "@")) and not (c.startswith("-") and not _number(c))
                        for row in rows for c in row)


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


AUTOLINK = re.compile(r"(?i)(https?:/|ftp:/|mailto:|xmpp:|www\.|[\w.+-]@[\w-])")  # what GFM turns into a link
SYNTAX = set("\\`*[]<>!&~|$:#@")  # what opens a link, image, tag, code, emphasis, LaTeX, directive or autolink


def _unescaped_syntax(text: str) -> list[str]:
    """What CommonMark (with GFM autolinks) could still read as syntax in `text`: unescaped syntax
    characters, an unescaped '_' at a word's edge, an unescaped "www.", a block start at the beginning."""
    out, i, escaped = [], 0, set()
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in string.punctuation:
            escaped.add(i + 1)
            i += 2
            continue
        if text[i] in SYNTAX:
            out.append(text[i])
        i += 1
    for m in re.finditer("_", text):
        at = m.start()
        inside = 0 < at < len(text) - 1 and text[at - 1].isascii() and text[at - 1].isalnum() \
            and text[at + 1].isascii() and text[at + 1].isalnum()
        if not inside and at not in escaped:
            out.append("_")
    for m in re.finditer(r"(?i)www\.", text):
        if m.end() - 1 not in escaped:
            out.append("www.")
    lead = re.match(r"\s*([-+=>]|\d+[.)])", text)
    if lead and (lead.end() - 1) not in escaped:
        out.append("block start " + lead.group(1))
    return out


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_markdown_escaping_leaves_no_syntax(name):
    # CommonMark: a backslash-escaped ASCII punctuation character is always literal, so with these
    # escaped no link, image, tag, emphasis, code, heading, LaTeX ($) or Streamlit directive (:) can form,
    # and no URL can be auto-linked ("http:" loses its ':', "www." its '.'); one line, no new block
    escaped = md(name)
    assert _unescaped_syntax(escaped) == []
    rendered = re.sub(r"\\([" + re.escape(string.punctuation) + "])", r"\1", escaped)
    assert not AUTOLINK.search(rendered), rendered  # Streamlit autolinks the text after escapes are read
    assert "\n" not in escaped and "\r" not in escaped


@given(st.text(max_size=60))
def test_markdown_escaping_keeps_the_text(text):
    escaped = md(text)
    assert _unescaped_syntax(escaped) == []
    unescaped = re.sub(r"\\([" + re.escape(string.punctuation) + "])", r"\1", escaped)
    # what a reader sees: the text itself (control characters as spaces, invisible word joiners in URLs)
    assert unescaped.replace(WORD_JOINER, "") == plain(text).replace(WORD_JOINER, "")
    assert not AUTOLINK.search(unescaped)  # GFM links the rendered text: nothing there reads as a URL


@pytest.mark.parametrize("name", HOSTILE_NAMES + ["../../etc/passwd", "..", ".bashrc", "CON", "a/b\\c"])
def test_download_file_names_are_plain(name):
    f = safe_filename(name, ".json")
    assert f.endswith(".json") and len(f) <= 90
    stem = f[: -len(".json")]
    assert stem and not stem.startswith(".") and all(c.isascii() and (c.isalnum() or c in "._-") for c in stem)


@pytest.mark.parametrize("name", ["a\nb", "nul\x00", "\ud800", "x" * 201, "rtl\u2028", "evil\u202egnp.exe", "x\u2066y"])
def test_a_loaded_name_with_control_characters_or_too_long_is_refused_by_name(name):
    import json

    from resnet_core.structure.spec_text import SpecError
    with pytest.raises(SpecError, match="name"):
        parse_spec_text(json.dumps({"name": name}))
