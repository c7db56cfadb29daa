"""The house rules that no single module can check for itself: no import circle, no module reaching into
another's private (underscore) names, small modules, a library that never imports streamlit or prints, and
one list of pinned dependencies."""

from __future__ import annotations

import ast
import functools
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "resnet_core"
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(LIB.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The library module an import names (a module, or the package whose __init__ defines the name)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path) -> set[str]:
    """Every resnet_core module that `module` imports, at the top or inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for name in names:
            if name == "resnet_core" or name.startswith("resnet_core."):
                target = _resolve(name)
                if target and target != module:
                    found.add(target)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_planted_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_import_walker_sees_deferred_and_relative_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from resnet_core.structure import spec\n    from ..device import pick_device\n")
    found = imports_of("resnet_core.lab.m", source)
    assert {"resnet_core.structure.spec", "resnet_core.device"} <= found


def test_no_import_circle_anywhere_in_the_library():
    graph = {m: imports_of(m, p) for m, p in MODULES.items()}
    # a package's __init__ runs before its modules: an edge into a package from inside it is not a circle
    graph = {m: {t for t in deps if not m.startswith(t + ".")} for m, deps in graph.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " → ".join(cycle)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_over_the_size_limit(module):
    lines = MODULES[module].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{module} has {lines} lines (limit {MAX_LINES}): split it by what it does"


def test_the_library_never_imports_streamlit_and_never_prints():
    for module, path in MODULES.items():
        if module.startswith("resnet_core.cli"):
            continue  # the command line is the one part that prints
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n.split(".")[0] == "streamlit" for n in names), f"{module} imports streamlit"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                pytest.fail(f"{module} prints (line {node.lineno}); return the text to the caller instead")


HOUSE = ("resnet_core", "app")  # the packages whose private names stay private


def _house_modules() -> dict[str, Path]:
    out = {}
    for package in HOUSE:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


HOUSE_MODULES = _house_modules()


def _private(name: str) -> bool:
    """`_y` is private; `__version__`-style dunders are not, nor gettext's `_` (resnet_core.i18n's public name for
    "translate this", by the convention every gettext tool extracts)."""
    return name.startswith("_") and name != "_" and not (name.startswith("__") and name.endswith("__"))


def _in_house(name: str) -> bool:
    return name.split(".")[0] in HOUSE


def private_reaches(module: str, path: Path, modules: dict[str, Path] | None = None) -> list[str]:
    """Every place where `module` uses another house module's underscore name: `from x import _y`,
    `from x._m import y` / `import x._m` (a private module of a package), and `m._y` where `m` names an
    imported house module. Each as "module:line: what"."""
    modules = HOUSE_MODULES if modules is None else modules
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[str] = []
    bound: dict[str, str] = {}  # local name → the house module it names

    def absolute(node: ast.ImportFrom) -> str:
        base = node.module or ""
        if node.level:
            anchor = package.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join(anchor + ([base] if base else []))
        return base

    def private_part(dotted: str) -> str | None:
        return next((p for p in dotted.split(".") if _private(p)), None)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if not _in_house(a.name):
                    continue
                if private_part(a.name) and a.name.rpartition(".")[0] != package:
                    found.append(f"{module}:{node.lineno}: import {a.name}")
                if a.asname:
                    bound[a.asname] = a.name
                else:
                    bound[a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = absolute(node)
            if not _in_house(base):
                continue
            own = base == module or (path.name == "__init__.py" and base == package)
            if private_part(base) and not (base in (module, package) or base.startswith(package + ".")):
                found.append(f"{module}:{node.lineno}: from {base} import …")
            for a in node.names:
                if _private(a.name) and not own:
                    found.append(f"{module}:{node.lineno}: from {base} import {a.name}")
                if f"{base}.{a.name}" in modules:
                    bound[a.asname or a.name] = f"{base}.{a.name}"

    def dotted(node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return bound.get(node.id)
        if isinstance(node, ast.Attribute):
            head = dotted(node.value)
            return f"{head}.{node.attr}" if head else None
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            owner = dotted(node.value)
            if owner and owner in modules and owner != module:
                found.append(f"{module}:{node.lineno}: {owner}.{node.attr}")
    return sorted(set(found))


def test_the_private_name_finder_sees_every_way_in(tmp_path):
    fake = {"resnet_core.lab.hooks": tmp_path / "hooks.py", "resnet_core.lab": tmp_path / "__init__.py",
            "resnet_core.lab.m": tmp_path / "m.py"}
    source = tmp_path / "m.py"
    source.write_text(
        "from resnet_core.lab.hooks import _blocks_of, public\n"
        "from .hooks import _safe_ratio\n"
        "from resnet_core.lab import hooks\n"
        "import resnet_core.lab.hooks as h\n"
        "import torch\n"
        "from resnet_core import __version__\n"
        "def f(m):\n"
        "    hooks._blocks_of(m); h._x; hooks.public; torch._foreach_norm; m._private; _own()\n"
        "    from ..lab.hooks import _late\n")
    found = private_reaches("resnet_core.lab.m", source, fake)
    assert found == ["resnet_core.lab.m:1: from resnet_core.lab.hooks import _blocks_of",
                     "resnet_core.lab.m:2: from resnet_core.lab.hooks import _safe_ratio",
                     "resnet_core.lab.m:8: resnet_core.lab.hooks._blocks_of",
                     "resnet_core.lab.m:8: resnet_core.lab.hooks._x",
                     "resnet_core.lab.m:9: from resnet_core.lab.hooks import _late"], found


# The reaches found when this rule was written, all in modules other helpers are reworking (issue 19 items 2
# and 3: lab/hooks.py's probe toolbox made public, the training run moved into one library object). The
# first test below keeps new ones out today; when those changes are merged, empty this set (the xfail on the
# second test then lifts itself).
BEING_RENAMED: set[str] = set()  # reaches being renamed on another branch (none now)


@functools.cache
def _all_private_reaches() -> list[str]:
    return [hit for m, p in HOUSE_MODULES.items() for hit in private_reaches(m, p)]


def _without_line(hit: str) -> str:
    where, _, what = hit.partition(": ")
    return f"{where.rpartition(':')[0]}: {what}"


def test_no_new_reach_into_another_modules_private_names():
    new = [hit for hit in _all_private_reaches() if _without_line(hit) not in BEING_RENAMED]
    assert not new, "private names used from another module (make them public, or keep them in one module):\n" \
        + "\n".join(new)


def test_no_module_imports_another_modules_private_name():
    hits = _all_private_reaches()
    assert not hits, "private names used from another module:\n" + "\n".join(hits)


def test_pyproject_pins_the_same_runtime_dependencies_as_requirements_txt():
    pins = {line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()}
    pins.discard("")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(project["dependencies"]) == pins
    assert "torch==2.13.0" in pins  # the CPU wheel on disk; an unpinned torch pulls GBs of CUDA packages
    assert project["scripts"]["resnet-explorer"] == "resnet_core.cli.main:main"
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", p) for p in pins), pins


def test_every_package_is_in_the_wheel():
    """`pip install .` ships what pyproject.toml lists: every folder with an __init__.py must be there (the
    model-from-code and classroom packages were once left out)."""
    import tomllib
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for top in ("resnet_core", "app")
             for p in (ROOT / top).rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
