"""The data folder holds (issue 25, item 2): files are checked where they really are, the check and the
read are the same file, and a CIFAR batch file is bounded before it is unpickled.

Each case plants what an unlucky operator or an attacker with write access to part of the data folder
could: symbolic links out of the folder (absolute, relative, chained, a folder link), a file swapped for
a link after the folder was accepted, a FIFO, a sparse giant, and pickles that are small on disk but
would unpickle into gigabytes. The outside file is always a valid CIFAR batch with its own marker, so a
loader that followed the link would succeed: only a refusal passes.
"""

from __future__ import annotations

import os
import struct
import threading
import tracemalloc

import numpy as np
import pytest

from resnet_core.training import cifar
from resnet_core.training import data as D
from resnet_core.training.data import DataError
from tests.training.test_data import make_cifar, write_batch


@pytest.fixture()
def layout(tmp_path):
    """(data folder, the offered CIFAR folder inside it, a valid batch file outside the data folder)."""
    root = tmp_path / "data"
    root.mkdir()
    folder, *_ = make_cifar(root / "set", per_batch=4, n_test=3)
    outside = tmp_path / "secret"
    outside.mkdir()
    marker = np.full((4, 3072), 7, dtype=np.uint8)
    write_batch(outside / "data_batch_1", marker, [1, 2, 3, 4])
    return root, folder, outside / "data_batch_1"


def _load(root, name="set"):
    return D.load_data(f"cifar:{name}", input_size=8, root=root)


def test_a_file_offered_normally_loads_and_names_no_server_path(layout):
    root, _, _ = layout
    ds = _load(root)
    assert ds.n_train == 20 and ds.n_test == 3
    assert str(root) not in ds.source and str(root) not in ds.describe()
    assert "data folder/set" in ds.source


@pytest.mark.parametrize("form", ["absolute", "relative", "chain", "folder"])
def test_a_link_out_of_the_data_folder_is_never_read(layout, form):
    root, folder, outside = layout
    target = folder / "data_batch_1"
    target.unlink()
    if form == "absolute":
        target.symlink_to(outside)
    elif form == "relative":
        target.symlink_to(os.path.relpath(outside, folder))
    elif form == "chain":  # a link to a link inside the folder that leads out
        (root / "hop").symlink_to(outside)
        target.symlink_to(root / "hop")
    else:  # the whole CIFAR folder is a link out of the data folder
        import shutil
        secret_set = outside.parent / "secret_set"
        shutil.copytree(folder, secret_set)
        shutil.copy(outside, secret_set / "data_batch_1")
        shutil.rmtree(folder)
        folder.symlink_to(secret_set)
    with pytest.raises(DataError) as e:
        _load(root)
    assert str(e.value) == D.NOT_OFFERED
    assert str(outside.parent) not in str(e.value)


def test_a_link_that_stays_inside_the_data_folder_is_read(layout):
    root, folder, _ = layout
    spare = root / "spare_batch"
    (folder / "data_batch_2").rename(spare)
    (folder / "data_batch_2").symlink_to(spare)
    assert _load(root).n_train == 20


def test_a_file_swapped_for_a_link_after_the_folder_was_accepted_is_refused(layout):
    """The check at the read, on the opened file: what `cifar_below` accepted is read again, and the
    file it finds there now leads out."""
    root, folder, outside = layout
    accepted = D.cifar_below(root, "set")
    (accepted / "test_batch").unlink()
    (accepted / "test_batch").symlink_to(outside)
    with pytest.raises(DataError, match="no CIFAR-10 folder of that name"):
        D.load_cifar10(accepted, input_size=8, root=root)


def test_a_fifo_in_place_of_a_batch_file_is_refused_without_waiting(layout, monkeypatch):
    """Swapped in just after the folder was checked, so only the gate at the open can catch it."""
    root, folder, _ = layout
    accepted = D.cifar_below(root, "set")
    found = D.find_cifar_folder

    def find_then_swap(path, source=None):
        result = found(path, source)
        (accepted / "data_batch_3").unlink()
        os.mkfifo(accepted / "data_batch_3")
        return result

    monkeypatch.setattr(cifar, "find_cifar_folder", find_then_swap)
    outcome: list[BaseException] = []

    def load():
        try:
            D.load_cifar10(accepted, input_size=8, root=root)
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            outcome.append(e)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(20)
    if t.is_alive():  # unblock the reader before failing
        fd = os.open(accepted / "data_batch_3", os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        pytest.fail("opening a FIFO in the CIFAR folder blocked the loader")
    assert outcome and isinstance(outcome[0], DataError)
    assert "not a regular file" in str(outcome[0])


def test_a_sparse_giant_is_refused_by_its_size_before_it_is_read(layout):
    root, folder, _ = layout
    with open(folder / "data_batch_4", "wb") as f:
        f.truncate(200 * 2**20)  # 200 MiB on paper, nothing on disk
    with pytest.raises(DataError, match=r"data folder/set/cifar-10-batches-py/data_batch_4 is 209,715,200 bytes"):
        _load(root)


# ------------------------------------------------------------------------------------------------
# pickles that are small on disk and huge in memory
# ------------------------------------------------------------------------------------------------

def _binunicode(text: str) -> bytes:
    raw = text.encode("utf-8")
    return b"X" + struct.pack("<I", len(raw)) + raw


def encode_bomb(copies: int, size: int) -> bytes:
    """A protocol-2 list of `copies` × _codecs.encode(one memoised `size`-character string, 'latin1'):
    `size` bytes on disk, copies × size in memory."""
    body = b"\x80\x02]q\x00(" + b"c_codecs\nencode\nq\x01" + _binunicode("a" * size) + b"q\x02"
    body += _binunicode("latin1") + b"q\x03\x86R"
    body += b"h\x01h\x02h\x03\x86R" * (copies - 1)
    return body + b"e."


def array_bomb(copies: int, rows: int) -> bytes:
    """`copies` uint8 arrays of (rows, 3072) built from one memoised raw buffer, in a dict as b'data'."""
    raw = bytes(rows * 3072)
    out = b"\x80\x02}q\x00(C\x04dataq\x01]q\x02("
    dtype = (b"cnumpy\ndtype\nq\x03X\x02\x00\x00\x00u1\x89\x88\x87Rq\x04"
             b"(K\x03X\x01\x00\x00\x00|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
    recon = b"cnumpy.core.multiarray\n_reconstruct\nq\x05cnumpy\nndarray\nq\x06"
    out += dtype + recon
    first = True
    for _ in range(copies):
        out += b"h\x05h\x06K\x00\x85C\x01b\x87R"
        out += b"(K\x01M" + struct.pack("<H", rows) + b"M\x00\x0c\x86h\x04\x89"
        if first:
            out += b"B" + struct.pack("<I", len(raw)) + raw + b"q\x07"
            first = False
        else:
            out += b"h\x07"
        out += b"tb"
    return out + b"eC\x06labels]u."


def declared_size_bomb() -> bytes:
    """A BINBYTES8 that declares 2**40 bytes and holds 10."""
    return b"\x80\x04\x8e" + struct.pack("<Q", 2**40) + b"0123456789."


@pytest.mark.parametrize("bomb, message", [
    (lambda: encode_bomb(copies=300, size=4 * 2**20), "far more memory than the file holds"),
    (lambda: array_bomb(copies=300, rows=1000), "far more memory than the file holds"),
    (declared_size_bomb, "not a CIFAR-10 python batch file"),
], ids=["memoised-string-encoded-300x", "one-buffer-built-into-300-arrays", "declared-size"])
def test_a_pickle_bomb_is_refused_before_it_allocates(layout, bomb, message):
    root, folder, _ = layout
    (folder / "data_batch_5").write_bytes(bomb())
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=message):
            _load(root)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 120 * 2**20, f"the loader allocated {peak / 2**20:.0f} MiB before refusing"


def test_the_bombs_are_real_bombs_for_an_unbounded_unpickler():
    """The reference: the standard unpickler turns the small encode bomb into copies × size bytes."""
    import pickle
    small = encode_bomb(copies=20, size=2**20)
    assert len(small) < 1.1 * 2**20
    out = pickle.loads(small)
    assert sum(len(b) for b in out) == 20 * 2**20


def test_a_batch_with_more_images_than_cifar_holds_says_so(layout):
    root, folder, _ = layout
    write_batch(folder / "data_batch_1", np.zeros((10_001, 3072), dtype=np.uint8), [0] * 10_001)
    with pytest.raises(DataError, match="10,001 images; a CIFAR-10 batch holds 10,000"):
        _load(root)


def test_class_names_that_are_not_text_are_refused(layout):
    import pickle
    root, folder, _ = layout
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": list(range(10))}, f, protocol=2)
    with pytest.raises(DataError, match="label_names"):
        _load(root)
