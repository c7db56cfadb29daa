"""A checkpoint's records and declared sizes, read before torch.load allocates anything.

`scan_checkpoint` reads a zip checkpoint's end record and directory, and the pickled index (of a zip or a
legacy file) with stand-ins: storages become records of their element count, tensors records of their
view, and nothing is allocated. A file whose few kilobytes describe billions of elements (a stride-0
view, a storage larger than its record, a compressed record, a legacy storage larger than the file) or
that holds sparse, meta-device or quantized tensors is refused with the limit and the value.
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resnet_core.errors import ExplorerError
from resnet_core.i18n import _


class CheckpointError(ExplorerError):
    """A file that is not a usable checkpoint: the message names the file and what is wrong."""



_LEGACY_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19"  # pickle of torch's legacy magic number


def head_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(16)
    except OSError as e:
        raise CheckpointError(_("cannot read {path}: {reason}", path=path, reason=e.strerror or e)) from None


def sniff_checkpoint(head: bytes) -> str | None:
    """"zip" (torch.save since 1.6), "legacy" (older torch.save), or None for anything else."""
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(_LEGACY_MAGIC[:10]):
        return "legacy"
    return None


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
        raise _Refused(_("a tensor's {what} is not a tuple of integers", what=what))
    if len(values) > 64:
        raise _Refused(_("a tensor declares {n} dimensions; at most 64 are accepted", n=len(values)))
    return tuple(values)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> _TensorRecord:
    """What torch's _rebuild_tensor(_v2) would make, as numbers: a view of `storage` that must fit in it."""
    if not isinstance(storage, _StorageRecord):
        raise _Refused(_("a tensor is not backed by a storage record"))
    size, stride = _ints(size, "size"), _ints(stride, "stride")
    if not isinstance(offset, int) or offset < 0 or len(size) != len(stride) or min(size + stride, default=0) < 0:
        raise _Refused(_("a tensor declares a negative or inconsistent size, stride or offset"))
    numel = math.prod(size)
    if numel:
        extent = offset + sum((n - 1) * st for n, st in zip(size, stride, strict=True)) + 1
        if extent > storage.numel:
            raise _Refused(_("a tensor of {n} elements reaches element {extent} of a storage holding {held}",
                             n=f"{numel:,}", extent=f"{extent:,}", held=f"{storage.numel:,}"))
        if numel > storage.numel:  # a stride-0 (expanded) view: a few bytes that would become billions
            raise _Refused(_("a tensor declares {n} elements over a storage of {held} (a stride-0 or overlapping "
                             "view); only plain tensors are accepted", n=f"{numel:,}", held=f"{storage.numel:,}"))
    return _TensorRecord(storage, numel)


def _rebuild_parameter(data: Any, *rest: Any) -> Any:
    if not isinstance(data, _TensorRecord):
        raise _Refused(_("a parameter does not hold a tensor"))
    return data


def _refuse(what: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise _Refused(_("it holds {what}; only dense CPU tensors are accepted", what=what))
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
            raise _Refused(_("it holds a {name}, a storage type this loader does not accept", name=name))
        raise _Unsafe(f"GLOBAL {full}")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise _Refused(_("it holds a persistent object that is not a tensor storage"))
        _tag, kind, key, location, numel = pid[:5]
        if not isinstance(kind, _StorageType):
            raise _Refused(_("a storage of an unknown type"))
        if not isinstance(numel, int) or numel < 0:
            raise _Refused(_("a storage with a negative or non-integer size"))
        location = str(location)
        if location.startswith("meta"):
            raise _Refused(_("it holds a meta-device tensor (no data); only dense CPU tensors are accepted"))
        key = str(key)
        record = self.storages.get(key)
        if record is None:
            if len(self.storages) >= MAX_CHECKPOINT_TENSORS:
                raise _Refused(_("more than {n} storages; a checkpoint holds far fewer",
                                 n=f"{MAX_CHECKPOINT_TENSORS:,}"))
            record = self.storages[key] = _StorageRecord(key, kind.name, location, numel)
            total = sum(r.nbytes for r in self.storages.values())
            if total > MAX_STATE_BYTES:
                raise _Refused(_("its tensors declare {size} or more; the limit is {limit}", size=_fmt_size(total),
                                 limit=_fmt_size(MAX_STATE_BYTES)))
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
        raise CheckpointError(_("{label} was refused before loading: {reason}", label=label, reason=e)) from None
    except _Unsafe as e:
        raise CheckpointError(_(
            "{label} holds Python objects besides tensors ({detail}), which safe loading (weights_only=True) "
            "refuses; save just the weights: torch.save(model.state_dict(), path)", label=label,
            detail=_("e.g. {name}", name=e))) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            struct.error, zipfile.BadZipFile, OSError, RecursionError, MemoryError) as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(_("{label} is not a PyTorch checkpoint, or it is damaged ({reason})", label=label,
                                reason=text[:160])) from None


def _open(source: bytes | Path) -> Any:
    return io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else open(source, "rb")


def _scan_zip(source: bytes | Path, label: str) -> None:
    with _open(source) as f:
        end = zipfile._EndRecData(f)  # type: ignore[attr-defined]  # private, not in typeshed; the end record: how many entries, before the directory is read
        if end is None:
            raise _Refused(_("its zip directory is missing or damaged"))
        entries, directory_bytes = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]  # type: ignore[attr-defined]  # private zipfile constants, not in typeshed
        if entries > MAX_ZIP_ENTRIES or directory_bytes > MAX_ZIP_ENTRIES * 200:
            raise _Refused(_("its zip directory lists {n} records; the limit is {limit}", n=f"{entries:,}",
                             limit=f"{MAX_ZIP_ENTRIES:,}"))
        f.seek(0)
        with zipfile.ZipFile(f) as z:
            infos = z.infolist()
            if len(infos) > MAX_ZIP_ENTRIES:
                raise _Refused(_("its zip directory lists {n} records; the limit is {limit}", n=f"{len(infos):,}",
                                 limit=f"{MAX_ZIP_ENTRIES:,}"))
            for info in infos:
                if info.compress_type != zipfile.ZIP_STORED:
                    raise _Refused(_("its record {name} is compressed ({size} that would expand to {full}); "
                                     "torch.save never compresses, so the file was not made by it",
                                     name=repr(info.filename), size=_fmt_size(info.compress_size),
                                     full=_fmt_size(info.file_size)))
            pickles = [i for i in infos if i.filename.endswith("data.pkl")]
            if len(pickles) != 1:
                raise _Refused(_("it has no single data.pkl index"))
            index = pickles[0]
            if index.file_size > MAX_PICKLE_BYTES:
                raise _Refused(_("its index data.pkl is {size}; the limit is {limit}", size=_fmt_size(index.file_size),
                                 limit=_fmt_size(MAX_PICKLE_BYTES)))
            prefix = index.filename[: -len("data.pkl")]
            storages: dict[str, _StorageRecord] = {}
            _ScanUnpickler(io.BytesIO(z.read(index)), storages).load()
            sizes = {i.filename: i.file_size for i in infos}
            for record in storages.values():
                name = f"{prefix}data/{record.key}"
                if name not in sizes:
                    raise _Refused(_("storage {key} has no record in the file", key=repr(record.key)))
                if sizes[name] < record.nbytes:
                    raise _Refused(_("storage {key} declares {size} ({n} elements) but its record holds {held}",
                                     key=repr(record.key), size=_fmt_size(record.nbytes), n=f"{record.numel:,}",
                                     held=_fmt_size(sizes[name])))


def _scan_legacy(source: bytes | Path, label: str) -> None:
    """torch.save's format before PyTorch 1.6: three small pickles, the index, the storage keys, then each
    storage's element count and bytes. Every declared storage must fit in what is left of the file."""
    with _open(source) as f:
        f.seek(0, os.SEEK_END)
        file_size = f.tell()
        f.seek(0)
        for _i in range(3):  # magic number, protocol version, system info: plain values only
            _PlainUnpickler(f).load()
        storages: dict[str, _StorageRecord] = {}
        start = f.tell()
        _ScanUnpickler(f, storages).load()
        if f.tell() - start > MAX_PICKLE_BYTES:
            raise _Refused(_("its index is {size}; the limit is {limit}", size=_fmt_size(f.tell() - start),
                             limit=_fmt_size(MAX_PICKLE_BYTES)))
        _PlainUnpickler(f).load()  # the storage keys
        left = file_size - f.tell()
        declared = sum(r.nbytes + 8 for r in storages.values())
        if declared > left:
            raise _Refused(_("its storages declare {size} but the file holds {left} after its index",
                             size=_fmt_size(declared), left=_fmt_size(left)))


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise _Unsafe(f"GLOBAL {module}.{name}")


def check_loaded(state: dict, label: str) -> None:
    """What the scan allowed, checked once more on the loaded tensors: dense, on the CPU."""
    import torch
    for key, value in state.items():
        if value.layout != torch.strided or value.device.type != "cpu" or value.is_quantized:
            raise CheckpointError(_("{label}: tensor {key} is {layout} on {device}; only dense CPU tensors are "
                                    "accepted", label=label, key=_key(key), layout=value.layout, device=value.device))
