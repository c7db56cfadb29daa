"""The one home of number formatting (issue 19 item 5): each place's words for missing and non-finite values
are options of one function, and the digits are Python's own format specification's."""

import math

import pytest

from resnet_core.formatting import fmt_pct, fmt_sig


@pytest.mark.parametrize("v", [0.123456, 1234567.0, 1e-9, -2.5, 7.0])
def test_fmt_sig_is_pythons_significant_digits(v):
    assert fmt_sig(v) == format(v, ".3g") and fmt_sig(v, 5) == format(v, ".5g")


def test_fmt_sig_says_missing_and_non_finite_in_the_callers_words():
    assert fmt_sig(None) == "—" and fmt_sig(None, missing="n/a") == "n/a"
    assert fmt_sig(math.nan) == "NaN" and fmt_sig(math.nan, nan="n/a") == "n/a"
    assert fmt_sig(math.inf) == "∞" and fmt_sig(-math.inf) == "−∞"
    assert fmt_sig(math.inf, inf=("NaN/Inf", "NaN/Inf")) == "NaN/Inf"
    assert fmt_sig(0.0) == "0" and fmt_sig(-0.0) == "0"


@pytest.mark.parametrize("v, decimals", [(0.9671, 1), (0.08754, 2), (1.0, 1), (0.0, 2)])
def test_fmt_pct_is_a_hundred_times_the_fraction(v, decimals):
    assert fmt_pct(v, decimals) == f"{format(100 * v, f'.{decimals}f')}%"
    assert fmt_pct(v, decimals, sep=" ").endswith(" %")


def test_fmt_pct_missing():
    assert fmt_pct(None) == fmt_pct(math.nan) == fmt_pct(math.inf) == "—"
    assert fmt_pct(None, missing="n/a") == "n/a"
