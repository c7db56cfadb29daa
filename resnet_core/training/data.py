"""Small offline data sets as tensors, prepared for a network's input: digits, synthetic shapes, CIFAR-10.

Nothing is downloaded. Every loader returns a `Dataset`: normalised float32 images (N, C, H, W) for a
train split and a held-out split, integer labels, the class names, and the input shape the images were
prepared for. `adapt_images` fits images to a spec's `in_channels` and `input_size` (replicate grey to
C channels, average colour to one channel; resize or pad to H×W).

- digits: the 1,797 8×8 handwritten digits of assets/digits.npz (grey levels 0–16), split by a seeded
  permutation (stratified, so every class is in both splits in the same proportion).
- synthetic: a seeded, procedurally drawn 10-class set (stripes, rings, crosses, checkers, ...) with
  random position, size, colours and noise; any size, drawn directly at the requested H×W.
- cifar10: a local `cifar-10-batches-py` folder in its standard python-pickle layout, validated file by
  file (`DataError` names the missing or broken file). Its pickles are read with an unpickler that
  accepts only the numpy array types the real files use, so a planted pickle cannot run code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from resnet_core import i18n
from resnet_core.errors import DataError
from resnet_core.i18n import N_, _
from resnet_core.paths import ASSETS
from resnet_core.training.cifar import (  # noqa: F401 - the CIFAR-10 names, where callers have always found them
    CIFAR_CLASSES,
    CIFAR_FOLDER,
    CIFAR_META_FILE,
    CIFAR_TEST_FILE,
    CIFAR_TRAIN_FILES,
    NOT_OFFERED,
    cifar_below,
    find_cifar_folder,
    read_cifar10,
)

DIGITS_PATH = ASSETS / "digits.npz"

DIGIT_CLASSES = tuple(str(i) for i in range(10))
SYNTHETIC_CLASSES = ("horizontal stripes", "vertical stripes", "diagonal stripes", "disc", "ring",
                     "square outline", "cross", "checkerboard", "two blobs", "triangle")

@dataclass(frozen=True)
class Dataset:
    """Images prepared for one input shape, split into train and held-out parts."""

    name: str  # "digits", "synthetic", "cifar10"
    x_train: torch.Tensor = field(repr=False)  # (N, C, H, W) float32, normalised with mean/std below
    y_train: torch.Tensor = field(repr=False)  # (N,) int64 class indices
    x_test: torch.Tensor = field(repr=False)  # (M, C, H, W) float32: the held-out split
    y_test: torch.Tensor = field(repr=False)  # (M,) int64
    classes: tuple[str, ...]  # class names, index = label
    input_shape: tuple[int, int, int]  # (C, H, W) the images were prepared for
    mean: tuple[float, ...]  # per-channel mean subtracted (measured on the train split)
    std: tuple[float, ...]  # per-channel std divided by
    source: str  # where the images came from, for the app and the CLI
    x_val: torch.Tensor | None = field(default=None, repr=False)  # (V, C, H, W): a validation split held out of
    y_val: torch.Tensor | None = field(default=None, repr=False)  # the train images (He et al.'s 45k/5k), or None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def n_train(self) -> int:
        return int(self.y_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.y_test.shape[0])

    @property
    def n_val(self) -> int:
        return 0 if self.y_val is None else int(self.y_val.shape[0])

    @property
    def nbytes(self) -> int:
        parts = (self.x_train, self.y_train, self.x_test, self.y_test, self.x_val, self.y_val)
        return sum(t.numel() * t.element_size() for t in parts if t is not None)

    def describe(self) -> str:
        c, h, w = self.input_shape
        val = f" / {self.n_val:,} validation" if self.n_val else ""
        return (f"{self.name}: {self.n_train:,} train{val} / {self.n_test:,} held-out images, {c}×{h}×{w}, "
                f"{self.num_classes} classes ({self.source})")

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images back to [0, 1] for display. (N, C, H, W) → same."""
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x * std + mean).clamp(0, 1)


_DESCRIBED = re.compile(r"(?P<name>[\w.-]+): (?P<train>[\d,]+) train(?: / (?P<val>[\d,]+) validation)? / "
                        r"(?P<test>[\d,]+) held-out images, (?P<shape>\S+), (?P<classes>\d+) classes \((?P<source>.*)\)",
                        re.S)
DIGITS_SOURCE = N_("UCI handwritten digits, 8×8, assets/digits.npz")
_FOLDERS = (N_("the data folder"), N_("a file outside the data folder"))  # how cifar.py names a CIFAR-10 folder


def _shown_source(source: str) -> str:
    if source == DIGITS_SOURCE:
        return _(DIGITS_SOURCE)
    if m := re.fullmatch(r"procedural shapes, seed (\d+)", source):
        return _("procedural shapes, seed {seed}", seed=m.group(1))
    if m := re.fullmatch(r"CIFAR-10 from (.*)", source, re.S):
        folder = m.group(1)
        if folder in _FOLDERS:
            folder = _(folder)
        elif folder.startswith("data folder/"):
            folder = _("data folder/{path}", path=folder.removeprefix("data folder/"))
        return _("CIFAR-10 from {folder}", folder=folder)
    return source


def shown(described: str) -> str:
    """A data set's description (Dataset.describe(), as a run keeps it: English) in this run's language, for the
    page that shows it; a text of another form comes back as it is."""
    if i18n.language() == i18n.DEFAULT:
        return described
    m = _DESCRIBED.fullmatch(described)
    if m is None:
        return described
    fields = {k: m.group(k) for k in ("name", "train", "test", "shape", "classes")}
    fields["source"] = _shown_source(m.group("source"))
    if m.group("val"):
        return _("{name}: {train} train / {val} validation / {test} held-out images, {shape}, {classes} classes "
                 "({source})", val=m.group("val"), **fields)
    return _("{name}: {train} train / {test} held-out images, {shape}, {classes} classes ({source})", **fields)


# --------------------------------------------------------------------------------------------
# input adaptation
# --------------------------------------------------------------------------------------------

def _size2(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))


def adapt_images(x: torch.Tensor, in_channels: int, input_size: int | Sequence[int],
                 mode: str = "resize") -> torch.Tensor:
    """Fit images (N, C, H, W) in [0, 1] to `in_channels` and `input_size` (H, W).

    Channels: grey (1) is replicated to C; colour to 1 channel is the mean of the channels; any other
    mismatch cycles the source channels. Size: mode "resize" resamples bilinearly (antialiased when
    shrinking); "pad" centres the image on a zero canvas (and resizes only if it is larger than H×W).
    """
    if x.dim() != 4:
        raise DataError(f"expected images as (N, C, H, W), got shape {tuple(x.shape)}")
    if in_channels < 1:
        raise DataError(f"in_channels must be at least 1, got {in_channels}")
    h, w = _size2(input_size)
    if h < 1 or w < 1:
        raise DataError(f"input size must be at least 1×1, got {h}×{w}")
    if mode not in ("resize", "pad"):
        raise DataError(f"unknown size mode {mode!r}; use resize or pad")
    x = x.float()
    c = x.shape[1]
    if c != in_channels:
        if c == 1:
            x = x.expand(-1, in_channels, -1, -1)
        elif in_channels == 1:
            x = x.mean(dim=1, keepdim=True)
        else:
            x = x[:, [i % c for i in range(in_channels)]]
    sh, sw = x.shape[2], x.shape[3]
    if (sh, sw) != (h, w):
        if mode == "pad" and sh <= h and sw <= w:
            top, left = (h - sh) // 2, (w - sw) // 2
            x = F.pad(x, (left, w - sw - left, top, h - sh - top))
        else:
            shrink = h < sh or w < sw
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=shrink)
            x = x.clamp(0, 1)
    return x.contiguous()  # (N, in_channels, H, W)


def _normalise(x_train: torch.Tensor, x_test: torch.Tensor):
    mean = x_train.mean(dim=(0, 2, 3))
    std = x_train.std(dim=(0, 2, 3)).clamp_min(1e-3)
    m, s = mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)
    return ((x_train - m) / s, (x_test - m) / s, tuple(float(v) for v in mean), tuple(float(v) for v in std))


def _stratified_split(labels: np.ndarray, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out indices: each class split by the same fraction, in a seeded order."""
    if not 0 < holdout < 1:
        raise DataError(f"the held-out fraction must be between 0 and 1, got {holdout}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        k = max(1, int(round(len(idx) * holdout)))
        test.append(idx[:k])
        train.append(idx[k:])
    train_idx, test_idx = np.concatenate(train), np.concatenate(test)
    return train_idx[rng.permutation(len(train_idx))], test_idx[rng.permutation(len(test_idx))]


def make_dataset(name: str, x01: torch.Tensor, labels: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray,
                 classes: tuple[str, ...], in_channels: int, input_size, mode: str, source: str) -> Dataset:
    x = adapt_images(x01, in_channels, input_size, mode)
    y = torch.as_tensor(labels.astype(np.int64))
    tr, te = torch.as_tensor(train_idx), torch.as_tensor(test_idx)
    x_train, x_test, mean, std = _normalise(x[tr], x[te])
    return Dataset(name, x_train.contiguous(), y[tr].contiguous(), x_test.contiguous(), y[te].contiguous(),
                   classes, (in_channels, *_size2(input_size)), mean, std, source)


# --------------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------------

def load_digits(input_size: int | Sequence[int] = (16, 16), in_channels: int = 1, holdout: float = 0.2,
                seed: int = 0, mode: str = "resize", path: str | Path | None = None) -> Dataset:
    """The 1,797 8×8 digits, resized (or padded, mode="pad") to `input_size`, replicated to `in_channels`."""
    p = Path(path) if path is not None else DIGITS_PATH
    if not p.is_file():
        raise DataError(f"the digits file {p} is missing (it ships with the project in assets/)")
    try:
        with np.load(p, allow_pickle=False) as z:
            images, labels = np.asarray(z["images"]), np.asarray(z["labels"])
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"cannot read the digits file {p}: {e}") from None
    if images.ndim != 3 or images.shape[0] != labels.shape[0]:
        raise DataError(f"{p}: expected images (N, 8, 8) and labels (N,), got {images.shape} and {labels.shape}")
    x = torch.as_tensor(images.astype(np.float32) / 16.0).unsqueeze(1)  # (N, 1, 8, 8) in [0, 1]
    train_idx, test_idx = _stratified_split(labels, holdout, seed)
    return make_dataset("digits", x, labels, train_idx, test_idx, DIGIT_CLASSES, in_channels, input_size, mode,
                   DIGITS_SOURCE)


# --------------------------------------------------------------------------------------------
# synthetic shapes
# --------------------------------------------------------------------------------------------

def _mask(c: int, rx: torch.Tensor, ry: torch.Tensor, r: torch.Tensor, freq: torch.Tensor, phase: torch.Tensor,
          soft: float) -> torch.Tensor:
    """Class c's figure in [0, 1] on rotated, centred coordinates rx, ry (n, H, W); r its size (n, 1, 1)."""
    def inside(v: torch.Tensor) -> torch.Tensor:  # a smooth step: 1 where v < 0, 0 outside, ~1 pixel wide
        return torch.sigmoid(-v / soft)

    def waves(t: torch.Tensor) -> torch.Tensor:
        return torch.sin(freq * math.pi * t + phase)

    dist = torch.sqrt(rx ** 2 + ry ** 2)
    if c == 0:  # horizontal stripes
        return 0.5 + 0.5 * torch.tanh(3 * waves(ry))
    if c == 1:  # vertical stripes
        return 0.5 + 0.5 * torch.tanh(3 * waves(rx))
    if c == 2:  # diagonal stripes
        return 0.5 + 0.5 * torch.tanh(3 * waves((rx + ry) * 0.7071))
    if c == 3:  # disc
        return inside(dist - r)
    if c == 4:  # ring
        return inside((dist - r).abs() - 0.3 * r)
    if c == 5:  # square outline
        return inside((torch.maximum(rx.abs(), ry.abs()) - r).abs() - 0.25 * r)
    if c == 6:  # cross
        t = 0.18 * r
        return torch.maximum(inside(rx.abs() - t) * inside(ry.abs() - r), inside(ry.abs() - t) * inside(rx.abs() - r))
    if c == 7:  # checkerboard
        return 0.5 + 0.5 * torch.tanh(3 * waves(rx) * torch.sin(freq * math.pi * ry + phase))
    if c == 8:  # two blobs side by side
        return torch.maximum(inside(torch.sqrt((rx - 0.5 * r) ** 2 + ry ** 2) - 0.45 * r),
                             inside(torch.sqrt((rx + 0.5 * r) ** 2 + ry ** 2) - 0.45 * r))
    # 9: an upward triangle, inside three half-planes
    return inside(torch.maximum(torch.maximum(-ry - 0.5 * r, 0.866 * rx + 0.5 * ry - 0.5 * r),
                                -0.866 * rx + 0.5 * ry - 0.5 * r))


def _draw(labels: torch.Tensor, h: int, w: int, gen: torch.Generator) -> torch.Tensor:
    """One grey figure per label in [0, 1], drawn at h×w with random placement, size and angle. (N, H, W)."""
    n = labels.shape[0]

    def u(lo: float, hi: float) -> torch.Tensor:
        return (lo + (hi - lo) * torch.rand(n, generator=gen)).view(n, 1, 1)

    cx, cy = u(-0.35, 0.35), u(-0.35, 0.35)  # centre
    r = u(0.3, 0.6)  # size of the figure
    ang = u(-0.35, 0.35)  # a small rotation (radians)
    freq = u(2.0, 3.5)  # stripes per unit length
    phase = u(0.0, 2 * math.pi)
    ys = torch.linspace(-1, 1, h).view(1, h, 1)
    xs = torch.linspace(-1, 1, w).view(1, 1, w)
    soft = 4.0 / min(h, w)
    out = torch.empty(n, h, w)
    for c in range(10):
        sel = (labels == c).nonzero().flatten()
        if len(sel) == 0:
            continue
        dx, dy = xs - cx[sel], ys - cy[sel]
        ca, sa = torch.cos(ang[sel]), torch.sin(ang[sel])
        rx, ry = ca * dx + sa * dy, -sa * dx + ca * dy  # (k, H, W) rotated about the centre
        out[sel] = _mask(c, rx, ry, r[sel], freq[sel], phase[sel], soft).expand(len(sel), h, w)
    return out


def make_synthetic(n: int = 3000, input_size: int | Sequence[int] = (16, 16), in_channels: int = 3,
                   holdout: float = 0.2, seed: int = 0, noise: float = 0.15) -> Dataset:
    """`n` procedurally drawn images of 10 classes (balanced), at any size; the same seed, the same images.

    Each image is a figure (mask m in [0, 1]) painted with a random foreground colour over a random
    background colour at least 0.3 apart, plus Gaussian noise: colour says nothing about the class.
    """
    if n < 20:
        raise DataError(f"the synthetic set needs at least 20 images (2 per class), got {n}")
    h, w = _size2(input_size)
    if h < 4 or w < 4:
        raise DataError(f"the synthetic set is drawn at 4×4 or larger, got {h}×{w}")
    gen = torch.Generator().manual_seed(int(seed))
    labels = torch.arange(n) % 10
    labels = labels[torch.randperm(n, generator=gen)]
    mask = _draw(labels, h, w, gen).unsqueeze(1)  # (N, 1, H, W)
    bg = torch.rand(n, in_channels, 1, 1, generator=gen)
    contrast = (0.3 + 0.5 * torch.rand(n, 1, 1, 1, generator=gen))
    sign = torch.where(torch.rand(n, 1, 1, 1, generator=gen) < 0.5, -1.0, 1.0)
    tint = 0.15 * torch.randn(n, in_channels, 1, 1, generator=gen)
    fg = bg + sign * contrast + tint
    x = bg + (fg - bg) * mask + noise * torch.randn(n, in_channels, h, w, generator=gen)
    x = x.clamp(0, 1)  # (N, C, H, W) in [0, 1]
    labels_np = labels.numpy()
    train_idx, test_idx = _stratified_split(labels_np, holdout, seed)
    return make_dataset("synthetic", x, labels_np, train_idx, test_idx, SYNTHETIC_CLASSES, in_channels, (h, w),
                   "resize", f"procedural shapes, seed {seed}")


# --------------------------------------------------------------------------------------------
# CIFAR-10 from a local folder (read and checked by training/cifar.py)
# --------------------------------------------------------------------------------------------

def _subset(n: int, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=limit, replace=False))


def load_cifar10(path: str | Path, input_size: int | Sequence[int] = (32, 32), in_channels: int = 3,
                 max_train: int | None = None, max_test: int | None = None, seed: int = 0,
                 val_fraction: float = 0.0, root: str | Path | None = None) -> Dataset:
    """CIFAR-10 from a local folder: data_batch_1…5 are the train split, test_batch the held-out one.

    With `root` (a server's data folder), every file is read only where it really lies below `root`
    (checked on the opened file), and messages name files relative to it, never by their server path.

    `max_train`/`max_test` take a seeded subset (for short CPU runs). `val_fraction` holds that fraction of
    the train images out as a validation split (He et al.: 0.1, 45k/5k), chosen by a seeded permutation,
    before any `max_train` subset. Raises DataError naming the missing or broken file.
    """
    arrays = read_cifar10(path, root)
    train_x, train_y, test_x, test_y = arrays.train_x, arrays.train_y, arrays.test_x, arrays.test_y
    rng = np.random.default_rng(seed)
    if not 0 <= val_fraction < 1:
        raise DataError(f"the validation fraction must be in [0, 1), got {val_fraction}")
    val_split = min(len(train_y) - 1, int(round(val_fraction * len(train_y))))
    pool = np.arange(len(train_y))
    va = np.empty(0, dtype=np.int64)
    if val_split:
        perm = rng.permutation(len(train_y))
        va, pool = np.sort(perm[:val_split]), np.sort(perm[val_split:])
    tr = pool[_subset(len(pool), max_train, rng)]
    te = _subset(len(test_y), max_test, rng)
    x = np.concatenate([train_x[tr], test_x[te]])  # (N, 3072): 1024 red, 1024 green, 1024 blue, row-major
    labels = np.concatenate([train_y[tr], test_y[te]])
    x01 = torch.as_tensor(x).view(-1, 3, 32, 32).float() / 255.0
    train_idx, test_idx = np.arange(len(tr)), np.arange(len(tr), len(tr) + len(te))
    ds = make_dataset("cifar10", x01, labels, train_idx, test_idx, arrays.classes, in_channels, input_size, "resize",
                      arrays.source)
    if not val_split:
        return ds
    xv = adapt_images(torch.as_tensor(train_x[va]).view(-1, 3, 32, 32).float() / 255.0, in_channels, input_size)
    m = torch.tensor(ds.mean).view(1, -1, 1, 1)
    sd = torch.tensor(ds.std).view(1, -1, 1, 1)
    return replace(ds, x_val=((xv - m) / sd).contiguous(), y_val=torch.as_tensor(train_y[va].astype(np.int64)))



# --------------------------------------------------------------------------------------------
# one entry point
# --------------------------------------------------------------------------------------------

def load_data(source: str, input_size: int | Sequence[int] = (16, 16), in_channels: int = 3, seed: int = 0,
              root: str | Path | None = None, **options: Any) -> Dataset:
    """'digits', 'synthetic' or 'cifar:PATH' (or 'cifar10:PATH'), prepared for in_channels × input_size.

    With `root` (a server's data folder) PATH is a name below it (`cifar_below`), and nothing outside it
    is read. `options` go to the loader (holdout, n, max_train, max_test, mode). DataError for an unknown
    source.
    """
    text = source.strip()
    kind, _sep, arg = text.partition(":")
    kind = kind.lower()
    if kind == "digits" and not arg:
        return load_digits(input_size, in_channels, seed=seed, **options)
    if kind == "synthetic" and not arg:
        return make_synthetic(input_size=input_size, in_channels=in_channels, seed=seed, **options)
    if kind in ("cifar", "cifar10"):
        if not arg:
            raise DataError("give the CIFAR-10 folder as cifar:PATH (the cifar-10-batches-py folder)")
        if root is not None:
            return load_cifar10(cifar_below(root, arg), input_size, in_channels, seed=seed, root=root, **options)
        return load_cifar10(arg, input_size, in_channels, seed=seed, **options)
    raise DataError(f"unknown data {source!r}; use digits, synthetic or cifar:PATH")

