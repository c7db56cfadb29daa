"""The training lab: train small networks side by side and watch degradation and batch norm at work."""

import altair as alt
import pandas as pd
import streamlit as st

import resnet_core as rc
from app import handoff, state, train_session, ui
from resnet_core.device import BusyError, DeviceError, MemoryGuardError, pick_device
from resnet_core.training import config as train_config
from resnet_core.training import data as rdata
from resnet_core.training import results as train_results
from resnet_core.training import run as train_run

device = pick_device("auto")
defaults = train_config.defaults_for(device)
job = train_session.current()
busy = job is not None and job.running

st.title("Training lab")
st.caption("He et al.'s headline result, live: a deeper **plain** network trains *worse* than a shallow one — not "
           "only on held-out data, on its own training data — while the residual network does not. "
           f"Defaults for this machine: {defaults.note}.")

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
                                format_func=lambda n: f"the builder's network ({builder.name})" if n == "builder" else n)
        nets = [("builder: " + builder.name, builder) if n == "builder" else (n, n) for n in chosen]
    else:
        exp = train_config.EXPERIMENTS[experiment]
        st.caption("Trains " + ", ".join(label for label, _ in exp.nets) + " on the same batches, in the same order, "
                   "from the same seed.")
    cifar_path = ""
    if data_kind == "cifar":
        cifar_path = st.text_input("Folder of the CIFAR-10 python version (cifar-10-batches-py)", key="train.cifar",
                                   disabled=busy, placeholder="/data/cifar-10-batches-py")
    s = st.columns(6)
    steps = s[0].number_input("Steps", 1, 100_000, defaults.steps, key="train.steps", disabled=busy)
    batch = s[1].number_input("Batch", 1, 4096, defaults.batch_size, key="train.batch", disabled=busy)
    exp_lr = dict(train_config.EXPERIMENTS[experiment].config).get("lr") if experiment in train_config.EXPERIMENTS else None
    lr = s[2].number_input("Learning rate", 0.0001, 10.0, float(exp_lr or defaults.lr), format="%.4f",
                           key=f"train.lr.{experiment}", disabled=busy)
    size = s[3].number_input("Input size", 4, 256, defaults.input_size[0], key="train.size", disabled=busy,
                             help="Images are resized to size × size; the CPU default is smaller than CIFAR's 32 so "
                                  "that four networks train in a couple of minutes.")
    seed = s[4].number_input("Seed", 0, 2**31 - 1, 0, key="train.seed", disabled=busy)
    schedule = s[5].selectbox("Schedule", train_config.SCHEDULES, key="train.schedule", disabled=busy,
                              help="cosine: warm-up then cosine decay to 0 · step: ÷10 at 50% and 75% "
                                   "(the paper) · constant. Nets of 44 layers or more warm up (the paper warmed "
                                   "ResNet-110 up).")
    b1, b2, _ = st.columns([1, 1, 4])
    start = b1.button("Start training", type="primary", icon=":material/play_arrow:", key="train.start",
                      disabled=busy, width="stretch")
    stop = b2.button("Stop", icon=":material/stop:", key="train.stop", disabled=not busy, width="stretch",
                     help="Stops after the current step; the networks keep what they learned so far.")

if stop and job is not None:
    job.stop()
if start:
    source = data_kind if data_kind != "cifar" else f"cifar:{cifar_path.strip()}"
    try:
        if data_kind == "cifar":
            if not cifar_path.strip():
                raise rdata.DataError("give the CIFAR-10 folder first")
            rdata.find_cifar_folder(cifar_path.strip())
        if experiment == "custom" and not nets:
            raise train_config.TrainError("choose at least one network")
        with st.spinner("Preparing the data and building the networks…"):
            run = train_run.make_run(experiment if experiment != "custom" else nets, source, steps=int(steps),
                                 batch_size=int(batch), input_size=int(size), seed=int(seed), lr=float(lr),
                                 schedule=schedule, device=device)
        train_session.start(run, experiment if experiment != "custom" else None)
        st.rerun()  # redraw the controls as busy: Stop enabled, settings locked
    except (train_config.TrainError, rdata.DataError, DeviceError, MemoryGuardError, BusyError) as e:
        st.error(f"Training could not start: {e}", icon=":material/dangerous:")


def smoothed(df: pd.DataFrame, column: str, window: int) -> pd.DataFrame:
    out = df.sort_values(["net", "step"]).copy()
    out[column + " (smoothed)"] = out.groupby("net")[column].transform(
        lambda s: s.rolling(window, min_periods=1).mean())
    return out


def curves(run: train_run.TrainingRun) -> None:
    df = train_session.records_frame(run)
    if df.empty:
        st.caption("Waiting for the first step…")
        return
    window = max(1, min(25, int(df["step"].max()) // 20))
    order = run.labels
    palette = alt.Scale(domain=order, range=["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"][:len(order)])
    left, right = st.columns(2)
    for col, column, title, fmt in ((left, "loss", "training loss (log)", ".3g"),
                                    (right, "accuracy", "training accuracy (on each batch)", ".0%")):
        d = smoothed(df, column, window)
        y_scale = alt.Scale(type="log") if column == "loss" else alt.Scale(domain=[0, 1])
        raw = alt.Chart(d).mark_line(opacity=0.18, strokeWidth=1).encode(
            x=alt.X("step:Q"), y=alt.Y(f"{column}:Q", scale=y_scale, title=title, axis=alt.Axis(format=fmt)),
            color=alt.Color("net:N", scale=palette, legend=alt.Legend(orient="bottom", title=None)),
            detail="net:N")
        smooth = alt.Chart(d).mark_line(strokeWidth=2.5).encode(
            x="step:Q", y=alt.Y(f"{column} (smoothed):Q", scale=y_scale),
            color=alt.Color("net:N", scale=palette),
            tooltip=["net", "step", alt.Tooltip(f"{column} (smoothed):Q", format=fmt, title=column)])
        col.altair_chart(alt.layer(raw, smooth).properties(height=320, title=title), width="stretch")
    st.caption(f"Faint: each step's batch; bold: the mean of the last {window} steps. "
               f"Device: {run.describe_device()} · data: {run.data.describe()}.")


@st.fragment(run_every=1.0 if busy else None)
def live_view() -> None:
    job = train_session.current()
    if job is None:
        st.info("Choose an experiment and press **Start training**. The default — plain-20, plain-56, "
                "ResNet-20 and ResNet-56 on the digits — takes about two minutes on a 2-core CPU.",
                icon=":material/touch_app:")
        return
    train_session.touch()  # the page is open: keep training
    p = job.progress
    if p is not None:
        st.progress(p.fraction, text=p.text())
    curves(job.run)
    if job.finished and st.session_state.get("train.shown_final") is not job:
        st.session_state["train.shown_final"] = job
        st.rerun()  # the whole page: the results below appear


live_view()

if job is not None and job.finished:
    if job.error:
        st.error(f"The run stopped with an error: {job.error}", icon=":material/dangerous:")
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
        if job.experiment in train_config.EXPERIMENTS:
            st.info(train_config.EXPERIMENTS[job.experiment].what_to_see, icon=":material/lightbulb:")
        st.caption(f"{result.steps_done} steps in {result.wall_s:.0f} s on {result.device} · {result.data}. "
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
                state.load_spec(net.spec, source=f"trained {label}")
                handoff.open_in_live(net)
                st.session_state["train.go_live"] = True

            c[1].button("Open in the Live lab", key=f"train.live.{r.net}", on_click=open_live,
                        icon=":material/biotech:", width="stretch",
                        help="Feature maps, the block anatomy and gradient flow of these trained weights.")
            c[2].download_button("⬇ Checkpoint (.pth)", lambda label=r.net: train_session.checkpoint_bytes(result, label),
                                 f"{r.net.replace(' ', '_')}.pth", "application/octet-stream",
                                 key=f"train.ckpt.{r.net}", width="stretch",
                                 help="A torchvision-format state_dict; its network is the builder's after "
                                      "'Open in the Live lab', or export the spec there.")

if st.session_state.pop("train.go_live", False):
    st.switch_page("app_pages/live.py")
