"""The Learn page's material: shortcut options, the batch-norm demo, the broken-network exercises."""

import math

import pytest

import resnet_core as rc
from resnet_core.structure.lessons import EXERCISES, batchnorm_demo, check_exercise, shortcut_options

from .torchvision_reference import torchvision_model


def test_shortcut_options_for_resnet34():
    rows = {r["option"]: r for r in shortcut_options(rc.get_preset("resnet34"))}
    ref = torchvision_model("resnet34")
    projections = sum(p.numel() for n, p in ref.named_parameters() if ".downsample." in n)
    assert rows["B"]["parameters"] == 21_797_672  # torchvision's resnet34 is option B
    assert rows["B"]["shortcut parameters"] == projections
    assert rows["A"]["parameters"] == 21_797_672 - projections and rows["A"]["shortcut parameters"] == 0
    assert rows["A"]["zero-pad shortcuts"] == 3 and rows["B"]["projections"] == 3
    assert rows["C"]["projections"] == 3 + 4 + 6 + 3
    # C adds a 1×1 conv + BN (C·C + 2C) to every identity block
    identity_blocks = {64: 3, 128: 3, 256: 5, 512: 2}
    extra = sum(n * (c * c + 2 * c) for c, n in identity_blocks.items())
    assert rows["C"]["parameters"] - rows["B"]["parameters"] == extra


def test_batchnorm_demo_matches_the_formula():
    d = batchnorm_demo(steps=20, momentum=0.1)
    assert all(abs(m) < 1e-5 for m in d.train_mean)
    assert all(abs(s - 1) < 0.01 for s in d.train_std)  # unbiased std of a normalised batch
    # channels were drawn around ±2, ±4, ±6, ±8: the running mean has covered 1 − 0.9^20 of the way from 0
    covered = 1 - (1 - 0.1) ** 20
    for i, m in enumerate(d.running_mean):
        true = (-1) ** i * 2.0 * (i + 1)
        assert m == pytest.approx(true * covered, abs=0.15 * abs(true))
    assert d.before_std[3] > 10 * d.before_std[0]
    # the same seed gives the same numbers
    assert batchnorm_demo(steps=20, momentum=0.1) == d


def test_more_momentum_converges_faster():
    slow, fast = batchnorm_demo(steps=5, momentum=0.05), batchnorm_demo(steps=5, momentum=0.5)
    err = lambda d: sum(abs(m - (-1) ** i * 2.0 * (i + 1)) for i, m in enumerate(d.running_mean))  # noqa: E731
    assert err(fast) < err(slow)
    assert math.isclose(sum(fast.eval_mean) / 4, 0, abs_tol=0.5)


FIXES = {
    "shortcut": lambda s: s.replace(shortcut="B"),
    "option-a": lambda s: s.replace(shortcut="B"),
    "groups": lambda s: s.with_stage(0, groups=2),
    "tiny-input": lambda s: s.replace(stem=s.stem.__class__(**{**s.stem.__dict__, "padding": 5})),
    "zero-width": lambda s: s.with_stage(0, width_per_group=8),
}
WRONG_FIXES = {
    "shortcut": lambda s: s.replace(skip=False),  # builds, but by removing the skips
    "option-a": lambda s: s.with_stage(2, width=32),  # builds, but by changing the widths
}


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.key)
def test_each_exercise_is_broken_then_fixable(ex):
    p = rc.plan(ex.broken)
    assert not p.ok and len(p.errors) == 1
    assert check_exercise(ex, ex.broken).startswith("it still breaks at ")
    assert check_exercise(ex, FIXES[ex.key](ex.broken)) is None
    if ex.key in WRONG_FIXES:
        wrong = WRONG_FIXES[ex.key](ex.broken)
        assert rc.plan(wrong).ok and check_exercise(ex, wrong) is not None


def test_the_resnet18_walkthrough_reads_the_staircase_off_the_trace():
    """DESIGN's walk-through: 224×224×3 → 112×112×64 → 56×56×64 → stages → 7×7×512 → 1×1×512 → 512 → FC."""
    from resnet_core.structure.lessons import resnet18_walkthrough

    walk = resnet18_walkthrough(rc.trace(rc.get_preset("resnet18").replace(num_classes=10)))
    text = "\n".join(walk.steps)
    for shape in ("3×224×224", "64×112×112", "64×56×56", "128×28×28", "256×14×14", "512×7×7", "512×1×1", "→ 512;",
                  "→ 10 class scores"):
        assert shape in text, shape
    assert walk.stem_conv == (224, 7, 3, 2, 112)  # ⌊(224 + 6 − 7) / 2⌋ + 1 = 112
    assert len(walk.steps) == 2 + 4 + 2


def test_the_walkthrough_counts_its_head_and_says_it_alone_depends_on_the_classes():
    from resnet_core.structure.lessons import resnet18_walkthrough

    for classes in (1000, 10):
        walk = resnet18_walkthrough(rc.trace(rc.get_preset("resnet18").replace(num_classes=classes)))
        head = 512 * classes + classes  # the FC's weights and biases, counted here
        assert f"= {head:,} parameters" in walk.steps[-1]
    # the only difference between the two: the published 11,689,512 less the 1,000-class head, plus the 10-class one
    assert rc.trace(rc.get_preset("resnet18").replace(num_classes=10)).total_params == 11_689_512 - 513_000 + 5_130


def test_an_impossible_size_is_said_to_be_impossible_in_plain_words():
    ex = next(e for e in EXERCISES if e.key == "tiny-input")  # 8×8 input, 11×11 stem conv, no padding
    message = rc.plan(ex.broken).errors[0].message
    assert message.startswith("an 11×11 conv (stride 1, padding 0) needs a map of at least 11×11")
    assert "this one is 8×8" in message and "-" not in message.split(":")[0]  # no negative size said as a size
