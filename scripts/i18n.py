"""The message catalogues' tool (Babel), for whoever adds or changes a message the app shows.

    .venv/bin/python scripts/i18n.py update DOMAIN FILE...   add FILEs' new messages to zh/DOMAIN.po (empty
                                                            translations to fill in); keeps every translation
    .venv/bin/python scripts/i18n.py missing [FILE...]       the messages (of FILEs, default: all) that no .po
                                                            translates yet, with where they are
    .venv/bin/python scripts/i18n.py unmarked [FILE...]      literal English in app/ files not marked with _()
    .venv/bin/python scripts/i18n.py dedupe                  a message in several .po files kept in the first only
    .venv/bin/python scripts/i18n.py unused                  catalogue entries no source uses any more
    .venv/bin/python scripts/i18n.py pot                     write resnet_core/locale/messages.pot (all messages)

The sources are app/ and resnet_core/ (the command line never sets a language: what it prints stays English,
also where it shares a marked message with the app); messages are
marked with _(), N_() and ngettext() (resnet_core/i18n.py). tests/test_i18n.py runs the same checks.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from babel.messages.catalog import Catalog  # noqa: E402
from babel.messages.extract import extract  # noqa: E402
from babel.messages.pofile import read_po, write_po  # noqa: E402

KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2), "gettext": None}
ZH = ROOT / "resnet_core" / "locale" / "zh" / "LC_MESSAGES"


ORDER = ["app", "shell", "structure", "learn", "live", "train", "why", "classroom"]  # dedupe's precedence


def sources() -> list[Path]:
    files = sorted((ROOT / "app").rglob("*.py")) + sorted((ROOT / "resnet_core").rglob("*.py"))
    return [f for f in files if "__pycache__" not in f.parts]


def messages(files: list[Path]) -> dict[str | tuple[str, str], list[str]]:
    """msgid (a plural: (singular, plural)) → where it is marked."""
    found: dict[str | tuple[str, str], list[str]] = {}
    import contextlib
    import io
    for f in files:
        # (Babel warns of every f-string among a call's arguments, e.g. `_("{n} MB", n=f"{x:.1f}")`: not a message)
        with f.open("rb") as fh, contextlib.redirect_stderr(io.StringIO()):
            for lineno, msg, _comments, _ctx in list(extract("python", fh, keywords=KEYWORDS)):
                key = tuple(msg[:2]) if isinstance(msg, tuple) else msg
                if not key or (isinstance(key, tuple) and not all(key)):
                    continue
                found.setdefault(key, []).append(f"{f.relative_to(ROOT)}:{lineno}")
    return found


def read(path: Path) -> Catalog:
    with path.open("rb") as f:
        return read_po(f, locale="zh_Hans_CN")


def write(cat: Catalog, path: Path) -> None:
    with path.open("wb") as f:
        write_po(f, cat, width=0, sort_output=False, omit_header=False)


def catalogues() -> dict[str, Catalog]:
    return {p.stem: read(p) for p in sorted(ZH.glob("*.po"))}


def translated(cats: dict[str, Catalog]) -> set:
    done = set()
    for cat in cats.values():
        for m in cat:
            if m.id and not m.fuzzy and (all(m.string) if isinstance(m.string, (tuple, list)) else m.string):
                done.add(tuple(m.id[:2]) if isinstance(m.id, (tuple, list)) else m.id)
    return done


def present(cats: dict[str, Catalog]) -> set:
    return {tuple(m.id[:2]) if isinstance(m.id, (tuple, list)) else m.id for c in cats.values() for m in c if m.id}


def _locations(where: list[str]) -> list[tuple[str, int]]:
    return [(w.rsplit(":", 1)[0], int(w.rsplit(":", 1)[1])) for w in where]


def update(domain: str, files: list[Path]) -> None:
    ZH.mkdir(parents=True, exist_ok=True)
    path = ZH / f"{domain}.po"
    cats = catalogues()
    cat = cats.get(domain) or Catalog(locale="zh_Hans_CN", project="ResNet Explorer", domain=domain,
                                      charset="utf-8", fuzzy=False)
    elsewhere = present({k: v for k, v in cats.items() if k != domain})
    added = 0
    for key, where in messages(files).items():
        if key in elsewhere or cat.get(key if isinstance(key, str) else key[0]) is not None:
            continue
        cat.add(key, string=("", "") if isinstance(key, tuple) else "", locations=_locations(where[:3]))
        added += 1
    write(cat, path)
    print(f"{path.relative_to(ROOT)}: {added} new messages, {len(cat)} in all")


_MARKERS = {"_", "N_", "ngettext", "gettext"}
_WORDS = re.compile(r"[A-Za-z]{2,}[ ,;:]+[A-Za-z]{2,}")
_NOT_TEXT_KWARGS = {"key", "icon", "format", "type", "url_path", "mime", "file_name", "width", "height",
                    "on_click", "on_change", "page"}


def unmarked(path: Path, root: Path = ROOT) -> list[str]:
    """Literal English (two or more words) in `path` that is not marked: outside _()/N_()/ngettext(), not a
    docstring, not CSS or a key, not on a line that says `i18n: not shown`."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source)
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip.add(id(first.value))
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if name in _MARKERS or name in {"debug", "info_log", "warning_log", "getLogger"}:
                for sub in ast.walk(node):
                    skip.add(id(sub))
            for kw in node.keywords:
                if kw.arg in _NOT_TEXT_KWARGS:
                    for sub in ast.walk(kw.value):
                        skip.add(id(sub))
        if isinstance(node, ast.Subscript):  # st.session_state["a key"], d["x y"]
            for sub in ast.walk(node.slice):
                skip.add(id(sub))
        if isinstance(node, ast.JoinedStr):
            for sub in ast.walk(node):
                if sub is not node:
                    skip.add(id(sub))
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
        else:
            continue
        if not _WORDS.search(text) or ("{" in text and ";" in text) or text.lstrip().startswith(("<", "#rx", ".")):
            continue
        span = lines[node.lineno - 1: (node.end_lineno or node.lineno)]
        if any("i18n: not shown" in line for line in span):
            continue
        found.append(f"{path.relative_to(root)}:{node.lineno}: {text[:70]!r}")
    return found


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "update" and len(rest) >= 2:
        update(rest[0], [Path(r).resolve() for r in rest[1:]])
        return 0
    if cmd == "missing":
        files = [Path(r).resolve() for r in rest] or sources()
        done = translated(catalogues())
        missing = {k: w for k, w in messages(files).items() if k not in done}
        for key, where in missing.items():
            print(f"{where[0]}: {key!r}")
        print(f"{len(missing)} messages without a translation", file=sys.stderr)
        return 1 if missing else 0
    if cmd == "unmarked":
        files = [Path(r).resolve() for r in rest] or sorted((ROOT / "app").rglob("*.py"))
        hits = [h for f in files for h in unmarked(f)]
        print("\n".join(hits))
        print(f"{len(hits)} unmarked English strings", file=sys.stderr)
        return 1 if hits else 0
    if cmd == "dedupe":  # a message in several domains stays in the first (ORDER), the others lose it
        cats = catalogues()
        order = sorted(cats, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))
        kept: dict = {}
        for name in order:
            cat = cats[name]
            for m in list(cat):
                key = tuple(m.id[:2]) if isinstance(m.id, (tuple, list)) else m.id
                if not m.id:
                    continue
                if key in kept:
                    first, text = kept[key]
                    if text != m.string:
                        print(f"{key!r}: {first}.po {text!r} kept, {name}.po {m.string!r} dropped")
                    cat.delete(m.id)
                else:
                    kept[key] = (name, m.string)
            write(cat, ZH / f"{name}.po")
        return 0
    if cmd == "unused":
        used = set(messages(sources()))
        for name, cat in catalogues().items():
            for m in cat:
                key = tuple(m.id[:2]) if isinstance(m.id, (tuple, list)) else m.id
                if m.id and key not in used:
                    print(f"{name}.po: {key!r}")
        return 0
    if cmd == "pot":
        cat = Catalog(project="ResNet Explorer", charset="utf-8")
        for key, where in messages(sources()).items():
            cat.add(key, locations=_locations(where))
        write(cat, ROOT / "resnet_core" / "locale" / "messages.pot")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
