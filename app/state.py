"""spec ↔ st.session_state ↔ st.query_params.

The builder's widgets own the network: each spec field has a widget key ("net.shortcut",
"net.s2.width", ...). `read_spec()` assembles the ArchSpec from those keys on every run;
`apply_spec_to_widgets()` writes a spec into them (a preset, a shared link, an imported file) before the
widgets are drawn. The URL carries `?net=<preset>` when the network is a preset, otherwise
`?spec=<token>` (compressed JSON), so opening a link restores the network exactly; `&present=1` while
projector mode is on (app/projector.py), so a shared link opens in projector mode too.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

import resnet_core as rc
from resnet_core.i18n import N_, _
from resnet_core.structure import spec as rspec
from resnet_core.structure.presets import DEFAULT_PRESET, is_preset, matching_preset
from resnet_core.structure.spec import ArchSpec, Stage, Stem, from_url_token, to_url_token
from resnet_core.structure.spec_text import MAX_NAME_CHARS, SpecError
from resnet_core.text import md, plain

P = "net."  # prefix of every builder key
PRESENT = "ui.present"  # session_state: projector mode (app/projector.py); `?present=1` in the URL


@dataclass(frozen=True)
class Bound:
    lo: int | None
    hi: int | None


# Limits of the builder's number widgets. A spec outside them (from a file or a link) is refused
# with a message rather than clipped silently.
BOUNDS = {
    "in_channels": Bound(1, 64), "input_h": Bound(1, 2048), "input_w": Bound(1, 2048),
    "num_classes": Bound(1, 100_000), "stem_channels": Bound(1, 4096), "stem_kernel": Bound(1, 15),
    "stem_stride": Bound(1, 8), "stem_padding": Bound(0, 15), "stem_pool_kernel": Bound(1, 15),
    "stem_pool_stride": Bound(1, 8),
    "blocks": Bound(1, 1000), "width": Bound(1, 8192), "stride": Bound(1, 8), "groups": Bound(1, 1024),
    "width_per_group": Bound(1, 1024),
}

EXPANSIONS = ["auto", 1, 2, 4, 8]
MAX_STAGES = 16  # stages the builder draws (ResNets have 3 or 4); each is a row of widgets
MAX_TOTAL_BLOCKS = 2_000  # blocks in all stages together (resnet1202 has 600): a trace stays a few seconds


def stage_key(i: int, field: str) -> str:
    return f"{P}s{i}.{field}"


STAGE_FIELDS = {"blocks": N_("blocks"), "width": N_("width"), "stride": N_("stride"), "groups": N_("groups"),
                "width_per_group": N_("width per group")}


def check_bounds(spec: ArchSpec) -> list[str]:
    """Why the builder's widgets cannot show `spec` (empty when they can), in the run's language."""
    problems = []
    if len(spec.stages) > MAX_STAGES:  # counted first: nothing below loops over thousands of stages
        return [_("the network has {n} stages; the builder shows at most {most}", n=format(len(spec.stages), ","),
                  most=MAX_STAGES)]
    total = sum(max(0, s.blocks) for s in spec.stages)
    if total > MAX_TOTAL_BLOCKS:
        problems.append(_("the stages hold {n} blocks in all; the builder takes at most {most}", n=format(total, ","),
                          most=format(MAX_TOTAL_BLOCKS, ",")))
    name_problem = rspec.check_name(spec.name)
    if name_problem:
        problems.append(name_problem)

    def check(label: str, key: str, value: int) -> None:
        b = BOUNDS[key]
        if (b.lo is not None and value < b.lo) or (b.hi is not None and value > b.hi):
            problems.append(_("{label} is {value}; the builder takes {lo}–{hi}", label=label, value=value, lo=b.lo,
                              hi=b.hi))

    check(_("input channels"), "in_channels", spec.in_channels)
    check(_("input height"), "input_h", spec.input_size[0])
    check(_("input width"), "input_w", spec.input_size[1])
    check(_("classes"), "num_classes", spec.num_classes)
    check(_("stem channels"), "stem_channels", spec.stem.channels)
    if spec.stem.type == "custom":
        check(_("stem kernel"), "stem_kernel", spec.stem.kernel)
        check(_("stem stride"), "stem_stride", spec.stem.stride)
        if spec.stem.padding is not None:
            check(_("stem padding"), "stem_padding", spec.stem.padding)
        check(_("stem pool kernel"), "stem_pool_kernel", spec.stem.pool_kernel)
        check(_("stem pool stride"), "stem_pool_stride", spec.stem.pool_stride)
    for i, s in enumerate(spec.stages):
        for field, name in STAGE_FIELDS.items():
            check(_("stage {i} · {field}", i=i + 1, field=_(name)), field, getattr(s, field))
        if s.expansion is not None and s.expansion not in EXPANSIONS:
            problems.append(_("stage {i} · expansion is {value}; the builder offers 1, 2, 4 or 8", i=i + 1,
                              value=s.expansion))
    if not 0.0 <= spec.bn_momentum <= 1.0:
        problems.append(_("batch-norm momentum is {value}; the builder takes 0–1", value=spec.bn_momentum))
    if not 1e-8 <= spec.bn_eps <= 1.0:
        problems.append(_("batch-norm eps is {value}; the builder takes 1e-08–1", value=format(spec.bn_eps, "g")))
    choices = {N_("stem type"): (spec.stem.type, rspec.STEM_TYPES), N_("shortcut"): (spec.shortcut, rspec.SHORTCUTS),
               N_("norm"): (spec.norm, rspec.NORMS), N_("activation"): (spec.activation, rspec.ACTIVATIONS),
               N_("init"): (spec.init, rspec.INITS)}
    for label, (value, options) in choices.items():
        if value not in options:
            problems.append(_("{label} '{value}' is not one of {options}", label=_(label), value=value,
                              options=", ".join(options)))
    for i, s in enumerate(spec.stages):
        if s.block not in rspec.BLOCK_TYPES:
            problems.append(_("stage {i} · block type '{value}' is not one of {options}", i=i + 1, value=s.block,
                              options=", ".join(rspec.BLOCK_TYPES)))
    if spec.stem.type == "custom" and spec.stem.pool not in rspec.POOL_TYPES:
        problems.append(_("stem pool '{value}' is not one of {options}", value=spec.stem.pool,
                          options=", ".join(rspec.POOL_TYPES)))
    return problems


def apply_spec_to_widgets(spec: ArchSpec, source: str | None = None) -> list[str]:
    """Write `spec` into the builder's keys. Returns the reasons it cannot (and then changes nothing)."""
    problems = check_bounds(spec)
    if problems:
        return problems
    ss = st.session_state
    stem = spec.stem
    values = {
        "name": spec.name, "in_channels": spec.in_channels, "input_h": spec.input_size[0],
        "input_w": spec.input_size[1], "num_classes": spec.num_classes, "stem_type": stem.type,
        "stem_channels": stem.channels, "stem_kernel": stem.kernel, "stem_stride": stem.stride,
        "stem_padding": stem.kernel // 2 if stem.padding is None else stem.padding,
        "stem_pool": stem.pool, "stem_pool_kernel": stem.pool_kernel, "stem_pool_stride": stem.pool_stride,
        "shortcut": spec.shortcut, "skip": spec.skip, "batch_norm": spec.norm == "batch",
        "activation": spec.activation, "zero_init": spec.zero_init_residual, "init": spec.init,
        "stride_in_1x1": spec.stride_in_1x1, "bn_momentum": float(spec.bn_momentum), "bn_eps": float(spec.bn_eps),
        "n_stages": len(spec.stages),
    }
    for k, v in values.items():
        ss[P + k] = v
    for i, s in enumerate(spec.stages):
        _write_stage(i, s)
    ss[P + "source"] = source or spec.name
    ss[P + "loaded"] = spec
    # the preset picker shows the preset only when that is what was loaded
    ss["ui.preset"] = spec.name if matching_preset(spec) == spec.name and source in (None, spec.name) else None
    return []


def _write_stage(i: int, s: Stage) -> None:
    ss = st.session_state
    ss[stage_key(i, "block")] = s.block
    ss[stage_key(i, "blocks")] = s.blocks
    ss[stage_key(i, "width")] = s.width
    ss[stage_key(i, "stride")] = s.stride
    ss[stage_key(i, "groups")] = s.groups
    ss[stage_key(i, "width_per_group")] = s.width_per_group
    ss[stage_key(i, "expansion")] = "auto" if s.expansion is None else s.expansion


def _read_stage(i: int) -> Stage:
    ss = st.session_state
    exp = ss.get(stage_key(i, "expansion"), "auto")
    return Stage(block=ss[stage_key(i, "block")], blocks=int(ss[stage_key(i, "blocks")]),
                 width=int(ss[stage_key(i, "width")]), stride=int(ss[stage_key(i, "stride")]),
                 groups=int(ss[stage_key(i, "groups")]), width_per_group=int(ss[stage_key(i, "width_per_group")]),
                 expansion=None if exp == "auto" else int(exp))


def read_spec() -> ArchSpec:
    """The network as the builder's widgets say it is now."""
    ss = st.session_state
    stem_type = ss[P + "stem_type"]
    if stem_type == "custom":
        stem = Stem(type="custom", channels=int(ss[P + "stem_channels"]), kernel=int(ss[P + "stem_kernel"]),
                    stride=int(ss[P + "stem_stride"]), padding=int(ss[P + "stem_padding"]), pool=ss[P + "stem_pool"],
                    pool_kernel=int(ss[P + "stem_pool_kernel"]), pool_stride=int(ss[P + "stem_pool_stride"]))
    else:
        stem = Stem(type=stem_type, channels=int(ss[P + "stem_channels"]))
    return ArchSpec(
        name=ss[P + "name"], in_channels=int(ss[P + "in_channels"]),
        input_size=(int(ss[P + "input_h"]), int(ss[P + "input_w"])), stem=stem,
        stages=tuple(_read_stage(i) for i in range(ss[P + "n_stages"])),
        shortcut=ss[P + "shortcut"], skip=bool(ss[P + "skip"]), norm="batch" if ss[P + "batch_norm"] else "none",
        activation=ss[P + "activation"], zero_init_residual=bool(ss[P + "zero_init"]),
        stride_in_1x1=bool(ss[P + "stride_in_1x1"]), num_classes=int(ss[P + "num_classes"]), init=ss[P + "init"],
        bn_momentum=float(ss[P + "bn_momentum"]), bn_eps=float(ss[P + "bn_eps"]),
    )


# ---- stage list edits (button callbacks: they run before the next script run draws the widgets) ----

def add_stage() -> None:
    spec = read_spec()
    if spec.stages:
        last = spec.stages[-1]
        new = Stage(block=last.block, blocks=last.blocks, width=last.width * 2, stride=2, groups=last.groups,
                    width_per_group=last.width_per_group, expansion=last.expansion)
    else:
        new = Stage(width=64)
    n = st.session_state[P + "n_stages"]
    _write_stage(n, new)
    st.session_state[P + "n_stages"] = n + 1


def remove_stage(i: int) -> None:
    stages = list(read_spec().stages)
    del stages[i]
    for j, s in enumerate(stages):
        _write_stage(j, s)
    st.session_state[P + "n_stages"] = len(stages)


def move_stage(i: int, delta: int) -> None:
    stages = list(read_spec().stages)
    j = i + delta
    if 0 <= j < len(stages):
        stages[i], stages[j] = stages[j], stages[i]
        for k, s in enumerate(stages):
            _write_stage(k, s)


def set_all_blocks(block: str) -> None:
    for i in range(st.session_state[P + "n_stages"]):
        st.session_state[stage_key(i, "block")] = block


# ---- sessions and URLs ----

def init_session() -> None:
    """Once per browser session: the network from the link, or the default preset."""
    ss = st.session_state
    if ss.get(P + "ready"):
        return
    spec = rc.get_preset(DEFAULT_PRESET)
    message = None
    qp = st.query_params
    try:
        if "spec" in qp:
            spec = from_url_token(qp["spec"])
        elif "net" in qp:
            if not is_preset(qp["net"]):
                raise SpecError(_("the link names a preset '{name}' that does not exist", name=plain(qp["net"], 60)))
            spec = rc.get_preset(qp["net"])
    except SpecError as e:
        message = _("This link's network could not be read ({problem}). Showing {preset} instead.", problem=e,
                    preset=DEFAULT_PRESET)
        spec = rc.get_preset(DEFAULT_PRESET)
    problems = apply_spec_to_widgets(spec, source="link" if ("spec" in qp and message is None) else spec.name)
    if problems:
        message = _("This link's network does not fit the builder ({problems}). Showing {preset} instead.",
                    problems="; ".join(problems), preset=DEFAULT_PRESET)
        apply_spec_to_widgets(rc.get_preset(DEFAULT_PRESET))
    ss[P + "url_message"] = md(message) if message else None  # it quotes the link: text, never Markdown
    ss[PRESENT] = link_presents(qp.get("present"))
    ss[P + "ready"] = True


def link_presents(value: str | None) -> bool:
    """Whether a link's `present` value turns projector mode on: "1" (and "true", "yes", "on") does; anything
    else, or none, does not."""
    return value is not None and value.strip().lower() in ("1", "true", "yes", "on")


def presenting() -> bool:
    """Projector mode, as the session has it now (before init_session: as the link asks)."""
    ss = st.session_state
    if ss.get(P + "ready"):
        return bool(ss.get(PRESENT, False))
    return link_presents(st.query_params.get("present"))


def keep_alive() -> None:
    """Every run, before any widget: re-assign the builder's keys, so a widget that is not drawn this run (the
    custom stem's fields, a collapsed section) keeps its value instead of Streamlit discarding it."""
    ss = st.session_state
    for key in [k for k in ss if isinstance(k, str) and k.startswith(P)]:
        ss[key] = ss[key]


EDITED = " (edited)"
NAME_NOTE = "ui.name_note"  # session_state: why the typed name was changed (shown once, under the box)


def edited_name(name: str) -> str:
    """'resnet18' → 'resnet18 (edited)' (once: an edited network edited again keeps its name); a long name is
    shortened so that the result is still a name a link accepts."""
    return name if name.endswith(EDITED) else name[: MAX_NAME_CHARS - len(EDITED)] + EDITED


def accepted_name(name: str) -> str:
    """`name` made one the spec accepts (the rule of links and files, `spec.check_name`): the characters
    that rule refuses removed, at most MAX_NAME_CHARS characters."""
    kept = "".join(ch for ch in name if rspec.check_name(ch) is None)[:MAX_NAME_CHARS]
    return kept if kept.strip() else "network"


def settle_name(spec: ArchSpec) -> ArchSpec:
    """An edited network is not the preset (or file, or link) it was loaded from: while it still carries the
    loaded name it is named "<name> (edited)", and it gets the plain name back when the edits are undone. A name
    the user typed is kept as it is. Call before the name widget is drawn (it writes the widget's key)."""
    ss = st.session_state
    loaded = ss.get(P + "loaded")
    problem = rspec.check_name(spec.name)
    if problem:  # the box takes what links and files take, no more: the rest is removed, and the page says so
        spec = spec.replace(name=accepted_name(spec.name))
        ss[P + "name"] = spec.name
        ss[NAME_NOTE] = _("The name was changed: {problem}.", problem=problem)
    if not spec.name.strip():  # a cleared name field: the network keeps a name
        spec = spec.replace(name=edited_name(loaded.name) if loaded is not None else "network")
        ss[P + "name"] = spec.name
    if loaded is None:
        return spec
    same_network = spec.replace(name=loaded.name) == loaded
    if not same_network and spec.name == loaded.name:
        name = edited_name(loaded.name)
    elif same_network and spec.name == edited_name(loaded.name):
        name = loaded.name
    else:
        return spec
    ss[P + "name"] = name
    return spec.replace(name=name)


URL_KEYS = ("net", "spec", "present", "lang")


def url_params(spec: ArchSpec, present: bool | None = None) -> dict[str, str]:
    """The query of a link to `spec`; with `present=1` in projector mode (`present` None: the session's mode)."""
    preset = matching_preset(spec)
    params = {"net": preset} if preset else {"spec": to_url_token(spec)}
    if present is None:
        try:
            present = bool(st.session_state.get(PRESENT, False))
        except Exception:  # noqa: BLE001 - outside a Streamlit run
            present = False
    if present:
        params["present"] = "1"
    try:
        from app import lang
        code = lang.in_link()
    except Exception:  # noqa: BLE001 - outside a Streamlit run
        code = None
    if code:
        params["lang"] = code
    return params


def sync_url(spec: ArchSpec) -> None:
    """Keep the address bar equal to the current network and mode (only writes when it changed)."""
    want = url_params(spec)
    qp = st.query_params
    current = {k: qp[k] for k in URL_KEYS if k in qp}
    if current != want:
        for k in URL_KEYS:
            if k in qp and k not in want:
                del qp[k]
        qp.update(want)


def share_url(spec: ArchSpec, page: str = "", current: str = "") -> str:
    """An absolute link to this network that opens on `page` (a page's url_path, "" for the first page);
    `current` is the url_path of the page being viewed, replaced by `page` in the address. Relative when the
    host is unknown."""
    from urllib.parse import urlencode, urlsplit, urlunsplit
    query = urlencode(url_params(spec))
    try:
        base = st.context.url or ""
    except Exception:  # noqa: BLE001 - no browser context (tests)
        base = ""
    if not base:
        return f"{page}?{query}" if page else "?" + query
    parts = urlsplit(base)
    path = parts.path.rstrip("/")
    if current and path.endswith("/" + current):
        path = path[: -len(current) - 1]
    path = f"{path}/{page}" if page else (path or "/")
    return urlunsplit((parts.scheme, parts.netloc, path, query, ""))
