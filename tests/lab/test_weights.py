"""Checkpoints (a torchvision-format file made by an independent reference implementation), the optional
ImageNet download (never for real: the network is replaced in every test), class names, top predictions."""

import hashlib
import io
import pickle
from urllib.error import URLError

import numpy as np
import pytest
import torch

import resnet_core as rc
from resnet_core.lab import weights
from resnet_core.lab.weights import CheckpointError, CheckpointMismatch, WeightsUnavailable
from resnet_core.structure.build import build_model
from tests.structure.torchvision_reference import torchvision_model

SPEC = rc.get_preset("resnet18").replace(num_classes=10)


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """No test may reach the network, nor read the real caches."""
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to download")
    monkeypatch.setattr(weights, "urlopen", refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def reference():
    """A torchvision-layout resnet18 (10 classes) with non-trivial BatchNorm statistics, and its state_dict."""
    torch.manual_seed(0)
    ref = torchvision_model("resnet18", num_classes=10)
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return ref.eval(), {k: v.clone() for k, v in ref.state_dict().items()}


def _save(obj, path):
    torch.save(obj, path)
    return path


def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_a_full_torchvision_checkpoint_loads_strictly_and_computes_what_the_reference_computes(reference, tmp_path):
    ref, sd = reference
    path = _save(sd, tmp_path / "resnet18.pth")
    model = build_model(SPEC, seed=1)
    report = weights.load_checkpoint(model, path)
    assert report.complete and report.missing == () and report.unexpected == () and report.mismatched == ()
    assert set(report.loaded) == set(sd) and report.matched == len(sd) == report.total_model_keys
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), ref(x), atol=1e-5)
    assert report.lines()[0].endswith(f"{len(sd)} of {len(sd)} model tensors found with the right shape; "
                                      f"{len(sd)} loaded")


def test_missing_keys_are_named_and_strict_loading_loads_nothing(reference, tmp_path):
    _, sd = reference
    removed = {"layer1.0.conv1.weight", "fc.bias", "layer3.1.bn2.running_var"}
    path = _save({k: v for k, v in sd.items() if k not in removed}, tmp_path / "missing.pth")
    model = build_model(SPEC, seed=1)
    before = _snapshot(model)
    with pytest.raises(CheckpointMismatch, match="nothing was loaded") as e:
        weights.load_checkpoint(model, path)
    assert set(e.value.report.missing) == removed and e.value.report.unexpected == ()
    assert "layer1.0.conv1.weight" in str(e.value) and "missing from the checkpoint (3)" in str(e.value)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    report = weights.load_checkpoint(model, path, strict=False)
    assert set(report.missing) == removed and set(report.loaded) == set(sd) - removed
    after = model.state_dict()
    for k in sd:
        assert torch.equal(after[k], before[k] if k in removed else sd[k]), k


def test_extra_keys_and_shape_mismatches_are_named(reference, tmp_path):
    _, sd = reference
    extra = {"layer5.0.conv1.weight": torch.zeros(3, 3), "head.weight": torch.zeros(2)}
    path = _save({**sd, **extra}, tmp_path / "extra.pth")
    model = build_model(SPEC, seed=1)
    with pytest.raises(CheckpointMismatch) as e:
        weights.load_checkpoint(model, path)
    assert set(e.value.report.unexpected) == set(extra) and e.value.report.missing == ()
    report = weights.load_checkpoint(model, path, strict=False)
    assert set(report.unexpected) == set(extra) and set(report.loaded) == set(sd)
    # a 1000-class head does not fit a 10-class network: fc.weight and fc.bias, with both shapes
    big = torchvision_model("resnet18").state_dict()
    path = _save(big, tmp_path / "imagenet_head.pth")
    with pytest.raises(CheckpointMismatch) as e:
        weights.load_checkpoint(model, path)
    mism = {m.key: (m.checkpoint_shape, m.model_shape) for m in e.value.report.mismatched}
    assert mism == {"fc.weight": ((1000, 512), (10, 512)), "fc.bias": ((1000,), (10,))}
    assert "fc.weight: checkpoint 1000×512, model 10×512" in str(e.value)
    report = weights.load_checkpoint(model, path, strict=False)
    assert "fc.weight" not in report.loaded and "conv1.weight" in report.loaded


def test_wrapped_prefixed_and_in_memory_checkpoints(reference, tmp_path):
    _, sd = reference
    model = build_model(SPEC, seed=1)
    for wrapper in ("state_dict", "model"):
        path = _save({wrapper: sd, "epoch": 90, "arch": "resnet18"}, tmp_path / f"{wrapper}.pth")
        report = weights.load_checkpoint(model, path)
        assert report.complete and report.wrapper == wrapper
    prefixed = {"module." + k: v for k, v in sd.items()}
    buf = io.BytesIO()
    torch.save(prefixed, buf)
    report = weights.load_checkpoint(model, buf.getvalue())
    assert report.complete and report.stripped_prefix == "module." and report.source == "the uploaded checkpoint"
    legacy = tmp_path / "legacy.pth"  # torch.save before PyTorch 1.6 (the format of the oldest published files)
    torch.save(sd, legacy, _use_new_zipfile_serialization=False)
    assert weights.load_checkpoint(model, legacy).complete
    old_style = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    report = weights.load_checkpoint(model, _save(old_style, tmp_path / "old.pth"))
    assert report.complete and len(report.ignored) == sum(k.endswith("num_batches_tracked") for k in sd)


class _NotWeights:
    pass


@pytest.mark.parametrize("case", ["random", "text", "pickle_object", "plain_pickle", "empty", "tensor",
                                  "no_tensors", "folder", "absent"])
def test_files_that_are_not_checkpoints_are_clear_errors(case, tmp_path):
    path = tmp_path / "file.pth"
    expected = {
        "random": "not a PyTorch checkpoint: it is neither", "text": "not a PyTorch checkpoint: it is neither",
        "pickle_object": r"holds Python objects besides tensors \(e.g. .*_NotWeights\)", "plain_pickle": "a plain Python pickle, not a file written by torch.save",
        "empty": "is empty", "tensor": r"a single tensor of shape \(3, 4\), not a state_dict",
        "no_tensors": "holds no tensors under a key this loader knows", "folder": "is a folder",
        "absent": "no such file",
    }[case]
    if case == "random":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    elif case == "text":
        path.write_text("conv1.weight: [1, 2, 3]\n")
    elif case == "pickle_object":
        torch.save({"conv1.weight": torch.zeros(1), "config": _NotWeights()}, path)
    elif case == "plain_pickle":
        path.write_bytes(pickle.dumps({"a": 1}))
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "tensor":
        torch.save(torch.zeros(3, 4), path)
    elif case == "no_tensors":
        torch.save({"epoch": 3, "lr": 0.1}, path)
    elif case == "folder":
        path.mkdir()
    model = build_model(SPEC, seed=0)
    with pytest.raises(CheckpointError, match=expected):
        weights.load_checkpoint(model, path)


def test_a_checkpoint_for_another_network_matches_nothing(tmp_path):
    other = build_model(rc.get_preset("resnet20"), seed=0).state_dict()
    renamed = {"encoder." + k: v for k, v in other.items()}
    path = _save(renamed, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="none of its .* tensors matches this network"):
        weights.load_checkpoint(build_model(SPEC, seed=0), path, strict=False)


def test_nan_tensors_in_a_checkpoint_are_reported(reference, tmp_path):
    _, sd = reference
    bad = dict(sd)
    bad["layer2.0.conv2.weight"] = torch.full_like(sd["layer2.0.conv2.weight"], float("nan"))
    report = weights.load_checkpoint(build_model(SPEC, seed=0), _save(bad, tmp_path / "nan.pth"))
    assert report.nonfinite == ("layer2.0.conv2.weight",)
    assert any("NaN or Inf" in line for line in report.lines())


# --------------------------------------------------------------------------------------------
# the optional download, with the network replaced
# --------------------------------------------------------------------------------------------

class _Response:
    def __init__(self, data: bytes, length: int | None = None):
        self._buf = io.BytesIO(data)
        self.headers = {"Content-Length": str(len(data) if length is None else length)}

    def read(self, n=-1):
        return self._buf.read(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _fake_published(monkeypatch, data: bytes, name: str = "resnet20", corrupt: bool = False):
    digest = hashlib.sha256(data).hexdigest()[:8]
    if corrupt:
        digest = "00000000" if digest != "00000000" else "11111111"
    url = f"https://download.example.invalid/models/{name}-{digest}.pth"
    monkeypatch.setitem(weights.TORCHVISION_WEIGHTS, name, {"IMAGENET1K_V1": url})
    return url


def test_offline_download_says_why_and_what_to_do(monkeypatch):
    def offline(*a, **k):
        raise URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(weights, "urlopen", offline)
    with pytest.raises(WeightsUnavailable) as e:
        weights.download_imagenet_weights("resnet18", timeout=0.5)
    msg = str(e.value)
    assert "could not download the ImageNet weights for resnet18" in msg
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in msg
    assert "name resolution" in msg and "random initialisation" in msg and "local checkpoint file" in msg
    assert not list(weights.cache_dir().glob("*"))  # nothing half-written left behind

    def slow(*a, **k):
        raise TimeoutError("timed out")
    monkeypatch.setattr(weights, "urlopen", slow)
    with pytest.raises(WeightsUnavailable, match="timed out"):
        weights.download_imagenet_weights("resnet50")


def test_download_is_verified_cached_and_then_used_offline(monkeypatch, tmp_path):
    spec = rc.get_preset("resnet20")
    sd = build_model(spec, seed=4).state_dict()
    buf = io.BytesIO()
    torch.save(sd, buf)
    data = buf.getvalue()
    _fake_published(monkeypatch, data)
    calls, progress = [], []

    def online(request, timeout):
        calls.append((request.full_url, timeout))
        return _Response(data)
    monkeypatch.setattr(weights, "urlopen", online)
    model = build_model(spec, seed=0)
    report = weights.load_imagenet_weights(model, "resnet20", timeout=3.0, progress=lambda d, t: progress.append((d, t)))
    assert report.complete and all(torch.equal(v, sd[k]) for k, v in model.state_dict().items())
    assert len(calls) == 1 and calls[0][1] == 3.0 and progress[-1] == (len(data), len(data))
    cached = weights.cached_weights("resnet20")
    assert cached is not None and cached.parent == weights.cache_dir() and cached.read_bytes() == data
    monkeypatch.setattr(weights, "urlopen", lambda *a, **k: (_ for _ in ()).throw(URLError("offline")))
    assert weights.download_imagenet_weights("resnet20") == cached  # the cache answers; no network needed


def test_corrupt_or_truncated_downloads_are_refused_and_not_cached(monkeypatch):
    data = b"not really weights" * 100
    _fake_published(monkeypatch, data, corrupt=True)
    monkeypatch.setattr(weights, "urlopen", lambda request, timeout: _Response(data))
    with pytest.raises(WeightsUnavailable, match="is corrupt .* it was deleted"):
        weights.download_imagenet_weights("resnet20")
    assert not list(weights.cache_dir().glob("*"))
    _fake_published(monkeypatch, data)
    monkeypatch.setattr(weights, "urlopen", lambda request, timeout: _Response(data[:500], length=len(data)))
    with pytest.raises(WeightsUnavailable, match="stopped after 500 of 1,800 bytes"):
        weights.download_imagenet_weights("resnet20")
    assert not list(weights.cache_dir().glob("*"))


def test_torch_hubs_cache_is_used_without_the_network(tmp_path):
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "resnet18-f37072fd.pth").write_bytes(b"x")
    assert weights.download_imagenet_weights("resnet18") == hub / "resnet18-f37072fd.pth"


def test_which_specs_have_published_weights():
    assert weights.imagenet_weights_name(rc.get_preset("resnet50")) == "resnet50"
    assert weights.imagenet_weights_name(rc.get_preset("resnet50").replace(init="xavier", name="mine",
                                                                           input_size=(128, 128))) == "resnet50"
    assert weights.imagenet_weights_name(rc.get_preset("wide_resnet50_2")) == "wide_resnet50_2"
    assert weights.imagenet_weights_name(rc.get_preset("resnet50").replace(num_classes=10)) is None
    assert weights.imagenet_weights_name(rc.get_preset("plain18")) is None
    assert weights.imagenet_weights_name(rc.get_preset("resnet20")) is None
    assert set(weights.TORCHVISION_WEIGHTS) == {n for n in rc.list_presets("torchvision") if not n.startswith("plain")}
    with pytest.raises(WeightsUnavailable, match="no published ImageNet weights for 'resnet20'"):
        weights.weights_url("resnet20")
    with pytest.raises(WeightsUnavailable, match="has no IMAGENET1K_V2 weights"):
        weights.weights_url("resnet18", "IMAGENET1K_V2")


# --------------------------------------------------------------------------------------------
# class names and predictions
# --------------------------------------------------------------------------------------------

def test_imagenet_class_names():
    names = weights.imagenet_class_names()
    assert len(names) == 1000
    assert names[0] == "tench" and names[2] == "great white shark" and names[281] == "tabby"
    assert names[999] == "toilet tissue"
    assert weights.class_names_for(10) == tuple(f"class {i}" for i in range(10))
    assert weights.class_names_for(1000) is names


def test_top_predictions_against_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 10)).astype(np.float32)
    preds = weights.top_predictions(torch.from_numpy(logits), k=3, sample=1)
    z = logits[1].astype(np.float64)
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    order = np.argsort(-z)[:3]
    assert [q.index for q in preds] == order.tolist() and [q.rank for q in preds] == [1, 2, 3]
    np.testing.assert_allclose([q.probability for q in preds], p[order], rtol=1e-9)
    assert preds[0].name == f"class {order[0]}"
    named = weights.top_predictions(torch.zeros(1000).index_fill_(0, torch.tensor([207]), 5.0), k=1)
    assert named[0].name == "golden retriever"
    nan = weights.top_predictions(torch.tensor([1.0, float("nan"), 3.0]), k=2)
    assert [q.index for q in nan] == [2, 0] and all(q.probability != q.probability for q in nan)
    with pytest.raises(ValueError, match="3 class names for 10 logits"):
        weights.top_predictions(torch.zeros(10), class_names=["a", "b", "c"])
