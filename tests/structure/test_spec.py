"""ArchSpec in and out: JSON, YAML, URL tokens; form errors located by field, with suggestions."""

import json

import pytest
import yaml
from hypothesis import given, settings

import resnet_core as rc
from resnet_core.structure.loading import load_spec
from resnet_core.structure.spec import SPEC_VERSION, from_url_token, parse_spec_text, spec_from_dict, to_url_token
from resnet_core.structure.spec_text import SpecError

from .test_plan import specs


@pytest.mark.parametrize("name", rc.list_presets())
def test_presets_round_trip_through_json_yaml_and_urls(name):
    spec = rc.get_preset(name)
    assert parse_spec_text(spec.to_json()) == spec
    assert parse_spec_text(spec.to_yaml()) == spec
    assert from_url_token(to_url_token(spec)) == spec
    assert json.loads(spec.to_json())["version"] == SPEC_VERSION


@settings(max_examples=100, deadline=None)
@given(specs)
def test_random_specs_round_trip(spec):
    assert spec_from_dict(json.loads(spec.to_json())) == spec
    assert spec_from_dict(yaml.safe_load(spec.to_yaml())) == spec
    assert from_url_token(to_url_token(spec)) == spec


def problems(text_or_dict):
    with pytest.raises(SpecError) as info:
        if isinstance(text_or_dict, str):
            parse_spec_text(text_or_dict)
        else:
            spec_from_dict(text_or_dict)
    return [str(p) for p in info.value.problems]


def test_unknown_keys_are_rejected_by_name_with_a_suggestion():
    d = rc.get_preset("resnet18").to_dict()
    d["shortcutt"] = "B"
    d["stages"][1]["widht"] = 128
    d["stem"]["chanels"] = 64
    found = problems(d)
    assert "shortcutt: unknown key 'shortcutt'; did you mean 'shortcut'?" in found
    assert "stages[1].widht: unknown key 'widht'; did you mean 'width'?" in found
    assert "stem.chanels: unknown key 'chanels'; did you mean 'channels'?" in found


def test_wrong_types_are_located():
    d = rc.get_preset("resnet18").to_dict()
    d["stages"][0]["blocks"] = "two"
    d["skip"] = "yes"
    d["input_size"] = [224]
    d["num_classes"] = True
    found = problems(d)
    assert "stages[0].blocks: expected an integer, got 'two'" in found
    assert "skip: expected true or false, got 'yes'" in found
    assert any(p.startswith("input_size: expected an integer or [height, width]") for p in found)
    assert "num_classes: expected an integer, got true" in found


def test_named_stem_rejects_custom_fields():
    d = rc.get_preset("resnet18").to_dict()
    d["stem"]["kernel"] = 5
    (p,) = problems(d)
    assert p.startswith("stem.kernel: only for stem type 'custom'")


def test_bad_text():
    assert problems("{not json")[0].startswith("not valid JSON")
    assert problems("stages: [\n")[0].startswith("not valid YAML")
    assert problems("- 1\n- 2\n")[0].startswith("a spec is a mapping")
    assert problems("")[0] == "the text is empty"
    d = rc.get_preset("resnet18").to_dict()
    d["version"] = 99
    assert any("version" in p for p in problems(d))


def test_minimal_spec_fills_defaults():
    spec = parse_spec_text("name: tiny\ninput_size: 32\nstages:\n  - {width: 16}\n")
    assert spec.input_size == (32, 32)
    assert spec.stages[0].blocks == 2 and spec.stages[0].block == "basic"
    assert rc.plan(spec).ok


def test_load_spec_accepts_presets_files_text_and_dicts(tmp_path):
    spec = rc.get_preset("resnet34")
    assert load_spec("resnet34") == spec
    f = tmp_path / "net.yaml"
    f.write_text(spec.to_yaml())
    assert load_spec(str(f)) == spec
    assert load_spec(f) == spec
    assert load_spec(spec.to_json()) == spec
    assert load_spec(spec.to_dict()) == spec
    with pytest.raises(SpecError, match="no such file"):
        load_spec(str(tmp_path / "missing.json"))
    with pytest.raises(SpecError, match="neither a preset nor a file.*resnet34"):
        load_spec("resnet43")
    binary = tmp_path / "x.json"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec(str(binary))
    with pytest.raises(SpecError, match="folder"):
        load_spec(tmp_path)


@pytest.mark.parametrize("token", ["", "abc", "!!!!", "eJwLz0ssyUxRSEksSQQAHxAEhg", "x" * 30_000])
def test_tampered_url_tokens(token):
    with pytest.raises(SpecError):
        from_url_token(token)


def test_url_token_with_a_valid_payload_but_bad_fields_is_located():
    import base64
    import zlib
    raw = json.dumps({"stages": [{"widht": 3}]}).encode()
    token = base64.urlsafe_b64encode(zlib.compress(raw)).decode().rstrip("=")
    with pytest.raises(SpecError, match=r"stages\[0\]\.widht"):
        from_url_token(token)


def test_files_that_never_end_or_are_too_big_are_refused_unread(tmp_path):
    with pytest.raises(SpecError, match="not a regular file"):
        load_spec("/dev/zero")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * 1_000_001)
    with pytest.raises(SpecError, match="larger than 1 MB"):
        load_spec(str(big))
