"""`trace resnet18`'s text table against a golden file, as torchinfo keeps its expected outputs.

The golden file was read line by line against references when it was written: 11,689,512 parameters
(torchvision's published count), 1,814,083,944 mult-adds (torchinfo's), the 224 → 112 → 56 → 28 → 14 →
7 → 1 staircase of He et al.'s Table 1, 18 weight layers, conv1 = 64·3·7·7 = 9,408 weights, fc =
512·1000 + 1000 = 513,000. A change to the table's layout or numbers fails here; when the change is
meant, regenerate with RESNET_EXPLORER_UPDATE_GOLDEN=1 and read the diff before committing it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "trace_resnet18.txt"


def test_trace_resnet18_table_matches_the_golden_file():
    out = subprocess.run([sys.executable, "-m", "resnet_core", "trace", "resnet18"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    if os.environ.get("RESNET_EXPLORER_UPDATE_GOLDEN"):
        GOLDEN.write_text(out, encoding="utf-8")
    expected = GOLDEN.read_text(encoding="utf-8")
    assert out.splitlines() == expected.splitlines()


def test_the_golden_file_holds_the_published_figures():
    """The golden file itself agrees with the references it was checked against (it can't drift silently)."""
    text = GOLDEN.read_text(encoding="utf-8")
    assert "Total params:       11,689,512" in text
    assert "Total mult-adds:    1,814,083,944" in text
    assert "Depth:              18 weight layers" in text
    outputs = [line.split()[3] for line in text.splitlines() if line.startswith(("conv1 ", "maxpool ", "layer1.1.add",
                                                                               "layer2.1.add", "layer3.1.add",
                                                                               "layer4.1.add", "avgpool "))]
    assert outputs == ["64×112×112", "64×56×56", "64×56×56", "128×28×28", "256×14×14", "512×7×7", "512×1×1"]
