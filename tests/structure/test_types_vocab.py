"""Typed vocabularies (issue 19 item 4): each word list is one Literal type, the serialised forms did not
change, and the planner only ever writes words of its vocabularies. Also the one integer formatter."""

from __future__ import annotations

import json
import sys
from typing import get_args

import pytest
import yaml

import resnet_core as rc
from resnet_core.formatting import fmt_int
from resnet_core.structure import records, spec
from resnet_core.structure.presets import list_presets


def test_each_vocabulary_lists_its_words_in_the_order_the_menus_show():
    # written out here, not read from the code: a word added, dropped or reordered must be meant
    assert spec.BLOCK_TYPES == ("basic", "bottleneck", "preact_basic", "preact_bottleneck", "convnext")
    assert spec.STEM_TYPES == ("imagenet", "cifar", "custom", "deep", "patchify")
    assert spec.POOL_TYPES == ("max", "avg", "none", "conv")
    assert spec.SHORTCUTS == ("A", "B", "C", "D", "identity")
    assert spec.NORMS == ("batch", "layer", "none")
    assert spec.ATTENTIONS == ("none", "se", "eca")
    assert spec.DOWNSAMPLINGS == ("in_block", "separate")
    assert spec.HOW_MANY == ("every", "one")
    assert spec.ACTIVATIONS == ("relu", "leaky_relu", "gelu", "silu")
    assert spec.INITS == ("kaiming_fan_out", "kaiming_fan_in", "xavier", "pytorch_default")
    assert set(spec.SHORTCUT_HELP) == set(spec.SHORTCUTS)
    assert set(records.ACT_TYPES) == set(spec.ACTIVATIONS)
    # one definition: each tuple is its Literal's words
    for words, literal in ((spec.BLOCK_TYPES, spec.BlockType), (spec.SHORTCUTS, spec.ShortcutOption),
                           (records.LAYER_OPS, records.LayerOp), (records.LAYER_PARTS, records.LayerPart),
                           (records.BLOCK_SHORTCUTS, records.BlockShortcut),
                           (records.PROBLEM_CODES, records.ProblemCode)):
        assert words == get_args(literal)


def test_the_json_of_a_spec_is_unchanged():
    d = rc.get_preset("resnet20").to_dict()
    expected = {
        "version": 1, "name": "resnet20", "in_channels": 3, "input_size": [32, 32],
        "stem": {"type": "cifar", "channels": 16},
        "stages": [{"block": "basic", "blocks": 3, "width": w, "stride": s, "groups": 1, "width_per_group": 64,
                    "expansion": None} for w, s in ((16, 1), (32, 2), (64, 2))],
        "shortcut": "A", "skip": True, "norm": "batch", "activation": "relu", "zero_init_residual": False,
        "stride_in_1x1": False, "num_classes": 10, "init": "kaiming_fan_in", "bn_momentum": 0.1, "bn_eps": 1e-5,
    }
    assert d == expected
    assert json.loads(rc.get_preset("resnet20").to_json()) == expected
    assert yaml.safe_load(rc.get_preset("resnet20").to_yaml()) == expected  # safe_dump takes every value
    assert all(type(v) is str for v in (d["shortcut"], d["norm"], d["activation"], d["init"]))


def test_a_word_outside_a_vocabulary_still_loads_and_the_plan_locates_it():
    s = rc.load_spec('{"shortcut": "E", "stages": [{"block": "bottlenek"}]}')
    assert s.shortcut == "E"
    p = rc.plan(s)
    assert [e.code for e in p.errors] == ["unknown_value"]
    s = rc.load_spec('{"stages": [{"block": "bottlenek"}]}')
    e = rc.plan(s).errors[0]
    assert e.code == "unknown_value" and str(e.where) == "stage 1 · block type" and "bottleneck" in e.fix


@pytest.mark.parametrize("name", list_presets())
def test_the_planner_writes_only_words_of_its_vocabularies(name):
    p = rc.plan(rc.get_preset(name))
    assert {lay.op for lay in p.layers} <= set(records.LAYER_OPS)
    assert {lay.part for lay in p.layers} <= set(records.LAYER_PARTS)
    assert {b.kind for b in p.blocks} <= set(spec.BLOCK_TYPES)
    assert {b.shortcut for b in p.blocks} <= set(records.BLOCK_SHORTCUTS)


def test_every_problem_code_is_one_of_the_vocabulary():
    r18 = rc.get_preset("resnet18")
    broken = [r18.replace(shortcut="identity"), rc.get_preset("resnet20").with_stage(2, width=16),
              r18.with_stage(0, groups=3), r18.replace(input_size=(8, 8), stem=rc.Stem(type="custom", kernel=11, padding=0, pool="none")), r18.with_stage(0, width=0),
              r18.replace(norm="group"), r18.with_stage(0, blocks=10**6),
              rc.get_preset("resnext50_32x4d").with_stage(0, width=8)]
    codes = {e.code for s in broken for e in rc.plan(s).errors}
    assert codes == set(records.PROBLEM_CODES)  # each broken spec above shows one of them, all are shown


def test_fmt_int_counts_digits_of_numbers_str_refuses():
    assert fmt_int(999_999_999_999_999) == "999,999,999,999,999"
    assert fmt_int(-12_345) == "-12,345"
    assert fmt_int(10**15) == "1e+15"
    assert fmt_int(10**20, exact_digits=30) == "100,000,000,000,000,000,000"
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)  # the reference may call str() on it
    try:
        for v in (10**300, 10**400 - 1, 10**400, 7 * 10**5000, 2**20000):
            assert fmt_int(v) == f"a {len(str(v)):,}-digit number"
    finally:
        sys.set_int_max_str_digits(old)


def test_a_huge_width_is_a_located_error_not_a_crash():
    e = rc.plan(rc.get_preset("resnet18").with_stage(0, width=10**5000)).errors[0]
    assert e.code == "out_of_range" and str(e.where) == "stage 1 · width" and "5,001-digit" in e.message
