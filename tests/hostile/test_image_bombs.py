"""Bounded before decoded: images whose header declares few pixels but an extreme side, and images that
are legal but would need a huge intermediate when fitted to a large input, under a memory cap."""

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

BUDGET_GIB = 3

WORKER = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]) << 30,) * 2)
from resnet_core.lab.images import ImageInputError, load_upload
out = {}
shape = tuple(int(v) for v in sys.argv[2].split(","))
for path in sys.argv[3:]:
    try:
        x = load_upload(open(path, "rb").read(), path.rsplit("/", 1)[-1], shape)
        out[path] = ["ok", list(x.tensor.shape)]
    except ImageInputError as e:
        out[path] = ["refused", str(e)]
    except BaseException as e:
        out[path] = ["error", f"{type(e).__name__}: {str(e)[:200]}"]
print(json.dumps(out))
"""


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(path: Path, width: int, height: int, grey: bool = True) -> Path:
    """A valid PNG of `width`×`height` black pixels, streamed (never the whole image in memory)."""
    row = b"\0" + b"\0" * (width * (1 if grey else 3))
    z = zlib.compressobj(6)
    parts = []
    rows = max(1, (8 << 20) // len(row))  # rows per piece: ~8 MB of raw pixels at a time
    for start in range(0, height, rows):
        parts.append(z.compress(row * min(rows, height - start)))
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0 if grey else 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts))
                     + _chunk(b"IEND", b""))
    return path


def run(paths: list[Path], shape: str) -> dict:
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", WORKER, str(BUDGET_GIB), shape, *map(str, paths)],
                         capture_output=True, text=True, timeout=300, cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # a worker process under a memory cap
def test_extreme_sides_are_refused_from_the_header_within_a_memory_cap(tmp_path):
    files = {"1x40M": png(tmp_path / "thin.png", 40_000_000, 1), "40Mx1": png(tmp_path / "tall.png", 1, 40_000_000),
             "30000x1000": png(tmp_path / "wide.png", 30_000, 1_000), "5000x20": png(tmp_path / "strip.png", 5_000, 20)}
    assert all(p.stat().st_size < 20 * 2**20 for p in files.values())  # each passes the upload's byte limit
    results = run(list(files.values()), "3,224,224")
    bad = [f"{k}: {results[str(p)]}" for k, p in files.items()
           if results[str(p)][0] != "refused" or "it was not decoded" not in results[str(p)][1]
           or "at most" not in results[str(p)][1]]
    assert not bad, "\n".join(bad)


@pytest.mark.slow  # a worker process under a memory cap
def test_legal_but_lopsided_images_fit_a_large_input_without_a_huge_intermediate(tmp_path):
    # 2,000×40 (50:1) into 2048×2048: resizing the whole image first would make 102,400×2,048 pixels
    files = [png(tmp_path / "a.png", 2_000, 40, grey=False), png(tmp_path / "b.png", 40, 2_000)]
    results = run(files, "3,2048,2048")
    for p in files:
        assert results[str(p)] == ["ok", [1, 3, 2048, 2048]], results[str(p)]


def test_the_bounded_fit_matches_the_plain_fit_where_both_fit():
    from PIL import Image

    from resnet_core.lab import images
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (60, 300, 3), dtype=np.uint8))
    plain = np.asarray(images.fit_image(img, 32, 32), dtype=float)
    old = images.MAX_RESIZED_PIXELS
    try:
        images.MAX_RESIZED_PIXELS = 1  # force the window path on the same image
        windowed = np.asarray(images.fit_image(img, 32, 32), dtype=float)
    finally:
        images.MAX_RESIZED_PIXELS = old
    assert windowed.shape == plain.shape == (32, 32, 3)
    assert np.abs(windowed - plain).mean() < 12  # the same view of the image (resampling differs at the edges)


@pytest.mark.parametrize("size", [(20_001, 10_000), (10, 501)])
def test_the_refusal_names_the_limit_and_the_value(size, tmp_path):
    from resnet_core.lab.images import ImageInputError, decode_image
    data = png(tmp_path / "x.png", *size).read_bytes()
    with pytest.raises(ImageInputError) as e:
        decode_image(data, "x.png")
    declared = f"{size[0]:,}×{size[1]:,}" if size[0] * size[1] < 2 * 89_478_485 else f"{size[0] * size[1]:,} pixels"
    assert declared in str(e.value) and "at most" in str(e.value)  # the value and the limit
