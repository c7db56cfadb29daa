"""What the explorer plans at most, and the work a spec asks of the planner, counted from the spec alone.

The limits lie far beyond any real network and keep a plan quick and every count exact; a spec past one
gets a located "out_of_range" error from the planner before anything is planned. Tests and the CLI read
the limits from here.
"""

from __future__ import annotations

from resnet_core.structure.spec import ArchSpec

MAX_CHANNELS = 1 << 20  # channels (and widths, groups, expansion)
MAX_SPATIAL = 1 << 16  # input height or width, in pixels
MAX_KERNEL = 1024  # kernel, stride, padding
MAX_BLOCKS = 10_000  # residual blocks in the whole network (resnet1202 has 600)
MAX_STAGES = 64  # stages (ResNets have 3 or 4)
MAX_CLASSES = 10_000_000  # outputs of the final FC


# The most layers one block plans (a pre-activation bottleneck with a projection: 3 × (norm, act, conv),
# the projection's conv and norm, and the addition; a bottleneck: 3 convs, 3 norms, 2 activations, the
# projection's 2 layers, the addition and the activation after it).
# The family since 2016 plans more: a bottleneck with SE and a ResNet-D shortcut has 20 (its 8, SE's 6, the
# shortcut's 3, the addition and the activation); a ConvNeXt block at most 17; a separate downsampling layer 2.
LAYERS_PER_BLOCK = 22
STEM_AND_HEAD_LAYERS = 20  # a deep stem's 10 and a pool conv's 3; final norm, act, global pool, norm, flatten, fc


def planned_work(spec: ArchSpec) -> tuple[int, int]:
    """(blocks, layers) the planner would plan for `spec`, at most: counted from the spec alone, before
    anything is planned. The planner's time and memory grow with these (one record per layer)."""
    blocks = sum(max(0, s.blocks) for s in spec.stages)
    return blocks, blocks * LAYERS_PER_BLOCK + STEM_AND_HEAD_LAYERS
