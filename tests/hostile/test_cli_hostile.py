"""The command line under hostile arguments and files (presets, trace, export): exit status 2 with a
one-line reason, never a traceback or an "internal error"; exported code of a hostile name still runs."""

import ast
import json

import pytest

from resnet_core.cli.main import main


def _files(tmp):
    f = {}

    def w(name, text):
        (tmp / name).write_text(text, encoding="utf-8")
        f[name] = str(tmp / name)

    w("deep.json", '{"name": ' + "[" * 100_000 + "]" * 100_000 + "}")
    w("deep.yaml", "name: " + "[" * 100_000 + "]" * 100_000)
    w("laughs.yaml", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nname: *c\n")
    w("merge.yaml", "base: &b {width: 16}\nstages:\n  - {<<: *b}\n")
    w("bigint.json", '{"num_classes": ' + "9" * 5000 + "}")
    w("bigint.yaml", "num_classes: " + "9" * 5000)
    w("hexint.yaml", "num_classes: 0x" + "f" * 100_000)
    w("nan.json", '{"bn_eps": NaN}')
    w("inf.yaml", "bn_momentum: .inf")
    w("stages.json", json.dumps({"stages": [{"blocks": 1}] * 5000}))
    w("blocks.json", json.dumps({"stages": [{"blocks": 9_000}, {"blocks": 9_000, "width": 128, "stride": 2}]}))
    w("width.json", json.dumps({"stages": [{"width": 2 ** 62}]}))
    w("ctrl.json", json.dumps({"name": "a\nb"}))
    w("list.json", "[1, 2, 3]")
    w("binary.yaml", "\ud800" if False else "x: !!binary AAAA")
    w("pyobj.yaml", "!!python/object/apply:os.system ['touch PWNED']")
    (tmp / "latin1.yaml").write_bytes(b"name: \xff\xfe")
    f["latin1.yaml"] = str(tmp / "latin1.yaml")
    return f


BAD_FILES = ["deep.json", "deep.yaml", "laughs.yaml", "merge.yaml", "bigint.json", "bigint.yaml", "hexint.yaml",
             "nan.json", "inf.yaml", "stages.json", "ctrl.json", "list.json", "pyobj.yaml", "latin1.yaml"]
BROKEN_NETS = ["blocks.json", "width.json"]  # a spec, but a network the planner refuses, located


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _assert_clean(code, err, want=2):
    assert code == want, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert err.strip(), "a refusal says why"


@pytest.mark.parametrize("name", BAD_FILES + BROKEN_NETS)
@pytest.mark.parametrize("command", ["trace", "export"])
def test_hostile_spec_files_exit_2_with_the_reason(name, command, tmp_path, capsys):
    files = _files(tmp_path)
    argv = [command, files[name]] + (["--to", "code"] if command == "export" else [])
    code, out, err = _run(capsys, argv)
    _assert_clean(code, err)
    assert not (tmp_path / "PWNED").exists()
    if name in BAD_FILES:
        assert len(err.strip().splitlines()) == 1, err  # one line: the reason


@pytest.mark.parametrize("arg", ["x" * 100_000, "a\x00b", "../" * 2000 + "etc/passwd", "/dev/zero", "/",
                                 "/proc/self/mem", "~nobody/.ssh/id_rsa", "-", "\ud800".encode("utf-8", "surrogatepass")
                                 .decode("utf-8", "surrogateescape")])
def test_hostile_spec_arguments_exit_2(arg, capsys):
    code, out, err = _run(capsys, ["trace", arg])
    _assert_clean(code, err)


@pytest.mark.parametrize("value", ["0,224,224", "3,0,224", "-1,2,3", "3,224", "3,224,224,1", "nan,1,1", "inf,1,1",
                                   "3,1e9,3", "3," + "9" * 5000 + ",3", "3,99999999999999999999,3",
                                   "99999999,224,224", "3,70000,70000", "", "x"])
@pytest.mark.parametrize("command", ["trace", "export"])
def test_input_shape_out_of_range_exits_2(value, command, capsys):
    argv = [command, "resnet18", "--input", value] + (["--to", "json"] if command == "export" else [])
    with pytest.raises(SystemExit) as e:  # argparse refuses it: usage and one "error:" line, status 2
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error:" in err and "--input" in err


@pytest.mark.parametrize("expand", ["0", "-1", "5", "99999999999999999999999", "9" * 5000, "nan", "1.5"])
def test_expand_out_of_range_exits_2(expand, capsys):
    try:
        code = main(["export", "resnet18", "--to", "dot", "--expand", expand])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "--expand" in err


def test_output_paths_that_cannot_be_written_exit_2(tmp_path, capsys):
    for target in (str(tmp_path / "no" / "such" / "x.py"), str(tmp_path), "/proc/version", "/dev/full"):
        code, out, err = _run(capsys, ["export", "resnet20", "--to", "json", "-o", target])
        _assert_clean(code, err)


@pytest.mark.parametrize("name", ['"""; import os; os.system("touch PWNED"); """', "x\\", "<b>", "{{}}",
                                  "![x](http://evil.example)", "=1+1"])
def test_export_of_a_hostile_name_gives_code_that_parses_and_dot_that_quotes_it(name, tmp_path, capsys):
    f = tmp_path / "net.json"
    f.write_text(json.dumps({"name": name, "input_size": 8, "stem": {"type": "cifar", "channels": 4},
                             "stages": [{"blocks": 1, "width": 4}], "num_classes": 2}))
    code, out, err = _run(capsys, ["export", str(f), "--to", "code"])
    assert code == 0, err
    tree = ast.parse(out)
    assert ast.get_docstring(tree, clean=False).startswith(name + ":")
    assert not (tmp_path / "PWNED").exists()
    code, out, err = _run(capsys, ["export", str(f), "--to", "dot"])
    assert code == 0 and "=<" not in out


def test_presets_has_no_options_to_abuse(capsys):
    with pytest.raises(SystemExit) as e:
        main(["presets", "--format", "xml"])
    assert e.value.code == 2
    assert main(["presets", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) > 10
