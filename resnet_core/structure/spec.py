"""ArchSpec: the one user-level description of a residual network.

A spec is plain, hashable data (frozen dataclasses and tuples), so it can key caches and travel
in URLs. It says *what* the network is; `plan.py` works out every layer and shape from it.

Loading is strict about *form* and lenient about *values*:
- form errors (unknown keys, wrong types, bad JSON/YAML) raise `SpecError`, each located by its
  field path ("stages[1].width") and, for unknown keys, with the closest known name;
- value errors (a width of 0, an unknown block type, shapes that cannot meet) are a normal state
  of a network being edited: the spec loads, and the plan reports them as located errors.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, TypedDict, get_args

import yaml

from resnet_core.formatting import fmt_int
from resnet_core.i18n import N_, _
from resnet_core.structure.spec_text import (
    MAX_SPEC_INT,
    MAX_SPEC_STAGES,
    FieldProblem,
    Reader,
    SpecError,
    check_name,
    describe,
    load_json,
    load_yaml,
)
from resnet_core.text import plain

SPEC_VERSION = 1

# The vocabularies, each defined once as a Literal type (what type checkers see) and read back as a tuple
# of its words (what loops, menus and checks use). A spec read from text may hold any string in these fields:
# it loads, and the plan reports a word outside the vocabulary as a located error ("did you mean …?").
BlockType = Literal["basic", "bottleneck", "preact_basic", "preact_bottleneck", "convnext"]
StemType = Literal["imagenet", "cifar", "custom", "deep", "patchify"]
PoolType = Literal["max", "avg", "none", "conv"]  # conv: ResNet-RS's 3×3 stride-2 conv + norm + act
ShortcutOption = Literal["A", "B", "C", "D", "identity"]  # He et al. 2015 §3.3, D of He et al. 2019, the bare identity
NormName = Literal["batch", "layer", "none"]
ActivationName = Literal["relu", "leaky_relu", "gelu", "silu"]
InitName = Literal["kaiming_fan_out", "kaiming_fan_in", "xavier", "pytorch_default"]
AttentionName = Literal["none", "se", "eca"]  # channel attention inside basic and bottleneck blocks
DownsamplingName = Literal["in_block", "separate"]  # where a stage changes size: its first block, or a layer
HowMany = Literal["every", "one"]  # a ConvNeXt block's norms / activations: after every conv, or just one

BLOCK_TYPES: tuple[BlockType, ...] = get_args(BlockType)
STEM_TYPES: tuple[StemType, ...] = get_args(StemType)
POOL_TYPES: tuple[PoolType, ...] = get_args(PoolType)
SHORTCUTS: tuple[ShortcutOption, ...] = get_args(ShortcutOption)
NORMS: tuple[NormName, ...] = get_args(NormName)
ACTIVATIONS: tuple[ActivationName, ...] = get_args(ActivationName)
INITS: tuple[InitName, ...] = get_args(InitName)
ATTENTIONS: tuple[AttentionName, ...] = get_args(AttentionName)
DOWNSAMPLINGS: tuple[DownsamplingName, ...] = get_args(DownsamplingName)
HOW_MANY: tuple[HowMany, ...] = get_args(HowMany)

SHORTCUT_HELP: dict[ShortcutOption, str] = {
    "A": N_("zero-padded identity: no parameters; subsample and pad channels with zeros where the shape changes"),
    "B": N_("1×1 projection (conv + norm) only where the shape changes, identity elsewhere"),
    "C": N_("1×1 projection (conv + norm) on every block"),
    "D": N_("2×2 average pool with the stride, then a 1×1 conv + norm, where the shape changes (He et al. 2019): "
         "no input pixel is skipped, 0 extra parameters over B"),
    "identity": N_("bare identity x, never padded or projected: breaks wherever the shape changes"),
}

class StemNumbers(TypedDict):
    """A stem's effective numbers (`Stem.resolved()`)."""
    channels: int
    kernel: int
    stride: int
    padding: int
    pool: PoolType
    pool_kernel: int
    pool_stride: int
    pool_padding: int


class _StemPreset(TypedDict):
    kernel: int
    stride: int
    padding: int
    pool: PoolType
    pool_kernel: int
    pool_stride: int


# Stem presets: what "imagenet" and "cifar" mean. "custom" reads the Stem fields; "deep" fixes its first
# conv (3×3 stride 2) and reads its widths and pool; "patchify" reads its kernel (the patch) alone.
_STEM_PRESETS: dict[str, _StemPreset] = {
    "imagenet": _StemPreset(kernel=7, stride=2, padding=3, pool="max", pool_kernel=3, pool_stride=2),
    "cifar": _StemPreset(kernel=3, stride=1, padding=1, pool="none", pool_kernel=3, pool_stride=2),
}
STEM_KEYS: dict[str, tuple[str, ...]] = {  # the fields each stem type reads, beyond type and channels
    "imagenet": (), "cifar": (),
    "custom": ("kernel", "stride", "padding", "pool", "pool_kernel", "pool_stride"),
    "deep": ("widths", "pool", "pool_kernel", "pool_stride"),
    "patchify": ("kernel",),
}


@dataclass(frozen=True)
class Stem:
    type: StemType = "imagenet"  # imagenet: 7×7/2 conv + 3×3/2 max-pool; cifar: 3×3/1 conv, no pool; deep: three 3×3 convs; patchify: k×k/k conv + norm; custom: the fields below
    channels: int = 64  # output channels of the stem conv (the deep stem's third conv)
    kernel: int = 7  # custom: conv kernel size; patchify: the patch side (stride = kernel)
    stride: int = 2  # custom only: conv stride
    padding: int | None = None  # custom only: conv padding (None: kernel // 2, "same" for odd kernels)
    pool: PoolType = "max"  # custom and deep: max | avg | none | conv, what follows the convs
    pool_kernel: int = 3  # custom and deep: pooling window
    pool_stride: int = 2  # custom and deep: pooling stride
    widths: tuple[int, int] = (32, 32)  # deep only: the first two 3×3 convs' widths (timm's d: 32-32, t: 24-32)

    def __post_init__(self) -> None:
        # a named stem is canonical: its numbers are the name's, so equal stems compare equal
        for key, value in _STEM_PRESETS.get(self.type, {}).items():
            object.__setattr__(self, key, value)
        if self.type == "deep":
            object.__setattr__(self, "kernel", 3)
            object.__setattr__(self, "stride", 2)
            object.__setattr__(self, "padding", 1)
        if self.type == "patchify":
            object.__setattr__(self, "stride", self.kernel)
            object.__setattr__(self, "padding", 0)
            object.__setattr__(self, "pool", "none")
        if self.type != "deep":
            object.__setattr__(self, "widths", (32, 32))
        object.__setattr__(self, "widths", tuple(self.widths))

    def resolved(self) -> StemNumbers:
        """The effective numbers: the named stem's for imagenet/cifar, the fields for custom."""
        padding = self.kernel // 2 if self.padding is None else self.padding
        return StemNumbers(channels=self.channels, kernel=self.kernel, stride=self.stride, padding=padding,
                           pool=self.pool, pool_kernel=self.pool_kernel, pool_stride=self.pool_stride,
                           pool_padding=self.pool_kernel // 2)


@dataclass(frozen=True)
class Stage:
    block: BlockType = "basic"  # basic | bottleneck | preact_basic | preact_bottleneck | convnext
    blocks: int = 2  # number of residual blocks in the stage
    width: int = 64  # "planes": the block's base width; its output is width × expansion
    stride: int = 1  # stride of the stage's first block (later blocks use 1)
    groups: int = 1  # grouped 3×3 convs (ResNeXt cardinality)
    width_per_group: int = 64  # ResNeXt/Wide bottleneck width: inner = int(width·wpg/64)·groups
    expansion: int | None = None  # output = width × expansion; None: 1 for basic, 4 for bottleneck; convnext: hidden = width × expansion (4)
    kernel: int | None = None  # the block's spatial (k×k) conv; None: 3, or 7 for convnext
    depthwise: bool = False  # the k×k conv is depthwise (one group per channel; `groups` unused), as ConvNeXt's "ResNeXt-ify" step

    @property
    def expansion_or_default(self) -> int:
        if self.expansion is not None:
            return self.expansion
        return 4 if self.block.endswith("bottleneck") or self.block == "convnext" else 1

    @property
    def kernel_or_default(self) -> int:
        if self.kernel is not None:
            return self.kernel
        return 7 if self.block == "convnext" else 3


@dataclass(frozen=True)
class ArchSpec:
    name: str = "custom"  # shown in the app and in generated code
    in_channels: int = 3  # input image channels
    input_size: tuple[int, int] = (224, 224)  # input height and width
    stem: Stem = field(default_factory=Stem)  # the layers before the first stage
    stages: tuple[Stage, ...] = ()  # the residual stages, in order (torchvision's layer1, layer2, …)
    shortcut: ShortcutOption = "B"  # A zero-pad | B project where shape changes | C project always | identity (breaks)
    skip: bool = True  # False: the paper's plain net, the same layers and no shortcut at all
    norm: NormName = "batch"  # batch | none (without norm, convs get a bias)
    activation: ActivationName = "relu"  # relu | leaky_relu | gelu | silu
    zero_init_residual: bool = False  # zero the last norm's γ (or last conv) of each residual branch
    stride_in_1x1: bool = False  # bottlenecks: stride on the first 1×1 (the paper's v1), not the 3×3 (torchvision's v1.5)
    num_classes: int = 1000  # outputs of the final fully connected layer
    init: InitName = "kaiming_fan_out"  # kaiming_fan_out (torchvision) | kaiming_fan_in | xavier | pytorch_default
    bn_momentum: float = 0.1  # batch norm running-statistics momentum
    bn_eps: float = 1e-5  # batch norm epsilon (LayerNorm uses ConvNeXt's 1e-6)
    attention: AttentionName = "none"  # none | se (Hu et al. 2018) | eca (Wang et al. 2020), in basic and bottleneck blocks
    se_ratio: float = 0.0625  # SE: the squeeze's width is channels × ratio (rounded to a multiple of 8, as timm)
    eca_kernel: int = 0  # ECA: the 1-D conv's kernel; 0 picks it from the channels (Wang et al.'s rule)
    layer_scale: float = 0.0  # convnext blocks: a learnable per-channel scale on F(x), initialised to this (0: none)
    downsampling: DownsamplingName = "in_block"  # in_block: a stage's first block strides; separate: norm + k×k/k conv between stages (ConvNeXt)
    block_norms: HowMany = "every"  # convnext blocks: a norm after every conv, or one (after the depthwise conv)
    block_activations: HowMany = "every"  # convnext blocks: an activation after every norm and the addition, or one (between the 1×1s)

    # ---- conveniences -------------------------------------------------------------------
    def with_stage(self, index: int, **changes: Any) -> ArchSpec:
        stages = list(self.stages)
        stages[index] = replace(stages[index], **changes)
        return replace(self, stages=tuple(stages))

    def replace(self, **changes: Any) -> ArchSpec:
        return replace(self, **changes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, *self.input_size)

    # ---- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return spec_to_dict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# --------------------------------------------------------------------------------------------
# dict <-> spec
# --------------------------------------------------------------------------------------------

def _stem_to_dict(stem: Stem) -> dict[str, Any]:
    out: dict[str, Any] = {"type": stem.type, "channels": stem.channels}
    for key in STEM_KEYS.get(stem.type, STEM_KEYS["custom"]):
        value = getattr(stem, key)
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def _stage_to_dict(stage: Stage) -> dict[str, Any]:
    # `kernel` and `depthwise` are written only when set, so the specs and links made before it existed stay the same
    return {f.name: getattr(stage, f.name) for f in fields(Stage)
            if not (f.name == "kernel" and stage.kernel is None) and not (f.name == "depthwise" and not stage.depthwise)}


# the fields added with the family since 2016: written only when they differ from the default, so every
# spec (and share link) made before them reads and writes exactly as it did
_NEWER_FIELDS = ("attention", "se_ratio", "eca_kernel", "layer_scale", "downsampling", "block_norms",
                 "block_activations")


def spec_to_dict(spec: ArchSpec) -> dict[str, Any]:
    return {
        "version": SPEC_VERSION,
        "name": spec.name,
        "in_channels": spec.in_channels,
        "input_size": list(spec.input_size),
        "stem": _stem_to_dict(spec.stem),
        "stages": [_stage_to_dict(s) for s in spec.stages],
        "shortcut": spec.shortcut,
        "skip": spec.skip,
        "norm": spec.norm,
        "activation": spec.activation,
        "zero_init_residual": spec.zero_init_residual,
        "stride_in_1x1": spec.stride_in_1x1,
        "num_classes": spec.num_classes,
        "init": spec.init,
        "bn_momentum": spec.bn_momentum,
        "bn_eps": spec.bn_eps,
    } | {k: getattr(spec, k) for k in _NEWER_FIELDS if getattr(spec, k) != getattr(_DEFAULT, k)}


def _read_stem(data: Any, r: Reader) -> Stem:
    if not isinstance(data, Mapping):
        r.problem("stem", _("expected a mapping, got {data}", data=describe(data)))
        return Stem()
    keys = [f.name for f in fields(Stem)]
    r.unknown_keys(data, keys, "stem")
    d = Stem()
    stem_type = r.value(data, "type", str, "stem", d.type)
    values: dict[str, Any] = {"type": stem_type, "channels": r.value(data, "channels", int, "stem", d.channels)}
    reads = STEM_KEYS.get(stem_type, STEM_KEYS["custom"])  # an unknown type: the plan names it; read the rest
    for k in keys:
        if k in ("type", "channels") or k not in data:
            continue
        if k not in reads:
            owners = [t for t, ks in STEM_KEYS.items() if k in ks]
            now = getattr(Stem(type=stem_type), k) if stem_type in STEM_KEYS else getattr(d, k)
            shown = list(now) if isinstance(now, tuple) else now
            r.problem(f"stem.{k}", _("only for stem type {owners} (the {stem_type} stem uses {shown}); set type: "
                                     "{first} to change it", owners=_(" or ").join(repr(t) for t in owners),
                                     stem_type=stem_type, shown=shown, first=owners[0]))
        elif k == "widths":
            values[k] = _read_widths(data[k], r)
        else:
            kind = str if k == "pool" else int
            values[k] = r.value(data, k, kind, "stem", getattr(d, k), optional=(k == "padding"))
    return Stem(**values)


def _read_widths(raw: Any, r: Reader) -> tuple[int, int]:
    if (isinstance(raw, (list, tuple)) and len(raw) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and abs(v) <= MAX_SPEC_INT for v in raw)):
        return (raw[0], raw[1])
    r.problem("stem.widths", _("expected two integers [first, second], got {data}", data=describe(raw)))
    return Stem().widths


def _read_stage(data: Any, i: int, r: Reader) -> Stage:
    where = f"stages[{i}]"
    if not isinstance(data, Mapping):
        r.problem(where, _("expected a mapping, got {data}", data=describe(data)))
        return Stage()
    keys = [f.name for f in fields(Stage)]
    r.unknown_keys(data, keys, where)
    d = Stage()
    return Stage(
        block=r.value(data, "block", str, where, d.block),
        blocks=r.value(data, "blocks", int, where, d.blocks),
        width=r.value(data, "width", int, where, d.width),
        stride=r.value(data, "stride", int, where, d.stride),
        groups=r.value(data, "groups", int, where, d.groups),
        width_per_group=r.value(data, "width_per_group", int, where, d.width_per_group),
        expansion=r.value(data, "expansion", int, where, d.expansion, optional=True),
        kernel=r.value(data, "kernel", int, where, d.kernel, optional=True),
        depthwise=r.value(data, "depthwise", bool, where, d.depthwise),
    )


def spec_from_dict(data: Any, source: str | None = None) -> ArchSpec:
    """Build an ArchSpec from parsed JSON/YAML, or raise SpecError naming every problem."""
    if not isinstance(data, Mapping):
        raise SpecError(_("a spec is a mapping of fields, got {data}", data=describe(data)), source)
    problems: list[FieldProblem] = []
    r = Reader(problems)
    keys = ["version"] + [f.name for f in fields(ArchSpec)]
    r.unknown_keys(data, keys, "")
    version = r.value(data, "version", int, "", SPEC_VERSION)
    if version != SPEC_VERSION:
        r.problem("version", _("this is ResNet Explorer spec version {expected}; got {version}",
                               expected=SPEC_VERSION, version=version))
    d = ArchSpec()

    size_raw = data.get("input_size", list(d.input_size))
    input_size = d.input_size
    if isinstance(size_raw, int) and not isinstance(size_raw, bool) and abs(size_raw) > MAX_SPEC_INT:
        r.problem("input_size", _("{v} is out of range; a spec's numbers lie within ±{limit:,}",
                                  v=fmt_int(size_raw, 30), limit=MAX_SPEC_INT))
    elif isinstance(size_raw, int) and not isinstance(size_raw, bool):
        input_size = (size_raw, size_raw)
    elif (isinstance(size_raw, (list, tuple)) and len(size_raw) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) for v in size_raw)):
        if any(abs(v) > MAX_SPEC_INT for v in size_raw):
            r.problem("input_size", _("a number out of range; a spec's numbers lie within ±{limit:,}",
                                      limit=MAX_SPEC_INT))
        else:
            input_size = (size_raw[0], size_raw[1])
    else:
        r.problem("input_size", _("expected an integer or [height, width], got {data}",
                                  data=describe(size_raw)))

    stages_raw = data.get("stages", [])
    stages: list[Stage] = []
    if isinstance(stages_raw, (list, tuple)) and len(stages_raw) > MAX_SPEC_STAGES:
        r.problem("stages", _("{n:,} stages; a spec lists at most {limit:,}",
                              n=len(stages_raw), limit=MAX_SPEC_STAGES))
    elif isinstance(stages_raw, (list, tuple)):
        stages = [_read_stage(s, i, r) for i, s in enumerate(stages_raw)]
    else:
        r.problem("stages", _("expected a list of stages, got {data}", data=describe(stages_raw)))

    name = r.value(data, "name", str, "", d.name)
    name_problem = check_name(name)
    if name_problem:
        r.problem("name", name_problem)
        name = d.name
    spec = ArchSpec(
        name=name,
        in_channels=r.value(data, "in_channels", int, "", d.in_channels),
        input_size=input_size,
        stem=_read_stem(data["stem"], r) if "stem" in data else d.stem,
        stages=tuple(stages),
        shortcut=r.value(data, "shortcut", str, "", d.shortcut),
        skip=r.value(data, "skip", bool, "", d.skip),
        norm=r.value(data, "norm", str, "", d.norm),
        activation=r.value(data, "activation", str, "", d.activation),
        zero_init_residual=r.value(data, "zero_init_residual", bool, "", d.zero_init_residual),
        stride_in_1x1=r.value(data, "stride_in_1x1", bool, "", d.stride_in_1x1),
        num_classes=r.value(data, "num_classes", int, "", d.num_classes),
        init=r.value(data, "init", str, "", d.init),
        bn_momentum=r.value(data, "bn_momentum", float, "", d.bn_momentum),
        bn_eps=r.value(data, "bn_eps", float, "", d.bn_eps),
        attention=r.value(data, "attention", str, "", d.attention),
        se_ratio=r.value(data, "se_ratio", float, "", d.se_ratio),
        eca_kernel=r.value(data, "eca_kernel", int, "", d.eca_kernel),
        layer_scale=r.value(data, "layer_scale", float, "", d.layer_scale),
        downsampling=r.value(data, "downsampling", str, "", d.downsampling),
        block_norms=r.value(data, "block_norms", str, "", d.block_norms),
        block_activations=r.value(data, "block_activations", str, "", d.block_activations),
    )
    if problems:
        raise SpecError(problems, source)
    return spec


_DEFAULT = ArchSpec()


# --------------------------------------------------------------------------------------------
# text, files, URLs
# --------------------------------------------------------------------------------------------

def parse_spec_text(text: str, source: str | None = None) -> ArchSpec:
    """Parse JSON or YAML text (JSON is YAML, but JSON errors read better from json)."""
    if not isinstance(text, str):
        raise SpecError(_("expected text, got {data}", data=type(text).__name__), source)
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(_("the text is {n:,} characters; a spec is at most {limit:,}",
                          n=len(text), limit=MAX_SPEC_BYTES), source)
    stripped = text.lstrip()
    if not stripped:
        raise SpecError(_("the text is empty"), source)
    data = load_json(text, source) if stripped.startswith("{") else load_yaml(text, source)
    return spec_from_dict(data, source)


MAX_SPEC_BYTES = 1_000_000


def read_spec_file(path: str | Path) -> ArchSpec:
    p = Path(path)
    shown = plain(str(p), 200)  # a path in a message: one line, bounded
    try:
        p.stat()
    except FileNotFoundError:
        raise SpecError(_("no such file: {shown}", shown=shown)) from None
    except (OSError, ValueError) as e:  # too long, a NUL byte, no permission, a loop
        reason = getattr(e, "strerror", None) or str(e)
        raise SpecError(_("cannot read {shown}: {reason}", shown=shown, reason=reason)) from None
    if not p.exists():
        raise SpecError(_("no such file: {shown}", shown=shown))
    if p.is_dir():
        raise SpecError(_("{shown} is a folder, not a spec file", shown=shown))
    if not p.is_file():  # a device, a pipe, a socket: never read something that may not end
        raise SpecError(_("{shown} is not a regular file (a device or a pipe?); give a JSON or YAML spec file",
                          shown=shown))
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_SPEC_BYTES + 1)
    except OSError as e:
        raise SpecError(_("cannot read {shown}: {reason}", shown=shown, reason=e.strerror)) from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(_("{shown} is larger than 1 MB; a spec is a small JSON/YAML file", shown=shown))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError(_("{shown} is not UTF-8 text (is it a binary file?)", shown=shown)) from None
    return parse_spec_text(text, source=shown)


def to_url_token(spec: ArchSpec) -> str:
    """A compact, URL-safe token: zlib-compressed minified JSON in base64url."""
    raw = json.dumps(spec.to_dict(), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")


def from_url_token(token: str) -> ArchSpec:
    """Inverse of to_url_token; SpecError for anything tampered or truncated."""
    if not token:
        raise SpecError(_("the link's network token is empty"))
    if len(token) > MAX_TOKEN_CHARS:
        raise SpecError(_("the link's network token is {n:,} characters; a link carries at most {limit:,}",
                          n=len(token), limit=MAX_TOKEN_CHARS))
    try:
        d = zlib.decompressobj()
        raw = d.decompress(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)), MAX_TOKEN_JSON_BYTES + 1)
        if len(raw) > MAX_TOKEN_JSON_BYTES:
            raise SpecError(_("the link's network token expands past {limit:,} bytes; a spec is far smaller",
                              limit=MAX_TOKEN_JSON_BYTES))
        text = raw.decode("utf-8")
    except SpecError:
        raise
    except Exception:  # noqa: BLE001 - any decoding failure means the same thing to the user
        raise SpecError(_("the link's network token is damaged (it does not decode to a spec)")) from None
    if not text.lstrip().startswith("{"):
        raise SpecError(_("the link's network token is damaged (it does not decode to a spec)"))
    return spec_from_dict(load_json(text, "link"), source="link")


MAX_TOKEN_JSON_BYTES = 200_000  # a link's spec, decompressed (a 64-stage spec is about 6 KB)
MAX_TOKEN_CHARS = 20_000  # a link's token, before decoding


def spec_key(spec: ArchSpec) -> str:
    """A stable text key (minified JSON) for caches and comparisons."""
    return json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"))

