"""Image input for the live lab: sample images, uploads, seeded noise, and back to pixels for display.

Every input ends as a float32 tensor (1, C, H, W) for a network whose input is C×H×W:
- resized so that the image covers H×W (its shorter side, relative to the target, fits exactly),
  then centre-cropped to H×W (`crop_fraction=0.875` reproduces torchvision's 256→224 evaluation crop);
- RGB for C=3, grey for C=1 (other C: the RGB channels repeated in turn);
- normalised with the ImageNet mean and standard deviation, as torchvision's weights expect
  (grey: the mean of the three means and of the three standard deviations).

Uploads are checked before they are decoded: size in bytes, the file's signature (PNG, JPEG or WebP
only), the pixel count from the header (so a decompression bomb is refused before any pixel is
decoded), then the decode itself. Anything wrong raises `ImageInputError` with a message that says
what is wrong with the file and what to do.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from resnet_core.errors import ExplorerError
from resnet_core.formatting import fmt_bytes
from resnet_core.i18n import N_, _
from resnet_core.paths import ASSETS

SAMPLES_DIR = ASSETS / "images"
SAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB, of [0, 1] pixels (torchvision's ImageNet weights)
IMAGENET_STD = (0.229, 0.224, 0.225)
GREY_MEAN = (0.449,)  # the mean of the three RGB means
GREY_STD = (0.226,)  # the mean of the three RGB standard deviations

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # uploads larger than this are refused unread
MAX_PIXELS = 40_000_000  # width × height from the header; above this the image is refused undecoded
MAX_SIDE = 20_000  # either side, from the header: 1×40,000,000 is few pixels but no photograph
MAX_ASPECT = 50  # longer side ÷ shorter side, from the header (a panorama is about 10)
MAX_RESIZED_PIXELS = 16_000_000  # fit_image never makes a larger intermediate image

FORMAT_NAMES = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP"}

# signatures of files people upload by mistake, for a message that names what they uploaded
_OTHER_SIGNATURES = (
    (b"GIF87a", N_("a GIF image")), (b"GIF89a", N_("a GIF image")), (b"BM", N_("a BMP image")),
    (b"II*\x00", N_("a TIFF image")), (b"MM\x00*", N_("a TIFF image")), (b"%PDF", N_("a PDF document")),
    (b"PK\x03\x04", N_("a ZIP archive (or an Office document)")), (b"\x00\x00\x01\x00", N_("an ICO icon")),
    (b"8BPS", N_("a Photoshop document")),
)


class ImageInputError(ExplorerError):
    """An image that cannot be used as input: the message says what is wrong and what to do."""


@dataclass(frozen=True)
class DecodedImage:
    """An upload checked and decoded: an 8-bit RGB or grey ("L") PIL image."""

    image: Image.Image
    format: str  # PNG | JPEG | WEBP
    size: tuple[int, int]  # (width, height) of the file's image, before any resizing
    notes: tuple[str, ...] = ()  # what was done to it (alpha composited on white, EXIF rotation, ...)


@dataclass(frozen=True)
class ImageInput:
    """One image prepared for a network's input."""

    tensor: torch.Tensor = field(repr=False)  # (1, C, H, W) float32, normalised with mean/std below
    display: np.ndarray = field(repr=False)  # (H, W, 3) or (H, W) uint8: what the network sees, unnormalised
    source: str  # "sample chelsea.jpg", "upload cat.png (PNG, 1024×768)", "noise (seed 0)"
    input_shape: tuple[int, int, int]  # (C, H, W) it was prepared for
    mean: tuple[float, ...]  # per-channel mean subtracted (of [0, 1] pixels)
    std: tuple[float, ...]  # per-channel standard deviation divided by
    original_size: tuple[int, int] | None = None  # (width, height) before resizing; None for noise
    notes: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# normalisation and display
# --------------------------------------------------------------------------------------------

def normalisation(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel for a C-channel input: ImageNet's for RGB, their averages for grey."""
    if channels < 1:
        raise ImageInputError(f"a network input needs at least 1 channel, got {channels}")
    if channels == 1:
        return GREY_MEAN, GREY_STD
    mean = tuple(IMAGENET_MEAN[i % 3] for i in range(channels))
    std = tuple(IMAGENET_STD[i % 3] for i in range(channels))
    return mean, std


def _check_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    try:
        c, h, w = (int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise ImageInputError(f"the input shape must be three integers (C, H, W), got {input_shape!r}") from None
    if min(c, h, w) < 1:
        raise ImageInputError(f"every size of the input shape must be at least 1, got {c}×{h}×{w}")
    return c, h, w


def to_display(x: torch.Tensor | np.ndarray, index: int = 0, mean: Sequence[float] | None = None,
               std: Sequence[float] | None = None) -> np.ndarray:
    """A normalised image (C, H, W), or image `index` of a batch (N, C, H, W), as displayable uint8.

    Undoes the normalisation (default: `normalisation(C)`), clips to [0, 1] and scales to 0..255.
    Returns (H, W) for one channel, (H, W, 3) for three; other C show the channel mean as grey.
    """
    t = torch.as_tensor(x).detach()
    if t.dim() == 4:
        if not -t.shape[0] <= index < t.shape[0]:
            raise ImageInputError(f"image {index} asked for, but the batch has {t.shape[0]}")
        t = t[index]
    if t.dim() != 3:
        raise ImageInputError(f"expected an image (C, H, W) or a batch (N, C, H, W), got shape {tuple(t.shape)}")
    t = t.to("cpu", torch.float32)
    c = t.shape[0]
    d_mean, d_std = normalisation(c)
    m = torch.tensor(tuple(mean) if mean is not None else d_mean, dtype=torch.float32).view(-1, 1, 1)
    s = torch.tensor(tuple(std) if std is not None else d_std, dtype=torch.float32).view(-1, 1, 1)
    if m.shape[0] != c or s.shape[0] != c:
        raise ImageInputError(f"mean and std need {c} values each, got {m.shape[0]} and {s.shape[0]}")
    img = torch.nan_to_num(t * s + m, nan=0.0).clamp(0.0, 1.0)  # (C, H, W) in [0, 1]
    if c == 3:
        arr = img.permute(1, 2, 0)
    elif c == 1:
        arr = img[0]
    else:
        arr = img.mean(0)
    return (arr * 255.0).round().to(torch.uint8).numpy()


# --------------------------------------------------------------------------------------------
# PIL image → network input
# --------------------------------------------------------------------------------------------

def fit_image(image: Image.Image, height: int, width: int, crop_fraction: float = 1.0) -> Image.Image:
    """Resize so that the image covers height×width/crop_fraction, then centre-crop to height×width."""
    if not 0.0 < crop_fraction <= 1.0:
        raise ImageInputError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
    w0, h0 = image.size
    scale = max(height / h0, width / w0) / crop_fraction
    nw, nh = max(width, round(w0 * scale)), max(height, round(h0 * scale))
    if nw * nh > MAX_RESIZED_PIXELS:  # resize only the part that is kept: never a huge intermediate image
        bw, bh = width / scale, height / scale  # the kept window, in the original's pixels
        box = ((w0 - bw) / 2, (h0 - bh) / 2, (w0 + bw) / 2, (h0 + bh) / 2)
        return image.resize((width, height), Image.Resampling.BICUBIC, box=box)
    if (nw, nh) != (w0, h0):
        image = image.resize((nw, nh), Image.Resampling.BICUBIC)  # PIL antialiases when it shrinks
    left, top = (nw - width) // 2, (nh - height) // 2
    return image.crop((left, top, left + width, top + height))


def image_to_input(image: Image.Image, input_shape: Sequence[int], source: str = "image",
                   crop_fraction: float = 1.0, notes: Sequence[str] = ()) -> ImageInput:
    """A decoded PIL image (any mode) → `ImageInput` for a C×H×W network."""
    c, h, w = _check_shape(input_shape)
    notes = list(notes)
    original = image.size
    if c == 1:
        image = image.convert("L")
    else:
        if image.mode != "RGB":
            image = image.convert("RGB")
            notes.append("grey image repeated on the three colour channels")
        if c != 3:
            notes.append(f"the network takes {c} channels: the R, G, B channels are repeated in turn")
    image = fit_image(image, h, w, crop_fraction)
    arr = np.asarray(image, dtype=np.uint8)  # (H, W) or (H, W, 3)
    pixels = torch.from_numpy(arr.astype(np.float32) / 255.0)
    pixels = pixels.unsqueeze(0) if pixels.dim() == 2 else pixels.permute(2, 0, 1)  # (c0, H, W)
    if c not in (1, 3):
        pixels = pixels[[i % 3 for i in range(c)]]
    mean, std = normalisation(c)
    m = torch.tensor(mean).view(-1, 1, 1)
    s = torch.tensor(std).view(-1, 1, 1)
    tensor = ((pixels - m) / s).unsqueeze(0).contiguous()  # (1, C, H, W)
    return ImageInput(tensor=tensor, display=arr, source=source, input_shape=(c, h, w), mean=mean, std=std,
                      original_size=original, notes=tuple(notes))


# --------------------------------------------------------------------------------------------
# samples
# --------------------------------------------------------------------------------------------

def list_samples() -> list[str]:
    """File names of the sample images in assets/images (see assets/PROVENANCE.md)."""
    if not SAMPLES_DIR.is_dir():
        return []
    return sorted(p.name for p in SAMPLES_DIR.iterdir() if p.suffix.lower() in SAMPLE_SUFFIXES and p.is_file())


def sample_path(name: str) -> Path:
    """The path of a sample image by its file name (or its stem: "chelsea")."""
    names = list_samples()
    for n in names:
        if name in (n, Path(n).stem):
            return SAMPLES_DIR / n
    raise ImageInputError(f"no sample image named {name!r}; the samples are: {', '.join(names) or 'none'}")


def load_sample(name: str, input_shape: Sequence[int], crop_fraction: float = 1.0) -> ImageInput:
    """A sample image from assets/images, prepared for a C×H×W input."""
    path = sample_path(name)
    decoded = decode_image(path.read_bytes(), path.name)
    return image_to_input(decoded.image, input_shape, f"sample {path.name}", crop_fraction, decoded.notes)


# --------------------------------------------------------------------------------------------
# uploads
# --------------------------------------------------------------------------------------------

def sniff_format(data: bytes) -> str | None:
    """PNG, JPEG or WEBP from the file's first bytes; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _what_is_it(data: bytes) -> str:
    for sig, what in _OTHER_SIGNATURES:
        if data.startswith(sig):
            return _(what)
    if len(data) >= 12 and data[4:8] == b"ftyp":
        brand = data[8:12].decode("latin-1")
        if brand in ("heic", "heix", "mif1", "msf1", "hevc"):
            return _("a HEIC image")
        if brand in ("avif", "avis"):
            return _("an AVIF image")
        return _("a video or MP4-family file")
    head = data[:512].lstrip()
    if head[:5].lower() == b"<?xml" or head[:4].lower() == b"<svg":
        return _("an SVG/XML text file")
    try:
        head.decode("utf-8")
        if head and all(b >= 9 for b in head):
            return _("a text file")
    except UnicodeDecodeError:
        pass
    return _("not an image file this app can read")


def decode_image(data: bytes, filename: str | None = None, max_bytes: int = MAX_UPLOAD_BYTES,
                 max_pixels: int = MAX_PIXELS) -> DecodedImage:
    """Check and decode an uploaded PNG, JPEG or WebP file → an 8-bit RGB or grey PIL image.

    Raises ImageInputError, naming the file, when it is empty, larger than `max_bytes`, not a PNG/JPEG/WebP,
    larger than `max_pixels` (checked from the header, before decoding), or damaged/truncated.
    """
    name = f"'{filename}'" if filename else _("the file")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageInputError(f"{name}: expected the file's bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise ImageInputError(_("{name} is empty (0 bytes)", name=name))
    if len(data) > max_bytes:
        raise ImageInputError(_("{name} is {size}; images are limited to {limit}: save it smaller (fewer pixels or "
                                "more JPEG compression) and upload it again", name=name, size=fmt_bytes(len(data)),
                                limit=fmt_bytes(max_bytes)))
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageInputError(_("{name} is {what}, not a PNG, JPEG or WebP image: upload a PNG, JPEG or WebP file",
                                name=name, what=_what_is_it(data)))
    label = FORMAT_NAMES[fmt]
    notes: list[str] = []
    try:
        with warnings.catch_warnings():  # Pillow warns on large headers; the pixel limit below decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img: Image.Image = Image.open(io.BytesIO(data), formats=[fmt])
        width, height = img.size
    except Image.DecompressionBombError as e:
        found = re.search(r"\((\d+) pixels\)", str(e))
        declared = (_("{n} pixels", n=f"{int(found.group(1)):,}") if found
                    else _("more pixels than an image may have"))
        raise ImageInputError(_("{name} declares {declared} (a decompression bomb?); images have at most {limit} "
                                "pixels: it was not decoded", name=name, declared=declared,
                                limit=f"{max_pixels:,}")) from None
    except UnidentifiedImageError:
        raise ImageInputError(_("{name} starts like a {kind} file but its header is damaged (the decoder cannot "
                                "identify it); open it in an image editor and save it again", name=name,
                                kind=label)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageInputError(_("{name} starts like a {kind} file but its header is damaged ({reason}); open it in "
                                "an image editor and save it again", name=name, kind=label, reason=_reason(e))) from None
    if width < 1 or height < 1:
        raise ImageInputError(_("{name} is a {w}×{h} image: it has no pixels", name=name, w=width, h=height))
    longer, shorter = max(width, height), min(width, height)
    if longer > MAX_SIDE or longer > MAX_ASPECT * shorter:
        raise ImageInputError(_(
            "{name} is {w}×{h} pixels: its sides may be at most {side} pixels and at most {aspect}:1 (this one is "
            "{ratio}:1); crop or scale it before uploading (it was not decoded)", name=name, w=f"{width:,}",
            h=f"{height:,}", side=f"{MAX_SIDE:,}", aspect=MAX_ASPECT, ratio=f"{longer / shorter:,.0f}"))
    if width * height > max_pixels:
        raise ImageInputError(_(
            "{name} is {w}×{h} pixels ({mp} megapixels); the limit is {limit} megapixels: scale it down before "
            "uploading (it was not decoded)", name=name, w=f"{width:,}", h=f"{height:,}",
            mp=f"{width * height / 1e6:.0f}", limit=f"{max_pixels / 1e6:.0f}"))
    try:
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)
            notes.append("animated image: the first frame is used")
        img.load()
    except Image.DecompressionBombError:
        raise ImageInputError(_("{name} decodes to more pixels than allowed (a decompression bomb?)",
                                name=name)) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, MemoryError) as e:
        raise ImageInputError(_("{name} is a damaged or truncated {kind} file ({reason}); open it in an image editor "
                                "and save it again, or try another image", name=name, kind=label,
                                reason=_reason(e))) from None
    try:
        orientation = img.getexif().get(0x0112, 1)  # EXIF "Orientation": 1 is upright
        if orientation not in (1, None):
            img = ImageOps.exif_transpose(img)
            notes.append("turned upright from its EXIF orientation")
    except Exception:  # noqa: BLE001 - a broken EXIF block must not stop an otherwise good image
        notes.append("its EXIF orientation could not be read and was ignored")
    return DecodedImage(image=_to_8bit(img, notes), format=fmt, size=(width, height), notes=tuple(notes))


def _reason(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _to_8bit(img: Image.Image, notes: list[str]) -> Image.Image:
    """Any PIL mode → 8-bit "RGB" or "L"; transparency composited on white."""
    mode = img.mode
    if mode in ("RGB", "L"):
        return img
    if mode == "1":
        return img.convert("L")
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        if mode == "F" and arr.max(initial=0) <= 1.0:
            top = 1.0
        notes.append(f"{mode} pixels scaled to 8 bits")
        return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        notes.append("transparent pixels composited on white")
        out = Image.alpha_composite(white, rgba).convert("RGB")
        return out
    return img.convert("RGB")


def load_upload(data: bytes, filename: str | None, input_shape: Sequence[int], crop_fraction: float = 1.0,
                max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS) -> ImageInput:
    """An uploaded PNG/JPEG/WebP file, checked, decoded and prepared for a C×H×W input."""
    decoded = decode_image(data, filename, max_bytes=max_bytes, max_pixels=max_pixels)
    w, h = decoded.size
    kind = FORMAT_NAMES[decoded.format]
    label = f"upload {filename} ({kind}, {w}×{h})" if filename else f"upload ({kind}, {w}×{h})"
    return image_to_input(decoded.image, input_shape, label, crop_fraction, decoded.notes)


# --------------------------------------------------------------------------------------------
# noise
# --------------------------------------------------------------------------------------------

def noise_batch(input_shape: Sequence[int], batch: int = 1, seed: int = 0) -> torch.Tensor:
    """Seeded standard-normal noise (batch, C, H, W): already in the normalised input's units.

    Uses its own generator, so it neither reads nor changes the global RNG (safe across sessions).
    """
    c, h, w = _check_shape(input_shape)
    if batch < 1:
        raise ImageInputError(f"the batch must hold at least 1 image, got {batch}")
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(batch, c, h, w, generator=g)


def noise_input(input_shape: Sequence[int], seed: int = 0) -> ImageInput:
    """One image of seeded noise as an `ImageInput` (display: the noise undone from normalisation)."""
    c, h, w = _check_shape(input_shape)
    x = noise_batch((c, h, w), 1, seed)
    mean, std = normalisation(c)
    return ImageInput(tensor=x, display=to_display(x), source=f"noise (seed {seed})", input_shape=(c, h, w),
                      mean=mean, std=std)


def source_text(source: str) -> str:
    """An `ImageInput.source` ("sample chelsea.jpg", "upload cat.png (PNG, 64×64)", "noise (seed 0)") in this
    run's language; the source itself stays English (it is also a key)."""
    for prefix, message in (("sample ", N_("sample {name}")), ("upload ", N_("upload {name}"))):
        if source.startswith(prefix):
            return _(message, name=source[len(prefix):])
    noise = re.fullmatch(r"noise \(seed (\d+)\)", source)
    if noise:
        return _("noise (seed {seed})", seed=noise.group(1))
    return source


def stack_inputs(inputs: Sequence[ImageInput]) -> torch.Tensor:
    """Several prepared images as one batch (N, C, H, W); they must share one input shape."""
    if not inputs:
        raise ImageInputError("no images to stack")
    shapes = {i.input_shape for i in inputs}
    if len(shapes) != 1:
        raise ImageInputError(f"images prepared for different input shapes cannot share a batch: {sorted(shapes)}")
    return torch.cat([i.tensor for i in inputs], 0)
