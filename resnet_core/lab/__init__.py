"""The lab: running a built model and looking inside it.

Forward views (`forward_record`: feature maps, a block's anatomy, per-layer statistics, logits, in one
pass), gradient flow (`gradient_flow`: ‖∂L/∂W‖ and ‖∂L/∂x‖ with the skips on and off), the probe
toolbox every pass uses (`probes`: hooks that are always removed, a model left as it was found, the
checks made before a pass), input images (`images`) and weights (`weights`: checkpoints, ImageNet
weights). Every pass is admitted by its cost before it starts (memory booked with device.reserve, work
bounded by device.check_work) and an allocation failure ends it with one line.

Import from here: `from resnet_core.lab import gradient_flow, ProbeError`. The names load on first use
(they import torch).
"""

from __future__ import annotations

__all__ = [
    "BlockAnatomy", "CheckpointError", "FeatureMaps", "ForwardRecord", "ForwardView", "GradProgress", "GradientFlow",
    "GradVariant", "ImageInputError", "LoadReport", "ProbeError", "WeightsUnavailable", "activation_stats",
    "block_anatomy", "blocks_of", "check_gradient_flow", "compare_skips", "feature_maps", "forward_estimate",
    "forward_record", "forward_view", "gradient_estimate", "gradient_flow", "gradient_pass",
    "image_to_input", "load_checkpoint", "load_sample", "load_upload", "noise_batch", "noise_input", "preserved",
    "read_checkpoint", "seeded_batch", "top_predictions",
]

_HOME = {
    "probes": ("ProbeError", "blocks_of", "preserved"),
    "views": ("BlockAnatomy", "FeatureMaps", "ForwardRecord", "ForwardView"),
    "flow": ("GradProgress", "GradientFlow", "GradVariant"),
    "forward": ("activation_stats", "block_anatomy", "feature_maps", "forward_estimate", "forward_record",
                "forward_view"),
    "gradients": ("check_gradient_flow", "compare_skips", "gradient_estimate", "gradient_flow", "gradient_pass",
                  "seeded_batch"),
    "images": ("ImageInputError", "image_to_input", "load_sample", "load_upload", "noise_batch", "noise_input"),
    "weights": ("LoadReport", "WeightsUnavailable", "load_checkpoint", "read_checkpoint", "top_predictions"),
    "checkpoint_scan": ("CheckpointError",),
}
_WHERE = {name: module for module, names in _HOME.items() for name in names}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib
        return getattr(importlib.import_module(f"resnet_core.lab.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'resnet_core.lab' has no attribute {name!r}")
