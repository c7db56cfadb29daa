"""Data sets: digits against assets/digits.npz, the synthetic set's seeding, and the CIFAR-10 loader on
small folders written here in the real python-pickle layout (and on broken ones)."""

import pickle

import numpy as np
import pytest
import torch

from resnet_core.training import data as D
from resnet_core.training.data import DataError

DIGITS = np.load(D.DIGITS_PATH)


def raw01(ds, x):
    """A dataset's normalised images back to the [0, 1] grey levels they were made from."""
    mean = torch.tensor(ds.mean).view(1, -1, 1, 1)
    std = torch.tensor(ds.std).view(1, -1, 1, 1)
    return x * std + mean


# ------------------------------------------------------------------------------------ digits

def test_digits_padded_are_exactly_the_npz_images():
    ds = D.load_digits(input_size=12, in_channels=1, mode="pad", holdout=0.25, seed=3)
    assert ds.input_shape == (1, 12, 12) and ds.n_train + ds.n_test == 1797
    x = torch.cat([raw01(ds, ds.x_train), raw01(ds, ds.x_test)])  # (N, 1, 12, 12)
    y = torch.cat([ds.y_train, ds.y_test]).numpy()
    assert torch.allclose(x[:, :, :2], torch.zeros(1), atol=1e-5)  # the 2-pixel zero border
    assert torch.allclose(x[:, :, :, -2:], torch.zeros(1), atol=1e-5)
    levels = np.rint(x[:, 0, 2:10, 2:10].numpy() * 16).astype(np.uint8)  # (N, 8, 8)
    got = sorted(zip(map(bytes, levels), y.tolist(), strict=True))
    want = sorted(zip(map(bytes, DIGITS["images"]), DIGITS["labels"].astype(int).tolist(), strict=True))
    assert got == want


def test_digits_split_is_seeded_stratified_and_disjoint():
    a = D.load_digits(seed=1)
    b = D.load_digits(seed=1)
    c = D.load_digits(seed=2)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.y_train, c.y_train)
    assert a.n_test == pytest.approx(0.2 * 1797, abs=10)
    counts = np.bincount(DIGITS["labels"], minlength=10)
    held = np.bincount(a.y_test.numpy(), minlength=10)
    assert np.all(np.abs(held - 0.2 * counts) <= 1)  # every class held out in the same proportion
    # no image in both splits: compare raw bytes (the digits set has a few exact duplicates, so count)
    tr = {bytes(np.rint(raw01(a, a.x_train)[i].numpy() * 16).astype(np.uint8)) for i in range(a.n_train)}
    te = [bytes(np.rint(raw01(a, a.x_test)[i].numpy() * 16).astype(np.uint8)) for i in range(a.n_test)]
    assert sum(t in tr for t in te) <= 5


def test_digits_resized_replicated_and_normalised():
    ds = D.load_digits(input_size=(16, 16), in_channels=3)
    assert ds.x_train.shape == (ds.n_train, 3, 16, 16) and ds.x_train.dtype == torch.float32
    assert torch.equal(ds.x_train[:, 0], ds.x_train[:, 2])  # grey replicated to every channel
    assert ds.x_train.mean().abs() < 1e-3 and (ds.x_train.std() - 1).abs() < 1e-2
    assert ds.classes == tuple("0123456789") and ds.y_train.dtype == torch.int64
    # reference: a 2× bilinear upscale written out by hand (half-pixel centres, edges clamped):
    # out[0] = x[0], out[2i] = ¾x[i] + ¼x[i-1], out[2i+1] = ¾x[i] + ¼x[i+1], out[15] = x[7]
    up = np.zeros((16, 8))
    for i in range(8):
        up[2 * i, i] += 0.75
        up[2 * i, max(i - 1, 0)] += 0.25
        up[2 * i + 1, i] += 0.75
        up[2 * i + 1, min(i + 1, 7)] += 0.25
    ref = up @ (DIGITS["images"] / 16.0) @ up.T  # (1797, 16, 16)
    got = raw01(ds, ds.x_train)[:, 0].double().flatten(1)  # (N, 256)
    dist = torch.cdist(got, torch.as_tensor(ref).flatten(1))  # (N, 1797)
    best, nearest = dist.min(dim=1)
    assert best.max() < 1e-4  # every train image is an upscaled digit ...
    assert np.array_equal(DIGITS["labels"][nearest.numpy()], ds.y_train.numpy())  # ... with its own label


def test_adapt_images_channels_and_sizes():
    x = torch.rand(2, 3, 6, 6)
    grey = D.adapt_images(x, 1, 6)
    assert torch.allclose(grey[:, 0], x.mean(1))
    two = D.adapt_images(x, 2, 6)
    assert torch.equal(two, x[:, :2])
    five = D.adapt_images(x, 5, 6)
    assert torch.equal(five[:, 3], x[:, 0]) and torch.equal(five[:, 4], x[:, 1])
    padded = D.adapt_images(x, 3, (10, 8), mode="pad")
    assert padded.shape == (2, 3, 10, 8) and torch.equal(padded[:, :, 2:8, 1:7], x)
    assert padded.sum() == pytest.approx(x.sum().item(), rel=1e-6)
    assert D.adapt_images(x, 3, 3).shape == (2, 3, 3, 3)
    assert D.adapt_images(x, 3, (12, 4)).shape == (2, 3, 12, 4)
    with pytest.raises(DataError, match="N, C, H, W"):
        D.adapt_images(torch.rand(3, 6, 6), 3, 6)
    with pytest.raises(DataError, match="size mode"):
        D.adapt_images(x, 3, 6, mode="stretch")


# ------------------------------------------------------------------------------------ synthetic

def test_synthetic_is_seeded_balanced_and_any_size():
    a = D.make_synthetic(n=200, input_size=(12, 20), seed=7)
    b = D.make_synthetic(n=200, input_size=(12, 20), seed=7)
    c = D.make_synthetic(n=200, input_size=(12, 20), seed=8)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.x_train, c.x_train)
    assert a.x_train.shape[1:] == (3, 12, 20) and a.n_train + a.n_test == 200
    assert np.bincount(torch.cat([a.y_train, a.y_test]).numpy()).tolist() == [20] * 10
    big = D.make_synthetic(n=20, input_size=64, in_channels=1)
    assert big.x_train.shape[1:] == (1, 64, 64) and len(big.classes) == 10


def test_synthetic_classes_differ_in_shape_not_in_colour():
    ds = D.make_synthetic(n=1000, input_size=16, seed=0)
    x, y = raw01(ds, ds.x_train), ds.y_train
    # colour alone (mean RGB) must not give the class away: nearest class-mean accuracy near chance
    colour = x.mean(dim=(2, 3))  # (N, 3)
    centres = torch.stack([colour[y == k].mean(0) for k in range(10)])
    acc = (torch.cdist(colour, centres).argmin(1) == y).float().mean().item()
    assert acc < 0.3
    # but the figures differ: the per-class mean of |spatial gradient| is not the same for all classes
    edges = (x[:, :, 1:] - x[:, :, :-1]).abs().mean(dim=(1, 2, 3))
    per_class = torch.stack([edges[y == k].mean() for k in range(10)])
    assert per_class.max() > 1.3 * per_class.min()


def test_synthetic_rejects_tiny_requests():
    with pytest.raises(DataError, match="at least 20"):
        D.make_synthetic(n=5)
    with pytest.raises(DataError, match="4×4"):
        D.make_synthetic(n=40, input_size=2)


# ------------------------------------------------------------------------------------ CIFAR-10

def write_batch(path, data, labels, protocol=2, **extra):
    d = {b"batch_label": b"test batch", b"data": data, b"labels": list(map(int, labels)),
         b"filenames": [b"x.png"] * len(labels)}
    d.update(extra)
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=protocol)


def make_cifar(root, per_batch=6, n_test=4, seed=0, nested=True, protocol=2):
    """A small folder in the real cifar-10-batches-py layout; returns it and the arrays written."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py" if nested else root
    folder.mkdir(parents=True, exist_ok=True)
    train = []
    for i in range(1, 6):
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch)
        write_batch(folder / f"data_batch_{i}", data, labels, protocol)
        train.append((data, labels))
    test_data = rng.integers(0, 256, size=(n_test, 3072), dtype=np.uint8)
    test_labels = rng.integers(0, 10, size=n_test)
    write_batch(folder / "test_batch", test_data, test_labels, protocol)
    names = [n.encode() for n in D.CIFAR_CLASSES]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names, b"num_cases_per_batch": per_batch, b"num_vis": 3072}, f,
                    protocol=protocol)
    train_x = np.concatenate([d for d, _ in train])
    train_y = np.concatenate([lab for _, lab in train])
    return folder, train_x, train_y, test_data, test_labels


def as_uint8_images(ds, x):
    return np.rint(raw01(ds, x).numpy() * 255).astype(np.uint8)  # (N, 3, 32, 32)


@pytest.mark.parametrize("protocol", [2, 4])
def test_cifar_loader_reads_the_real_layout_in_order(tmp_path, protocol):
    folder, train_x, train_y, test_x, test_y = make_cifar(tmp_path, protocol=protocol)
    ds = D.load_cifar10(tmp_path)  # the parent folder works too
    assert ds.name == "cifar10" and ds.classes == D.CIFAR_CLASSES and ds.input_shape == (3, 32, 32)
    assert ds.n_train == 30 and ds.n_test == 4
    np.testing.assert_array_equal(as_uint8_images(ds, ds.x_train), train_x.reshape(-1, 3, 32, 32))
    np.testing.assert_array_equal(as_uint8_images(ds, ds.x_test), test_x.reshape(-1, 3, 32, 32))
    np.testing.assert_array_equal(ds.y_train.numpy(), train_y)
    np.testing.assert_array_equal(ds.y_test.numpy(), test_y)
    # channel layout: the first 1024 bytes of a row are the red plane, row-major
    assert as_uint8_images(ds, ds.x_train)[0, 0, 0, 5] == train_x[0, 5]
    assert as_uint8_images(ds, ds.x_train)[0, 1, 1, 0] == train_x[0, 1024 + 32]
    same = D.load_data(f"cifar:{folder}", input_size=32)
    assert torch.equal(same.x_train, ds.x_train)


def test_cifar_loader_resizes_greys_and_subsets(tmp_path):
    folder, *_ = make_cifar(tmp_path, per_batch=8)
    small = D.load_cifar10(folder, input_size=16, in_channels=1, max_train=12, max_test=3, seed=1)
    assert small.x_train.shape == (12, 1, 16, 16) and small.n_test == 3
    again = D.load_cifar10(folder, input_size=16, in_channels=1, max_train=12, max_test=3, seed=1)
    assert torch.equal(small.x_train, again.x_train) and torch.equal(small.y_train, again.y_train)


@pytest.mark.parametrize("breakage, message", [
    ("missing_one", "missing data_batch_3"),
    ("missing_meta", "missing batches.meta"),
    ("garbage", "test_batch is not a CIFAR-10 python batch file"),
    ("no_labels", "data_batch_2: the batch has no 'labels' entry"),
    ("wrong_shape", r"data_batch_1: b'data' must be uint8 of shape \(N, 3072\)"),
    ("wrong_dtype", r"data_batch_1: b'data' must be uint8"),
    ("bad_label", "labels must be 0–9"),
    ("count_mismatch", "6 images but 5 labels"),
    ("not_a_dict", "expected a dict"),
    ("bad_meta", "label_names"),
])
def test_cifar_loader_names_the_broken_file(tmp_path, breakage, message):
    folder, *_ = make_cifar(tmp_path)
    rng = np.random.default_rng(1)
    if breakage == "missing_one":
        (folder / "data_batch_3").unlink()
    elif breakage == "missing_meta":
        (folder / "batches.meta").unlink()
    elif breakage == "garbage":
        (folder / "test_batch").write_bytes(b"this is not a pickle at all")
    elif breakage == "no_labels":
        with open(folder / "data_batch_2", "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (6, 3072), dtype=np.uint8)}, f, protocol=2)
    elif breakage == "wrong_shape":
        write_batch(folder / "data_batch_1", rng.integers(0, 256, (6, 1024), dtype=np.uint8), [0] * 6)
    elif breakage == "wrong_dtype":
        write_batch(folder / "data_batch_1", rng.random((6, 3072)), [0] * 6)
    elif breakage == "bad_label":
        write_batch(folder / "data_batch_4", rng.integers(0, 256, (6, 3072), dtype=np.uint8), [0, 1, 2, 3, 4, 10])
    elif breakage == "count_mismatch":
        write_batch(folder / "data_batch_5", rng.integers(0, 256, (6, 3072), dtype=np.uint8), [0] * 5)
    elif breakage == "not_a_dict":
        with open(folder / "data_batch_1", "wb") as f:
            pickle.dump([1, 2, 3], f, protocol=2)
    elif breakage == "bad_meta":
        with open(folder / "batches.meta", "wb") as f:
            pickle.dump({b"label_names": [b"a", b"b"]}, f, protocol=2)
    with pytest.raises(DataError, match=message):
        D.load_cifar10(folder)


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("touch PWNED",))


def test_cifar_loader_refuses_pickles_that_run_code(tmp_path, monkeypatch):
    folder, *_ = make_cifar(tmp_path)
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({b"data": _Evil(), b"labels": []}, f, protocol=2)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="refusing to load posix.system|refusing to load os.system|refusing"):
        D.load_cifar10(folder)
    assert not (tmp_path / "PWNED").exists()


def test_cifar_wrong_folders_get_a_clear_message(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        D.load_cifar10(tmp_path / "nowhere")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        D.load_cifar10(tmp_path / "file.txt")
    with pytest.raises(DataError, match="is not a CIFAR-10 folder"):
        D.load_cifar10(tmp_path)
    with pytest.raises(DataError, match="cifar:PATH"):
        D.load_data("cifar:")
    with pytest.raises(DataError, match="unknown data 'mnist'"):
        D.load_data("mnist")
