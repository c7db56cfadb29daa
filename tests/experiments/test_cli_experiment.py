"""`python -m resnet_core experiment`: JSON with settings, plotted numbers and the verdict; tables; bad
options refused with exit status 2 and one line."""

import json

import pytest

from resnet_core.cli.main import main


def call(capsys, *args):
    try:
        code = main(["experiment", *args])
    except SystemExit as e:  # argparse's own refusals
        code = e.code
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out, out.err


def test_erf_json_has_settings_numbers_and_verdict(capsys):
    code, out, _ = call(capsys, "erf", "--depths", "2,4", "--channels", "2", "--samples", "1", "--seeds", "1",
                        "--format", "json", "--quiet")
    assert code == 0
    d = json.loads(out)
    assert d["experiment"] == "erf" and d["settings"]["depths"] == [2, 4]
    assert {"reproduced", "claim", "measured"} <= set(d["verdict"]) and isinstance(d["verdict"]["reproduced"], bool)
    assert len(d["tables"]["stacks"]) == 4 and d["tables"]["maps"]


def test_shatter_table(capsys):
    code, out, _ = call(capsys, "shatter", "--width", "8", "--depths", "2,4", "--seeds", "1", "--points", "16", "--quiet")
    assert code == 0
    assert "lag-1 autocorrelation" in out and ("REPRODUCED" in out)
    assert "Balduzzi" in out


def test_signal_with_a_spec(capsys):
    code, out, _ = call(capsys, "signal", "resnet20", "--batch", "4", "--format", "json", "--quiet")
    assert code == 0
    d = json.loads(out)
    assert d["settings"]["network"] == "resnet20" and d["settings"]["blocks"] == 9
    assert len(d["tables"]["stream"]) == 4 * 10


@pytest.mark.parametrize("args,needle", [
    (["shatter", "--width", "nan"], "--width"),
    (["landscape", "--span", "nan"], "finite"),
    (["landscape", "--span", "inf"], "finite"),
    (["shatter", "--seeds", "0"], "seeds must be between 1 and 100"),
    (["erf", "--depths", "3,8"], "even"),
    (["erf", "--depths", "x"], "integers"),
    (["signal", "--batch", "1"], "batch must be between 2"),
    (["signal", "no_such_net"], "no_such_net"),
    (["lesion", "plain20"], "plain net"),
    (["lesion", "--steps", "0"], "steps must be between"),
    (["bogus"], "invalid choice"),
])
def test_bad_options_exit_2_with_one_line(capsys, args, needle):
    code, out, err = call(capsys, *args, "--quiet") if args != ["bogus"] else call(capsys, *args)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert needle in lines[0]


def test_help_claims_no_fixed_time_and_says_the_run_prints_its_own(capsys):
    with pytest.raises(SystemExit):
        main(["experiment", "lesion", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "expected time on this machine is printed before it starts" in out
    assert "about" not in out and "2-core" not in out
