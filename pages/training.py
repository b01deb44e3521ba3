"""Launch and follow training runs: choose a model kind and settings, start, watch, stop, resume,
compare, and promote a finished run's model to the recognizer pages."""

import pandas as pd
import streamlit as st

from mathocr import jobs
from mathocr.runs import list_runs

STATE_ICONS = {"queued": "⏳", "running": "▶️", "stopping": "⏹️", "finished": "✅", "failed": "❌", "stopped": "⏸️"}

st.title("Training")
st.caption(
    "Runs go on in the background: closing the browser or restarting the app loses nothing. "
    f"At most {jobs.max_runs()} run at a time on this machine; another start waits its turn. "
    "The same runs can be started from the command line (`python -m training.<kind> --help`)."
)

if not jobs.KINDS:
    st.info("No model kind can be trained in this installation.")
    st.stop()


# What typeset training reads: im2latex's formulas as LaTeX drew them, rendered beforehand
def typeset_data_note() -> None:
    from mathocr import data
    from mathocr.typeset_data import rendered_dir

    folder = rendered_dir()
    rendered = sum(1 for _ in folder.glob("*.png")) if folder.is_dir() else 0
    if not data.im2latex_available():
        st.warning(f"im2latex is not in `{data.data_dir()}`, so there is nothing to train a typeset model on.")
    elif rendered == 0:
        st.warning(f"im2latex's formulas are not rendered yet (`{folder}`): run `python -m mathocr data render` "
                   "first (about 7 minutes on 2 cores with LaTeX installed).")
    else:
        st.caption(f"Trains on the {rendered:,} im2latex formulas rendered in `{folder}`.")


# The new-run form: a kind, a preset, and the settings that matter
def new_run_form() -> None:
    kind_name = st.selectbox("Model kind", list(jobs.KINDS), format_func=lambda k: jobs.KINDS[k].title)
    kind = jobs.KINDS[kind_name]
    if kind_name == "typeset":
        typeset_data_note()
    preset_name = st.radio("Preset", [*kind.presets, "custom"], horizontal=True, key=f"preset-{kind_name}")
    preset = kind.presets.get(preset_name, {})
    with st.form(f"new-run-{kind_name}"):
        values = {}
        columns = st.columns(3)
        for i, param in enumerate(kind.params):
            default = preset.get(param.name, param.default)
            with columns[i % 3]:
                if param.choices:
                    values[param.name] = st.selectbox(param.name, param.choices, index=param.choices.index(default),
                                                      help=param.help, key=f"{kind_name}-{preset_name}-{param.name}")
                else:
                    # text, not a number widget, so that a bad value gets a message instead of vanishing
                    values[param.name] = st.text_input(param.name, str(default), help=param.help,
                                                       key=f"{kind_name}-{preset_name}-{param.name}")
        name = st.text_input("Run name (optional)", key=f"{kind_name}-run-name")
        submitted = st.form_submit_button("Start", type="primary")
    if submitted:
        try:
            run = jobs.start_run(kind_name, values, name=name.strip() or None)
        except ValueError as err:
            st.error(f"Not started: {err}")
        else:
            st.success(f"Started run `{run.name}`.")


# One run: its state, progress, curves, log and actions
def run_panel(run) -> None:
    state = jobs.run_state(run)
    status = run.status()
    kind = jobs.model_kind_of(run)
    header = f"{STATE_ICONS.get(state, '')} {kind} / {run.name} — {state}"
    with st.expander(header, expanded=state in ("running", "queued", "stopping")):
        epochs, epoch = status.get("epochs") or 0, status.get("epoch") or 0
        steps, step = status.get("steps") or 0, status.get("step") or 0
        if epochs:
            fraction = min(1.0, (epoch + (step / steps if steps else 0)) / epochs) if state != "finished" else 1.0
            st.progress(fraction, text=f"epoch {min(epoch + 1, epochs) if state != 'finished' else epochs} of "
                                       f"{epochs}, step {step} of {steps or '?'}")
        metrics = jobs.read_metrics(run)
        if metrics:
            frame = pd.DataFrame(metrics).set_index("epoch")
            loss_columns = [c for c in frame.columns if "loss" in c]
            other = [c for c in frame.columns if c not in loss_columns and c != "learning_rate"]
            charts = st.columns(2)
            if loss_columns:
                charts[0].line_chart(frame[loss_columns], x_label="epoch", y_label="loss")
            if other:
                charts[1].line_chart(frame[other], x_label="epoch")
        evaluation = run.status().get("evaluation") or jobs.read_json(run.evaluation_file)
        if evaluation:
            st.write("Final evaluation:", evaluation)
        if state == "failed":
            st.error(f"The run failed (exit code {status.get('exit_code', 'unknown: its process died')}). "
                     "Its checkpoints are kept: resume continues from the last one.")
        tail = jobs.log_tail(run)
        if tail:
            st.code(tail, language=None)
        actions = st.columns(4)
        if state in ("running", "queued") and actions[0].button("Stop", key=f"stop-{run.path}"):
            jobs.stop_run(run)
            st.rerun()
        if state in ("failed", "stopped") and actions[1].button("Resume", key=f"resume-{run.path}"):
            jobs.resume_run(run)
            st.rerun()
        if state == "finished" and run.model_dir.is_dir() and actions[2].button("Use this model",
                                                                                 key=f"promote-{run.path}"):
            try:
                jobs.promote(run, jobs.model_loader(kind))
            except ValueError as err:
                st.error(str(err))
            else:
                st.success(f"The {kind} pages now use the model of run {run.name}.")


# All runs, refreshed every two seconds while one of them is going
@st.fragment(run_every=2)
def runs_section() -> None:
    runs = list_runs()
    if not runs:
        st.info("No runs yet.")
        return
    for run in runs:
        run_panel(run)


# Several runs' curves on one chart
def compare_section() -> None:
    runs = [r for r in list_runs() if jobs.read_metrics(r)]
    if len(runs) < 2:
        st.caption("Curves of two or more runs can be compared here once they have finished an epoch.")
        return
    labels = {f"{jobs.model_kind_of(r)}/{r.name}": r for r in runs}
    chosen = st.multiselect("Runs", list(labels), default=list(labels)[:2])
    metric_names = sorted({k for label in chosen for row in jobs.read_metrics(labels[label]) for k in row} - {"epoch"})
    if not chosen or not metric_names:
        return
    default_metric = "val_loss" if "val_loss" in metric_names else metric_names[0]
    metric = st.selectbox("Metric", metric_names, index=metric_names.index(default_metric))
    series = {}
    for label in chosen:
        rows = jobs.read_metrics(labels[label])
        series[label] = pd.Series({row["epoch"]: row.get(metric) for row in rows})
    st.line_chart(pd.DataFrame(series), x_label="epoch", y_label=metric)


# Which model each recognizer page uses, and switching back
def active_models_section() -> None:
    active = jobs.active_models()
    for kind in jobs.KINDS:
        entry = active.get(kind) or {}
        current = entry.get("path")
        st.write(f"**{jobs.KINDS[kind].title}**: {'`' + current + '`' if current else 'the shipped model'}")
        choices = [h["path"] for h in entry.get("history", []) if h.get("path") and h["path"] != current]
        cols = st.columns(2)
        if current and cols[0].button("Back to the shipped model", key=f"shipped-{kind}"):
            jobs.use_shipped(kind)
            st.rerun()
        if choices:
            back = cols[1].selectbox("Earlier models", choices, key=f"history-{kind}")
            if cols[1].button("Switch", key=f"switch-{kind}"):
                try:
                    jobs.switch_to(kind, back, jobs.model_loader(kind))
                except ValueError as err:
                    st.error(str(err))
                else:
                    st.rerun()


st.header("New run")
new_run_form()
st.header("Runs")
runs_section()
st.header("Compare runs")
compare_section()
st.header("Models in use")
active_models_section()
