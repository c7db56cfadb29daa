"""The training lab: train small networks side by side and watch degradation and batch norm at work."""

import pandas as pd
import streamlit as st

import resnet_core as rc
from app import delivery, handoff, jobs, lang, state, train_session, ui
from app.charts import training as train_charts
from resnet_core import i18n
from resnet_core.device import BusyError, DeviceError, MemoryGuardError, pick_device
from resnet_core.i18n import N_, _
from resnet_core.text import md, safe_filename
from resnet_core.training import config as train_config
from resnet_core.training import data as rdata
from resnet_core.training import distributed as tdist
from resnet_core.training import estimate as train_estimate
from resnet_core.training import prepared, story
from resnet_core.training import results as train_results
from resnet_core.training import run as train_run

LONG_RUN_S = 180  # a run estimated (the top of its range) to take longer than this is announced before it starts

device = pick_device("auto")
defaults = train_config.defaults_for(device)
job = train_session.current()
busy = job is not None and job.running
data_root = train_session.data_root()
handoff.arrive("train")  # a Learn step's link: its settings go into this page's widgets, once

st.title(_("Training lab"))
st.caption(_("He et al.'s headline result, live: a deeper **plain** network trains *worse* than a shallow one — not "
             "only on held-out data, on its own training data — while the residual network does not. "
             "Defaults for this machine: {note}.", note=defaults.text()))
if (guided_note := handoff.note("train")) is not None:
    st.info(guided_note, icon=":material/route:")

# the schedules as Chinese names them (English shows the values, as the command line takes them: "step" alone
# would be the step count's msgid)
SCHEDULE_LABELS = {"cosine": N_("cosine decay"), "step": N_("step decay (÷10)"), "constant": N_("constant rate")}
# the results table's headers (English: these names, as the tests read them)
RESULT_COLUMNS = (N_("network"), N_("layers"), N_("params"), N_("steps"), N_("final training loss"),
                  N_("train accuracy"), N_("held-out accuracy"), N_("time (s)"), N_("warm-up"), N_("diverged at"))
CIFAR_NETS = [n for n in rc.list_presets("cifar")] + ["preact_resnet110", "preact_resnet164"]
EXPERIMENT_LABELS = {name: exp.title for name, exp in train_config.EXPERIMENTS.items()}
EXPERIMENT_LABELS["custom"] = N_("Your choice of up to four networks")
DATA_LABELS = {"digits": N_("digits"), "synthetic": N_("synthetic"), "cifar": N_("CIFAR-10 folder")}

with st.container(border=True):
    c1, c2 = st.columns([3, 2])
    experiment = c1.selectbox(_("Experiment"), list(EXPERIMENT_LABELS), format_func=lambda e: _(EXPERIMENT_LABELS[e]),
                              key="train.experiment", disabled=busy, persist_state="session")
    data_kind = c2.segmented_control(_("Data"), ["digits", "synthetic", "cifar"], default="digits", key="train.data",
                                     required=True, disabled=busy, persist_state="session",
                                     format_func=lambda d: _(DATA_LABELS[d]),
                                     help=_("digits: the 1,797 UCI handwritten digits shipped in assets/ · synthetic: "
                                            "10 classes of seeded procedural shapes · CIFAR-10: a local copy of its "
                                            "python version. Nothing is downloaded."))
    nets: list = []
    if experiment == "custom":
        builder = ui.current_spec()
        options = CIFAR_NETS + ["builder"]
        chosen = st.multiselect(_("Networks (up to 4)"), options, default=["plain20", "plain56"], max_selections=4,
                                key="train.nets", disabled=busy,
                                format_func=lambda n: _("the builder's network ({name})", name=md(builder.name))
                                if n == "builder" else n)
        nets = [("builder: " + builder.name, builder) if n == "builder" else (n, n) for n in chosen]
    else:
        exp = train_config.EXPERIMENTS[experiment]
        st.caption(_("Trains {nets} on the same batches, in the same order, from the same seed.",
                     nets=", ".join(md(label) for label, _net in exp.nets)))
    cifar_path = ""
    if data_kind == "cifar":
        if data_root is None:
            st.caption(_("This server offers no CIFAR-10 folder: its operator has not set a data folder "
                         "({variable}).", variable=train_session.DATA_DIR_ENV))
        cifar_path = st.text_input(_("CIFAR-10 folder (a name inside this server's data folder)"), key="train.cifar",
                                   disabled=busy or data_root is None, placeholder="cifar-10-batches-py",
                                   help=_("Only folders inside the data folder the server's operator set up can be "
                                          "read; any other name gets the same answer."))
    s = st.columns(6)
    steps = s[0].number_input(_("Steps"), 1, 100_000, defaults.steps, key="train.steps", disabled=busy)
    batch = s[1].number_input(_("Batch"), 1, 4096, defaults.batch_size, key="train.batch", disabled=busy)
    exp_lr = dict(train_config.EXPERIMENTS[experiment].config).get("lr") if experiment in train_config.EXPERIMENTS else None
    lr = s[2].number_input(_("Learning rate"), 0.0001, 10.0, float(exp_lr or defaults.lr), format="%.4f",
                           key=f"train.lr.{experiment}", disabled=busy)
    size = s[3].number_input(_("Input size"), 4, 256, defaults.input_size[0], key="train.size", disabled=busy,
                             help=_("Images are resized to size × size; the CPU default is smaller than CIFAR's 32 so "
                                    "that four networks train within a lesson on a CPU (the time on this server is "
                                    "estimated before a run starts)."))
    seed = s[4].number_input(_("Seed"), 0, 2**31 - 1, 0, key="train.seed", disabled=busy)
    schedule = s[5].selectbox(_("Schedule"), train_config.SCHEDULES, key="train.schedule", disabled=busy,
                              format_func=lambda v: v if i18n.language() == i18n.DEFAULT else _(SCHEDULE_LABELS[v]),
                              help=_("cosine: warm-up then cosine decay to 0 · step: ÷10 at 50% and 75% "
                                     "(the paper) · constant. Nets of 44 layers or more warm up (the paper warmed "
                                     "ResNet-110 up)."))
    with st.expander(_("Several processes, GPUs or machines (torchrun)"), icon=":material/hub:"):
        cap, unit = tdist.local_capacity("auto")
        nproc = st.number_input(_("Worker processes"), 1, 64, min(2, cap), key="train.nproc", disabled=busy,
                                help=_("Each worker trains on its share of every batch (DistributedDataParallel). "
                                       "Here: at most {cap} ({units}).", cap=cap,
                                       units=_("GPUs") if unit == "GPU" else _("CPU cores")))
        commands_box = st.container()
        start_many = st.button(_("Start on {n} local processes", n=nproc), key="train.start_nproc",
                               disabled=busy or nproc > cap, icon=":material/account_tree:",
                               help=_("The same experiment through `python -m resnet_core train --nproc N`; rank 0's "
                                      "progress streams into the curves below."))
    buttons = st.container(horizontal=True, gap="small", key="train.buttons")  # content-wide: no label cut
    start = buttons.button(_("Start training"), type="primary", icon=":material/play_arrow:", key="train.start",
                           disabled=busy, width="content")

    def to_class_length() -> None:
        st.session_state["train.steps"] = train_config.CLASS_LENGTH["steps"]
        st.session_state["train.size"] = train_config.CLASS_LENGTH["input_size"]
    buttons.button(_("Class-length settings"), icon=":material/timer:", key="train.class_length", disabled=busy,
                   width="content", on_click=to_class_length,
                   help=_("{size}×{size} inputs (the digits' own resolution), {steps} steps: {measured} on this "
                          "project's 2-core server, with the same story (benchmarks/RESULTS.md); the time on this "
                          "server is shown before the run starts.", size=train_config.CLASS_LENGTH['input_size'],
                          steps=train_config.CLASS_LENGTH['steps'], measured=train_config.class_length_measured()))
    stop = buttons.button(_("Stop"), icon=":material/stop:", key="train.stop", disabled=not busy, width="content",
                          help=_("Stops after the current step; the networks keep what they learned so far."))


def source_for(data_kind: str, cifar_path: str) -> str:
    """The data source; a CIFAR-10 name only below the operator's data folder, one message otherwise."""
    if data_kind != "cifar":
        return data_kind
    if data_root is None:
        raise rdata.DataError(rdata.NOT_OFFERED)
    return f"cifar:{rdata.cifar_below(data_root, cifar_path)}"


def cli_settings(source: str, data_root_shown=None) -> dict:
    """This experiment as the train command's options (the app's settings, not its defaults)."""
    nets_opt = experiment if experiment != "custom" else ",".join(n for n in chosen if n != "builder")
    out = {"nets": nets_opt, "data": source, "steps": int(steps), "batch": int(batch), "lr": float(lr),
           "input_size": int(size), "seed": int(seed), "schedule": schedule}
    if data_kind == "cifar" and data_root_shown is not None:
        out["data_root"] = str(data_root_shown)
    return out


chosen = st.session_state.get("train.nets", []) if experiment == "custom" else []
builder_chosen = "builder" in chosen
shown_source = "cifar:DATA/" + (cifar_path.strip() or "cifar-10-batches-py") if data_kind == "cifar" else data_kind  # i18n: not shown (a command's argument)
args_shown = tdist.train_args(cli_settings(shown_source, "DATA" if data_kind == "cifar" else None))
with commands_box:
    if builder_chosen:
        st.caption(_("The builder's network is not a preset: export its spec (Share & export) and give the file in "
                     "--nets to run it from the command line."))
    elif experiment == "custom" and not chosen:
        st.caption(_("Choose a network first."))
    else:
        st.caption(_("This experiment on {n} processes here (the learning rate is scaled ×{n} for the "
                     "×{n} batch unless `--lr-scaling none`):", n=nproc))
        st.code(tdist.local_command_line(args_shown, nproc), language="bash")
        st.caption(_("On {n} GPUs of one machine, or on 2 machines of {n} GPUs each (run it on both):", n=nproc))
        st.code(tdist.command_line(args_shown, nproc) + "\n" +
                tdist.command_line(args_shown, nproc, nnodes=2, endpoint="HOST:29400"), language="bash")


def settings_now(source: str) -> dict:
    """This run's settings as prepared runs are keyed (the app's settings and the device's kind)."""
    return prepared.training_settings({**cli_settings(source), "device": device.type})


def start_pending(run, label_exp, estimate=None, prepare=None) -> None:
    train_session.start(run, label_exp, estimate, prepare)
    st.session_state.pop("train.pending", None)
    st.rerun()  # redraw the controls as busy: Stop enabled, settings locked


if stop and job is not None:
    job.stop()
prepare_clicked = False
ready = None  # the prepared run of these settings, if any
if not busy and not (experiment == "custom" and (builder_chosen or not chosen)) and data_kind != "cifar":
    with st.container(border=True, key="train.prepared_box"):
        ready = prepared.load_training(settings_now(data_kind), data_root)
        if ready is not None:
            about = ready.prepared  # type: ignore[attr-defined]
            p1, p2 = st.columns([4, 1])
            p1.markdown(":material/school: " + _(
                "**Prepared for the class** {when} by {how}: {steps} steps in {wall} s on {device}. **Start "
                "training** shows it at once instead of training the same networks again (the same seed gives "
                "the same curves); change any setting, e.g. the seed, to train your own.",
                when=md(prepared.when_text(about["when"])), how=md(prepared.shown_how(about["how"])),
                steps=f"{ready.steps_done:,}", wall=f"{about['wall_s']:.0f}",
                device=md(train_session.shown_device(ready.device))))
            use = p2.button(_("Show the prepared run"), key="train.use_prepared", type="primary", width="stretch")
            if use or start:
                train_session.show_prepared(ready, experiment if experiment != "custom" else None,
                                            dict(source=data_kind, input_size=(int(size), int(size)), in_channels=3,
                                                 seed=int(seed), root=None))
                st.rerun()
        else:
            p1, p2 = st.columns([4, 1])
            p1.caption(":material/school: " + _(
                "Teaching a class? Train these settings once for the whole server: every session then shows the "
                "prepared run instead of training the same networks (the operator can do it before class with "
                "`resnet-explorer prepare`)."))
            prepare_clicked = p2.button(_("Prepare for the class"), key="train.prepare", width="stretch",
                                        help=_("Trains these settings now and keeps the result under the server's "
                                               "data folder (it survives a restart)."))
        kept = prepared.listing(data_root)
        if kept:
            with st.expander(_("Prepared on this server ({n})", n=len(kept)), icon=":material/inventory_2:"):
                st.markdown("\n".join(f"- {md(train_session.shown_device(prepared.describe(e)))}" for e in kept))
if start or start_many or prepare_clicked:
    try:
        source = source_for(data_kind, cifar_path)
        confined_to = data_root if data_kind == "cifar" else None  # every CIFAR file is read only below it
        if experiment == "custom" and not nets:
            raise train_config.TrainError(_("choose at least one network"))
        exp_name = experiment if experiment != "custom" else None
        if start_many:
            if builder_chosen:
                raise train_config.TrainError(_("the builder's network runs on one process here (it is not a preset)"))
            job = train_session.start_processes(tdist.train_args(cli_settings(source, data_root)), int(nproc),
                                                [label for label, _n in nets] or [label for label, _n in
                                                                                 train_config.EXPERIMENTS[experiment].nets],
                                                dict(source=source, input_size=(int(size), int(size)), in_channels=3,
                                                     seed=int(seed), root=confined_to),
                                                f"{nproc} processes", exp_name)  # i18n: not shown (kept; shown_device)
            st.rerun()
        with delivery.spinner(_("Preparing the data, building the networks and timing a step of each on this server…")):
            run = train_run.make_run(experiment if experiment != "custom" else nets, source, steps=int(steps),
                                     batch_size=int(batch), input_size=int(size), seed=int(seed), lr=float(lr),
                                     schedule=schedule, device=device, data_options={"root": confined_to})
            estimate = train_estimate.estimate_run(run, data_root)
        to_prepare = settings_now(source) if prepare_clicked else None
        if estimate is not None and estimate.total.high > LONG_RUN_S:
            st.session_state["train.pending"] = (run, exp_name, estimate, to_prepare)
        else:
            start_pending(run, exp_name, estimate, to_prepare)
    except rdata.DataError as e:
        msg = rdata.NOT_OFFERED if data_kind == "cifar" else str(e)  # never a server path
        st.error(_("Training could not start: {reason}", reason=md(_(msg))), icon=":material/dangerous:")
    except (train_config.TrainError, DeviceError, MemoryGuardError, BusyError, jobs.Refused) as e:
        st.error(_("Training could not start: {reason}", reason=md(train_session.visitor_text(e))),
                 icon=":material/dangerous:")

pending = st.session_state.get("train.pending")
if pending is not None and not busy:
    run, exp_name, estimate, to_prepare = pending
    with st.container(border=True):
        st.warning(_("This run would take {time} {note}, on {device}. Fewer steps, a smaller batch or input, or "
                     "smaller networks make it shorter.", time=estimate.total.text(), note=md(estimate.note()),
                     device=md(train_session.shown_device(run.describe_device()))), icon=":material/schedule:")
        w1, w2, _w3 = st.columns([1, 1, 3])
        if w1.button(_("Start anyway"), key="train.start_anyway", type="primary"):
            start_pending(run, exp_name, estimate, to_prepare)
        if w2.button(_("Cancel"), key="train.cancel"):
            st.session_state.pop("train.pending", None)
            st.rerun()


def curves(run) -> None:
    df = train_session.records_frame(run)
    if df.empty:
        st.caption(_("Waiting for the first step…"))
        return
    left, right = st.columns(2)
    left.altair_chart(train_charts.curve(df, "loss", list(run.labels), _("training loss (log)")), width="stretch")
    right.altair_chart(train_charts.curve(df, "accuracy", list(run.labels), _("training accuracy (on each batch)")),
                       width="stretch")
    window = train_charts.smoothing_window(df)
    bold = _("the mean of the last {n} steps", n=f"{window:,}") if window > 1 else \
        _("each step (too few steps yet to average)")
    device_shown = md(train_session.shown_device(run.describe_device()))
    if isinstance(run, train_run.TrainingRun):
        st.caption(_("Faint: each step's batch; bold: {bold}. Device: {device} · data: {data}.", bold=bold,
                     device=device_shown, data=md(rdata.shown(train_session.visitor_text(run.data.describe())))))
    else:
        st.caption(_("Faint: each step's batch; bold: {bold}. Device: {device}.", bold=bold, device=device_shown))


@st.fragment(run_every=1.0 if busy else None)
def live_view() -> None:
    lang.apply()  # a fragment's own rerun does not run the app's top, where each run's language is set
    job = train_session.current()
    if job is None:
        est, measuring = train_session.default_estimate(device, defaults, data_root)
        when = (_("takes {time} {note}.", time=est.total.text(), note=md(est.note())) if est is not None else
                _("is being timed on this server (a few steps of each net, once)…") if measuring else
                _("will be timed on this server when you press Start."))
        st.info(_("Choose an experiment and press **Start training**. The default — plain-20, plain-56, "
                  "ResNet-20 and ResNet-56 on the digits — {when}", when=when), icon=":material/touch_app:")
        return
    p = job.progress
    est = getattr(job, "estimate", None)
    if job.running and est is not None and isinstance(p, (train_results.TrainProgress, type(None))):
        st.caption(_("Expected: {time} from the start, training and final evaluation ({note}).",
                     time=est.total.text(), note=md(est.note())))
    if job.running and job.stop_event.is_set() and not isinstance(p, train_session.Evaluating):
        st.caption(_("Stopping after the current step; then every net is evaluated on the train and held-out "
                     "splits."))
    if p is not None:
        st.progress(min(1.0, p.fraction), text=p.text())
    curves(job.run)
    if job.finished and st.session_state.get("train.shown_final") is not job:
        st.session_state["train.shown_final"] = job
        st.rerun()  # the whole page: the results below appear


live_view()

if job is not None and job.finished:
    if job.error:
        st.error(_("The run stopped with an error: {error}", error=md(train_session.visitor_text(job.error))),
                 icon=":material/dangerous:")
    result = job.result
    if result is not None:
        st.subheader(_("Results (stopped early: what was learned so far)") if result.stopped else _("Results"))
        col = {k: _(k) for k in RESULT_COLUMNS}  # the table's headers in this run's language
        rows = [{col["network"]: r.net, col["layers"]: r.depth, col["params"]: r.params, col["steps"]: r.steps,
                 col["final training loss"]: r.final_loss, col["train accuracy"]: r.train_accuracy,
                 col["held-out accuracy"]: r.heldout_accuracy, col["time (s)"]: round(r.time_s, 1),
                 col["warm-up"]: _("yes") if r.warmup else "", col["diverged at"]: r.diverged_at or ""}
                for r in result.nets]
        st.dataframe(pd.DataFrame(rows), hide_index=True, column_config={
            col["final training loss"]: st.column_config.NumberColumn(format="%.4f"),
            col["train accuracy"]: st.column_config.NumberColumn(format="percent"),
            col["held-out accuracy"]: st.column_config.NumberColumn(format="percent"),
            col["params"]: st.column_config.NumberColumn(format="localized")})
        sentences = story.summarise(result, job.experiment)  # here, in this run: in its language
        st.info("\n\n".join(md(x) for x in sentences), icon=":material/lightbulb:")
        about = getattr(job, "prepared", None)
        if about is not None:
            st.caption(":material/school: " + _(
                "Prepared for the class {when} by {how} (trained once for the whole server at load {load}).",
                when=md(prepared.when_text(about["when"])), how=md(prepared.shown_how(about["how"])),
                load=f"{about.get('load') or 0:.1f}"))
        elif getattr(job, "prepare", None) is not None and not result.stopped:
            st.success(_("Kept for the class: every session with these settings can now show this run at once, also "
                         "after the server restarts."), icon=":material/school:")
        st.caption(_("{steps} steps in {wall} s on {device} · {data}. Final training loss: the mean over the last "
                     "steps; accuracies: the whole train and held-out splits in evaluation mode.",
                     steps=result.steps_done, wall=f"{result.wall_s:.0f}", device=md(train_session.shown_device(
                         result.device)), data=md(rdata.shown(train_session.visitor_text(result.data)))))
        d1, d2, _d3 = st.columns([1, 1, 3])
        d1.download_button(_("⬇ Curves (CSV)"), train_results.curves_csv(result.records, result.evals, titles=True),
                           "curves.csv", "text/csv", key="train.dl_curves", width="stretch")
        d2.download_button(_("⬇ Results (CSV)"), train_results.results_csv(result, titles=True), "results.csv",
                           "text/csv", key="train.dl_results", width="stretch")

        st.markdown(_("**Take a trained network further**"))
        for r in result.nets:
            c = st.columns([2, 2, 2])
            c[0].markdown(_("**{net}** · final loss {loss}", net=r.net, loss=f"{r.final_loss:.3g}"))

            def open_live(label=r.net) -> None:
                net = handoff.TrainedNet.from_hand_off(label, train_session.hand_off(result, label, job.run))
                state.apply_spec_to_widgets(net.spec, source=f"trained {label}")
                handoff.open_in_live(net)
                st.session_state["train.go_live"] = True

            c[1].button(_("Open in the Live lab"), key=f"train.live.{r.net}", on_click=open_live,
                        icon=":material/biotech:", width="stretch",
                        help=_("Feature maps, the block anatomy and gradient flow of these trained weights."))
            c[2].download_button(_("⬇ Checkpoint (.pth)"), lambda label=r.net: train_session.checkpoint_bytes(result, label),
                                 safe_filename(r.net, ".pth"), "application/octet-stream",
                                 key=f"train.ckpt.{r.net}", width="stretch",
                                 help=_("A torchvision-format state_dict; its network is the builder's after "
                                        "'Open in the Live lab', or export the spec there."))

if st.session_state.pop("train.go_live", False):
    st.switch_page("app_pages/live.py")
