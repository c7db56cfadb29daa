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

import dataclasses
import hashlib
import io
import math
import os
import pickle
import re
import threading
import uuid
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import Request, urlopen

import torch
from torch import nn

from resnet_core.errors import ExplorerError
from resnet_core.i18n import N_, _
from resnet_core.lab.checkpoint_scan import CheckpointError, check_loaded, head_bytes, scan_checkpoint, sniff_checkpoint
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

    def lines(self, limit: int = 12) -> list[str]:
        """Human-readable lines: a summary, then each problem by name (at most `limit` per kind)."""
        out = [_("{source}: {matched} of {total} model tensors found with the right shape", source=self.source,
                 matched=self.matched, total=self.total_model_keys)
               + (_("; {n} loaded", n=len(self.loaded)) if self.loaded else _("; nothing loaded"))]
        if self.wrapper:
            out.append(_("the tensors were read from the checkpoint's '{entry}' entry", entry=self.wrapper))
        if self.stripped_prefix:
            out.append(_("the '{prefix}' prefix (DataParallel) was removed from the keys", prefix=self.stripped_prefix))

        def listed(title: str, items: Sequence[Any]) -> None:
            if not items:
                return
            out.append(f"{_(title)} ({len(items)}):")
            out.extend(f"  {item}" for item in items[:limit])
            if len(items) > limit:
                out.append(_("  … and {n} more", n=len(items) - limit))

        listed(N_("missing from the checkpoint"), self.missing)
        listed(N_("in the checkpoint but not in this network"), self.unexpected)
        listed(N_("shape mismatches"), self.mismatched)
        listed(N_("tensors holding NaN or Inf"), self.nonfinite)
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
        super().__init__(_("the checkpoint does not fit this network; nothing was loaded (load non-strict to take "
                           "the matching tensors only)") + "\n" + "\n".join(report.lines()))


def read_checkpoint(source: str | os.PathLike | bytes | bytearray | memoryview,
                    max_bytes: int = MAX_CHECKPOINT_BYTES) -> tuple[dict[str, torch.Tensor], str, str | None]:
    """Read a checkpoint safely: (state_dict on the CPU, a label for messages, the wrapper key or None)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = _("the uploaded checkpoint")
        if not data:
            raise CheckpointError(_("{label} is empty (0 bytes)", label=label))
        if len(data) > max_bytes:
            raise CheckpointError(_("{label} is {size} MB; the limit is {limit} MB", label=label,
                                    size=f"{len(data) / 2**20:.0f}", limit=f"{max_bytes / 2**20:.0f}"))
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
            raise CheckpointError(_("{label} is empty (0 bytes)", label=label))
        if size > max_bytes:
            raise CheckpointError(f"{label} is {size / 2**20:.0f} MB; the limit is {max_bytes / 2**20:.0f} MB")
        stream = path
    head = data[:16] if isinstance(source, (bytes, bytearray, memoryview)) else head_bytes(path)
    kind = sniff_checkpoint(head)
    if kind is None:
        what = _("a plain Python pickle, not a file written by torch.save") if head[:1] == b"\x80" else \
            _("neither torch.save's zip format nor its legacy format")
        raise CheckpointError(_("{label} is not a PyTorch checkpoint: it is {what}", label=label, what=what))
    scan_checkpoint(data if isinstance(source, (bytes, bytearray, memoryview)) else path, label, kind)
    try:
        obj = torch.load(stream, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        detail = _("e.g. {name}", name=found.group(1)) if found else (text.strip().splitlines() or ["refused"])[-1][:120]
        raise CheckpointError(_(
            "{label} holds Python objects besides tensors ({detail}), which safe loading (weights_only=True) "
            "refuses; save just the weights: torch.save(model.state_dict(), path)", label=label, detail=detail)) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, AttributeError, KeyError,
            IndexError, TypeError) as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(_("{label} is not a PyTorch checkpoint, or it is damaged (torch.load could not read "
                                "it: {reason})", label=label, reason=text[:160])) from None
    state, wrapper = _find_state_dict(obj, label)
    check_loaded(state, label)
    return state, label, wrapper


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
            raise CheckpointError(_("{label} is an empty dictionary: it holds no tensors", label=label))
        if not tensors:
            raise CheckpointError(_("{label} holds no tensors under a key this loader knows (top-level keys: {keys}); "
                                    "expected a state_dict, or one under 'state_dict' or 'model'", label=label, keys=keys))
        return tensors, None
    what = type(obj).__name__
    if isinstance(obj, torch.Tensor):
        what = _("a single tensor of shape {shape}", shape=tuple(obj.shape))
    raise CheckpointError(_("{label} holds {what}, not a state_dict (a mapping from names to tensors)", label=label,
                            what=what))


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
        raise CheckpointError(_("{label}: none of its {n} tensors matches this network by name and shape (its keys "
                                "look like {sample}); is it a checkpoint for another architecture?", label=label,
                                n=len(state), sample=sample))
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
        raise WeightsUnavailable(_("there are no published ImageNet weights for '{name}'; torchvision publishes them "
                                   "for {names}. Use random initialisation or a local file", name=name,
                                   names=", ".join(TORCHVISION_WEIGHTS)))
    variants = TORCHVISION_WEIGHTS[name]
    if variant not in variants:
        raise WeightsUnavailable(_("'{name}' has no {variant} weights; it has {variants}", name=name, variant=variant,
                                   variants=", ".join(variants)))
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
    advice = _("The explorer works without it: use random initialisation, or download {file} on a connected "
               "machine ({url}) and load it as a local checkpoint file, or put it in {folder}", file=filename, url=url,
               folder=folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WeightsUnavailable(_("could not create the weights cache {folder}: {error}. {advice}", folder=folder,
                                   error=e.strerror or e, advice=advice)) from None
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
            raise WeightsUnavailable(_("the download of {file} stopped after {done} of {total} bytes. {advice}",
                                       file=filename, done=format(done, ","), total=format(total_n, ","),
                                       advice=advice))
    except WeightsUnavailable:
        partial.unlink(missing_ok=True)
        raise
    except (URLError, TimeoutError, OSError, ValueError) as e:
        partial.unlink(missing_ok=True)
        reason = getattr(e, "reason", None) or e
        raise WeightsUnavailable(_("could not download the ImageNet weights for {name} from {url} (no network? "
                                   "{reason}). {advice}", name=name, url=url, reason=reason, advice=advice)) from None
    expected = _expected_hash(url)
    got = digest.hexdigest()
    if expected and not got.startswith(expected):
        partial.unlink(missing_ok=True)
        raise WeightsUnavailable(_("the downloaded {file} is corrupt (its SHA-256 starts {got}, expected {expected}); "
                                   "it was deleted. Try again later. {advice}", file=filename, got=got[:8],
                                   expected=expected, advice=advice))
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
