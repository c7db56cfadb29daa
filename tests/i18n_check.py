"""What a page shows that is still English, for the Chinese tests (tests/test_i18n.py and each page's own).

`english_in(text)` finds runs of three or more English words in a text once the things that stay as they are
in Chinese are set aside: numbers and units, layer and file names (conv1, layer3.2, a.b_c), code spans,
links, and the names of methods, papers' authors, libraries and formats (ALLOWED below, and any word listed
in tests/i18n_allow/*.txt, one per line). `shown_texts(at)` collects every string an AppTest run shows: the
elements' bodies, labels, help, options, table headers and cells, chart specs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

# names that a Chinese text keeps in Latin letters (case-sensitive, whole words)
ALLOWED = """
ResNet ResNets ResNet-D ResNeXt ConvNeXt ConvNeXt-T ConvNeXt-S ConvNeXt-B SE ECA SENet ECA-Net RS PyTorch torch
torchvision timm torchinfo torchrun Streamlit Graphviz DOT JSON YAML CSV PNG SVG PDF URL HTML API CLI CPU GPU
CUDA bf16 fp32 MPS CIFAR CIFAR-10 ImageNet MNIST BatchNorm LayerNorm GroupNorm BN LN ReLU GELU SiLU Swish
Sigmoid Softmax FC Conv Linear MaxPool AvgPool AdaptiveAvgPool2d Conv2d Linear Identity Dropout FLOPs GFLOPs
MACs GMACs MB GB KB MiB GiB ms He Zhang Ren Sun et al Kaiming Xavier Glorot Goyal Balduzzi Veit Luo Li Liu
Schoenholz Poole Hu Wang Xie Okabe Ito Machado SGD Adam AdamW Nesterov ERF Figure Table Fig arXiv CVPR ECCV
ICML NeurIPS NIPS ICLR v1 v1.5 v2 id rx OK nn Module nn.Module fx LR x F x F(x) F(x)+x ∂L ∂W W1 L2 H W C N
PostgreSQL SQLite nginx psycopg ResNet-18 ResNet-34 ResNet-50 ResNet-101 ResNet-152 Bottleneck
BasicBlock k s p A B C D E e.g i.e vs
""".split()  # noqa: SIM905

_ALLOW_DIR = Path(__file__).parent / "i18n_allow"


def allowed_words() -> set[str]:
    words = set(ALLOWED)
    if _ALLOW_DIR.is_dir():
        for f in sorted(_ALLOW_DIR.glob("*.txt")):
            words.update(w.strip() for w in f.read_text(encoding="utf-8").splitlines()
                         if w.strip() and not w.startswith("#"))
    return words


_SET_ASIDE = [
    re.compile(r"`[^`]*`"),  # code spans
    re.compile(r"```.*?```", re.S),
    re.compile(r"https?://\S+|www\.\S+"),
    re.compile(r"<[^>]+>"),  # HTML tags (their text stays)
    re.compile(r":material/[a-z_]+:"),
    re.compile(r"\b[\w-]*[0-9_./][\w./-]*\b"),  # layer/file/module names, numbers with units, versions
]
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")


def english_in(text: str, allowed: set[str] | None = None, run: int = 3) -> list[str]:
    """The runs of `run` or more English words in `text` (separated only by spaces or light punctuation)."""
    allowed = allowed_words() if allowed is None else allowed
    for pattern in _SET_ASIDE:
        text = pattern.sub(" · ", text)
    found: list[str] = []
    words: list[str] = []
    pos = 0
    for m in _WORD.finditer(text):
        gap = text[pos:m.start()]
        pos = m.end()
        word = m.group(0).strip("'’-")
        joined = bool(words) and re.fullmatch(r"[\s,;:()'\"“”‘’/&+-]*", gap) is not None
        if not joined:
            if len(words) >= run:
                found.append(" ".join(words))
            words = []
        if word in allowed or len(word) < 2:
            if len(words) >= run:
                found.append(" ".join(words))
            words = []
            continue
        words.append(word)
    if len(words) >= run:
        found.append(" ".join(words))
    return found


_NOT_SHOWN = {"id", "form_id", "key", "icon", "type", "default", "value_type", "format", "placeholder_type",
              "dataframe_arrow", "element_type", "spec_id", "theme", "use_container_width", "selection_mode",
              "vega_lite_chart_spec_id", "datasets", "data", "arrow_data", "url", "icon_name", "gap",
              "code_text"}  # code (st.code) stays as it is in Chinese


def _proto_strings(msg, out: list[str]) -> None:
    for field, value in msg.ListFields():
        if field.name in _NOT_SHOWN:
            continue
        if field.type == field.TYPE_STRING:
            values = value if getattr(field, "is_repeated", False) else [value]
            for v in values:
                if v.lstrip()[:1] in ("{", "["):
                    try:
                        _json_strings(json.loads(v), out)
                        continue
                    except ValueError:
                        pass
                out.append(v)
        elif field.type == field.TYPE_MESSAGE:
            values = value if getattr(field, "is_repeated", False) else [value]
            for v in values:
                _proto_strings(v, out)


_CHART_KEYS_NOT_SHOWN = {"$schema", "field", "type", "name", "mark", "data", "format", "scheme", "aggregate",
                         "fontWeight", "font", "labelFont", "titleFont", "stroke", "fill", "color", "shape",
                         "strokeDash", "datasets", "param", "bind", "orient", "align", "baseline", "as", "op",
                         "timeUnit", "sort", "stack", "interpolate", "cursor", "legend_key"}


def _json_strings(obj, out: list[str], key: str = "") -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k not in _CHART_KEYS_NOT_SHOWN:
                _json_strings(v, out, k)
    elif isinstance(obj, list):
        for v in obj:
            _json_strings(v, out, key)
    elif isinstance(obj, str) and key in {"title", "text", "subtitle", "description", "labelExpr", "label", "help", ""}:
        out.append(obj)


def shown_texts(at) -> list[str]:
    """Every string the AppTest run shows (main area and sidebar), including table headers and cells."""
    out: list[str] = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None and hasattr(proto, "ListFields"):
            _proto_strings(proto, out)
        children = getattr(node, "children", None)
        if isinstance(children, dict):
            for child in children.values():
                walk(child)

    for root in (at.main, at.sidebar):
        walk(root)
    for frame in at.dataframe:
        try:
            df = frame.value
        except Exception:  # noqa: BLE001 - a table the test harness cannot decode: its headers only
            continue
        out.extend(str(c) for c in df.columns)
        for col in df.columns:
            if df[col].dtype == object:
                out.extend(str(v) for v in df[col].tolist())
    return out


def english_shown(at, allowed: set[str] | None = None) -> list[str]:
    """The English runs in everything `at` shows (each with a little of its context), for an assertion."""
    allowed = allowed_words() if allowed is None else allowed
    found = []
    for text in shown_texts(at):
        for run in english_in(text, allowed):
            found.append(f"{run!r} in {text[:120]!r}")
    return sorted(set(found))
