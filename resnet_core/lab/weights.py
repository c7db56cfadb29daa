"""Weights for the live lab: torchvision-format checkpoints, optional ImageNet downloads, class names.

- `load_checkpoint(model, source)` reads a local file (path or bytes) with
  `torch.load(weights_only=True)`, so a checkpoint cannot run code. It accepts a bare state_dict or one
  wrapped as {"state_dict": ...} / {"model": ...}, strips a DataParallel "module." prefix, and compares
  the keys with the model's: missing keys, unexpected keys and shape mismatches are reported BY NAME.
  Strict (the default) loads only a perfect match and otherwise raises `CheckpointMismatch`, loading
  nothing; non-strict loads the matching tensors and reports the rest.
- `download_imagenet_weights(name)` fetches torchvision's ImageNet weights for the torchvision presets
  from download.pytorch.org into a cache (default ~/.cache/resnet_explorer/weights; torch hub's own cache
  is looked at first), with a short timeout. Offline, it raises `WeightsUnavailable` saying what failed
  and what to do instead (random initialisation, or a local copy of the file). Nothing here downloads
  unless asked.
- `imagenet_class_names()` and `top_predictions(logits, names)` for the top predictions.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import math
import os
import pickle
import re
import struct
import threading
import uuid
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence
from urllib.error import URLError
from urllib.request import Request, urlopen

import torch
from torch import nn

from resnet_core.errors import ExplorerError
from resnet_core.paths import ASSETS
from resnet_core.structure.spec import ArchSpec

CLASS_NAMES_PATH = ASSETS / "imagenet_classes.txt"

MAX_CHECKPOINT_BYTES = 2 * 1024 ** 3  # a local checkpoint larger than this is refused unread
DOWNLOAD_TIMEOUT_S = 10.0  # per network operation (connect, each read)
CACHE_ENV = "RESNET_EXPLORER_CACHE"  # overrides the cache folder

# torchvision's published ImageNet-1k weights (torchvision.models.resnet); the 8 hex digits in each file
# name are the start of the file's SHA-256, checked after every download.
TORCHVISION_WEIGHTS: dict[str, dict[str, str]] = {
    "resnet18": {"IMAGENET1K_V1": "https://download.pytorch.org/models/resnet18-f37072fd.pth"},
    "resnet34": {"IMAGENET1K_V1": "https://download.pytorch.org/models/resnet34-b627a593.pth"},
    "resnet50": {"IMAGENET1K_V1": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
                 "IMAGENET1K_V2": "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"},
    "resnet101": {"IMAGENET1K_V1": "https://download.pytorch.org/models/resnet101-63fe2227.pth",
                  "IMAGENET1K_V2": "https://download.pytorch.org/models/resnet101-cd907fc2.pth"},
    "resnet152": {"IMAGENET1K_V1": "https://download.pytorch.org/models/resnet152-394f9c45.pth",
                  "IMAGENET1K_V2": "https://download.pytorch.org/models/resnet152-f82ba261.pth"},
    "resnext50_32x4d": {"IMAGENET1K_V1": "https://download.pytorch.org/models/resnext50_32x4d-7cdf4587.pth",
                        "IMAGENET1K_V2": "https://download.pytorch.org/models/resnext50_32x4d-1a0047aa.pth"},
    "resnext101_32x8d": {"IMAGENET1K_V1": "https://download.pytorch.org/models/resnext101_32x8d-8ba56ff5.pth",
                         "IMAGENET1K_V2": "https://download.pytorch.org/models/resnext101_32x8d-110c445d.pth"},
    "resnext101_64x4d": {"IMAGENET1K_V1": "https://download.pytorch.org/models/resnext101_64x4d-173b62eb.pth"},
    "wide_resnet50_2": {"IMAGENET1K_V1": "https://download.pytorch.org/models/wide_resnet50_2-95faca4d.pth",
                        "IMAGENET1K_V2": "https://download.pytorch.org/models/wide_resnet50_2-9ba9bcbe.pth"},
    "wide_resnet101_2": {"IMAGENET1K_V1": "https://download.pytorch.org/models/wide_resnet101_2-32ee1156.pth",
                         "IMAGENET1K_V2": "https://download.pytorch.org/models/wide_resnet101_2-d733dc28.pth"},
}
DEFAULT_VARIANT = "IMAGENET1K_V1"


class CheckpointError(ExplorerError):
    """A file that is not a usable checkpoint: the message names the file and what is wrong."""


class WeightsUnavailable(ExplorerError):
    """Pretrained weights cannot be had (offline, refused, corrupt): the message says what to do instead."""


# --------------------------------------------------------------------------------------------
# checkpoint loading
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShapeMismatch:
    key: str
    checkpoint_shape: tuple[int, ...]
    model_shape: tuple[int, ...]

    def __str__(self) -> str:
        fmt = lambda s: "×".join(map(str, s)) or "scalar"  # noqa: E731
        return f"{self.key}: checkpoint {fmt(self.checkpoint_shape)}, model {fmt(self.model_shape)}"


@dataclass(frozen=True)
class LoadReport:
    """What a checkpoint held against what the model has, key by key."""

    source: str  # the file's name or "uploaded bytes"
    loaded: tuple[str, ...]  # keys copied into the model (empty when nothing was loaded)
    missing: tuple[str, ...]  # in the model, not in the checkpoint
    unexpected: tuple[str, ...]  # in the checkpoint, not in the model
    mismatched: tuple[ShapeMismatch, ...]  # in both, with different shapes
    matched: int  # keys present in both with equal shapes
    total_model_keys: int
    total_checkpoint_keys: int
    stripped_prefix: str | None = None  # "module." when a DataParallel prefix was removed
    wrapper: str | None = None  # "state_dict" or "model" when the tensors sat under that key
    nonfinite: tuple[str, ...] = ()  # checkpoint tensors holding NaN or Inf
    ignored: tuple[str, ...] = ()  # missing BatchNorm counters (num_batches_tracked): harmless, left as they were

    @property
    def complete(self) -> bool:
        """Every model key found with its shape, and nothing left over."""
        return not (self.missing or self.unexpected or self.mismatched)

    @property
    def applied(self) -> bool:
        return bool(self.loaded)

    def lines(self, limit: int = 12) -> list[str]:
        """Human-readable lines: a summary, then each problem by name (at most `limit` per kind)."""
        out = [f"{self.source}: {self.matched} of {self.total_model_keys} model tensors found with the right shape"
               + (f"; {len(self.loaded)} loaded" if self.loaded else "; nothing loaded")]
        if self.wrapper:
            out.append(f"the tensors were read from the checkpoint's '{self.wrapper}' entry")
        if self.stripped_prefix:
            out.append(f"the '{self.stripped_prefix}' prefix (DataParallel) was removed from the keys")

        def listed(title: str, items: Sequence[Any]) -> None:
            if not items:
                return
            out.append(f"{title} ({len(items)}):")
            out.extend(f"  {item}" for item in items[:limit])
            if len(items) > limit:
                out.append(f"  … and {len(items) - limit} more")

        listed("missing from the checkpoint", self.missing)
        listed("in the checkpoint but not in this network", self.unexpected)
        listed("shape mismatches", self.mismatched)
        listed("tensors holding NaN or Inf", self.nonfinite)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "complete": self.complete, "loaded": len(self.loaded),
                "matched": self.matched, "total_model_keys": self.total_model_keys,
                "total_checkpoint_keys": self.total_checkpoint_keys, "missing": list(self.missing),
                "unexpected": list(self.unexpected),
                "mismatched": [{"key": m.key, "checkpoint_shape": list(m.checkpoint_shape),
                                "model_shape": list(m.model_shape)} for m in self.mismatched],
                "stripped_prefix": self.stripped_prefix, "wrapper": self.wrapper,
                "nonfinite": list(self.nonfinite), "ignored": list(self.ignored)}


class CheckpointMismatch(CheckpointError):
    """Strict loading refused: the checkpoint does not fit the network. `.report` has every name."""

    def __init__(self, report: LoadReport):
        self.report = report
        super().__init__("the checkpoint does not fit this network; nothing was loaded "
                         "(load non-strict to take the matching tensors only)\n" + "\n".join(report.lines()))


def read_checkpoint(source: str | os.PathLike | bytes | bytearray | memoryview,
                    max_bytes: int = MAX_CHECKPOINT_BYTES) -> tuple[dict[str, torch.Tensor], str, str | None]:
    """Read a checkpoint safely: (state_dict on the CPU, a label for messages, the wrapper key or None)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = "the uploaded checkpoint"
        if not data:
            raise CheckpointError(f"{label} is empty (0 bytes)")
        if len(data) > max_bytes:
            raise CheckpointError(f"{label} is {len(data) / 2**20:.0f} MB; the limit is {max_bytes / 2**20:.0f} MB")
        stream: Any = io.BytesIO(data)
    else:
        path = Path(source)
        label = str(path)
        if not path.exists():
            raise CheckpointError(f"no such file: {label}")
        if path.is_dir():
            raise CheckpointError(f"{label} is a folder, not a checkpoint file")
        size = path.stat().st_size
        if size == 0:
            raise CheckpointError(f"{label} is empty (0 bytes)")
        if size > max_bytes:
            raise CheckpointError(f"{label} is {size / 2**20:.0f} MB; the limit is {max_bytes / 2**20:.0f} MB")
        stream = path
    head = data[:16] if isinstance(source, (bytes, bytearray, memoryview)) else _head(path)
    kind = _sniff_checkpoint(head)
    if kind is None:
        what = "a plain Python pickle, not a file written by torch.save" if head[:1] == b"\x80" else \
            "neither torch.save's zip format nor its legacy format"
        raise CheckpointError(f"{label} is not a PyTorch checkpoint: it is {what}")
    scan_checkpoint(data if isinstance(source, (bytes, bytearray, memoryview)) else path, label, kind)
    try:
        obj = torch.load(stream, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        detail = f"e.g. {found.group(1)}" if found else (text.strip().splitlines() or ["refused"])[-1][:120]
        raise CheckpointError(
            f"{label} holds Python objects besides tensors ({detail}), which safe loading (weights_only=True) "
            "refuses; save just the weights: torch.save(model.state_dict(), path)") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, AttributeError, KeyError,
            IndexError, TypeError) as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{label} is not a PyTorch checkpoint, or it is damaged "
                              f"(torch.load could not read it: {text[:160]})") from None
    state, wrapper = _find_state_dict(obj, label)
    for key, value in state.items():  # what the scan allowed, checked once more on the real tensors
        if value.layout != torch.strided or value.device.type != "cpu" or value.is_quantized:
            raise CheckpointError(f"{label}: tensor {_key(key)} is {value.layout} on {value.device}; only dense "
                                  "CPU tensors are accepted")
    return state, label, wrapper


# --------------------------------------------------------------------------------------------
# the checkpoint's records, read before torch.load allocates anything
# --------------------------------------------------------------------------------------------

MAX_STATE_BYTES = 2 * 1024 ** 3  # all tensor storages of one checkpoint together (wide_resnet101_2: 0.5 GiB)
MAX_CHECKPOINT_TENSORS = 100_000  # tensors in one checkpoint (resnet152 has 776)
MAX_PICKLE_BYTES = 64 * 1024 ** 2  # the checkpoint's pickled index (resnet152's is about 60 KB)
MAX_ZIP_ENTRIES = 200_000  # records in a zip checkpoint, read from its end record before the directory

_ITEM_BYTES = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8,
    "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1,
    "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16,
}


def _key(key: Any) -> str:
    text = repr(key)
    return text if len(text) <= 80 else text[:77] + "..."


def _fmt_size(n: int) -> str:
    for unit, scale in (("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,} bytes"


class _Refused(Exception):
    """The scan met something the checkpoint may not hold; the message says what."""


@dataclass
class _StorageRecord:
    key: str
    kind: str  # FloatStorage, ...
    location: str
    numel: int

    @property
    def nbytes(self) -> int:
        return self.numel * _ITEM_BYTES[self.kind]


@dataclass
class _TensorRecord:
    storage: _StorageRecord
    numel: int


class _StorageType:
    def __init__(self, name: str):
        self.name = name


def _ints(values: Any, what: str) -> tuple[int, ...]:
    if not isinstance(values, (tuple, list)) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                        for v in values):
        raise _Refused(f"a tensor's {what} is not a tuple of integers")
    if len(values) > 64:
        raise _Refused(f"a tensor declares {len(values)} dimensions; at most 64 are accepted")
    return tuple(values)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> _TensorRecord:
    """What torch's _rebuild_tensor(_v2) would make, as numbers: a view of `storage` that must fit in it."""
    if not isinstance(storage, _StorageRecord):
        raise _Refused("a tensor is not backed by a storage record")
    size, stride = _ints(size, "size"), _ints(stride, "stride")
    if not isinstance(offset, int) or offset < 0 or len(size) != len(stride) or min(size + stride, default=0) < 0:
        raise _Refused("a tensor declares a negative or inconsistent size, stride or offset")
    numel = math.prod(size)
    if numel:
        extent = offset + sum((n - 1) * st for n, st in zip(size, stride)) + 1
        if extent > storage.numel:
            raise _Refused(f"a tensor of {numel:,} elements reaches element {extent:,} of a storage holding "
                           f"{storage.numel:,}")
        if numel > storage.numel:  # a stride-0 (expanded) view: a few bytes that would become billions
            raise _Refused(f"a tensor declares {numel:,} elements over a storage of {storage.numel:,} (a stride-0 "
                           "or overlapping view); only plain tensors are accepted")
    return _TensorRecord(storage, numel)


def _rebuild_parameter(data: Any, *rest: Any) -> Any:
    if not isinstance(data, _TensorRecord):
        raise _Refused("a parameter does not hold a tensor")
    return data


def _refuse(what: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise _Refused(f"it holds {what}; only dense CPU tensors are accepted")
    return refuse


_SCAN_GLOBALS: dict[str, Any] = {
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor, "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
    "collections.OrderedDict": collections.OrderedDict,
    "torch._utils._rebuild_sparse_tensor": _refuse("a sparse tensor"),
    "torch._utils._rebuild_sparse_csr_tensor": _refuse("a sparse tensor"),
    "torch._utils._rebuild_meta_tensor_no_storage": _refuse("a meta-device tensor (no data)"),
    "torch._utils._rebuild_qtensor": _refuse("a quantized tensor"),
    "torch._utils._rebuild_nested_tensor": _refuse("a nested tensor"),
    "torch._utils._rebuild_wrapper_subclass": _refuse("a tensor subclass"),
    "torch._utils._rebuild_device_tensor_from_numpy": _refuse("a tensor rebuilt from numpy"),
    "torch._tensor._rebuild_from_type_v2": _refuse("a tensor subclass"),
    "torch._utils._rebuild_xla_tensor": _refuse("an XLA tensor"),
    "torch._utils._rebuild_mtia_tensor": _refuse("a device tensor"),
    "torch.serialization._get_layout": _refuse("a sparse tensor"),
}


class _ScanUnpickler(pickle.Unpickler):
    """Reads the checkpoint's pickled index with stand-ins: storages become records of their element count,
    tensors records of their view, and nothing is allocated. Anything else is refused (torch.load with
    weights_only=True would refuse it too, with the message read_checkpoint gives)."""

    def __init__(self, file: Any, storages: dict[str, _StorageRecord]):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if full in _SCAN_GLOBALS:
            return _SCAN_GLOBALS[full]
        if module == "torch" and name in _ITEM_BYTES:
            return _StorageType(name)
        if module == "torch" and name.endswith("Storage"):
            raise _Refused(f"it holds a {name}, a storage type this loader does not accept")
        raise _Unsafe(f"GLOBAL {full}")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise _Refused("it holds a persistent object that is not a tensor storage")
        _, kind, key, location, numel = pid[:5]
        if not isinstance(kind, _StorageType):
            raise _Refused("a storage of an unknown type")
        if not isinstance(numel, int) or numel < 0:
            raise _Refused("a storage with a negative or non-integer size")
        location = str(location)
        if location.startswith("meta"):
            raise _Refused("it holds a meta-device tensor (no data); only dense CPU tensors are accepted")
        key = str(key)
        record = self.storages.get(key)
        if record is None:
            if len(self.storages) >= MAX_CHECKPOINT_TENSORS:
                raise _Refused(f"more than {MAX_CHECKPOINT_TENSORS:,} storages; a checkpoint holds far fewer")
            record = self.storages[key] = _StorageRecord(key, kind.name, location, numel)
            total = sum(r.nbytes for r in self.storages.values())
            if total > MAX_STATE_BYTES:
                raise _Refused(f"its tensors declare {_fmt_size(total)} or more; the limit is "
                               f"{_fmt_size(MAX_STATE_BYTES)}")
        return record


class _Unsafe(Exception):
    """A global that safe loading refuses: read_checkpoint words it as torch's refusal is worded."""


def scan_checkpoint(source: bytes | Path, label: str, kind: str) -> None:
    """Check a checkpoint's records and declared sizes before torch.load reads it, without allocating a
    tensor: zip records stored uncompressed, the pickled index small, every storage's declared bytes
    present in the file, every tensor a plain view inside its storage (no stride-0 expansion), no
    sparse, meta-device or quantized tensors, and all storages together within MAX_STATE_BYTES.
    Raises CheckpointError naming the limit and the value."""
    try:
        if kind == "zip":
            _scan_zip(source, label)
        else:
            _scan_legacy(source, label)
    except _Refused as e:
        raise CheckpointError(f"{label} was refused before loading: {e}") from None
    except _Unsafe as e:
        raise CheckpointError(
            f"{label} holds Python objects besides tensors (e.g. {e}), which safe loading (weights_only=True) "
            "refuses; save just the weights: torch.save(model.state_dict(), path)") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            struct.error, zipfile.BadZipFile, OSError, RecursionError, MemoryError) as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{label} is not a PyTorch checkpoint, or it is damaged ({text[:160]})") from None


def _open(source: bytes | Path) -> Any:
    return io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else open(source, "rb")


def _scan_zip(source: bytes | Path, label: str) -> None:
    with _open(source) as f:
        end = zipfile._EndRecData(f)  # the end record: how many entries, before the directory is read
        if end is None:
            raise _Refused("its zip directory is missing or damaged")
        entries, directory_bytes = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]
        if entries > MAX_ZIP_ENTRIES or directory_bytes > MAX_ZIP_ENTRIES * 200:
            raise _Refused(f"its zip directory lists {entries:,} records; the limit is {MAX_ZIP_ENTRIES:,}")
        f.seek(0)
        with zipfile.ZipFile(f) as z:
            infos = z.infolist()
            if len(infos) > MAX_ZIP_ENTRIES:
                raise _Refused(f"its zip directory lists {len(infos):,} records; the limit is {MAX_ZIP_ENTRIES:,}")
            for info in infos:
                if info.compress_type != zipfile.ZIP_STORED:
                    raise _Refused(f"its record {info.filename!r} is compressed ({_fmt_size(info.compress_size)} "
                                   f"that would expand to {_fmt_size(info.file_size)}); torch.save never "
                                   "compresses, so the file was not made by it")
            pickles = [i for i in infos if i.filename.endswith("data.pkl")]
            if len(pickles) != 1:
                raise _Refused("it has no single data.pkl index")
            index = pickles[0]
            if index.file_size > MAX_PICKLE_BYTES:
                raise _Refused(f"its index data.pkl is {_fmt_size(index.file_size)}; the limit is "
                               f"{_fmt_size(MAX_PICKLE_BYTES)}")
            prefix = index.filename[: -len("data.pkl")]
            storages: dict[str, _StorageRecord] = {}
            _ScanUnpickler(io.BytesIO(z.read(index)), storages).load()
            sizes = {i.filename: i.file_size for i in infos}
            for record in storages.values():
                name = f"{prefix}data/{record.key}"
                if name not in sizes:
                    raise _Refused(f"storage {record.key!r} has no record in the file")
                if sizes[name] < record.nbytes:
                    raise _Refused(f"storage {record.key!r} declares {_fmt_size(record.nbytes)} "
                                   f"({record.numel:,} elements) but its record holds {_fmt_size(sizes[name])}")


def _scan_legacy(source: bytes | Path, label: str) -> None:
    """torch.save's format before PyTorch 1.6: three small pickles, the index, the storage keys, then each
    storage's element count and bytes. Every declared storage must fit in what is left of the file."""
    with _open(source) as f:
        f.seek(0, os.SEEK_END)
        file_size = f.tell()
        f.seek(0)
        for _ in range(3):  # magic number, protocol version, system info: plain values only
            _PlainUnpickler(f).load()
        storages: dict[str, _StorageRecord] = {}
        start = f.tell()
        _ScanUnpickler(f, storages).load()
        if f.tell() - start > MAX_PICKLE_BYTES:
            raise _Refused(f"its index is {_fmt_size(f.tell() - start)}; the limit is {_fmt_size(MAX_PICKLE_BYTES)}")
        _PlainUnpickler(f).load()  # the storage keys
        left = file_size - f.tell()
        declared = sum(r.nbytes + 8 for r in storages.values())
        if declared > left:
            raise _Refused(f"its storages declare {_fmt_size(declared)} but the file holds {_fmt_size(left)} after "
                           "its index")


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise _Unsafe(f"GLOBAL {module}.{name}")


_LEGACY_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19"  # pickle of torch's legacy magic number


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(16)
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None


def _sniff_checkpoint(head: bytes) -> str | None:
    """"zip" (torch.save since 1.6), "legacy" (older torch.save), or None for anything else."""
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(_LEGACY_MAGIC[:10]):
        return "legacy"
    return None


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _find_state_dict(obj: Any, label: str) -> tuple[dict[str, torch.Tensor], str | None]:
    if _is_state_dict(obj):
        return dict(obj), None
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "model_state_dict", "net"):
            if key in obj and _is_state_dict(obj[key]):
                return dict(obj[key]), key
        tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
        keys = ", ".join(repr(k) for k in list(obj)[:8]) or "none"
        if not obj:
            raise CheckpointError(f"{label} is an empty dictionary: it holds no tensors")
        if not tensors:
            raise CheckpointError(f"{label} holds no tensors under a key this loader knows (top-level keys: {keys}); "
                                  "expected a state_dict, or one under 'state_dict' or 'model'")
        return tensors, None
    what = type(obj).__name__
    if isinstance(obj, torch.Tensor):
        what = f"a single tensor of shape {tuple(obj.shape)}"
    raise CheckpointError(f"{label} holds {what}, not a state_dict (a mapping from names to tensors)")


def _strip_prefix(state: dict[str, torch.Tensor], model_keys: set[str]) -> tuple[dict[str, torch.Tensor], str | None]:
    for prefix in ("module.", "_orig_mod.", "model."):
        if any(k.startswith(prefix) for k in state) and not any(k.startswith(prefix) for k in model_keys):
            stripped = {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}
            if prefix == "module." or len(set(stripped) & model_keys) > len(set(state) & model_keys):
                return stripped, prefix
    return state, None


def compare_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint",
                       wrapper: str | None = None) -> tuple[LoadReport, dict[str, torch.Tensor]]:
    """Compare a state_dict with the model's: (report with nothing loaded, the tensors that match)."""
    own = model.state_dict()
    state, prefix = _strip_prefix(dict(state), set(own))
    matching: dict[str, torch.Tensor] = {}
    mismatched: list[ShapeMismatch] = []
    for key, value in state.items():
        if key in own:
            if tuple(value.shape) == tuple(own[key].shape):
                matching[key] = value
            else:
                mismatched.append(ShapeMismatch(key, tuple(value.shape), tuple(own[key].shape)))
    missing = [k for k in own if k not in state]
    ignored = tuple(k for k in missing if k.endswith("num_batches_tracked"))
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    nonfinite = tuple(k for k, v in state.items()
                      if v.is_floating_point() and v.numel() and not bool(torch.isfinite(v).all()))
    report = LoadReport(source=source, loaded=(), missing=tuple(missing), unexpected=tuple(unexpected),
                        mismatched=tuple(mismatched), matched=len(matching), total_model_keys=len(own),
                        total_checkpoint_keys=len(state), stripped_prefix=prefix, wrapper=wrapper,
                        nonfinite=nonfinite, ignored=ignored)
    return report, matching


def load_checkpoint(model: nn.Module, source: str | os.PathLike | bytes | bytearray | memoryview,
                    strict: bool = True, max_bytes: int = MAX_CHECKPOINT_BYTES) -> LoadReport:
    """Load a torchvision-format checkpoint (a path or the file's bytes) into `model`, in place.

    strict=True: load only when every model tensor is found with its shape and nothing is left over;
    otherwise raise CheckpointMismatch (nothing loaded; `.report` names every key). strict=False: load the
    tensors that match by name and shape, leave the rest of the model as it was, and report the others.
    Raises CheckpointError for a file that is not a checkpoint, or when not a single key matches.
    """
    state, label, wrapper = read_checkpoint(source, max_bytes)
    report, matching = compare_state_dict(model, state, label, wrapper)
    if not matching:
        sample = ", ".join(repr(k) for k in list(state)[:4])
        raise CheckpointError(f"{label}: none of its {len(state)} tensors matches this network by name and shape "
                              f"(its keys look like {sample}); is it a checkpoint for another architecture?")
    if strict and not report.complete:
        raise CheckpointMismatch(report)
    with torch.no_grad():
        model.load_state_dict(matching, strict=False)
    return dataclasses.replace(report, loaded=tuple(matching))


# --------------------------------------------------------------------------------------------
# torchvision ImageNet weights (optional download)
# --------------------------------------------------------------------------------------------

def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The weights cache: `path`, else $RESNET_EXPLORER_CACHE/weights, else ~/.cache/resnet_explorer/weights."""
    if path is not None:
        return Path(path)
    root = os.environ.get(CACHE_ENV)
    return (Path(root) if root else Path.home() / ".cache" / "resnet_explorer") / "weights"


def weights_url(name: str, variant: str = DEFAULT_VARIANT) -> str:
    """The download URL of torchvision's `variant` weights for preset `name`."""
    if name not in TORCHVISION_WEIGHTS:
        raise WeightsUnavailable(f"there are no published ImageNet weights for '{name}'; torchvision publishes them "
                                 f"for {', '.join(TORCHVISION_WEIGHTS)}. Use random initialisation or a local file")
    variants = TORCHVISION_WEIGHTS[name]
    if variant not in variants:
        raise WeightsUnavailable(f"'{name}' has no {variant} weights; it has {', '.join(variants)}")
    return variants[variant]


def _expected_hash(url: str) -> str | None:
    stem = url.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    tail = stem.rsplit("-", 1)[-1]
    return tail if len(tail) >= 8 and all(c in "0123456789abcdef" for c in tail) else None


def _hub_checkpoints_dir() -> Path | None:
    try:
        return Path(torch.hub.get_dir()) / "checkpoints"
    except Exception:  # noqa: BLE001 - no hub dir is no reason to fail
        return None


def cached_weights(name: str, variant: str = DEFAULT_VARIANT, cache: str | os.PathLike | None = None) -> Path | None:
    """The local copy of the weights, if there is one: in the cache, or in torch hub's checkpoint folder."""
    filename = weights_url(name, variant).rsplit("/", 1)[-1]
    for folder in (cache_dir(cache), _hub_checkpoints_dir()):
        if folder is not None and (folder / filename).is_file():
            return folder / filename
    return None


def download_imagenet_weights(name: str, variant: str = DEFAULT_VARIANT, cache: str | os.PathLike | None = None,
                              timeout: float = DOWNLOAD_TIMEOUT_S,
                              progress: Callable[[int, int | None], None] | None = None) -> Path:
    """The path of torchvision's ImageNet weights for preset `name`, downloading them once if needed.

    A cached copy (ours, or torch hub's) is used without any network access. A download streams into the
    cache with `timeout` seconds per network operation, is checked against the SHA-256 prefix in its file
    name, and is moved into place only when complete. `progress(bytes_done, bytes_total_or_None)` is called
    as it goes. Raises WeightsUnavailable, saying why and what to do, when it cannot be had.
    """
    url = weights_url(name, variant)
    found = cached_weights(name, variant, cache)
    if found is not None:
        return found
    folder = cache_dir(cache)
    filename = url.rsplit("/", 1)[-1]
    advice = (f"The explorer works without it: use random initialisation, or download {filename} on a connected "
              f"machine ({url}) and load it as a local checkpoint file, or put it in {folder}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WeightsUnavailable(f"could not create the weights cache {folder}: {e.strerror or e}. {advice}") from None
    target = folder / filename
    # unique per download: two sessions of one server (one process) may fetch the same file at once
    partial = folder / f"{filename}.part-{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:8]}"
    digest = hashlib.sha256()
    try:
        with urlopen(Request(url, headers={"User-Agent": "resnet-explorer"}), timeout=timeout) as response:
            total = response.headers.get("Content-Length") if getattr(response, "headers", None) else None
            total_n = int(total) if total and str(total).isdigit() else None
            done = 0
            with open(partial, "wb") as out:
                while True:
                    chunk = response.read(1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total_n)
        if total_n is not None and done != total_n:
            raise WeightsUnavailable(f"the download of {filename} stopped after {done:,} of {total_n:,} bytes. {advice}")
    except WeightsUnavailable:
        partial.unlink(missing_ok=True)
        raise
    except (URLError, TimeoutError, OSError, ValueError) as e:
        partial.unlink(missing_ok=True)
        reason = getattr(e, "reason", None) or e
        raise WeightsUnavailable(f"could not download the ImageNet weights for {name} from {url} "
                                 f"(no network? {reason}). {advice}") from None
    expected = _expected_hash(url)
    got = digest.hexdigest()
    if expected and not got.startswith(expected):
        partial.unlink(missing_ok=True)
        raise WeightsUnavailable(f"the downloaded {filename} is corrupt (its SHA-256 starts {got[:8]}, expected "
                                 f"{expected}); it was deleted. Try again later. {advice}")
    os.replace(partial, target)
    return target


def _weight_layout(spec: ArchSpec) -> ArchSpec:
    """The spec with everything that does not change the state_dict's keys and shapes set to defaults."""
    return spec.replace(name="", input_size=(224, 224), init="kaiming_fan_out", zero_init_residual=False,
                        bn_momentum=0.1, bn_eps=1e-5)


def imagenet_weights_name(spec: ArchSpec) -> str | None:
    """The torchvision preset whose ImageNet weights fit `spec` exactly (same keys and shapes), or None."""
    from resnet_core.structure.presets import get_preset
    layout = _weight_layout(spec)
    if spec.name in TORCHVISION_WEIGHTS and _weight_layout(get_preset(spec.name)) == layout:
        return spec.name
    for name in TORCHVISION_WEIGHTS:
        if _weight_layout(get_preset(name)) == layout:
            return name
    return None


def load_imagenet_weights(model: nn.Module, name: str, variant: str = DEFAULT_VARIANT,
                          cache: str | os.PathLike | None = None, timeout: float = DOWNLOAD_TIMEOUT_S,
                          progress: Callable[[int, int | None], None] | None = None) -> LoadReport:
    """Download (once) and load torchvision's ImageNet weights into `model`, strictly."""
    path = download_imagenet_weights(name, variant, cache, timeout, progress)
    return load_checkpoint(model, path, strict=True)


# --------------------------------------------------------------------------------------------
# class names and top predictions
# --------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1,000 ImageNet class names (assets/imagenet_classes.txt), or "class N" when the file is absent."""
    try:
        lines = CLASS_NAMES_PATH.read_text(encoding="utf-8").splitlines()
        names = []
        for i, line in enumerate(text for text in lines if text.strip()):
            index, name = line.split(",", 1)
            if int(index) != i:
                raise ValueError
            names.append(name.strip().replace("_", " "))
        if len(names) == 1000:
            return tuple(names)
    except (OSError, ValueError):
        pass
    return tuple(f"class {i}" for i in range(1000))


def class_names_for(num_classes: int) -> tuple[str, ...]:
    """ImageNet's names for a 1000-way head, "class N" otherwise."""
    if num_classes == 1000:
        return imagenet_class_names()
    return tuple(f"class {i}" for i in range(num_classes))


@dataclass(frozen=True)
class Prediction:
    rank: int  # 1 = the most probable
    index: int  # class index
    name: str
    probability: float  # softmax probability (NaN when the logits are not finite)
    logit: float


def top_predictions(logits: torch.Tensor | Sequence[float], class_names: Sequence[str] | None = None, k: int = 5,
                    sample: int = 0) -> list[Prediction]:
    """The k most probable classes of one sample: logits (num_classes,) or (batch, num_classes)."""
    t = torch.as_tensor(logits).detach().to("cpu", torch.float64)
    if t.dim() == 2:
        if not 0 <= sample < t.shape[0]:
            raise ValueError(f"sample {sample} asked for, but the logits hold {t.shape[0]}")
        t = t[sample]
    if t.dim() != 1 or t.numel() == 0:
        raise ValueError(f"expected logits (num_classes,) or (batch, num_classes), got shape {tuple(t.shape)}")
    n = t.numel()
    names = list(class_names) if class_names is not None else list(class_names_for(n))
    if len(names) != n:
        raise ValueError(f"{len(names)} class names for {n} logits")
    finite = bool(torch.isfinite(t).all())
    probs = torch.softmax(t, 0) if finite else torch.full_like(t, math.nan)
    order = torch.argsort(torch.nan_to_num(t, nan=-math.inf), descending=True)[: max(0, min(k, n))]
    return [Prediction(rank=r + 1, index=int(i), name=names[int(i)], probability=float(probs[i]), logit=float(t[i]))
            for r, i in enumerate(order)]
