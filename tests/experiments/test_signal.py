"""Signal propagation: the measure against its definition, the stream against a hand-run forward, and the
acceptance (16 blocks at init) at a small width and input."""

import numpy as np
import torch

from resnet_core.experiments import signal
from resnet_core.structure.build import build_model


def test_channel_stats_match_their_definition():
    x = torch.randn(5, 3, 4, 4) * torch.tensor([1.0, 2.0, 3.0])[None, :, None, None] + 0.5
    var, cvar, mean2 = signal.channel_stats(x)
    a = x.numpy().astype(np.float64)
    per_channel = [a[:, c].ravel() for c in range(3)]
    assert np.isclose(var, a.var())
    assert np.isclose(cvar, np.mean([p.var() for p in per_channel]))
    assert np.isclose(mean2, np.mean([p.mean() ** 2 for p in per_channel]))


def test_stream_is_each_blocks_output():
    spec = signal.reference_spec(blocks=3, width=4, size=8)
    model = build_model(spec, seed=1)
    x = torch.randn(6, 3, 8, 8)
    rows = signal.stream_stats(model, x)
    model.train()
    with torch.no_grad():  # the same forward by hand: stem, then each block
        h = model.relu(model.bn1(model.conv1(x)))
        expected = [signal.channel_stats(h)[0]]
        for block in model.layer1:
            h = block(h)
            expected.append(signal.channel_stats(h)[0])
    assert [r["block"] for r in rows] == [0, 1, 2, 3]
    assert np.allclose([r["variance"] for r in rows], expected, rtol=1e-4)


def test_acceptance_sixteen_blocks_small():
    result = signal.run(signal.SignalSettings(spec=signal.reference_spec(blocks=16, width=8, size=8), batch=16))
    nobn = [r for r in result.tables["stream"] if r["variant"] == "no BN + skips"]
    bn = [r for r in result.tables["stream"] if r["variant"] == "BN + skips"]
    assert nobn[-1]["variance"] / nobn[0]["variance"] >= 100  # roughly doubles per block
    for r in bn[1:]:
        assert 0.5 <= r["variance"] / (r["block"] + 1) <= 2
    assert result.verdict.reproduced
    assert len(bn) == 17


def test_same_seed_same_numbers():
    s = signal.SignalSettings(spec=signal.reference_spec(blocks=4, width=4, size=8), batch=4, seed=3)
    a, b = signal.run(s), signal.run(s)
    assert a.tables == b.tables
    c = signal.run(signal.SignalSettings(spec=s.spec, batch=4, seed=4))
    assert c.tables != a.tables


def test_the_first_row_outside_the_band_gets_its_note():
    """ℓ = 0 (the stem's output) at variance 0.342 is outside 0.5–2 and outside the check; its note says so, with
    what the blocks add per block, (15.1 − 0.342) / 16, computed here."""
    variances = [0.342] + [0.342 + 0.92 * ell for ell in range(1, 17)]
    rows = [{"variant": "BN + skips", "block": ell, "variance": v, "channel_variance": 0.7 * v,
             "squared_channel_mean": 0.3 * v} for ell, v in enumerate(variances)]
    v, findings = signal.judge(rows, 16)
    note = next(f for f in findings if f.startswith("Row ℓ = 0"))
    assert "variance 0.342" in note and "outside the band" in note
    assert f"= {(variances[-1] - 0.342) / 16:.3g} per block" in note
    rows[0]["variance"] = 1.0  # inside the band: the note stays, without "outside"
    _, findings = signal.judge(rows, 16)
    assert "outside the band" not in next(f for f in findings if f.startswith("Row ℓ = 0"))
