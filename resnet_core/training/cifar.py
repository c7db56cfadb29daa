"""CIFAR-10 from a local folder, read through one gate and bounded before it is unpickled.

A `cifar-10-batches-py` folder in its standard python-pickle layout is validated file by file (`DataError`
names the missing or broken file). With a data folder (`root`: a server's), nothing outside it is read:
every file is checked where it really is, on the opened file, and named relative to the folder.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resnet_core.errors import DataError
from resnet_core.i18n import N_
from resnet_core.text import plain

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch"
CIFAR_META_FILE = "batches.meta"
NOT_OFFERED = N_("no CIFAR-10 folder of that name is offered by this server")  # the app shows _(NOT_OFFERED)


@dataclass(frozen=True)
class CifarArrays:
    """What a CIFAR-10 folder holds, checked: uint8 images (N, 3072) and labels 0–9, as its files store them."""

    train_x: np.ndarray  # (50,000, 3072): 1024 red, 1024 green, 1024 blue, row-major
    train_y: np.ndarray  # (50,000,) int64
    test_x: np.ndarray
    test_y: np.ndarray
    classes: tuple[str, ...]
    source: str  # "CIFAR-10 from <folder>", the folder named relative to the data folder when there is one


# --------------------------------------------------------------------------------------------

# A visitor's CIFAR folder is read file by file through one gate: each file is opened once, without
# following it into a FIFO or device, checked on the open descriptor (a regular file, its size, and with
# a data folder: where it really is, the path's real location having the descriptor's inode), then read
# from that descriptor. The check and the read are the same file. A batch file is then unpickled by a
# pure-Python unpickler whose every call is charged to a byte budget before it allocates, so a small file
# cannot unpickle into gigabytes (a memoised string encoded a thousand times, one raw buffer built into
# a thousand arrays, a declared size larger than the file).

CIFAR_BATCH_IMAGES = 10_000  # images in each of the real data_batch_1…5 and test_batch files
MAX_BATCH_FILE = 40 * 2**20  # bytes read at most from a batch file (the real ones are 31,035,704 bytes)
MAX_META_FILE = 64 * 2**10  # bytes read at most from batches.meta (the real one is 158 bytes)
_DTYPES = frozenset({"u1", "i1", "b1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8"})


class _Source:
    """Where files are read from: any path (the command line's own folder), or only below `root` (a
    server's data folder, shown to visitors by relative names, never by its server path)."""

    def __init__(self, root: str | Path | None = None):
        self.root = None if root is None else Path(os.path.realpath(root))

    def show(self, path: Path) -> str:
        if self.root is None:
            return str(path)
        try:
            rel = Path(os.path.realpath(path)).relative_to(self.root)
        except ValueError:
            return "a file outside the data folder"
        return f"data folder/{rel.as_posix()}" if rel.parts else "the data folder"

    def read(self, path: Path, limit: int) -> bytes:
        """The bytes of the regular file `path` (at most `limit`), or DataError naming it."""
        shown = self.show(path)
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags)
        except OSError as e:
            raise DataError(f"cannot read {shown}: {e.strerror}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise DataError(f"{shown} is not a regular file")
            if self.root is not None:
                self._check_below(path, st)
            if st.st_size > limit:
                raise DataError(f"{shown} is {st.st_size:,} bytes, not a CIFAR-10 file (at most {limit:,} are read)")
            chunks, got = [], 0
            while got <= limit:
                chunk = os.read(fd, min(1 << 20, limit + 1 - got))
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
            if got > limit:
                raise DataError(f"{shown} grew past {limit:,} bytes while it was read")
            return b"".join(chunks)
        except OSError as e:
            raise DataError(f"cannot read {shown}: {e.strerror}") from None
        finally:
            os.close(fd)

    def _check_below(self, path: Path, opened: os.stat_result) -> None:
        """The opened file is the one whose real path lies below the data folder (symlinks followed)."""
        assert self.root is not None
        real = Path(os.path.realpath(path))
        try:
            real.relative_to(self.root)
            here = os.stat(real)
        except (ValueError, OSError):
            raise DataError(NOT_OFFERED) from None
        if (here.st_dev, here.st_ino) != (opened.st_dev, opened.st_ino):
            raise DataError(NOT_OFFERED)


class _Budget(pickle.UnpicklingError):
    pass


class _BoundedUnpickler(pickle._Unpickler):  # the pure-Python unpickler: its REDUCE and BUILD can be checked
    """Reads only plain containers and numpy arrays (what the CIFAR-10 python pickles hold), charging
    every object a call would make to `budget` bytes before making it."""

    stack: list[Any]  # the pure-Python unpickler's own (typeshed's stub leaves its internals out)

    def __init__(self, raw: bytes, budget: int):
        super().__init__(io.BytesIO(raw), encoding="bytes")
        self.budget = budget

    def charge(self, nbytes: int) -> None:
        self.budget -= nbytes
        if self.budget < 0:
            raise _Budget("it would unpickle into far more memory than the file holds")

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in (("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")):
            return self._reconstruct
        if (module, name) in (("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")):
            return self._scalar
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return self._dtype
        if (module, name) == ("_codecs", "encode"):  # how Python 3's protocol-2 pickles store bytes
            return self._encode
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (not part of a CIFAR-10 batch)")

    def _encode(self, text: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
            raise pickle.UnpicklingError("bytes stored in an unexpected way")
        self.charge(len(text))
        return text.encode("latin1")

    def _reconstruct(self, subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        if subtype is not np.ndarray or shape != (0,):
            raise pickle.UnpicklingError("an array stored in an unexpected way")
        return np.ndarray(shape=(0,), dtype=np.uint8)

    def _dtype(self, code: Any, align: Any = False, copy: Any = False) -> np.dtype:
        if not isinstance(code, (str, bytes)) or (code.decode() if isinstance(code, bytes) else code) not in _DTYPES:
            raise pickle.UnpicklingError(f"refusing the array type {code!r} (CIFAR-10 holds numbers only)")
        return np.dtype(code.decode() if isinstance(code, bytes) else code)

    def _scalar(self, dtype: Any, data: Any = b"") -> Any:
        if not isinstance(dtype, np.dtype) or not isinstance(data, bytes) or len(data) != dtype.itemsize:
            raise pickle.UnpicklingError("a number stored in an unexpected way")
        self.charge(len(data))
        return np.frombuffer(data, dtype=dtype)[0]

    def load_build(self) -> None:
        inst = self.stack[-2]  # BUILD: the state on top, the object under it
        if isinstance(inst, np.ndarray):
            state = self.stack.pop()
            if not (isinstance(state, tuple) and len(state) == 5):
                raise pickle.UnpicklingError("an array stored in an unexpected way")
            _, shape, dtype, _, raw = state
            if (not isinstance(shape, tuple) or not all(isinstance(n, int) and 0 <= n < 2**40 for n in shape)
                    or not isinstance(dtype, np.dtype) or not isinstance(raw, bytes)):
                raise pickle.UnpicklingError("an array stored in an unexpected way")
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes != len(raw):
                raise pickle.UnpicklingError(f"an array declares {nbytes:,} bytes but holds {len(raw):,}")
            self.charge(nbytes)
            inst.__setstate__(state)
            return
        if not isinstance(inst, np.dtype):
            raise pickle.UnpicklingError(f"refusing to set the state of a {type(inst).__name__}")
        super().load_build()  # type: ignore[misc]  # defined by pickle._Unpickler, missing from its stub

    # the opcode table of pickle._Unpickler (keyed by opcode byte), with BUILD checked here
    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = load_build  # type: ignore[assignment]  # the table's functions take any unpickler


def _read_pickle(path: Path, source: _Source, limit: int) -> Any:
    raw = source.read(path, limit)
    try:
        return _BoundedUnpickler(raw, budget=2 * len(raw) + (1 << 20)).load()
    except _Budget as e:
        raise DataError(f"{source.show(path)} is not a CIFAR-10 python batch file: {e}") from None
    except RecursionError:
        raise DataError(f"{source.show(path)} is not a CIFAR-10 python batch file (nested too deeply)") from None
    except Exception as e:  # noqa: BLE001 - any unpickling failure means "not a CIFAR-10 batch file"
        raise DataError(f"{source.show(path)} is not a CIFAR-10 python batch file (unpickling failed: "
                        f"{plain(e, 200)})") from None


def _get(d: dict, key: str) -> Any:
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    return None


def _read_batch(path: Path, source: _Source | None = None) -> tuple[np.ndarray, np.ndarray]:
    source = source or _Source()
    d = _read_pickle(path, source, MAX_BATCH_FILE)
    shown = source.show(path)
    if not isinstance(d, dict):
        raise DataError(f"{shown}: expected a dict with b'data' and b'labels', got {type(d).__name__}")
    data, labels = _get(d, "data"), _get(d, "labels")
    if data is None or labels is None:
        missing = [k for k, v in (("data", data), ("labels", labels)) if v is None]
        raise DataError(f"{shown}: the batch has no {' or '.join(repr(m) for m in missing)} entry")
    if not isinstance(data, np.ndarray):
        raise DataError(f"{shown}: b'data' must be a uint8 array of shape (N, 3072), got {type(data).__name__}")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{shown}: b'data' must be uint8 of shape (N, 3072), got {data.dtype} {data.shape}")
    if data.shape[0] > CIFAR_BATCH_IMAGES:
        raise DataError(f"{shown}: {data.shape[0]:,} images; a CIFAR-10 batch holds {CIFAR_BATCH_IMAGES:,}")
    if not isinstance(labels, (list, tuple, np.ndarray)):
        raise DataError(f"{shown}: b'labels' must be a list of integers")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{shown}: b'labels' must be a list of integers") from None
    if labels.shape != (data.shape[0],):
        raise DataError(f"{shown}: {data.shape[0]} images but {labels.size} labels")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{shown}: labels must be 0–9, found {labels.min()}…{labels.max()}")
    return data, labels


def find_cifar_folder(path: str | Path, source: _Source | None = None) -> Path:
    """The cifar-10-batches-py folder at `path` (or inside it), or DataError saying what is wrong."""
    source = source or _Source()
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"no such folder: {source.show(p)}")
    if not p.is_dir():
        raise DataError(f"{source.show(p)} is a file; point to the {CIFAR_FOLDER} folder of the CIFAR-10 python version")
    if not (p / CIFAR_TEST_FILE).exists() and (p / CIFAR_FOLDER).is_dir():
        p = p / CIFAR_FOLDER
    needed = (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE, CIFAR_META_FILE)
    missing = [f for f in needed if not (p / f).is_file()]
    if len(missing) == len(needed):
        raise DataError(f"{source.show(p)} is not a CIFAR-10 folder: expected {CIFAR_FOLDER} with data_batch_1…5, "
                        f"test_batch and batches.meta (the python version)")
    if missing:
        raise DataError(f"{source.show(p)}: the CIFAR-10 folder is incomplete, missing {', '.join(missing)}")
    return p


def read_cifar10(path: str | Path, root: str | Path | None = None) -> CifarArrays:
    """The arrays of the CIFAR-10 folder at `path` (or inside it). With `root` (a server's data folder),
    every file is read only where it really lies below `root` (checked on the opened file), and messages
    name files relative to it, never by their server path. DataError names the missing or broken file."""
    source = _Source(root)
    folder = find_cifar_folder(path, source)
    meta = _read_pickle(folder / CIFAR_META_FILE, source, MAX_META_FILE)
    names = _get(meta, "label_names") if isinstance(meta, dict) else None
    if not isinstance(names, (list, tuple)) or len(names) != 10 or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(f"{source.show(folder / CIFAR_META_FILE)}: expected b'label_names', a list of the 10 class names")
    classes = tuple(plain(n.decode("utf-8", "replace") if isinstance(n, bytes) else n, 40) for n in names)
    parts = [_read_batch(folder / f, source) for f in CIFAR_TRAIN_FILES]
    train_x = np.concatenate([d for d, _ in parts])
    train_y = np.concatenate([lab for _, lab in parts])
    test_x, test_y = _read_batch(folder / CIFAR_TEST_FILE, source)
    if len(train_y) == 0 or len(test_y) == 0:
        raise DataError(f"{source.show(folder)}: the train or test batches hold no images")
    return CifarArrays(train_x, train_y, test_x, test_y, classes, f"CIFAR-10 from {source.show(folder)}")


# --------------------------------------------------------------------------------------------

def cifar_below(root: str | Path, name: str) -> Path:
    """The CIFAR-10 folder `name` (relative) inside the data folder `root`, or DataError(NOT_OFFERED).

    One message for every refusal: a path outside `root` (absolute, '..', or a symlink out), one that
    does not exist, a file, or a folder that is not CIFAR-10, so a visitor cannot probe the server's disk.
    The files inside are checked again, each where it really is, when they are read (`read_cifar10` with
    `root`).
    """
    try:
        base = Path(root).resolve(strict=True)
        text = str(name).strip()
        if not text or "\0" in text or len(text) > 1024:
            raise DataError(NOT_OFFERED)
        target = (base / text).resolve(strict=True)  # symlinks followed, then checked
        if target != base and base not in target.parents:
            raise DataError(NOT_OFFERED)
        folder = find_cifar_folder(target)
        real = folder.resolve(strict=True)
        if real != base and base not in real.parents:
            raise DataError(NOT_OFFERED)
        return real
    except (OSError, ValueError, RuntimeError, DataError):
        raise DataError(NOT_OFFERED) from None
