"""Names that are files (issue 25, item 8): a network named like a Windows device gets a safe file name.

The reference is Microsoft's list ("Naming Files, Paths, and Namespaces"): CON, PRN, AUX, NUL, COM0-9
and LPT0-9 (with the superscript digits ¹²³), in any case, with any extension, and with trailing dots or
spaces, are opened as devices. The check below is written from that page, not from the code under test.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resnet_core.text import safe_filename

DEVICES = ["CON", "PRN", "AUX", "NUL"] + [f"{p}{d}" for p in ("COM", "LPT") for d in "0123456789¹²³"]


def opens_a_device(filename: str) -> bool:
    """Windows' rule: the name up to its first dot, trailing spaces and dots dropped, case ignored."""
    base = filename.split(".")[0].rstrip(" .").upper()
    base = base.replace("¹", "1").replace("²", "2").replace("³", "3")
    return base in {d.replace("¹", "1").replace("²", "2").replace("³", "3") for d in DEVICES}


@pytest.mark.parametrize("name", ["CON", "con", "nul.txt", "COM1", "LPT9 ", "Lpt9 .", "aux.tar.gz", "PRN.",
                                  "com¹", "NUL  .json", "com0", "LPT0.x"])
@pytest.mark.parametrize("suffix", ["", ".json", ".py", "_trace.csv"])
def test_device_names_get_a_safe_file_name(name, suffix):
    out = safe_filename(name, suffix)
    assert not opens_a_device(out), out
    assert out.endswith(suffix)


@given(st.sampled_from(DEVICES), st.sampled_from(["", ".", " ", ". ", ".txt", ".tar.gz", " .json"]),
       st.sampled_from(["", ".json", ".yaml", ".pt", ".csv"]), st.booleans())
def test_no_case_or_extension_makes_a_device_name(device, tail, suffix, lower):
    name = (device.lower() if lower else device) + tail
    assert not opens_a_device(safe_filename(name, suffix))


@pytest.mark.parametrize("name, expected", [("resnet18", "resnet18.json"), ("CONVNET", "CONVNET.json"),
                                            ("console", "console.json"), ("com10", "com10.json")])
def test_ordinary_names_are_unchanged(name, expected):
    assert safe_filename(name, ".json") == expected
