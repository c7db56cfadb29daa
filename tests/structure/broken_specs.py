"""A corpus of broken networks and broken spec texts: every kind of located error the planner reports and a
spread of the spec reader's field problems, each under a stable id.

Shared by the message tests (test_messages_zh.py) and by the script that wrote their English reference,
`messages_en.json`, from the code as it was before the messages were marked for translation:

    .venv/bin/python tests/structure/broken_specs.py > tests/structure/messages_en.json

(run with the library of that commit first on the path), so the English of today is compared with the
English of before, not with itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import resnet_core as rc
from resnet_core.structure.spec import ArchSpec, Stage, Stem


def _r18() -> ArchSpec:
    return rc.get_preset("resnet18")


def _stages(spec: ArchSpec, **changes: object) -> ArchSpec:
    return spec.replace(stages=tuple(replace(s, **changes) for s in spec.stages))


_TINY_STEM = Stem(type="custom", channels=8, kernel=7, stride=2, padding=0, pool="none")

# id → a function making the broken spec (functions: nothing is planned at import)
BROKEN: dict[str, Callable[[], ArchSpec]] = {
    "identity_shortcut_shape_change": lambda: _r18().replace(shortcut="identity"),
    "identity_shortcut_channels_shrink": lambda: _r18().replace(shortcut="identity").with_stage(1, width=32),
    "identity_shortcut_same_channels": lambda: _r18().replace(shortcut="identity").with_stage(1, width=64),
    "identity_shortcut_channels_only": lambda: _r18().replace(shortcut="identity").with_stage(1, stride=1),
    "option_a_removes_channels": lambda: rc.get_preset("resnet20").with_stage(1, width=8),
    "conv_spatial_underflow": lambda: ArchSpec(input_size=(5, 5), stem=_TINY_STEM, stages=(Stage(width=8),),
                                               num_classes=3),
    "conv_spatial_underflow_8": lambda: ArchSpec(input_size=(5, 5), stem=replace(_TINY_STEM, kernel=8),
                                                 stages=(Stage(width=8),), num_classes=3),
    "groups_one_side": lambda: _r18().with_stage(0, groups=3),
    "groups_one_side_of_two": lambda: _r18().with_stage(1, width=96, groups=64),
    "stage_blocks_zero": lambda: rc.get_preset("resnet34").with_stage(2, blocks=0),
    "stage_width_negative": lambda: rc.get_preset("resnet34").with_stage(2, width=-4),
    "stage_stride_zero": lambda: rc.get_preset("resnet34").with_stage(2, stride=0),
    "stage_groups_zero": lambda: rc.get_preset("resnet34").with_stage(2, groups=0),
    "stage_expansion_zero": lambda: rc.get_preset("resnet34").with_stage(2, expansion=0),
    "unknown_block_type": lambda: rc.get_preset("resnet50").with_stage(2, block="bottlenek"),
    "unknown_block_type_far": lambda: rc.get_preset("resnet50").with_stage(2, block="zzz"),
    "input_channels_zero": lambda: _r18().replace(in_channels=0),
    "input_height_zero": lambda: _r18().replace(input_size=(0, 32)),
    "classes_zero": lambda: _r18().replace(num_classes=0),
    "unknown_shortcut": lambda: _r18().replace(shortcut="E"),
    "unknown_norm": lambda: _r18().replace(norm="group"),
    "unknown_activation": lambda: _r18().replace(activation="tanh"),
    "unknown_init": lambda: _r18().replace(init="zeros"),
    "unknown_stem_type": lambda: _r18().replace(stem=Stem(type="imagenette")),
    "unknown_stem_pool": lambda: _r18().replace(stem=replace(_TINY_STEM, pool="min")),
    "stem_kernel_zero": lambda: _r18().replace(stem=replace(_TINY_STEM, kernel=0)),
    "stem_padding_negative": lambda: _r18().replace(stem=replace(_TINY_STEM, padding=-1)),
    "bn_eps_zero": lambda: _r18().replace(bn_eps=0.0),
    "bn_momentum_two": lambda: _r18().replace(bn_momentum=2.0),
    "branch_width_zero": lambda: rc.get_preset("resnext50_32x4d").with_stage(0, width=8),
    "even_kernel": lambda: _r18().with_stage(1, kernel=4),
    "blocks_past_limit": lambda: rc.get_preset("resnet50").with_stage(0, blocks=10**6),
    "width_past_limit": lambda: rc.get_preset("resnet50").with_stage(0, width=10**400),
    "width_per_group_past_limit": lambda: rc.get_preset("resnet50").with_stage(0, width_per_group=2**40),
    "expansion_past_limit": lambda: rc.get_preset("resnet50").with_stage(0, expansion=2**21),
    "output_width_past_limit": lambda: rc.get_preset("resnet50").with_stage(0, width=2**19, expansion=4),
    "blocks_in_all_past_limit": lambda: _stages(rc.get_preset("resnet20"), blocks=4000),
    "input_past_limit": lambda: rc.get_preset("resnet20").replace(input_size=(10**6, 32)),
    "classes_past_limit": lambda: rc.get_preset("resnet20").replace(num_classes=10**12),
    "too_many_stages": lambda: rc.get_preset("resnet20").replace(stages=(Stage(width=16),) * 65),
    "unknown_attention": lambda: _r18().replace(attention="cbam"),
    "unknown_downsampling": lambda: _r18().replace(downsampling="pooled"),
    "unknown_block_norms": lambda: _r18().replace(block_norms="some"),
    "deep_stem_width_zero": lambda: _r18().replace(stem=Stem(type="deep", channels=64, widths=(0, 32))),
    "attention_on_convnext": lambda: rc.get_preset("convnext_tiny").replace(attention="se"),
    "se_ratio_out_of_range": lambda: _r18().replace(attention="se", se_ratio=1.5),
    "eca_kernel_even": lambda: _r18().replace(attention="eca", eca_kernel=4),
    "layer_scale_negative": lambda: rc.get_preset("convnext_tiny").replace(layer_scale=-1.0),
    "layer_scale_without_convnext": lambda: _r18().replace(layer_scale=1e-6),
    "block_norms_without_convnext": lambda: _r18().replace(block_norms="one"),
    "block_activations_without_convnext": lambda: _r18().replace(block_activations="one"),
}

# id → a broken spec text (JSON or YAML): the reader's located field problems and the text's bounds
BROKEN_TEXTS: dict[str, str] = {
    "unknown_key_close": '{"stages": [{"widht": 64}]}',
    "unknown_key_far": '{"zzzz": 1}',
    "wrong_type_int": '{"num_classes": "ten"}',
    "wrong_type_bool": '{"skip": 3}',
    "wrong_type_list": '{"stages": 5}',
    "wrong_type_stage": '{"stages": [5]}',
    "wrong_type_stem": '{"stem": [1]}',
    "stem_widths": '{"stem": {"type": "deep", "widths": [1]}}',
    "stem_key_of_other_type": '{"stem": {"type": "imagenet", "widths": [32, 32]}}',
    "input_size_text": '{"input_size": "big"}',
    "number_out_of_range": '{"num_classes": 1e300}',
    "version": '{"version": 9}',
    "not_a_mapping": '[1, 2]',
    "bad_json": '{"stages": [}',
    "bad_yaml": 'stages: [\n',
    "yaml_alias": 'a: &x 1\nb: *x\n',
    "empty": '   ',
    "control_name": '{"name": "a\\u0007b"}',
    "nan": '{"bn_eps": NaN}',
    "deep_json": '{"a":' * 20 + '1' + '}' * 20,
}


def english_messages() -> dict[str, dict[str, str]]:
    """id → what the library says (the problem's str, its location, message and fix; or the SpecError)."""
    from resnet_core.structure.plan import plan
    from resnet_core.structure.spec import parse_spec_text
    from resnet_core.structure.spec_text import SpecError
    out: dict[str, dict[str, str]] = {}
    for key, make in BROKEN.items():
        e = plan(make()).errors[0]
        out[key] = {"str": str(e), "where": str(e.where), "message": e.message, "fix": e.fix}
    for key, text in BROKEN_TEXTS.items():
        try:
            parse_spec_text(text)
            out["text:" + key] = {"str": "parsed"}
        except SpecError as err:
            out["text:" + key] = {"str": str(err), "lines": "\n".join(err.lines())}
    return out


if __name__ == "__main__":
    print(json.dumps(english_messages(), indent=1, ensure_ascii=False, sort_keys=True))
