"""Presets at a small input, for the tests that compare only shapes and counts (as torchvision's own tests build
its slow models at a small input).

Parameter counts do not depend on the input size and a module's output shapes follow from the same rules at
any size, so a built-module-vs-plan check at 64×64 proves what it proves at 224×224 for a fraction of the
time. Mult-adds do depend on the input: the 224 figures are checked analytically on the plan against the
published ones (test_presets.py) and, for resnet18 and resnet50, on the built module at 224 (test_build.py).
"""

from __future__ import annotations

from resnet_core.structure.plan import plan
from resnet_core.structure.spec import ArchSpec


def small_input(spec: ArchSpec) -> ArchSpec:
    """`spec` at the smallest square input whose last feature map is still 2×2 (64 for the ImageNet
    presets, 8 for the CIFAR ones): every stride and padding rule still acts, on maps 1/12 the area or less."""
    p = plan(spec)
    side = spec.input_size[0]
    last = min(s.out_shape[1] for s in p.stages)  # the smallest map side at the spec's own input
    factor = side // last  # the network's total stride
    return spec.replace(input_size=(2 * factor, 2 * factor))
