"""The guided path: for each Learn step, the Live, Training and Why views that show it, with their settings.

A teacher runs the story in order — read a step, click its links — and every link opens its page with
the network loaded, the tab open and the controls set (app/handoff.py carries them; the page sets its own
widgets once, so every setting stays visible and changeable). Short runs (a gradient flow, the signal
propagation plot) start by themselves; training waits for the teacher's Start.
"""

from __future__ import annotations

import resnet_core as rc
from app.handoff import Guide
from app.live_session import TAB_BACKWARD, TAB_FORWARD
from resnet_core.i18n import _
from resnet_core.structure.plan import plan as make_plan


def gradient_flow(norm: str, init: str, label: str, note: str) -> Guide:
    """The Live lab's Backward tab on CIFAR resnet56 (56 weight layers: deep enough to show the effect)."""
    net = "resnet56"
    return Guide("live", label, note, settings=(
        ("live.tab", TAB_BACKWARD), ("live.gf_net", net), (f"live.gf_norm.{net}", norm), (f"live.gf_init.{net}", init),
        (f"live.gf_sc.{net}", "A"), ("live.gf_batch", 8), ("live.gf_seed", 0)), run=True)


def forward_view(preset: str, block: str, label: str, note: str, mode: str = "eval", layer: str | None = None,
                 skip: bool = True) -> Guide:
    """The Live lab's Forward tab on a preset loaded into the builder, random seeded weights, a sample image,
    the given block's anatomy (and feature maps of `layer`, by module name, when given)."""
    spec = rc.get_preset(preset).replace(skip=skip)
    settings: list[tuple[str, object]] = [("live.tab", TAB_FORWARD), ("live.weights", "random"), ("live.seed", 0),
                                          ("live.input", "sample"), ("live.block", block), ("live.mode", mode)]
    if layer is not None:
        p = make_plan(spec)
        settings.append(("live.layer", next(lay.index for lay in p.layers if lay.name == layer)))
    return Guide("live", label, note, settings=tuple(settings), spec=spec)


def training(experiment: str, label: str, note: str) -> Guide:
    return Guide("train", label, note, settings=(("train.experiment", experiment), ("train.data", "digits")))


def why(experiment: str, label: str, note: str, run: bool = False, **extra: object) -> Guide:
    return Guide("why", label, note, settings=(("why.experiment", experiment),
                                               *((f"why.{experiment}.{k}", v) for k, v in extra.items())), run=run)


def path(block_preset: str = "resnet18", block: str = "layer1.0", skip: bool = True) -> dict[int, list[Guide]]:
    """Learn step index (0-based) → its links, in the order to run them. Step 0's anatomy link opens the
    block chosen on the Learn page (`block_preset`, `block`, with the skip on or off as chosen there).
    Labels and notes are in the run's language (the page that opens a link shows its note as it was made)."""
    return {
        0: [
            forward_view(block_preset, block,
                         _("Live lab · x, F(x) and F(x) + x of {preset} {block}", preset=block_preset, block=block),
                         _("From Learn, step 1: {preset} with random seeded weights and a sample image; below the "
                           "feature maps, block {block}'s x, F(x) and F(x) + x, and every block's ‖F(x)‖/‖x‖ "
                           "through the depth.", preset=block_preset, block=block), skip=skip),
            gradient_flow("batch", "kaiming_fan_in",
                          _("Live lab · the gradient with and without skips (resnet56, batch norm)"),
                          _("From Learn, step 1: CIFAR resnet56 with batch norm, the same weights and batch run with "
                          "the skips on, then off; it starts by itself.")),
            gradient_flow("none", "pytorch_default",
                          _("Live lab · the same without batch norm (resnet56, PyTorch-default initialisation)"),
                          _("From Learn, step 1: CIFAR resnet56 without batch norm, PyTorch-default initialisation, "
                          "the skips on, then off; it starts by itself.")),
            training("degradation", _("Training lab · degradation: plain56 against plain20, resnet56, resnet20"),
                     _("From Learn, step 1: the degradation experiment on the digits. Press Start training.")),
            why("lesion", _("Why it works · the lesion study: deleting one block"),
                _("From Learn, step 1: the lesion study. Press Run (the pair of networks trains first).")),
            why("shatter", _("Why it works · shattered gradients"),
                _("From Learn, step 1: shattered gradients. Press Run.")),
            why("landscape", _("Why it works · the loss landscape"),
                _("From Learn, step 1: the loss landscape. Press Run (it shares the lesion study's pair).")),
        ],
        1: [
            forward_view("resnet18", "layer2.0", _("Live lab · a 1×1 projection shortcut (ResNet-18 layer2.0)"),
                         _("From Learn, step 2: ResNet-18's layer2.0, where x is projected (1×1 conv, stride 2) "
                         "before it is added: x, shortcut(x), F(x) and their sum, below the feature maps.")),
            forward_view("resnet20", "layer2.0",
                         _("Live lab · a zero-padded identity, option A (CIFAR resnet20 layer2.0)"),
                         _("From Learn, step 2: CIFAR resnet20's layer2.0, where x is subsampled and zero-padded "
                         "(option A) before it is added.")),
        ],
        2: [
            forward_view("resnet18", "layer1.0", _("Live lab · ResNet-18's feature maps, from the stem's conv on"),
                         _("From Learn, step 3: ResNet-18 (1,000 classes, as in the builder) on a sample image; the "
                         "feature maps of the stem's 7×7 conv (112×112×64). Choose a later layer to follow the "
                         "shapes down the staircase."), layer="conv1"),
            why("erf", _("Why it works · the effective receptive field"),
                _("From Learn, step 3: how much of its theoretical receptive field a deep stack really uses. "
                "Press Run.")),
        ],
        3: [
            forward_view("resnet56", "layer3.8", _("Live lab · batch norm with batch statistics (resnet56)"),
                         _("From Learn, step 4: CIFAR resnet56 with batch norm using the statistics of a batch of 8: "
                         "below the feature maps, ‖F(x)‖/‖x‖ falls block by block."), mode="train"),
            training("batchnorm", _("Training lab · batch norm on and off"),
                     _("From Learn, step 4: the same nets with and without batch norm. Press Start training.")),
            why("signal", _("Why it works · signal propagation at initialisation"),
                _("From Learn, step 4: the variance of the residual stream block by block, with and without batch "
                "norm; it starts by itself."), run=True, net="reference"),
        ],
    }
