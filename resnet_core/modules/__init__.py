"""A model from code: any `torch.nn.Module` traced on the meta device, its residual blocks found.

A network the spec cannot spell (a timm or torchvision model, a practitioner's own code) gets the same
kind of record as a preset: rows per layer and per functional operation with shapes, parameters and
mult-adds, the residual additions grouped with their branch and shortcut, and a located error instead
of a traceback when its shapes cannot meet. Nothing is computed or allocated for real: the model is
copied to the meta device first.

    >>> from resnet_core.modules import inspect_module
    >>> t = inspect_module(my_model, (3, 224, 224))
    >>> t.total_params, t.output_shape, len(t.residual_blocks)
"""

from resnet_core.modules.records import ModuleError, ModuleRow, ModuleTrace, ModuleTraceError, ResidualAdd
from resnet_core.modules.residual import skips_off
from resnet_core.modules.trace import inspect_module

__all__ = ["ModuleError", "ModuleRow", "ModuleTrace", "ModuleTraceError", "ResidualAdd", "inspect_module", "skips_off"]
