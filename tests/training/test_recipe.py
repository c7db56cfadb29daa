"""He et al. 2015's CIFAR-10 recipe: its settings against the paper's text, the augmentation against a slow
per-image reference, the error-80 warm-up against the records it is decided from, the 45k/5k split, and
the command on a tiny CIFAR-10 folder written here in the real pickled layout."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from resnet_core.cli.main import main
from resnet_core.structure.presets import get_preset
from resnet_core.training import config as tconfig
from resnet_core.training import data as D
from resnet_core.training.ops import augment_batch
from resnet_core.training.recipe import PAPER_TABLE6_ERROR, get_recipe, paper_error
from resnet_core.training.run import TrainingRun

from .test_data import make_cifar


def test_the_recipe_is_the_papers():
    """§4.2: 'mini-batch size of 128 … learning rate of 0.1, divide it by 10 at 32k and 48k iterations, and
    terminate training at 64k iterations … 45k/5k train/val split … 4 pixels are padded on each side, and a
    32×32 crop is randomly sampled … or its horizontal flip … weight decay of 0.0001 and momentum of 0.9'."""
    rec = get_recipe("he2015-cifar")
    assert (rec.batch_size, rec.lr, rec.momentum, rec.weight_decay) == (128, 0.1, 0.9, 1e-4)
    assert rec.milestones == (32_000, 48_000) and rec.steps == 64_000 and rec.augment
    assert rec.val_fraction * 50_000 == 5_000 and rec.input_size == 32
    cfg = tconfig.TrainConfig(batch_size=128, **rec.train_config())
    lrs = [tconfig.lr_at(s, cfg, warmup=False) for s in (0, 31_999, 32_000, 47_999, 48_000, 63_999)]
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    # ResNet-110 warms up ('0.01 … until the training error is below 80%'), ResNet-56 does not
    assert tconfig.lr_at(0, cfg, warmup=True, warming=True) == pytest.approx(0.01)
    assert tconfig.lr_at(0, cfg, warmup=True, warming=False) == pytest.approx(0.1)
    assert tconfig.weighted_depth(get_preset("resnet110")) >= rec.warmup_depth > tconfig.weighted_depth(
        get_preset("resnet56"))
    with pytest.raises(tconfig.TrainError, match="unknown recipe"):
        get_recipe("he2016")


def test_table6_errors():
    """He et al. 2015, Table 6 (CIFAR-10 test error, %)."""
    assert PAPER_TABLE6_ERROR == {"resnet20": 8.75, "resnet32": 7.51, "resnet44": 7.17, "resnet56": 6.97,
                                  "resnet110": 6.43, "resnet1202": 7.93}
    assert paper_error("resnet110") == 6.43 and paper_error("resnet56 #2") == 6.97 and paper_error("plain20") is None


def _slow_augment(x, oy, ox, flip, pad=4):
    """One image at a time: zero-pad, crop at (oy, ox), flip."""
    out = []
    for i in range(x.shape[0]):
        p = F.pad(x[i], (pad, pad, pad, pad))
        crop = p[:, oy[i]:oy[i] + x.shape[2], ox[i]:ox[i] + x.shape[3]]
        out.append(crop.flip(2) if flip[i] else crop)
    return torch.stack(out)


def test_augmentation_pads_crops_and_flips_like_the_slow_reference():
    x = torch.randn(64, 3, 8, 8)
    ours = augment_batch(x, torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)  # the same draws, in the same order
    oy, ox = torch.randint(0, 9, (64,), generator=g), torch.randint(0, 9, (64,), generator=g)
    flip = torch.rand(64, generator=g) < 0.5
    assert torch.equal(ours, _slow_augment(x, oy.tolist(), ox.tolist(), flip.tolist()))
    assert 0 < int(flip.sum()) < 64 and len(set(oy.tolist())) > 3  # it really varies
    assert torch.equal(augment_batch(x, torch.Generator().manual_seed(4)), ours)  # seeded


def test_error80_warm_up_ends_when_the_last_ten_batches_are_below_80_percent_error():
    data = D.load_digits(input_size=8, in_channels=3, seed=0)
    cfg = tconfig.TrainConfig(steps=40, batch_size=32, lr=0.05, schedule="constant", threads=1, warmup_depth=20)
    run = TrainingRun(["resnet20", "plain20"], data, cfg, "cpu")
    result = run.run()
    recs = [r for r in result.records if r.net == "resnet20"]
    # the reference: the first step whose trailing 10 batch accuracies average above 20 %
    acc = [r.accuracy for r in recs]
    end = next(i + 1 for i in range(9, len(acc)) if sum(acc[i - 9:i + 1]) / 10 > 0.2)
    assert result.net("resnet20").warmup_until == end
    assert [r.lr for r in recs[:end]] == pytest.approx([0.005] * end)  # lr/10 up to and including that step
    assert [r.lr for r in recs[end:]] == pytest.approx([0.05] * (40 - end))


def test_the_validation_split_is_held_out_of_the_train_images(tmp_path):
    folder, train_x, train_y, test_x, _ = make_cifar(tmp_path, per_batch=20, n_test=10)
    ds = D.load_cifar10(folder, val_fraction=0.1, seed=0)
    assert (ds.n_train, ds.n_val, ds.n_test) == (90, 10, 10)
    raw = lambda x: np.rint(ds.denormalise(x).numpy() * 255).astype(np.uint8).reshape(len(x), -1)  # noqa: E731
    rows = {r.tobytes() for r in train_x}
    val, train = {r.tobytes() for r in raw(ds.x_val)}, {r.tobytes() for r in raw(ds.x_train)}
    assert val <= rows and train <= rows and not val & train and len(val | train) == 100
    with pytest.raises(D.DataError, match="validation fraction"):
        D.load_cifar10(folder, val_fraction=1.5)


def test_the_recipe_command_on_a_tiny_cifar_folder(tmp_path, capsys):
    folder, *_ = make_cifar(tmp_path, per_batch=20, n_test=10)
    code = main(["train", "--recipe", "he2015-cifar", "--nets", "resnet20,resnet110", "--data", f"cifar:{folder}",
                 "--steps", "2", "--threads", "1", "--device", "cpu"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "He et al. 2015 (§4.2) CIFAR-10: batch 128" in out.err and "÷10 at 32k and 48k" in out.err
    header = next(line for line in out.out.splitlines() if line.startswith("net"))
    assert "val err" in header and "test err" in header and "paper test err (Table 6)" in header
    r20 = next(line for line in out.out.splitlines() if line.startswith("resnet20 "))
    r110 = next(line for line in out.out.splitlines() if line.startswith("resnet110"))
    assert "8.75%" in r20 and "6.43%" in r110
    assert "a short check: 2 of the recipe's 64,000 iterations" in out.out
    assert "90 train / 10 validation / 10 held-out" in out.out

    code = main(["train", "--recipe", "he2015-cifar", "--nets", "resnet20", "--data", f"cifar:{folder}",
                 "--steps", "2", "--threads", "1", "--device", "cpu", "--format", "json"])
    d = json.loads(capsys.readouterr().out)
    cfg = d["config"]
    assert code == 0 and cfg["lr"] == 0.1 and cfg["milestones"] == [32000, 48000] and cfg["augment"]
    assert cfg["batch_size"] == 90  # the recipe's 128, capped by the 90 train images of this tiny folder
    assert d["nets"][0]["val_accuracy"] is not None and d["specs"]["resnet20"]["input_size"] == [32, 32]


def test_the_recipe_needs_cifar(capsys):
    assert main(["train", "--recipe", "he2015-cifar", "--data", "digits"]) == 2
    err = capsys.readouterr().err
    assert "--recipe he2015-cifar trains on CIFAR-10: give --data cifar:PATH" in err and len(err.splitlines()) == 1
