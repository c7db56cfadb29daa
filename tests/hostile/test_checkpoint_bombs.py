"""Bounded before allocated: checkpoints whose few kilobytes describe billions of elements.

Each crafted file is loaded in a child process whose address space is capped (RLIMIT_AS), so a loader
that allocates what the file declares fails there instead of taking the test run down; the loader must
refuse every one with a CheckpointError that names the limit and the value.
"""

import collections
import io
import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

BUDGET_GIB = 3  # the child's whole address space: torch itself and any checkpoint it is handed

WORKER = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]) << 30,) * 2)
import torch
from torch import nn
from resnet_core.lab.weights import CheckpointError, load_checkpoint
out = {}
for path in sys.argv[2:]:
    model = nn.Linear(3, 2)
    try:
        load_checkpoint(model, path, strict=False)
        out[path] = ["loaded", ""]
    except CheckpointError as e:
        out[path] = ["refused", str(e)]
    except BaseException as e:  # what the loader let through: an allocation, a crash
        out[path] = ["error", f"{type(e).__name__}: {str(e)[:200]}"]
print(json.dumps(out))
"""


class _Storage:
    def __init__(self, numel: int, kind: str = "FloatStorage", location: str = "cpu", key: str = "0"):
        self.numel, self.kind, self.location, self.key = numel, kind, location, key


class _Tensor:
    def __init__(self, storage: _Storage, size, stride, offset: int = 0):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, self.args


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", getattr(torch, obj.kind), obj.key, obj.location, obj.numel)
        return None


def craft_zip(path: Path, state: dict, records: dict[str, bytes], compress: bool = False) -> Path:
    """A torch.save-style zip: archive/data.pkl (the index, written by hand) and archive/data/<key>."""
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(state)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        for key, data in records.items():
            z.writestr(zipfile.ZipInfo(f"archive/data/{key}"), data,
                       compress_type=zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED)
        z.writestr("archive/version", "3\n")
    return path


def cases(tmp: Path) -> dict[str, tuple[Path, tuple[str, ...]]]:
    c: dict[str, tuple[Path, tuple[str, ...]]] = {}
    one = _Storage(1)
    c["stride-0 view of one float as 10^10"] = (
        craft_zip(tmp / "stride0.pt", {"weight": _Tensor(one, (100_000, 100_000), (0, 0))}, {"0": b"\0" * 4}),
        ("10,000,000,000", "stride-0"))
    torch.save({"weight": torch.zeros(1).expand(50_000, 50_000)}, tmp / "expand.pt")  # torch.save keeps the view
    c["torch.save of an expanded tensor"] = (tmp / "expand.pt", ("2,500,000,000", "stride-0"))
    c["huge storage, 4-byte record"] = (
        craft_zip(tmp / "huge.pt", {"weight": _Tensor(_Storage(10**11), (10**11,), (1,))}, {"0": b"\0" * 4}),
        ("limit", "GiB"))
    c["storage larger than its record"] = (
        craft_zip(tmp / "short.pt", {"weight": _Tensor(_Storage(10**8), (10**8,), (1,))}, {"0": b"\0" * 4}),
        ("100,000,000 elements", "record holds 4 bytes"))
    c["view past the end of its storage"] = (
        craft_zip(tmp / "past.pt", {"weight": _Tensor(_Storage(4), (2, 3), (3, 1), offset=2)}, {"0": b"\0" * 16}),
        ("reaches element", "holding 4"))
    zeros = b"\0" * (64 << 20)
    c["compressed storage (64 MiB of zeros in ~64 KB)"] = (
        craft_zip(tmp / "deflate.pt", {"weight": _Tensor(_Storage(16 << 20), (16 << 20,), (1,))}, {"0": zeros},
                  compress=True), ("compressed", "64.0 MiB"))
    torch.save({"weight": torch.empty(100_000, 100_000, device="meta")}, tmp / "meta.pt")
    c["meta-device tensor"] = (tmp / "meta.pt", ("meta",))
    i = torch.tensor([[0, 99_999], [0, 99_999]])
    torch.save({"weight": torch.sparse_coo_tensor(i, torch.ones(2), (100_000, 100_000))}, tmp / "sparse.pt")
    c["sparse tensor"] = (tmp / "sparse.pt", ("sparse",))
    many = {f"w{k}": _Tensor(_Storage(1, key=str(k)), (1,), (1,)) for k in range(3)}
    many["weight"] = _Tensor(_Storage(600 << 20, key="big"), (600 << 20,), (1,))  # 2.3 GiB declared
    many["bias"] = _Tensor(_Storage(1, kind="DoubleStorage", key="b"), (1,), (1,))
    c["storages over the total"] = (
        craft_zip(tmp / "total.pt", many, {"0": b"\0" * 4, "1": b"\0" * 4, "2": b"\0" * 4, "b": b"\0" * 8}),
        ("limit", "2.0 GiB"))
    legacy = tmp / "legacy.pt"
    torch.save({"weight": torch.zeros(2, 3)}, legacy, _use_new_zipfile_serialization=False)
    raw = bytearray(legacy.read_bytes())
    # the legacy index declares the storage's 6 elements; make it declare 10^11 (BININT1 6 → LONG)
    at = raw.index(b"K\x06N")  # the numel in ('storage', FloatStorage, key, 'cpu', 6, None)
    (tmp / "legacy_huge.pt").write_bytes(bytes(raw[:at]) + b"\x8a\x05\x00\xe8vH\x17" + bytes(raw[at + 2:]))
    c["legacy file declaring 10^11 elements"] = (tmp / "legacy_huge.pt", ("limit",))
    return c


@pytest.mark.slow  # a worker process under a memory cap
def test_crafted_checkpoints_are_refused_from_their_records_within_a_memory_cap(tmp_path):
    found = cases(tmp_path)
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", WORKER, str(BUDGET_GIB), *[str(p) for p, _ in found.values()]],
                         capture_output=True, text=True, timeout=300, cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    bad = []
    for what, (path, words) in found.items():
        status, message = results[str(path)]
        if status != "refused" or not all(w in message for w in words):
            bad.append(f"{what}: {status}: {message[:300]}")
    assert not bad, "\n".join(bad)


def test_a_real_checkpoint_still_loads_after_the_scan(tmp_path):
    from torch import nn

    from resnet_core.lab.weights import load_checkpoint
    model = nn.Linear(3, 2)
    torch.save(model.state_dict(), tmp_path / "ok.pt")
    torch.save(model.state_dict(), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    for name in ("ok.pt", "legacy.pt"):
        fresh = nn.Linear(3, 2)
        assert load_checkpoint(fresh, tmp_path / name).complete
        assert torch.equal(fresh.weight, model.weight)


@pytest.mark.parametrize("payload", ["os.system", "builtins.eval", "torch.load"])
def test_a_checkpoint_with_code_is_refused_before_anything_runs(payload, tmp_path):
    from resnet_core.lab.weights import CheckpointError, read_checkpoint
    module, name = payload.rsplit(".", 1)

    class Evil:
        def __reduce__(self):
            import importlib
            return getattr(importlib.import_module(module), name), ("touch PWNED",)

    buf = io.BytesIO()
    pickle.dump({"weight": Evil()}, buf, protocol=2)
    with zipfile.ZipFile(tmp_path / "evil.pt", "w") as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/version", "3\n")
    with pytest.raises(CheckpointError, match="Python objects besides tensors"):
        read_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "PWNED").exists()
