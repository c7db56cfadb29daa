"""A guided walk for the classroom: each idea with a live view, then broken networks to fix."""

import pandas as pd
import streamlit as st

import resnet_core as rc
from app import classroom_session, guided, handoff, state, ui
from app.charts import structure as charts
from resnet_core import i18n
from resnet_core.i18n import N_, _
from resnet_core.structure.graph import block_dot
from resnet_core.structure.lessons import (
    EXERCISES,
    batchnorm_demo,
    check_exercise,
    resnet18_walkthrough,
    shortcut_options,
)
from resnet_core.structure.records import shape_str
from resnet_core.structure.report import staircase_rows, staircase_summary, table_rows

BLOCK_EXAMPLES = {  # the option values stay English (the widget's state); shown translated
    N_("Basic block, identity shortcut (ResNet-18 layer1.0)"): ("resnet18", "layer1.0"),
    N_("Basic block, 1×1 projection shortcut (ResNet-18 layer2.0)"): ("resnet18", "layer2.0"),
    N_("Bottleneck block (ResNet-50 layer1.1)"): ("resnet50", "layer1.1"),
    N_("Zero-padded identity, option A (CIFAR ResNet-20 layer2.0)"): ("resnet20", "layer2.0"),
    N_("Pre-activation block (pre-act ResNet-18 layer1.0)"): ("preact_resnet18", "layer1.0"),
}
# shortcut_options' row keys (i18n: not shown) → the table's column labels
SHORTCUT_COLUMNS = {"option": N_("option"), "parameters": N_("parameters"),
                    "shortcut parameters": N_("shortcut parameters"),  # i18n: not shown (the key)
                    "mult-adds": N_("mult-adds"), "projections": N_("projections"),
                    "zero-pad shortcuts": N_("zero-pad shortcuts")}  # i18n: not shown (the key)


def open_in_builder(spec) -> None:
    state.apply_spec_to_widgets(spec, source=spec.name)


SHORTCUT_KINDS = {"identity": N_("identity"), "projection": N_("projection"), "pad": N_("pad"),
                  "avg_projection": N_("avg_projection"), "none": N_("none")}
GUIDE_ICONS = {"live": ":material/biotech:", "train": ":material/monitoring:", "why": ":material/verified:"}


def run_it(step: int, links: dict[int, list[handoff.Guide]]) -> None:
    """The step's guided links: each opens its Live, Training or Why view with the settings that show the step."""
    if not links.get(step):
        return
    with st.container(border=True):
        st.markdown(_("**Run it** — each link opens the view with its settings set, in the order of the story:"))
        for i, g in enumerate(links[step]):
            if st.button(g.label, key=f"learn.go.{step}.{i}", on_click=handoff.send, args=(g,), icon=GUIDE_ICONS[g.page],
                         type="tertiary"):
                st.switch_page(g.path)


st.title(_("Learn: how residual networks work"), anchor=False)  # no hidden "link to heading" to tab onto
st.caption(_("Five short steps, each live. Change the controls and watch; then fix the broken networks. Each step "
             "ends in links (**Run it**) that open the Live lab, the Training lab or Why it works with the settings "
             "that show it: follow them in order to run the whole story."))
st.page_link("app_pages/why.py", label=_("Why it works: five published results about residual networks, reproduced "
             "live and checked against the papers"), icon=":material/verified:")
st.page_link("app_pages/roadmap.py", label=_("From ResNet to ConvNeXt: the residual family since 2016, one published "
             "step at a time"), icon=":material/route:")
# the steps' names, the tabs' values (the classroom pushes them; a test compares the two lists): i18n: not shown
STEPS = ["1 · The residual block", "2 · Shortcuts", "3 · ResNet-18, shape by shape", "4 · Batch norm",  # i18n: not shown
         "5 · Broken networks"]  # i18n: not shown (the tabs show _STEP_LABELS)
_STEP_LABELS = (N_("1 · The residual block"), N_("2 · Shortcuts"), N_("3 · ResNet-18, shape by shape"),
                N_("4 · Batch norm"), N_("5 · Broken networks"))  # the same, marked: the tabs show them translated


def _step_of(label: object) -> str | None:
    """The step (its English name) of a tab's label in any language."""
    for code in i18n.LANGUAGES:
        with i18n.use(code):
            found = next((s for s in STEPS if _(s) == label), None)
        if found is not None:
            return found
    return None


def _remember_step() -> None:  # the tab widget's state goes when the page is left; this copy stays (in English)
    st.session_state["learn.step"] = _step_of(st.session_state.get("learn.tabs"))


# The open tab: the widget's own state while on the page; else the remembered step, given as the widget's state
# (a `default` that changed with the step would make a new widget on every switch, and a keyboard user's focus
# on the tabs would fall back to the top of the page)
held = _step_of(st.session_state.get("learn.tabs")) or _step_of(st.session_state.get("learn.step"))
if held is not None and st.session_state.get("learn.tabs") != _(held):  # a pushed step, another language's label
    st.session_state["learn.tabs"] = _(held)
tabs = st.tabs([_(s) for s in STEPS], key="learn.tabs", on_change=_remember_step)

# ---------------------------------------------------------------------------------------------
with tabs[0]:
    with st.container(horizontal=True, gap="medium", vertical_alignment="bottom"):
        shown = {v: _(v) for v in BLOCK_EXAMPLES}  # bound now: AppTest calls format_func outside the run's language
        example = st.selectbox(_("Block"), list(BLOCK_EXAMPLES), key="learn.block", width=480,
                               format_func=shown.__getitem__)
        skip = st.toggle(_("Skip connection"), value=True, key="learn.skip")
    left, right = st.columns([3, 2])
    with right:
        preset, block = BLOCK_EXAMPLES[example]
        spec = rc.get_preset(preset).replace(skip=skip)
        plan = ui.cached_trace(spec).plan
        ui.graph_view(block_dot(plan, block), key="learn.block_graph", zoom=ui.default_zoom() / 100, fit=True)
        st.button(_("Open this network in the builder"), key="learn.open_block", on_click=open_in_builder,
                  args=(spec,))
    with left:
        st.markdown(_(
            "A plain stack of layers has to learn the whole mapping **H(x)**. A residual block learns only "
            "the *change* — the residual **F(x) = H(x) − x** — and adds its input back:"))
        st.latex(r"H(x) \;=\; F(x) + x")
        st.markdown(_(
            "If the best thing a block can do is nothing, it only has to push F(x) to zero, which is easy; "
            "a plain block would have to learn the identity through its convolutions, which is hard. "
            "The **identity path carries the signal forward unchanged**, and — by the chain rule — "
            "**carries the gradient backward unchanged** too:"))
        st.latex(r"\frac{\partial H}{\partial x} \;=\; \frac{\partial F}{\partial x} + I")
        st.markdown(_(
            "However small ∂F/∂x becomes in a deep stack, the **I** term lets the gradient reach the early layers. "
            "Turn the skip connection off to see the *plain* block in the drawing: the same layers, no shortcut, "
            "no ⊕. The Live lab measures what this does to the gradients."))
        links = guided.path(preset, block, skip)
        b = next(b for b in plan.blocks if b.name == block)
        kind = _(SHORTCUT_KINDS.get(b.shortcut, b.shortcut))
        st.info(_("**{block}**: input x is {x}, output {out}; shortcut: **{shortcut}**.", block=block,
                  x=shape_str(b.in_shape), out=shape_str(b.out_shape), shortcut=kind)
                + (_(" The shape changes here, so x must be projected (1×1 conv, stride 2) or zero-padded "
                     "before it can be added.") if b.shortcut in ("projection", "pad") else ""),
                icon=":material/search:")
    run_it(0, links)

# ---------------------------------------------------------------------------------------------
with tabs[1]:
    st.markdown(_(
        "Most blocks keep the shape, so x can be added as it is. The **first block of a stage** halves the "
        "size and doubles the channels; then x and F(x) differ, and the shortcut must change x's shape. "
        "He et al. (2015, §3.3) compare three options:"))
    st.markdown(_(
        "- **A** — *zero-padded identity*: subsample x with stride 2 and append zero channels. No parameters.\n"
        "- **B** — *projection where the shape changes*: a 1×1 conv (stride 2) + BN in those blocks only; "
        "identity elsewhere.\n"
        "- **C** — *projection everywhere*: every block gets a 1×1 conv + BN on its shortcut."))
    name = st.selectbox(_("Network"), ["resnet34", "resnet18", "resnet50", "resnet56"], key="learn.shortcut_net")
    rows = shortcut_options(rc.get_preset(name))
    ui.dataframe(pd.DataFrame(rows).drop(columns=["valid"]).rename(columns=lambda c: _(SHORTCUT_COLUMNS.get(c, c))),
                 key="learn.shortcuts")  # option pinned; large in projector mode
    st.markdown(_(
        "The paper found B slightly better than A (A's zero-padded channels learn no residual) and C "
        "marginally better than B, at the cost of the parameters above — too small a gain to be worth it. "
        "Projections are not essential to the degradation problem: the identity shortcuts are."))
    run_it(1, links)

# ---------------------------------------------------------------------------------------------
with tabs[2]:
    spec18 = rc.get_preset("resnet18")  # the builder's preset, head and all
    t18 = ui.cached_trace(spec18)
    walk = resnet18_walkthrough(t18)
    left, right = st.columns([2, 3])
    with left:
        st.markdown("\n".join(f"{i + 1}. {s}" for i, s in enumerate(walk.steps)))
        st.markdown(_("Every convolution's output size follows one rule:"))
        st.latex(r"H_\text{out} = \left\lfloor \frac{H_\text{in} + 2p - k}{s} \right\rfloor + 1")
        h_in, k, p, s_, h_out = walk.stem_conv
        st.markdown(_("For the stem's conv:"))  # two short formulas fit a narrow column, one long one did not
        st.latex(rf"\left\lfloor\frac{{{h_in} + {2 * p} - {k}}}{{{s_}}}\right\rfloor + 1 = "
                 rf"{h_out}")
    with right:
        spatial = staircase_summary(t18)[0]
        title = _("spatial size: {sizes}", sizes=spatial)
        st.altair_chart(charts.staircase(staircase_rows(t18), "spatial", title=title), width="stretch")
    ui.dataframe(table_rows(t18, "stage"), key="learn.r18")  # full width: no column cut off
    t10 = ui.cached_trace(spec18.replace(num_classes=10))
    head18, head10 = (next(r.params for r in t.layers if r.name == "fc") for t in (t18, t10))
    st.caption(_("This is the builder's ResNet-18 preset: {classes} ImageNet classes, {params} parameters. For a "
                 "10-class task (CIFAR-10, the digits) only the head changes: {head10} parameters instead of "
                 "{head18}, {total10} in all.", classes=format(spec18.num_classes, ","),
                 params=format(t18.total_params, ","), head10=format(head10, ","), head18=format(head18, ","),
                 total10=format(t10.total_params, ",")))
    st.button(_("Open ResNet-18 in the builder"), key="learn.open18", on_click=open_in_builder,
              args=(rc.get_preset("resnet18"),))
    run_it(2, links)

# ---------------------------------------------------------------------------------------------
with tabs[3]:
    left, right = st.columns([1, 1])
    with left:
        st.markdown(_(
            "In every ResNet block, each convolution is followed by **batch normalisation** and then the ReLU: "
            "**conv → BN → ReLU**. For each channel, BN normalises over the mini-batch (and the spatial "
            "positions), then rescales with two learned numbers, γ and β:"))
        st.latex(r"\hat{x} = \frac{x - \mu_\mathcal{B}}{\sqrt{\sigma^2_\mathcal{B} + \varepsilon}}, \qquad "
                 r"y = \gamma\,\hat{x} + \beta")
        st.markdown(_(
            "In **training** it uses the batch's own mean and variance and updates running estimates with "
            "*momentum* m; in **evaluation** it uses those running estimates, so one image alone gets the same "
            "answer as in a batch:"))
        st.latex(r"\mu_\text{run} \leftarrow (1 - m)\,\mu_\text{run} + m\,\mu_\mathcal{B}")
        r18 = ui.cached_trace(rc.get_preset("resnet18")).plan
        seq = " → ".join(f"`{lay.name}` ({lay.type})" for lay in r18.layers[4:7])
        st.markdown(_("In ResNet-18: {seq}. Each BN has 2·C learnable numbers (γ, β) and 2·C running statistics.",
                      seq=seq))
    with right:
        c1, c2 = st.columns(2)
        momentum = c1.slider(_("Momentum m"), 0.01, 0.9, 0.1, key="learn.bn_m")
        steps_n = c2.slider(_("Training batches seen"), 1, 100, 20, key="learn.bn_steps")
        d = batchnorm_demo(momentum=momentum, steps=steps_n)
        st.caption(_(
            "A real BatchNorm2d on batches whose 4 channels have means ±2, ±4, ±6, ±8 and scales 0.5–13.5. "
            "In training mode every channel comes out with mean 0 and std 1. The running mean approaches the "
            "true means as 1 − (1 − m)^n = {share} of the way after {n} batches; until it has converged, "
            "evaluation-mode outputs are off-centre.", share=format(1 - (1 - momentum) ** steps_n, ".2f"), n=steps_n))
    df = pd.DataFrame({
        # the two columns the lesson is about first, so they stay in view at 1024 px
        _("channel"): d.channels, _("std after BN (train)"): d.train_std, _("mean after BN (eval)"): d.eval_mean,
        _("mean before"): d.before_mean, _("std before"): d.before_std, _("mean after BN (train)"): d.train_mean,
        _("running mean"): d.running_mean, _("std after BN (eval)"): d.eval_std,
    }).round(2)
    ui.dataframe(df, key="learn.bn_table")  # the channel pinned: it stays in view at 1024 px; large in projector mode
    run_it(3, links)

# ---------------------------------------------------------------------------------------------
with tabs[4]:
    st.markdown(_(
        "Each network below is broken. **Load it into the builder**, open **Shape trace** (top) to read "
        "where and why it breaks, then fix it with the controls in the sidebar. Come back here to check."))
    current = ui.current_spec()
    for ex in EXERCISES:
        with st.container(border=True):
            head, button = st.columns([4, 1])
            head.markdown(f"**{_(ex.title)}**  \n{_(ex.story)}")
            button.button(_("Load into the builder"), key=f"learn.ex.{ex.key}", on_click=open_in_builder,
                          args=(ex.broken,), width="stretch")
            # the exercise is in the builder when it was loaded from here (its name gains "(edited)" when fixed)
            if st.session_state.get(state.P + "source") == ex.broken.name:
                problem = check_exercise(ex, current)
                classroom_session.record_exercise(ex, current, problem)  # in a class: the teacher sees it
                if problem is None:
                    st.success(_("Solved: the network builds. ") + (
                        _("Open the Graph to see the new shortcut.") if ex.key in ("shortcut", "option-a") else ""),
                        icon=":material/check_circle:")
                else:
                    st.warning(_("In the builder now — not solved yet: {problem}.", problem=problem),
                               icon=":material/build:")
            with st.expander(_("Hint")):
                st.markdown(_(ex.hint))
