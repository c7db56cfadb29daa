"""Image input: samples, uploads (good, corrupt, oversized, bombs, wrong formats), noise, display."""

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from resnet_core.lab import images
from resnet_core.lab.images import IMAGENET_MEAN, IMAGENET_STD, ImageInputError


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny valid-looking PNG whose header claims width×height RGB pixels (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (1 + 3 * min(width, 64)))  # one short row: the rest would be "decompressed"
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


# --------------------------------------------------------------------------------------------
# samples
# --------------------------------------------------------------------------------------------

def test_the_samples_load_exactly_as_stored():
    names = images.list_samples()
    assert names == sorted(["astronaut.jpg", "brick.jpg", "chelsea.jpg", "coffee.jpg", "horse.jpg", "rocket.jpg"])
    for name in names:
        inp = images.load_sample(name, (3, 224, 224))
        ref = np.asarray(Image.open(images.SAMPLES_DIR / name).convert("RGB"))
        assert inp.tensor.shape == (1, 3, 224, 224) and inp.tensor.dtype == torch.float32
        np.testing.assert_array_equal(inp.display, ref)  # already 224×224: neither resized nor cropped
        expected = (ref.astype(np.float32) / 255.0 - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
        np.testing.assert_allclose(inp.tensor[0].permute(1, 2, 0).numpy(), expected, atol=1e-6)
    assert images.load_sample("chelsea", (1, 32, 32)).tensor.shape == (1, 1, 32, 32)
    with pytest.raises(ImageInputError, match="no sample image named 'dog'; the samples are: astronaut.jpg"):
        images.load_sample("dog", (3, 32, 32))
    with pytest.raises(ImageInputError, match="no sample image"):
        images.sample_path("../PROVENANCE.md")


# --------------------------------------------------------------------------------------------
# good uploads
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_each_accepted_format_decodes_to_the_colour_it_holds(fmt):
    colour = (200, 40, 120)
    data = _encode(Image.new("RGB", (48, 40), colour), fmt, **({"quality": 95} if fmt != "PNG" else {}))
    inp = images.load_upload(data, f"x.{fmt.lower()}", (3, 16, 16))
    assert inp.tensor.shape == (1, 3, 16, 16) and inp.original_size == (48, 40)
    assert f"({images.FORMAT_NAMES[fmt]}, 48×40)" in inp.source
    tol = 0 if fmt == "PNG" else 4  # lossy formats shift a flat colour by a few levels
    assert np.abs(inp.display.astype(int) - np.array(colour)).max() <= tol
    # normalisation against the formula, per channel
    px = inp.display[8, 8].astype(np.float64) / 255.0
    expected = (px - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(inp.tensor[0, :, 8, 8].numpy(), expected, atol=1e-5)


def test_resize_covers_the_target_and_crops_the_centre():
    # 40 wide × 20 high: red | green | blue in 10, 20, 10 columns. Fitting to 16×16 scales by 0.8 (to 32×16) and
    # keeps the middle 16 columns: the green band (original columns 10..30).
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :10] = (255, 0, 0)
    arr[:, 10:30] = (0, 255, 0)
    arr[:, 30:] = (0, 0, 255)
    inp = images.load_upload(_encode(Image.fromarray(arr), "PNG"), "bands.png", (3, 16, 16))
    assert inp.display.shape == (16, 16, 3)
    inner = inp.display[:, 2:-2].astype(int)  # away from the resampling at the band edges
    assert (inner[..., 1] >= 250).all() and (inner[..., 0] <= 5).all() and (inner[..., 2] <= 5).all()
    # crop_fraction 0.5 zooms in twice as far: still green, from the centre
    zoom = images.load_upload(_encode(Image.fromarray(arr), "PNG"), "bands.png", (3, 16, 16), crop_fraction=0.5)
    assert (zoom.display[..., 1] >= 250).all()


def test_grey_colour_alpha_and_channel_conversions():
    grey = _encode(Image.new("L", (20, 20), 128), "PNG")
    to_rgb = images.load_upload(grey, "g.png", (3, 8, 8))
    assert to_rgb.display.shape == (8, 8, 3) and (to_rgb.display == 128).all()
    assert any("grey image repeated" in n for n in to_rgb.notes)
    to_grey = images.load_upload(_encode(Image.new("RGB", (20, 20), (255, 255, 255)), "PNG"), "w.png", (1, 8, 8))
    assert to_grey.tensor.shape == (1, 1, 8, 8)
    assert torch.allclose(to_grey.tensor, torch.full((1, 1, 8, 8), (1.0 - 0.449) / 0.226))
    clear = _encode(Image.new("RGBA", (20, 20), (0, 0, 0, 0)), "PNG")  # fully transparent black
    on_white = images.load_upload(clear, "t.png", (3, 8, 8))
    assert (on_white.display == 255).all() and any("white" in n for n in on_white.notes)
    deep = _encode(Image.fromarray(np.full((8, 8), 65535, np.uint16)), "PNG")  # 16-bit grey
    assert (images.load_upload(deep, "d.png", (1, 8, 8)).display == 255).all()
    five = images.load_upload(_encode(Image.new("RGB", (8, 8), (10, 20, 30)), "PNG"), "c.png", (5, 8, 8))
    assert five.tensor.shape == (1, 5, 8, 8)
    assert torch.allclose(five.tensor[0, 3], five.tensor[0, 0]) and torch.allclose(five.tensor[0, 4], five.tensor[0, 1])


# --------------------------------------------------------------------------------------------
# bad uploads: every one a clear message, never a traceback from PIL
# --------------------------------------------------------------------------------------------

def test_empty_and_oversized_files_are_refused_unread():
    with pytest.raises(ImageInputError, match="'a.png' is empty"):
        images.decode_image(b"", "a.png")
    data = _encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)), "PNG")
    assert len(data) > 10_000
    with pytest.raises(ImageInputError, match=r"'big.png' is 12.\d KiB; images are limited to 100 B"):
        images.decode_image(data, "big.png", max_bytes=100)


def test_files_that_are_not_png_jpeg_or_webp_say_what_they_are():
    gif = _encode(Image.new("RGB", (8, 8)), "GIF")
    with pytest.raises(ImageInputError, match="'a.gif' is a GIF image, not a PNG, JPEG or WebP image"):
        images.decode_image(gif, "a.gif")
    with pytest.raises(ImageInputError, match="is a text file"):
        images.decode_image(b"hello, this is not a picture\n", "notes.png")
    with pytest.raises(ImageInputError, match="is a PDF document"):
        images.decode_image(b"%PDF-1.4\n...", "doc.jpg")
    rng = np.random.default_rng(0)
    with pytest.raises(ImageInputError, match="not an image file this app can read"):
        images.decode_image(bytes([0x13, 0x37]) + rng.integers(0, 256, 500, dtype=np.uint8).tobytes(), "x.webp")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_truncated_and_corrupt_files_are_reported_as_damaged(fmt):
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = _encode(img, fmt)
    with pytest.raises(ImageInputError, match="damaged|truncated") as e:
        images.decode_image(data[: len(data) // 2], f"half.{fmt.lower()}")
    assert images.FORMAT_NAMES[fmt] in str(e.value) and "half." in str(e.value)
    # the signature is right, everything after it is noise
    sig = data[:16]
    with pytest.raises(ImageInputError, match="damaged"):
        images.decode_image(sig + rng.integers(0, 256, 300, dtype=np.uint8).tobytes(), f"noise.{fmt.lower()}")


def test_too_many_pixels_and_decompression_bombs_are_refused_before_decoding():
    small = _encode(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(ImageInputError, match=r"100×100 pixels \(0 megapixels\); the limit is 0 megapixels"):
        images.decode_image(small, "s.png", max_pixels=5_000)
    bomb = _png_claiming(60_000, 60_000)  # 3.6 gigapixels declared in a file of well under 1 KB
    assert len(bomb) < 1000
    with pytest.raises(ImageInputError, match=r"60,000×60,000 pixels .* it was not decoded|decompression bomb"):
        images.decode_image(bomb, "bomb.png")
    # just over the default limit: refused by the explorer's own check, not by PIL's warning
    with pytest.raises(ImageInputError, match=r"8,000×6,000 pixels \(48 megapixels\); the limit is 40"):
        images.decode_image(_png_claiming(8000, 6000), "wide.png")


def test_a_non_bytes_upload_is_a_clear_error():
    with pytest.raises(ImageInputError, match="expected the file's bytes, got str"):
        images.decode_image("cat.png", "cat.png")


# --------------------------------------------------------------------------------------------
# noise and display
# --------------------------------------------------------------------------------------------

def test_noise_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = images.noise_batch((3, 8, 8), 4, seed=5)
    assert torch.equal(state, torch.get_rng_state())
    assert torch.equal(a, images.noise_batch((3, 8, 8), 4, seed=5))
    assert not torch.equal(a, images.noise_batch((3, 8, 8), 4, seed=6))
    assert a.shape == (4, 3, 8, 8) and abs(float(a.mean())) < 0.2 and abs(float(a.std()) - 1) < 0.2
    n = images.noise_input((1, 8, 8), seed=2)
    assert n.tensor.shape == (1, 1, 8, 8) and n.display.shape == (8, 8) and n.source == "noise (seed 2)"
    with pytest.raises(ImageInputError, match="at least 1 image"):
        images.noise_batch((3, 8, 8), 0)
    with pytest.raises(ImageInputError, match="at least 1"):
        images.noise_batch((3, 0, 8))


def test_to_display_undoes_the_normalisation():
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    inp = images.load_upload(_encode(Image.fromarray(arr), "PNG"), "r.png", (3, 12, 12))
    back = images.to_display(inp.tensor)
    assert back.dtype == np.uint8 and np.abs(back.astype(int) - arr.astype(int)).max() <= 1
    grey = images.to_display(torch.full((2, 1, 4, 4), -10.0), index=1)  # far below black: clipped
    assert grey.shape == (4, 4) and (grey == 0).all()
    assert images.to_display(torch.full((3, 4, 4), float("nan"))).shape == (4, 4, 3)
    batch = images.stack_inputs([inp, inp])
    assert batch.shape == (2, 3, 12, 12)
    with pytest.raises(ImageInputError, match="the batch has 2"):
        images.to_display(batch, index=5)


def test_exif_orientation_is_applied():
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :10] = 255  # 20 wide × 10 high, the left half white
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    decoded = images.decode_image(_encode(img, "JPEG", exif=exif, quality=95), "phone.jpg")
    assert decoded.size == (20, 10) and decoded.image.size == (10, 20)  # now 10 wide × 20 high
    up = np.asarray(decoded.image).astype(int)
    assert up[:8].mean() > 240 and up[12:].mean() < 15  # the white half is on top
    assert decoded.notes == ("turned upright from its EXIF orientation",)
