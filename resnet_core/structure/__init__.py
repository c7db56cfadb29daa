"""What a network IS, by arithmetic: the spec a person writes, the plan of every layer and shape worked out
from it, and what is read off the plan (the trace's counts, tables, the graph, the module, the code).

    spec (spec.py, presets.py, loading.py) → plan (plan.py, records.py, limits.py) → trace (trace.py) → report.py
                                                                       → graph.py (DOT) · build.py (torch)
                                                                       → codegen.py (Python source)

Nothing here imports torch or graphviz at import time: the names that need them (`build_model`,
`set_skip`, `BuildError`, `generate_code`, the graph functions, the Learn page's material) load on first use.
The app and the CLI import from here rather than from the leaf modules.
"""

from __future__ import annotations

import importlib
from typing import Any

from resnet_core.structure.loading import load_spec
from resnet_core.structure.plan import (
    MAX_BLOCKS,
    MAX_CHANNELS,
    MAX_SPATIAL,
    MAX_STAGES,
    inner_width,
    plan,
    planned_work,
)
from resnet_core.structure.presets import (
    DEFAULT_PRESET,
    PresetInfo,
    get_preset,
    is_preset,
    list_presets,
    matching_preset,
    preset_info,
)
from resnet_core.structure.records import (
    DETAILS,
    BlockPlan,
    BlockShortcut,
    Detail,
    Layer,
    LayerOp,
    LayerPart,
    Location,
    Plan,
    PlanProblem,
    ProblemCode,
    Shape,
    StagePlan,
    shape_str,
)
from resnet_core.structure.report import (
    compare_rows,
    compare_totals,
    depth_text,
    problem_sides,
    stage_chart_rows,
    staircase_rows,
    staircase_summary,
    table_rows,
    to_csv,
    to_table,
)
from resnet_core.structure.spec import (
    ACTIVATIONS,
    BLOCK_TYPES,
    INITS,
    NORMS,
    POOL_TYPES,
    SHORTCUT_HELP,
    SHORTCUTS,
    STEM_TYPES,
    ActivationName,
    ArchSpec,
    BlockType,
    InitName,
    NormName,
    PoolType,
    ShortcutOption,
    Stage,
    Stem,
    StemType,
    from_url_token,
    parse_spec_text,
    read_spec_file,
    spec_from_dict,
    spec_key,
    to_url_token,
)
from resnet_core.structure.spec_text import FieldProblem, SpecError, check_name
from resnet_core.structure.trace import GroupTotals, Trace, TraceRow, depth, trace

_LAZY = {  # name → leaf module; these import torch or graphviz, so they load on first use
    "BuildError": "build", "build_model": "build", "set_skip": "build", "blueprint": "build",
    "generate_code": "codegen",
    "RenderUnavailable": "graph", "block_dot": "graph", "build_graph": "graph", "dot_available": "graph",
    "render": "graph", "to_dot": "graph",
    "EXERCISES": "lessons", "check_exercise": "lessons", "resnet18_walkthrough": "lessons",
    "shortcut_options": "lessons", "batchnorm_demo": "lessons",
}

__all__ = [
    # the spec and its vocabularies
    "ArchSpec", "Stage", "Stem", "SpecError", "FieldProblem", "check_name",
    "BlockType", "StemType", "PoolType", "ShortcutOption", "NormName", "ActivationName", "InitName",
    "BLOCK_TYPES", "STEM_TYPES", "POOL_TYPES", "SHORTCUTS", "SHORTCUT_HELP", "NORMS", "ACTIVATIONS", "INITS",
    "load_spec", "parse_spec_text", "read_spec_file", "spec_from_dict", "spec_key", "to_url_token",
    "from_url_token",
    # presets
    "DEFAULT_PRESET", "PresetInfo", "get_preset", "is_preset", "list_presets", "matching_preset", "preset_info",
    # the plan, its records and its limits
    "plan", "planned_work", "inner_width", "Plan", "Layer", "BlockPlan", "StagePlan", "Location", "PlanProblem",
    "Shape", "shape_str", "LayerOp", "LayerPart", "BlockShortcut", "ProblemCode", "Detail", "DETAILS",
    "MAX_BLOCKS", "MAX_CHANNELS", "MAX_SPATIAL", "MAX_STAGES",
    # the trace and its presentation
    "trace", "Trace", "TraceRow", "GroupTotals", "depth",
    "to_table", "to_csv", "table_rows", "staircase_rows", "staircase_summary", "stage_chart_rows",
    "compare_rows", "compare_totals", "depth_text", "problem_sides",
    # loaded on first use (torch, graphviz)
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"resnet_core.structure.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'resnet_core.structure' has no attribute {name!r}")
