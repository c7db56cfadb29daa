"""Bounded before allocated: spec text that would expand (nesting, YAML aliases, huge numbers, many
stages) is refused from the text itself, with the limit and the value, never parsed into a bomb."""

import base64
import json
import zlib

import pytest

from resnet_core.structure.loading import load_spec
from resnet_core.structure.spec import from_url_token, parse_spec_text
from resnet_core.structure.spec_text import MAX_NUMBER_CHARS, MAX_SPEC_DEPTH, MAX_SPEC_NODES, MAX_SPEC_STAGES, SpecError

# the limits are imported from where they live (spec_text): a limit that is moved or renamed fails here at
# import, rather than the tests silently checking a copy


def refused(text: str, *words: str) -> str:
    with pytest.raises(SpecError) as e:
        parse_spec_text(text)
    message = str(e.value)
    assert "\n" not in message
    for w in words:
        assert w in message, message
    return message


@pytest.mark.parametrize("depth", [MAX_SPEC_DEPTH + 1, 5_000, 200_000])
def test_deeply_nested_json_is_refused_with_the_limit(depth):
    refused('{"name": ' + "[" * depth + "]" * depth + "}", "nests more than", str(MAX_SPEC_DEPTH))


@pytest.mark.parametrize("depth", [MAX_SPEC_DEPTH + 1, 5_000, 100_000])
def test_deeply_nested_yaml_is_refused_with_the_limit(depth):
    refused("name: " + "[" * depth + "]" * depth, "nests more than", str(MAX_SPEC_DEPTH))
    block = "".join(" " * i + "a:\n" for i in range(min(depth, 1000)))
    refused(block, "nests more than")


def test_yaml_billion_laughs_is_refused_before_expansion():
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 12):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")  # 9^12 ≈ 2.8e11 strings
    lines.append("name: *a11")
    refused("\n".join(lines), "alias")


def test_yaml_merge_keys_and_aliases_are_refused():
    refused("base: &b {block: basic, width: 16}\nstages:\n  - {<<: *b, blocks: 2}\n", "alias")
    refused("stages:\n  - &s {width: 16}\n  - *s\n", "alias", "*s")


@pytest.mark.parametrize("digits", [41, 4_301, 100_000])
def test_integers_with_thousands_of_digits_are_refused_in_json_and_yaml(digits):
    n = "9" * digits
    refused(f'{{"num_classes": {n}}}', "digits", str(MAX_NUMBER_CHARS))
    refused(f"num_classes: {n}", "characters", str(MAX_NUMBER_CHARS))
    refused(f"num_classes: 0x{'f' * digits}", "characters")  # hex is exempt from Python's str↔int limit
    refused(f"num_classes: {'1:' * (digits // 2)}1", "characters")  # YAML 1.1 base-60 integers
    refused(f'{{"bn_eps": 1{"0" * digits}.5}}', "characters")


def test_numbers_past_the_spec_range_are_refused_by_field():
    msg = refused('{"num_classes": 99999999999999999999}', "num_classes", "out of range")
    assert "9,223,372,036,854,775,807" in msg
    refused("stages:\n  - {width: 1e300}\n", "stages[0].width")  # a whole float far past any int


@pytest.mark.parametrize("text", ['{"bn_eps": NaN}', '{"bn_eps": Infinity}', '{"bn_momentum": -Infinity}',
                                  '{"bn_eps": 1e999}', "bn_eps: .nan", "bn_eps: .inf", "bn_momentum: -.inf",
                                  "num_classes: .inf"])
def test_nan_and_inf_are_refused_where_a_finite_number_is_meant(text):
    with pytest.raises(SpecError, match="finite|infinity|overflows|not a number"):
        parse_spec_text(text)


def test_too_many_stages_are_refused_before_they_are_read():
    n = MAX_SPEC_STAGES + 1
    msg = refused(json.dumps({"stages": [{}] * n}), f"{n:,}", f"{MAX_SPEC_STAGES:,}")
    assert "stages" in msg


def test_too_many_values_are_refused():
    big = json.dumps({"name": "x", "stages": [{"width": 16}] * 900, "pad": list(range(30_000))})
    refused(big, "values", f"{MAX_SPEC_NODES:,}")
    refused("pad: [" + ", ".join(["1"] * 30_000) + "]", "values")


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")


def test_a_link_token_that_inflates_past_its_bound_is_refused_unread():
    bomb = b'{"name": "' + b"a" * 50_000_000 + b'"}'  # 50 MB of JSON, a ~50 KB token... too long, so:
    token = _token(bomb)
    with pytest.raises(SpecError):
        from_url_token(token)
    small_bomb = _token(b'{"name": "' + b"a" * 5_000_000 + b'"}')  # ~5 KB token → 5 MB
    assert len(small_bomb) < 20_000
    with pytest.raises(SpecError, match="expands past"):
        from_url_token(small_bomb)


def test_a_link_token_with_deep_nesting_or_huge_numbers_is_refused_by_name():
    with pytest.raises(SpecError, match="nests more than"):
        from_url_token(_token(b'{"name": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"))
    with pytest.raises(SpecError, match="digits"):
        from_url_token(_token(b'{"num_classes": ' + b"7" * 5_000 + b"}"))
    with pytest.raises(SpecError, match="not a number|finite"):
        from_url_token(_token(b'{"bn_eps": NaN}'))


def test_load_spec_of_a_spec_file_bomb_says_why(tmp_path):
    f = tmp_path / "bomb.yaml"
    f.write_text("a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nname: *b\n")
    with pytest.raises(SpecError, match="alias"):
        load_spec(str(f))


@pytest.mark.parametrize("text", ['{"' + '\\"' * 300_000, '{' + '"\\' * 300_000, "name: " + "[a, " * 300_000])
def test_text_that_makes_a_scanner_retry_from_every_quote_is_read_once(text):
    # '"\"\"\"…' made the old string-skipping pattern retry from each escaped quote (quadratic: hours for
    # 1 MB). Run apart so that a return to that is a hang with a bound (a guard, not a speed target)
    import subprocess
    import sys
    code = ("import sys; from resnet_core.structure.spec import parse_spec_text, SpecError\n"
            "try:\n    parse_spec_text(sys.stdin.read())\nexcept SpecError as e:\n    print('refused:', e)")
    out = subprocess.run([sys.executable, "-c", code], input=text, capture_output=True, text=True, timeout=120,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert out.returncode == 0 and out.stdout.startswith("refused:"), out.stderr[-500:]
