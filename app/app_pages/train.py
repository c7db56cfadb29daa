"""The training lab: train small networks side by side and watch degradation and batch norm at work."""

import pandas as pd
import streamlit as st

import resnet_core as rc
from app import delivery, handoff, jobs, state, train_session, ui
from app.charts import training as train_charts
from resnet_core.device import BusyError, DeviceError, MemoryGuardError, pick_device
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

st.title("Training lab")
st.caption("He et al.'s headline result, live: a deeper **plain** network trains *worse* than a shallow one — not "
           "only on held-out data, on its own training data — while the residual network does not. "
           f"Defaults for this machine: {defaults.note}.")
if (guided_note := handoff.note("train")) is not None:
    st.info(guided_note, icon=":material/route:")

CIFAR_NETS = [n for n in rc.list_presets("cifar")] + ["preact_resnet110", "preact_resnet164"]
EXPERIMENT_LABELS = {name: exp.title for name, exp in train_config.EXPERIMENTS.items()}
EXPERIMENT_LABELS["custom"] = "Your choice of up to four networks"

with st.container(border=True):
    c1, c2 = st.columns([3, 2])
    experiment = c1.selectbox("Experiment", list(EXPERIMENT_LABELS), format_func=EXPERIMENT_LABELS.get,
                              key="train.experiment", disabled=busy, persist_state="session")
    data_kind = c2.segmented_control("Data", ["digits", "synthetic", "cifar"], default="digits", key="train.data",
                                     required=True, disabled=busy, persist_state="session",
                                     format_func={"digits": "digits", "synthetic": "synthetic",
                                                  "cifar": "CIFAR-10 folder"}.get,
                                     help="digits: the 1,797 UCI handwritten digits shipped in assets/ · synthetic: "
                                          "10 classes of seeded procedural shapes · CIFAR-10: a local copy of its "
                                          "python version. Nothing is downloaded.")
    nets: list = []
    if experiment == "custom":
        builder = ui.current_spec()
        options = CIFAR_NETS + ["builder"]
        chosen = st.multiselect("Networks (up to 4)", options, default=["plain20", "plain56"], max_selections=4,
                                key="train.nets", disabled=busy,
                                format_func=lambda n: f"the builder's network ({md(builder.name)})" if n == "builder" else n)
        nets = [("builder: " + builder.name, builder) if n == "builder" else (n, n) for n in chosen]
    else:
        exp = train_config.EXPERIMENTS[experiment]
        st.caption("Trains " + ", ".join(md(label) for label, _ in exp.nets) + " on the same batches, in the same order, "
                   "from the same seed.")
    cifar_path = ""
    if data_kind == "cifar":
        if data_root is None:
            st.caption("This server offers no CIFAR-10 folder: its operator has not set a data folder "
                       f"({train_session.DATA_DIR_ENV}).")
        cifar_path = st.text_input("CIFAR-10 folder (a name inside this server's data folder)", key="train.cifar",
                                   disabled=busy or data_root is None, placeholder="cifar-10-batches-py",
                                   help="Only folders inside the data folder the server's operator set up can be "
                                        "read; any other name gets the same answer.")
    s = st.columns(6)
    steps = s[0].number_input("Steps", 1, 100_000, defaults.steps, key="train.steps", disabled=busy)
    batch = s[1].number_input("Batch", 1, 4096, defaults.batch_size, key="train.batch", disabled=busy)
    exp_lr = dict(train_config.EXPERIMENTS[experiment].config).get("lr") if experiment in train_config.EXPERIMENTS else None
    lr = s[2].number_input("Learning rate", 0.0001, 10.0, float(exp_lr or defaults.lr), format="%.4f",
                           key=f"train.lr.{experiment}", disabled=busy)
    size = s[3].number_input("Input size", 4, 256, defaults.input_size[0], key="train.size", disabled=busy,
                             help="Images are resized to size × size; the CPU default is smaller than CIFAR's 32 so "
                                  "that four networks train within a lesson on a CPU (the time on this server is "
                                  "estimated before a run starts).")
    seed = s[4].number_input("Seed", 0, 2**31 - 1, 0, key="train.seed", disabled=busy)
    schedule = s[5].selectbox("Schedule", train_config.SCHEDULES, key="train.schedule", disabled=busy,
                              help="cosine: warm-up then cosine decay to 0 · step: ÷10 at 50% and 75% "
                                   "(the paper) · constant. Nets of 44 layers or more warm up (the paper warmed "
                                   "ResNet-110 up).")
    with st.expander("Several processes, GPUs or machines (torchrun)", icon=":material/hub:"):
        cap, unit = tdist.local_capacity("auto")
        nproc = st.number_input("Worker processes", 1, 64, min(2, cap), key="train.nproc", disabled=busy,
                                help=f"Each worker trains on its share of every batch (DistributedDataParallel). "
                                     f"Here: at most {cap} ({unit}s).")
        commands_box = st.container()
        start_many = st.button(f"Start on {nproc} local processes", key="train.start_nproc", disabled=busy or nproc > cap,
                               icon=":material/account_tree:",
                               help="The same experiment through `python -m resnet_core train --nproc N`; rank 0's "
                                    "progress streams into the curves below.")
    buttons = st.container(horizontal=True, gap="small", key="train.buttons")  # content-wide: no label cut
    start = buttons.button("Start training", type="primary", icon=":material/play_arrow:", key="train.start",
                           disabled=busy, width="content")

    def to_class_length() -> None:
        st.session_state["train.steps"] = train_config.CLASS_LENGTH["steps"]
        st.session_state["train.size"] = train_config.CLASS_LENGTH["input_size"]
    buttons.button("Class-length settings", icon=":material/timer:", key="train.class_length", disabled=busy,
                   width="content", on_click=to_class_length,
                   help=f"{train_config.CLASS_LENGTH['input_size']}×{train_config.CLASS_LENGTH['input_size']} inputs "
                        f"(the digits' own resolution), {train_config.CLASS_LENGTH['steps']} steps: "
                        f"{train_config.CLASS_LENGTH_MEASURED} on this project's 2-core server, with the same story "
                        "(benchmarks/RESULTS.md); the time on this server is shown before the run starts.")
    stop = buttons.button("Stop", icon=":material/stop:", key="train.stop", disabled=not busy, width="content",
                          help="Stops after the current step; the networks keep what they learned so far.")


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
shown_source = "cifar:DATA/" + (cifar_path.strip() or "cifar-10-batches-py") if data_kind == "cifar" else data_kind
args_shown = tdist.train_args(cli_settings(shown_source, "DATA" if data_kind == "cifar" else None))
with commands_box:
    if builder_chosen:
        st.caption("The builder's network is not a preset: export its spec (Share & export) and give the file in "
                   "--nets to run it from the command line.")
    elif experiment == "custom" and not chosen:
        st.caption("Choose a network first.")
    else:
        st.caption(f"This experiment on {nproc} processes here (the learning rate is scaled ×{nproc} for the "
                   f"×{nproc} batch unless `--lr-scaling none`):")
        st.code(tdist.local_command_line(args_shown, nproc), language="bash")
        st.caption(f"On {nproc} GPUs of one machine, or on 2 machines of {nproc} GPUs each (run it on both):")
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
            p1.markdown(f":material/school: **Prepared for the class** {md(about['when_text'])} by {md(about['how'])}: "
                        f"{ready.steps_done:,} steps in {about['wall_s']:.0f} s on {md(ready.device)}. **Start "
                        "training** shows it at once instead of training the same networks again (the same seed gives "
                        "the same curves); change any setting, e.g. the seed, to train your own.")
            use = p2.button("Show the prepared run", key="train.use_prepared", type="primary", width="stretch")
            if use or start:
                train_session.show_prepared(ready, experiment if experiment != "custom" else None,
                                            dict(source=data_kind, input_size=(int(size), int(size)), in_channels=3,
                                                 seed=int(seed), root=None))
                st.rerun()
        else:
            p1, p2 = st.columns([4, 1])
            p1.caption(":material/school: Teaching a class? Train these settings once for the whole server: every "
                       "session then shows the prepared run instead of training the same networks (the operator can "
                       "do it before class with `resnet-explorer prepare`).")
            prepare_clicked = p2.button("Prepare for the class", key="train.prepare", width="stretch",
                                        help="Trains these settings now and keeps the result under the server's data "
                                             "folder (it survives a restart).")
        kept = prepared.listing(data_root)
        if kept:
            with st.expander(f"Prepared on this server ({len(kept)})", icon=":material/inventory_2:"):
                st.markdown("\n".join(f"- {md(prepared.describe(e))}" for e in kept))
if start or start_many or prepare_clicked:
    try:
        source = source_for(data_kind, cifar_path)
        confined_to = data_root if data_kind == "cifar" else None  # every CIFAR file is read only below it
        if experiment == "custom" and not nets:
            raise train_config.TrainError("choose at least one network")
        exp_name = experiment if experiment != "custom" else None
        if start_many:
            if builder_chosen:
                raise train_config.TrainError("the builder's network runs on one process here (it is not a preset)")
            job = train_session.start_processes(tdist.train_args(cli_settings(source, data_root)), int(nproc),
                                                [label for label, _ in nets] or [label for label, _ in
                                                                                 train_config.EXPERIMENTS[experiment].nets],
                                                dict(source=source, input_size=(int(size), int(size)), in_channels=3,
                                                     seed=int(seed), root=confined_to),
                                                f"{nproc} processes", exp_name)
            st.rerun()
        with delivery.spinner("Preparing the data, building the networks and timing a step of each on this server…"):
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
        st.error(f"Training could not start: {md(msg)}", icon=":material/dangerous:")
    except (train_config.TrainError, DeviceError, MemoryGuardError, BusyError, jobs.Refused) as e:
        st.error(f"Training could not start: {md(train_session.visitor_text(e))}", icon=":material/dangerous:")

pending = st.session_state.get("train.pending")
if pending is not None and not busy:
    run, exp_name, estimate, to_prepare = pending
    with st.container(border=True):
        st.warning(f"This run would take {estimate.total.text()} {md(estimate.note())}, on "
                   f"{md(run.describe_device())}. Fewer steps, a smaller batch or input, or smaller networks "
                   "make it shorter.", icon=":material/schedule:")
        w1, w2, _ = st.columns([1, 1, 3])
        if w1.button("Start anyway", key="train.start_anyway", type="primary"):
            start_pending(run, exp_name, estimate, to_prepare)
        if w2.button("Cancel", key="train.cancel"):
            st.session_state.pop("train.pending", None)
            st.rerun()


def curves(run) -> None:
    df = train_session.records_frame(run)
    if df.empty:
        st.caption("Waiting for the first step…")
        return
    left, right = st.columns(2)
    left.altair_chart(train_charts.curve(df, "loss", list(run.labels), "training loss (log)"), width="stretch")
    right.altair_chart(train_charts.curve(df, "accuracy", list(run.labels), "training accuracy (on each batch)"),
                       width="stretch")
    window = train_charts.smoothing_window(df)
    bold = f"the mean of the last {window:,} steps" if window > 1 else "each step (too few steps yet to average)"
    st.caption(f"Faint: each step's batch; bold: {bold}. "
               f"Device: {md(run.describe_device())}" + (f" · data: {md(train_session.visitor_text(run.data.describe()))}."
                                                         if isinstance(run, train_run.TrainingRun) else "."))


@st.fragment(run_every=1.0 if busy else None)
def live_view() -> None:
    job = train_session.current()
    if job is None:
        est, measuring = train_session.default_estimate(device, defaults, data_root)
        when = (f"takes {est.total.text()} {md(est.note())}." if est is not None else
                "is being timed on this server (a few steps of each net, once)…" if measuring else
                "will be timed on this server when you press Start.")
        st.info("Choose an experiment and press **Start training**. The default — plain-20, plain-56, "
                f"ResNet-20 and ResNet-56 on the digits — {when}", icon=":material/touch_app:")
        return
    p = job.progress
    est = getattr(job, "estimate", None)
    if job.running and est is not None and isinstance(p, (train_results.TrainProgress, type(None))):
        st.caption(f"Expected: {est.total.text()} from the start, training and final evaluation "
                   f"({md(est.note())}).")
    if job.running and job.stop_event.is_set() and not isinstance(p, train_session.Evaluating):
        st.caption("Stopping after the current step; then every net is evaluated on the train and held-out splits.")
    if p is not None:
        st.progress(min(1.0, p.fraction), text=p.text())
    curves(job.run)
    if job.finished and st.session_state.get("train.shown_final") is not job:
        st.session_state["train.shown_final"] = job
        st.rerun()  # the whole page: the results below appear


live_view()

if job is not None and job.finished:
    if job.error:
        st.error(f"The run stopped with an error: {md(train_session.visitor_text(job.error))}",
                 icon=":material/dangerous:")
    result = job.result
    if result is not None:
        st.subheader("Results" + (" (stopped early: what was learned so far)" if result.stopped else ""))
        rows = [{"network": r.net, "layers": r.depth, "params": r.params, "steps": r.steps,
                 "final training loss": r.final_loss, "train accuracy": r.train_accuracy,
                 "held-out accuracy": r.heldout_accuracy, "time (s)": round(r.time_s, 1),
                 "warm-up": "yes" if r.warmup else "", "diverged at": r.diverged_at or ""} for r in result.nets]
        st.dataframe(pd.DataFrame(rows), hide_index=True, column_config={
            "final training loss": st.column_config.NumberColumn(format="%.4f"),
            "train accuracy": st.column_config.NumberColumn(format="percent"),
            "held-out accuracy": st.column_config.NumberColumn(format="percent"),
            "params": st.column_config.NumberColumn(format="localized")})
        sentences = story.summarise(result, job.experiment)
        st.info("\n\n".join(md(x) for x in sentences), icon=":material/lightbulb:")
        about = getattr(job, "prepared", None)
        if about is not None:
            st.caption(f":material/school: Prepared for the class {md(about['when_text'])} by {md(about['how'])} "
                       f"(trained once for the whole server at load {about.get('load') or 0:.1f}).")
        elif getattr(job, "prepare", None) is not None and not result.stopped:
            st.success("Kept for the class: every session with these settings can now show this run at once, also "
                       "after the server restarts.", icon=":material/school:")
        st.caption(f"{result.steps_done} steps in {result.wall_s:.0f} s on {md(result.device)} · "
                   f"{md(train_session.visitor_text(result.data))}. "
                   "Final training loss: the mean over the last steps; accuracies: the whole train and held-out "
                   "splits in evaluation mode.")
        d1, d2, _ = st.columns([1, 1, 3])
        d1.download_button("⬇ Curves (CSV)", train_results.curves_csv(result.records, result.evals), "curves.csv",
                           "text/csv", key="train.dl_curves", width="stretch")
        d2.download_button("⬇ Results (CSV)", train_results.results_csv(result), "results.csv", "text/csv",
                           key="train.dl_results", width="stretch")

        st.markdown("**Take a trained network further**")
        for r in result.nets:
            c = st.columns([2, 2, 2])
            c[0].markdown(f"**{r.net}** · final loss {r.final_loss:.3g}")

            def open_live(label=r.net) -> None:
                net = handoff.TrainedNet.from_hand_off(label, train_session.hand_off(result, label, job.run))
                state.apply_spec_to_widgets(net.spec, source=f"trained {label}")
                handoff.open_in_live(net)
                st.session_state["train.go_live"] = True

            c[1].button("Open in the Live lab", key=f"train.live.{r.net}", on_click=open_live,
                        icon=":material/biotech:", width="stretch",
                        help="Feature maps, the block anatomy and gradient flow of these trained weights.")
            c[2].download_button("⬇ Checkpoint (.pth)", lambda label=r.net: train_session.checkpoint_bytes(result, label),
                                 safe_filename(r.net, ".pth"), "application/octet-stream",
                                 key=f"train.ckpt.{r.net}", width="stretch",
                                 help="A torchvision-format state_dict; its network is the builder's after "
                                      "'Open in the Live lab', or export the spec there.")

if st.session_state.pop("train.go_live", False):
    st.switch_page("app_pages/live.py")
