"""The hand-off from the Training lab to the Live lab: a typed record of one trained network.

The Training lab makes a `TrainedNet` and calls `open_in_live`; the Live lab lists the networks of
this session whose architecture is the builder's (`matching`) and runs them.

The guided path: a Learn step's link (`Guide`) carries the exact settings of the Live, Training or Why
view it opens; the click loads its network into the builder (`send`) and the receiving page writes the
settings into its own widgets once, before drawing them (`arrive`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import streamlit as st
import torch

from app import state
from resnet_core.i18n import _
from resnet_core.lab import images
from resnet_core.structure.spec import ArchSpec, spec_key

STORE = "handoff.trained"  # session_state: {choice id: TrainedNet}
PREFIX = "trained:"  # the weight selector's option id of a trained net (never parsed: looked up in STORE)


@dataclass(frozen=True)
class TrainedNet:
    """One network trained in this session, with what the Live lab needs to run and explain it."""

    label: str  # "resnet20": the name it was trained under
    spec: ArchSpec  # its architecture (the builder loads it)
    state_dict: Mapping[str, torch.Tensor] = field(repr=False)  # torchvision-format weights (CPU)
    classes: tuple[str, ...]  # class names, index = label
    examples: torch.Tensor = field(repr=False)  # (N, C, H, W) held-out images, normalised as in training
    example_labels: tuple[int, ...]  # their true classes
    example_display: tuple[np.ndarray, ...] = field(repr=False)  # (H, W[, 3]) uint8: what they look like
    data: str = ""  # where the data came from ("digits 8×8, 1,437 train / 360 held out")

    @classmethod
    def from_hand_off(cls, label: str, rec: Mapping[str, Any]) -> TrainedNet:
        """From train_session.hand_off's fields."""
        return cls(label=label, spec=rec["spec"], state_dict=rec["state"], classes=tuple(rec["classes"]),
                   examples=rec["examples"], example_labels=tuple(int(v) for v in rec["example_labels"]),
                   example_display=tuple(rec["example_display"]), data=str(rec.get("data", "")))

    @property
    def choice(self) -> str:
        """Its id among the Live lab's weight choices."""
        return PREFIX + self.label

    def example(self, i: int) -> images.ImageInput:
        """Held-out example `i` (clamped to the ones kept) as the Live lab's input."""
        i = max(0, min(int(i), len(self.example_labels) - 1))
        x = self.examples[i:i + 1]
        return images.ImageInput(tensor=x, display=self.example_display[i],
                                 source=_("held-out example {i} (label {label})", i=i,
                                        label=self.classes[self.example_labels[i]]),
                                 input_shape=tuple(x.shape[1:]), mean=(), std=())


def _store() -> dict[str, TrainedNet]:
    return st.session_state.setdefault(STORE, {})


def open_in_live(net: TrainedNet) -> None:
    """Keep `net` for this session and make it the Live lab's choice (weights and a held-out input)."""
    _store()[net.choice] = net
    st.session_state["live.weights"] = net.choice
    st.session_state["live.input"] = "example"


def lookup(choice: str | None) -> TrainedNet | None:
    """The trained net behind a weight choice, or None for random / ImageNet / checkpoint."""
    return _store().get(choice) if choice else None


def matching(spec: ArchSpec) -> list[TrainedNet]:
    """This session's trained nets whose architecture is `spec`'s (the name aside)."""
    key = spec_key(spec.replace(name=""))
    return [n for n in _store().values() if spec_key(n.spec.replace(name="")) == key]


# ------------------------------------------------------------------------------------------------
# the guided path: a Learn step opens the exact Live, Training or Why view with its settings
# ------------------------------------------------------------------------------------------------

GUIDE = "handoff.guide"  # session_state: the Guide on its way to its page (read once there)
ARRIVED = "handoff.arrived"  # session_state: the last Guide a page read (its note stays while its settings do)
PAGES = {"live": "app_pages/live.py", "train": "app_pages/train.py", "why": "app_pages/why.py"}


@dataclass(frozen=True)
class Guide:
    """One link of the guided path: the page, the widget settings it opens with, and why.

    `settings` are (session_state key, value) pairs of the receiving page's own widgets; the page writes
    them once, before drawing its widgets (`arrive`), so they are the page's own controls, set: the
    teacher sees and can change every one. `spec`, when given, is loaded into the builder by the click
    (the sidebar is drawn before any page). `run`: the page starts the run at once (short runs only)."""

    page: str  # a key of PAGES
    label: str  # the link's text
    note: str  # what the page shows, said on arrival
    settings: tuple[tuple[str, Any], ...] = ()
    spec: ArchSpec | None = None
    run: bool = False

    @property
    def path(self) -> str:
        return PAGES[self.page]


def send(guide: Guide) -> None:
    """The click's callback: load the guide's network into the builder and put the guide on its way."""
    if guide.spec is not None:
        state.apply_spec_to_widgets(guide.spec, source=guide.spec.name)
    st.session_state[GUIDE] = guide


def arrive(page: str) -> Guide | None:
    """On the receiving page, before its widgets: the guide sent to this page, its settings written into the
    page's widget keys, and forgotten (read once: the next rerun keeps whatever the teacher changes)."""
    guide = st.session_state.get(GUIDE)
    if not isinstance(guide, Guide) or guide.page != page:
        return None
    del st.session_state[GUIDE]
    for key, value in guide.settings:
        st.session_state[key] = value
    st.session_state[ARRIVED] = guide
    return guide


def note(page: str) -> str | None:
    """What the last guide to `page` opened it on, for as long as the page still shows that: every setting it
    made (and the builder's network, when it loaded one) unchanged. None once the teacher changes one."""
    guide = st.session_state.get(ARRIVED)
    if not isinstance(guide, Guide) or guide.page != page:
        return None
    if any(st.session_state.get(key) != value for key, value in guide.settings):
        return None
    current = st.session_state.get("spec")
    if guide.spec is not None and (not isinstance(current, ArchSpec)
                                   or spec_key(current.replace(name="")) != spec_key(guide.spec.replace(name=""))):
        return None
    return guide.note
