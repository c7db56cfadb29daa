"""Why each part of the family since 2016 exists: one line a student can read in the builder (what it changes,
which paper, what it costs). The costs that are numbers are computed from a plan where they are shown
(`part_cost`), never written here."""

from __future__ import annotations

from resnet_core.i18n import N_, _
from resnet_core.structure.records import Plan
from resnet_core.structure.trace import Trace

REASONS: dict[str, str] = {
    "stem.deep": N_("ResNet-C (He et al. 2019, Bag of Tricks): three 3×3 convs (e.g. 32-32-64) replace the 7×7: "
                    "the same receptive field with more non-linearity; costs a little more compute at full resolution."),
    "stem.patchify": N_("ConvNeXt (Liu et al. 2022): a k×k conv with stride k cuts the image into non-overlapping "
                        "patches (as ViT does), then a norm; no max pool; cheaper than the 7×7 stem."),
    "stem.pool_conv": N_("ResNet-RS (Bello et al. 2021): a 3×3 stride-2 conv + norm + act replaces the max pool: "
                         "learned downsampling, at the cost of one more conv's parameters and mult-adds."),
    "shortcut.D": N_("ResNet-D (He et al. 2019): the projection shortcut first averages 2×2 and then applies its 1×1 "
                     "conv with stride 1, so it no longer skips 3 of every 4 pixels; no extra parameters, a few more "
                     "mult-adds (the 1×1 still runs on the pooled map)."),
    "stride.B": N_("ResNet-B (He et al. 2019; torchvision's v1.5): the bottleneck's stride sits on the 3×3, not the "
                   "first 1×1, so no input pixel is skipped; same parameters, more mult-adds."),
    "attention.se": N_("Squeeze-and-excitation (Hu et al. 2018): global pool → 1×1 down (channels × ratio) → ReLU → "
                       "1×1 up → sigmoid rescales each channel of F(x) before the addition; adds ~2·C²·ratio "
                       "parameters a block and almost no mult-adds."),
    "attention.eca": N_("ECA (Wang et al. 2020): the gate comes from a 1-D conv of kernel k across the pooled channels "
                        "instead of SE's two 1×1s: k parameters a block, no reduction of the channels."),
    "block.convnext": N_("ConvNeXt block (Liu et al. 2022): depthwise k×k (7×7) conv → LayerNorm → 1×1 expand ×4 → "
                         "GELU → 1×1 reduce, an inverted bottleneck with one norm and one activation; depthwise "
                         "convs make the large kernel cheap."),
    "depthwise": N_("Depthwise conv (ResNeXt taken to the limit; MobileNet): one group per channel, so the k×k conv "
                    "mixes space only and the 1×1s mix channels; k² parameters a channel instead of k²·C — a large "
                    "cut in mult-adds that ConvNeXt spends on width. Branch width = int(width · width_per_group / 64)."),
    "layer_scale": N_("Layer scale (Touvron et al. 2021, used by ConvNeXt): a learnable per-channel γ on F(x), "
                      "initialised tiny (1e-6) so each block starts near the identity; one parameter per channel."),
    "downsampling.separate": N_("ConvNeXt's separate downsampling: between stages a norm and a 2×2 stride-2 conv "
                                "shrink the map, instead of the first block's stride and projection shortcut."),
    "norm.layer": N_("LayerNorm (Ba et al. 2016; ConvNeXt): normalises over the channels at each position, "
                     "independent of the batch; same parameters as batch norm, no running statistics."),
    "norm.none": N_("No normalisation: convs get a bias; deep nets become hard to train (why batch norm exists)."),
    "activation.gelu": N_("GELU (Hendrycks & Gimpel 2016), a smooth ReLU used by Transformers and ConvNeXt."),
    "activation.silu": N_("SiLU / swish (Ramachandran et al. 2017): x·sigmoid(x), used by EfficientNet and ResNet-RS "
                          "variants."),
    "block_norms.one": N_("ConvNeXt's 'fewer norms': only one norm per block (after the depthwise conv)."),
    "block_activations.one": N_("ConvNeXt's 'fewer activations': one activation per block, between the two 1×1 layers "
                                "(none after the addition), as in a Transformer's MLP."),
}


def part_cost(with_part: Plan, without_part: Plan) -> str:
    """The cost of a part, computed: the change in parameters and mult-adds between two plans."""
    a, b = Trace(without_part), Trace(with_part)
    dp, dm = b.total_params - a.total_params, b.weight_mult_adds - a.weight_mult_adds
    return _("{dp:+,} parameters, {dm:+.3f} G mult-adds", dp=dp, dm=dm / 1e9)
