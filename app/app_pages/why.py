"""Why it works: five published results about residual networks, reproduced live and judged by their numbers."""

import json
import time
from dataclasses import replace

import pandas as pd
import streamlit as st

from app import experiments_session as xs
from app import handoff, lang, train_session, ui
from app.charts import experiments as charts
from resnet_core import calibration
from resnet_core.experiments import erf, landscape, lesion, shatter, signal, timing
from resnet_core.experiments.common import ExperimentError, rows_csv, said, say
from resnet_core.experiments.pair import CLASS_LENGTH_MEASURED, CLASS_LENGTH_PAIRS
from resnet_core.experiments.trained import PairSettings, pair_from_models, private_copy, train_pair, twin_of
from resnet_core.i18n import N_, _
from resnet_core.text import md

MODULES = {"lesion": lesion, "shatter": shatter, "erf": erf, "landscape": landscape, "signal": signal}
LABELS = {"signal": N_("Signal propagation"), "shatter": N_("Shattered gradients"), "erf": N_("Receptive field"),
          "lesion": N_("Lesion study"), "landscape": N_("Loss landscape")}
ORDER = ["lesion", "shatter", "erf", "landscape", "signal"]
PAIR_NETS = ["resnet20", "resnet32", "resnet44", "resnet56"]
PREPARED_BY = (N_("a teacher in the app"), N_("the command line"))  # who prepared a pair (on disk in English)

job = xs.current()
xs.collect()
busy = job is not None and job.running
guide = handoff.arrive("why")  # a Learn step's link: its settings go into this page's widgets, once

st.title(_("Why it works"))
st.caption(_("Five published results about residual networks, reproduced live on this server. Each shows the paper's "
             "claim, the measurement, and a verdict computed from the numbers — reproduced or not, with the numbers "
             "that decide it. The two that train a pair of networks say before they start how long they take here."))
if (guided_note := handoff.note("why")) is not None:
    st.info(guided_note, icon=":material/route:")

name = st.segmented_control(_("Experiment"), ORDER, default="lesion", key="why.experiment", required=True,
                            format_func=lambda v: _(LABELS[v]), persist_state="session")
module = MODULES[name]
paper = module.PAPER
st.markdown(f"#### {_(module.TITLE)}\n> " + _("**The paper's claim.** {claim}", claim=_(paper.claim)) + "  \n"
            f"> — {_(paper.citation)} · [" + _("read it") + f"]({paper.url})")


# ------------------------------------------------------------------------------------------- settings

def pair_settings(prefix: str, default: PairSettings, class_length: PairSettings, measured: str
                  ) -> tuple[PairSettings, str]:
    """The pair's settings, starting from the experiment's defaults (`default`); a button sets the class-length
    version (`class_length`: finishes within 3 minutes on this 2-core server, measured)."""
    def to_class_length() -> None:
        st.session_state[f"{prefix}.net"] = class_length.residual
        st.session_state[f"{prefix}.steps"] = class_length.steps
        st.session_state[f"{prefix}.size"] = class_length.input_size
    c = st.columns([2, 2, 1, 1, 1])
    net = c[0].selectbox(_("Residual net (its plain twin trains beside it)"), PAIR_NETS, key=f"{prefix}.net",
                         index=PAIR_NETS.index(default.residual), disabled=busy)
    from_lab = xs.training_lab_pair(net)
    sources = (["lab"] if from_lab else []) + ["here"]
    here = _("the server's pair of these settings, or train it here")
    lab = _("from the Training lab ({net} + {twin})", net=net, twin=twin_of(net))
    source = c[1].radio(_("Trained networks"), sources, key=f"{prefix}.source", disabled=busy, horizontal=False,
                        format_func={"lab": lab, "here": here}.get)
    steps = c[2].number_input(_("Steps"), 1, 20_000, default.steps, key=f"{prefix}.steps", disabled=busy or source == "lab")
    size = c[3].number_input(_("Input size"), 8, 32, default.input_size, key=f"{prefix}.size",
                             disabled=busy or source == "lab")
    seed = c[4].number_input(_("Seed"), 0, 2**31 - 1, 0, key=f"{prefix}.seed", disabled=busy)
    # one process: the server trains in a thread of its own (no processes spawned from a Streamlit server)
    ps = replace(default, residual=net, steps=int(steps), input_size=int(size), seed=int(seed), processes=1)
    ready = None
    if source == "here":
        ready = xs.shared_pair(ps, root)
        if ready is not None:
            about = ready.info.get("prepared")
            if about:
                when = time.gmtime(about["when"])
                how = _("prepared for the class on {date} at {time} UTC by {who}", date=time.strftime("%Y-%m-%d", when),
                        time=time.strftime("%H:%M", when), who=md(_(about["how"])))
            else:
                how = _("trained by an earlier run on this server")
            st.caption(":material/school: " + _("This server already has {net} + {twin} trained with these settings "
                                                "({how}): the run uses it, no training. The lesion study and the "
                                                "landscape share it when they use the same network and settings.",
                                                net=net, twin=twin_of(net), how=how))
        else:
            st.caption(_("The pair trains here on the digits ({steps} steps) and is then kept for every session of this "
                         "server, so the lesion study and the landscape share it when they use the same network and "
                         "settings. A teacher can prepare it before class: `resnet-explorer prepare --experiments`.",
                         steps=f"{int(steps):,}"))
    b = st.columns([2, 3])
    if source == "here" and ready is not None and ready.info.get("prepared") is None:
        def keep_for_the_class(pair=ready, ps=ps) -> None:
            from resnet_core.training import prepared
            try:
                prepared.save_pair(pair, ps, PREPARED_BY[0], root)  # English on disk: shown through _()
            except (OSError, ExperimentError, prepared.TrainError) as e:
                st.session_state["why.keep_error"] = str(e)
        b[1].button(_("Keep this pair for the class"), key=f"{prefix}.keep", on_click=keep_for_the_class,
                    disabled=busy, icon=":material/school:", help=_("Saves the trained pair under the server's data "
                                                                    "folder: every session uses it, also after the "
                                                                    "server restarts."))
    if st.session_state.get("why.keep_error"):
        st.error(_("The pair could not be kept: {why}", why=md(st.session_state.pop("why.keep_error"))))
    b[0].button(_("Class-length settings"), key=f"{prefix}.class_length", on_click=to_class_length, disabled=busy,
                icon=":material/timer:", help=_(
                    "{net} + {twin}, {steps} steps at {size}×{size}: {measured} on this project's 2-core server, "
                    "training included, and still reproduced (benchmarks/RESULTS.md); the time on this server is "
                    "shown before the run starts.", net=class_length.residual, twin=twin_of(class_length.residual),
                    steps=f"{class_length.steps:,}", size=class_length.input_size, measured=_(measured)))
    return ps, source


def get_pair(ps: PairSettings, source: str, stop, progress):
    if source == "lab":
        found = xs.training_lab_pair(ps.residual)
        if found is None:
            raise ExperimentError(_("the Training lab's run is gone; choose 'train the pair here'"))
        rl, pl, result, data = found
        rn, pn = result.net(rl), result.net(pl)
        pair = pair_from_models((rl, result.models[rl], rn.spec), (pl, result.models[pl], pn.spec), data,
                                said(N_("from the Training lab: {steps} steps, {data}"), steps=result.steps_done,
                                     data=train_session.visitor_text(result.data)))
        pair.heldout = {rl: rn.heldout_accuracy, pl: pn.heldout_accuracy}
        return pair
    ready = xs.shared_pair(ps, root)
    if ready is not None:
        return private_copy(ready)  # the lesion study changes its models while it measures
    pair = train_pair(ps, stop, progress)
    if pair.stopped:
        raise ExperimentError(_("training stopped at step {step}; press Run to train again", step=pair.info.get("steps")))
    xs.keep_pair(ps, pair)
    return private_copy(pair)


def run_with_pair(module, settings, ps: PairSettings, source: str, stop, progress, share: float):
    """Run the lesion study or the landscape on the pair: one found (the Training lab's, or kept from an
    earlier run) is passed in; one to be trained here is trained inside the experiment's admission, so its
    training is counted and booked with the run (and refused before it starts when it does not fit)."""
    got: list = []

    def make_pair():
        t0 = time.perf_counter()
        trains = source == "here" and xs.shared_pair(ps, root) is None
        got.append(get_pair(ps, source, stop, lambda f, t: progress(share * f, t)))
        got.extend([time.perf_counter() - t0, trains])
        return got[0]

    t0 = time.perf_counter()
    if source != "here" or xs.shared_pair(ps, root) is not None:
        result = module.run(settings, make_pair(), stop, progress)
    else:
        result = module.run(settings, None, stop, progress, make_pair=make_pair)
    wall = time.perf_counter() - t0
    trained = bool(got and got[2])
    result.extra["timing"] = {"wall_s": wall, "pair_s": got[1] if got else 0.0, "trained": trained}
    if got and not result.stopped:  # this server's figure for the experiment's own part learns from the run
        timing.record(module, settings, max(1e-3, wall - got[1]), got[0], data_root=root)
    return result


def expected(module, settings, ps: PairSettings, source: str) -> None:
    """The run's time on this server before it starts: training the pair (unless one is found) and the
    experiment, from measurements of this server (measured in the background on first use)."""
    pair = None
    if source == "lab" or xs.shared_pair(ps, root) is not None:
        pair = True  # a trained pair: only the experiment's own part
    key = (str(calibration.state_dir(root)), module.__name__, repr(settings), pair is None)  # once per state folder

    def measure() -> None:
        timing.estimate(module, settings, None, data_root=root)
    if pair is None:
        est = timing.estimate(module, settings, None, data_root=root, measure=False)
    else:
        found = xs.shared_pair(ps, root) if source == "here" else None
        est = timing.estimate(module, settings, found, data_root=root, measure=False) if found is not None else None
    if est is None:
        if pair is None and xs.in_background(key, measure):
            wait_for_timing(key)
        return
    what = _("training the pair and then the experiment") if pair is None else _("the experiment on the trained pair")
    st.caption(":material/timer: " + _("Expected on this server: {time} ({what}; {how}).", time=est.total.text(),
                                       what=what, how=md(est.note())))


@st.fragment(run_every=1.0)
def wait_for_timing(key) -> None:
    """Until the first-use measurement is in: a note; then the whole page again, with the estimate."""
    lang.apply()  # a fragment's rerun runs without the page's: its language is set here
    if not xs.in_background(key, lambda: None):
        st.rerun()
    st.caption(":material/timer: " + _("Timing a few training steps of this pair on this server (once, a few "
                                       "seconds)…"))


root = train_session.data_root()
builder = ui.current_spec()
with st.container(border=True):
    if name == "signal":
        c = st.columns([3, 1, 1])
        which = c[0].radio(_("Network"), ["reference", "builder"], key="why.signal.net", horizontal=True,
                           disabled=busy,
                           format_func={"reference": _("16-block pre-activation CIFAR net (the acceptance)"),
                                        "builder": _("the builder's network ({name})", name=md(builder.name))}.get)
        batch = c[1].number_input(_("Batch"), 2, 256, 32, key="why.signal.batch", disabled=busy)
        seed = c[2].number_input(_("Seed"), 0, 2**31 - 1, 0, key="why.signal.seed", disabled=busy)
        settings = signal.SignalSettings(spec=builder if which == "builder" else None, batch=int(batch), seed=int(seed))
        key = repr(settings)

        def work(stop, progress, settings=settings):
            return signal.run(settings, stop, progress)
    elif name == "shatter":
        c = st.columns([1, 1, 1, 1, 1])
        width = c[0].number_input(_("Width"), 8, 512, 200, key="why.shatter.width", disabled=busy)
        depth = c[1].number_input(_("Largest depth"), 2, 100, 50, key="why.shatter.depth", disabled=busy)
        seeds = c[2].number_input(_("Seeds"), 1, 30, 10, key="why.shatter.seeds", disabled=busy)
        bn = c[3].toggle(_("Batch norm"), True, key="why.shatter.bn", disabled=busy)
        bias = c[4].toggle(_("Biases"), True, key="why.shatter.bias", disabled=busy)
        depths = tuple(sorted({d for d in (1, 2, 5, 10, 20, 30, 50, 75, 100) if d < depth} | {int(depth)}))
        settings = shatter.ShatterSettings(width=int(width), depths=depths, seeds=int(seeds), bn=bn, bias=bias)
        key = repr(settings)
        if not bn and not bias:
            st.caption(_("Batch norm and biases both off: the trap. Such a net is positively homogeneous — watch the "
                         "gradient along the line take only two values."))

        def work(stop, progress, settings=settings):
            return shatter.run(settings, stop, progress)
    elif name == "erf":
        c = st.columns([2, 1, 1, 2])
        channels = c[0].number_input(_("Channels of the stacks"), 1, 64, 16, key="why.erf.channels", disabled=busy)
        seeds = c[1].number_input(_("Networks per depth"), 1, 16, 4, key="why.erf.seeds", disabled=busy)
        seed = c[2].number_input(_("Seed"), 0, 2**31 - 1, 0, key="why.erf.seed", disabled=busy)
        with_net = c[3].toggle(_("Also the builder's network ({name})", name=md(builder.name)), True, key="why.erf.builder", disabled=busy)
        settings = erf.ErfSettings(channels=int(channels), seeds=int(seeds), seed=int(seed))
        spec = builder if with_net else None
        key = repr((settings, spec))

        def work(stop, progress, settings=settings, spec=spec):
            return erf.run(settings, stop, progress, spec=spec)
    elif name == "lesion":
        ps, source = pair_settings("why.lesion.pair", lesion.LesionSettings().pair, CLASS_LENGTH_PAIRS["lesion"],
                                   CLASS_LENGTH_MEASURED["lesion"])
        draws = st.columns(5)[0].number_input(_("Random draws per k"), 1, 50, 5, key="why.lesion.draws", disabled=busy)
        settings = lesion.LesionSettings(pair=ps, draws=int(draws), seed=ps.seed)
        key = repr((settings, source))
        expected(lesion, settings, ps, source)

        def work(stop, progress, settings=settings, ps=ps, source=source):
            return run_with_pair(lesion, settings, ps, source, stop, progress, share=0.8)
    else:
        ps, source = pair_settings("why.land.pair", landscape.LandscapeSettings().pair, CLASS_LENGTH_PAIRS["landscape"],
                                   CLASS_LENGTH_MEASURED["landscape"])
        c = st.columns(3)
        side = c[0].number_input(_("2-D grid side"), 3, 21, 7, step=2, key="why.land.side", disabled=busy)
        images = c[1].number_input(_("Training images for the loss"), 16, 2000, 64, key="why.land.images", disabled=busy)
        dseed = c[2].number_input(_("Direction seed"), 0, 2**31 - 1, 0, key="why.land.seed", disabled=busy)
        settings = landscape.LandscapeSettings(pair=ps, points_2d=int(side), images=int(images), seed=int(dseed))
        key = repr((settings, source))
        expected(landscape, settings, ps, source)

        def work(stop, progress, settings=settings, ps=ps, source=source):
            return run_with_pair(landscape, settings, ps, source, stop, progress, share=0.6)

    b1, b2, _rest = st.columns([1, 1, 4])
    run_clicked = b1.button(_("Run"), type="primary", icon=":material/play_arrow:", key="why.run", disabled=busy,
                            width="stretch")
    stop_clicked = b2.button(_("Stop"), icon=":material/stop:", key="why.stop", disabled=not busy, width="stretch",
                             help=_("Stops at the next step; what was measured so far is shown."))

if stop_clicked and job is not None:
    job.stop()
if run_clicked or (guide is not None and guide.run and not busy):
    xs.start(name, key, work)
    st.rerun()


@st.fragment(run_every=1.0 if busy else None)
def progress_view() -> None:
    lang.apply()  # a fragment's rerun runs without the page's: its language is set here
    j = xs.current()
    if j is None or not (j.running or (j.finished and st.session_state.get("why.shown") is not j)):
        return
    step = j.progress or xs.Step(0.0, said(N_("starting…")))
    st.progress(step.fraction, text=f"{_(LABELS[j.name])}: {say(step.text)}")
    if j.finished and st.session_state.get("why.shown") is not j:
        st.session_state["why.shown"] = j
        st.rerun()


progress_view()
if job is not None and job.finished and job.error and job.name == name:
    st.error(_("The experiment could not finish: {why}", why=job.error), icon=":material/dangerous:")

result = xs.result_for(name, key)
shown_other = False
if result is None and not busy:
    result = xs.latest(name)
    shown_other = result is not None
if result is None:
    if not busy:
        st.info(_("Set the experiment up and press **Run**."), icon=":material/touch_app:")
    st.stop()

# ------------------------------------------------------------------------------------------- the result

if shown_other:
    st.caption(_("Showing the last run of this experiment; its settings differ from the ones above (press Run)."))
v = result.verdict  # its sentences are said again here, in this visitor's language, from the run's numbers
checks = "\n".join(f"- {':material/check:' if ok else ':material/close:'} {say(text)}" for text, ok in v.checks)
head = _("Reproduced") if v.reproduced else _("Not reproduced")
text = _("**{head}.** Acceptance: {claim}.", head=head, claim=say(v.claim)) + f"\n\n{checks}"
if result.stopped:
    st.warning(_("**Stopped early** — the verdict is computed from what was measured so far.") + "\n\n" + text,
               icon=":material/pause_circle:")
elif v.reproduced:
    st.success(text, icon=":material/check_circle:")
else:
    st.error(text, icon=":material/cancel:")

t = result.tables
s = result.settings
MAIN = {"signal": "stream", "shatter": "autocorrelation", "erf": "stacks", "lesion": "single", "landscape": "slice_1d"}
if not t.get(MAIN[name]):
    st.info(_("Stopped before anything was measured: nothing to show yet. Press **Run** to start again."),
            icon=":material/hourglass_empty:")
    st.stop()
if name == "signal":
    left, right = st.columns(2)
    left.altair_chart(charts.signal_variance(t["stream"]), width="stretch")
    right.altair_chart(charts.signal_parts(t["stream"], "BN + skips"), width="stretch")
    main = pd.DataFrame(t["stream"]).pivot(index="block", columns="variant", values="variance").reset_index()
    main["ℓ + 1"] = main["block"] + 1
elif name == "shatter":
    left, right = st.columns([3, 2])
    left.altair_chart(charts.shatter_depth(t["autocorrelation"], shatter.toggle_label(s["bn"], s["bias"])),
                      width="stretch")
    right.altair_chart(charts.shatter_toggles(t["autocorrelation"]), width="stretch")
    st.altair_chart(charts.shatter_gradients(t["gradients"]), width="content")
    main = pd.DataFrame(t["autocorrelation"])[["toggles", "arch", "depth", "autocorrelation", "sd", "seeds"]]
elif name == "erf":
    left, right = st.columns(2)
    left.altair_chart(charts.erf_growth(t["stacks"]), width="stretch")
    right.altair_chart(charts.erf_vs_rf(t["stacks"]), width="stretch")
    labels = list(dict.fromkeys(r["map"] for r in t["maps"]))
    stacks = [m for m in labels if m.startswith(("plain,", "residual,"))]
    cols = st.columns([1] * len(stacks) + ([1] if len(stacks) < len(labels) else []))
    radius = max(s["depths"])  # the largest stack's input: ±n pixels around the centre
    for col, label in zip(cols, stacks, strict=False):
        col.altair_chart(charts.erf_map(t["maps"], label, radius=radius), width="content")
    if len(stacks) < len(labels):
        cols[-1].altair_chart(charts.erf_map(t["maps"], labels[-1]), width="content")
    about = _("|∂y_centre/∂x| over the input (bright: strong), each map scaled to its own maximum. The stacks' maps "
              "share one frame of ±{radius} input pixels; each stack's input is exactly its theoretical receptive "
              "field, so a map's coloured square is that field (grey: outside it)", radius=radius)
    st.caption(about + (_("; the builder's network is drawn at its own scale ({n} pixels wide).",
                          n=t["network"][0]["input"][1]) if "network" in t else _(".")))
    main = pd.DataFrame(t["stacks"])
    if "network" in t:
        ui.dataframe(xs.shown(pd.DataFrame(t["network"])), key="why.networks")
elif name == "lesion":
    names = dict(zip(("residual", "plain"), s["networks"], strict=True))
    left, right = st.columns([3, 2])
    left.altair_chart(charts.lesion_single(t["single"], t["baseline"], names), width="stretch")
    right.altair_chart(charts.path_histogram(t["paths"]), width="stretch")
    if t["random"]:
        st.altair_chart(charts.lesion_random(t["random"], names), width="stretch")
    main = pd.DataFrame(t["single"]).rename(columns=names)
else:
    nets = s["networks"]
    left = right = st.container()  # one under the other: the two maps need the page's width
    left.altair_chart(charts.landscape_1d(t["slice_1d"]), width="content")
    if len(t["slice_2d"]) == 2 * s["points_2d"] ** 2:
        right.altair_chart(charts.landscape_pair(t["slice_2d"], nets), width="content")
    else:
        right.caption(_("The 2-D slices were not finished."))
    main = pd.DataFrame(t["summary"])

ui.dataframe(xs.shown(main.round(4)), key="why.main")
for line in result.findings:
    st.markdown("- " + say(line).replace("$", "\\$"))
with st.expander(_("Why this happens — for students"), expanded=True):
    st.markdown(_(result.explanation).replace("$", "\\$"))
with st.expander(_("Settings of this run")):
    st.json(json.loads(result.to_json())["settings"])
took = result.extra.get("timing")
if took is None:
    st.caption(_("Measured in {s} s on this server.", s=f"{result.seconds:.1f}"))
elif took["trained"]:
    st.caption(_("{wall} s from the click on this server: training the pair {pair} s, then the measurement {own} s.",
                 wall=f"{took['wall_s']:.0f}", pair=f"{took['pair_s']:.0f}", own=f"{took['wall_s'] - took['pair_s']:.1f}"))
else:
    st.caption(_("{wall} s from the click on this server, on a pair already trained ({source}).",
                 wall=f"{took['wall_s']:.1f}", source=md(say(result.settings.get("source", "")))))

d = st.columns(len(t) + 1)
d[0].download_button(_("⬇ Everything (JSON)"), result.to_json(), f"{name}.json", "application/json",
                     key="why.dl.json", width="stretch")
for col, table in zip(d[1:], t, strict=True):  # in Chinese the CSV's headers and labels are Chinese too
    col.download_button(_("⬇ {table} (CSV)", table=_(table)), rows_csv(xs.shown_rows(t[table])), f"{name}_{table}.csv",
                        "text/csv", key=f"why.dl.{table}", width="stretch")
