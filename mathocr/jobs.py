"""Training runs as background jobs: start, queue, follow, stop, resume, promote.

The app's training page and the command line share these runs (see ``mathocr.runs`` for the
directory layout). A job is a small supervisor process, detached from whoever started it, that
waits for a free slot (one run at a time on this 2-core machine by default: ``MATHOCR_MAX_RUNS``),
runs the training command with a list of arguments (never a shell string) and records how it
ended. So closing the browser or restarting the app loses nothing, a second start is queued, not
refused, and a run whose process died is reported as failed with its log.

    python -m mathocr.jobs supervise RUN_DIR     (what ``start_run`` spawns; not for people)
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from mathocr.data import REPO_ROOT
from mathocr.runs import Run, list_runs, read_json, runs_root, write_json_atomic

MAX_RUNS_ENV = "MATHOCR_MAX_RUNS"
MODELS_DIR = REPO_ROOT / "models"
ACTIVE_FILE = "active-models.json"
JOB_FILE = "job.json"

FINAL_STATES = ("finished", "failed", "stopped")


@dataclass(frozen=True)
class Param:
    """One hyperparameter a user may set, and how it reaches the training command."""

    name: str
    flag: str
    kind: type  # int, float or str
    default: object
    low: float | None = None
    high: float | None = None
    help: str = ""
    choices: tuple = ()

    def parse(self, value) -> object:
        """The value as the training command wants it, or ValueError with a message for a person."""
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text not in ("true", "false", "yes", "no", "on", "off", "1", "0"):
                raise ValueError(f"{self.name} must be on or off, not {value!r}")
            return text in ("true", "yes", "on", "1")
        if self.kind is str:
            text = str(value).strip()
            if self.choices and text not in self.choices:
                raise ValueError(f"{self.name} must be one of {', '.join(self.choices)}")
            return text
        try:
            number = self.kind(str(value).strip()) if self.kind is int else float(str(value).strip())
        except ValueError:
            raise ValueError(f"{self.name} must be {'a whole number' if self.kind is int else 'a number'}, "
                             f"not {value!r}") from None
        if self.kind is int and isinstance(value, float) and not float(value).is_integer():
            raise ValueError(f"{self.name} must be a whole number, not {value!r}")
        if self.low is not None and number < self.low:
            raise ValueError(f"{self.name} must be at least {self.low:g}, not {number:g}")
        if self.high is not None and number > self.high:
            raise ValueError(f"{self.name} must be at most {self.high:g}, not {number:g}")
        return number


@dataclass(frozen=True)
class ModelKind:
    """A kind of model the project trains: its training module, knobs and presets. ``base_args``
    go to the command before the settings (``--dataset im2latex``); ``run_folder`` is the folder
    of the runs root where the command writes its runs, when that is not the kind's name
    (``training.formulas`` writes typeset runs under ``formulas/`` too)."""

    name: str
    title: str
    module: str
    params: tuple[Param, ...]
    presets: dict[str, dict] = field(default_factory=dict)
    base_args: tuple[str, ...] = ()
    run_folder: str = ""

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def command_args(self, values: dict) -> list[str]:
        """Validated values to the training command's arguments. Raises ValueError listing every
        bad value, before anything starts."""
        errors, args = [], list(self.base_args)
        for p in self.params:
            if p.name not in values:
                continue
            try:
                value = p.parse(values[p.name])
                if p.kind is bool:  # a switch that turns the default off (--no-augment)
                    args += [] if value else [p.flag]
                else:
                    args += [p.flag, str(value)]
            except ValueError as err:
                errors.append(str(err))
        unknown = set(values) - {p.name for p in self.params}
        errors += [f"unknown setting {name!r}" for name in sorted(unknown)]
        if errors:
            raise ValueError("; ".join(errors))
        return args


KINDS: dict[str, ModelKind] = {}


def register_kind(kind: ModelKind) -> ModelKind:
    KINDS[kind.name] = kind
    return kind


# ---------------------------------------------------------------------------------------------
# Starting and supervising


def max_runs() -> int:
    try:
        return max(1, int(os.environ.get(MAX_RUNS_ENV, "1")))
    except ValueError:
        return 1


def start_run(kind: str, values: dict | None = None, name: str | None = None, root: Path | None = None,
              extra_args: list[str] | None = None) -> Run:
    """Validate the settings, create the run directory and hand it to a detached supervisor.
    The run starts at once if a slot is free, else it waits its turn (state ``queued``)."""
    model_kind = KINDS[kind]
    args = model_kind.command_args(values or {}) + list(extra_args or [])
    root = Path(root) if root else runs_root()
    name = name or time.strftime("%Y%m%d-%H%M%S")
    run = Run(root / (model_kind.run_folder or kind) / name)
    if run.path.exists() and any(run.path.iterdir()):
        raise ValueError(f"a {kind} run named {name!r} exists already: resume it, or choose another name")
    run.path.mkdir(parents=True)
    # the training command writes config.json; how the job was launched is kept beside it
    write_json_atomic(run.path / JOB_FILE, {"kind": kind, "module": model_kind.module, "settings": values or {},
                                            "args": args, "root": str(root)})
    _launch_supervisor(run)
    return run


def resume_run(run: Run) -> Run:
    """Start a stopped or failed run again from its last checkpoint (BackupAndRestore)."""
    if is_active(run):
        raise ValueError(f"run {run.name} is still {run.status().get('state')}")
    if not (run.path / JOB_FILE).exists():
        raise ValueError(f"run {run.name} was started from the command line: resume it there "
                         f"(the same command with --name {run.name})")
    _launch_supervisor(run)
    return run


def _launch_supervisor(run: Run) -> None:
    job = read_json(run.path / JOB_FILE)
    # the same --name and --runs make the training command resume from the run's checkpoints
    command = [sys.executable, "-m", job["module"], *job["args"], "--name", run.name, "--runs", job["root"]]
    run.update_status(state="queued", command=command, queued=time.time(), pid=None, exit_code=None,
                      stop_requested=False)
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    with open(run.path / "supervisor.log", "ab") as log:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "mathocr.jobs", "supervise", str(run.path)],
            cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the app that started it
        )
    run.update_status(supervisor_pid=supervisor.pid)


def _waits_behind(run: Run) -> bool:
    """Whether an earlier-queued run of the same runs root is still waiting: runs start in order."""
    mine = run.status().get("queued") or 0.0
    for other in list_runs(root=run.path.parent.parent):
        if other.path == run.path:
            continue
        status = other.status()
        if (status.get("state") == "queued" and (status.get("queued") or 0.0) < mine
                and _alive(status.get("supervisor_pid"))):
            return True
    return False


def _acquire_slot(run: Run):
    """Block until this run is first in line and one of the ``max_runs()`` slot locks is free;
    return the open (locked) slot file."""
    root = run.path.parent.parent
    root.mkdir(parents=True, exist_ok=True)
    while True:
        if not _waits_behind(run):
            for i in range(max_runs()):
                handle = open(root / f".slot-{i}.lock", "w")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return handle
                except BlockingIOError:
                    handle.close()
        time.sleep(0.5)


def supervise(run_dir: Path) -> int:
    """Wait for a slot, run the training command, record how it ended."""
    run = Run(Path(run_dir))
    slot = _acquire_slot(run)
    try:
        status = run.status()
        if status.get("state") == "stopped":  # stopped while queued
            return 0
        command = status["command"]
        with open(run.log_file, "ab") as log:
            log.write(f"\n$ {' '.join(command)}\n".encode())
            log.flush()
            process = subprocess.Popen(command, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
            run.update_status(state="running", pid=process.pid, started=time.time())

            def forward(signum, _frame):
                process.send_signal(signum)

            signal.signal(signal.SIGTERM, forward)
            code = process.wait()
        status = run.status()
        if status.get("stop_requested"):
            state = "stopped"
        else:
            state = "finished" if code == 0 else "failed"
        run.update_status(state=state, exit_code=code, ended=time.time(), pid=None)
        return code
    finally:
        slot.close()


# ---------------------------------------------------------------------------------------------
# Following


def _alive(pid) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{int(pid)}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def run_state(run: Run) -> str:
    """The run's state as a person should see it: a run whose processes died is ``failed``."""
    status = run.status()
    state = status.get("state", "unknown")
    if state in ("running", "stopping") and not _alive(status.get("pid")) and not _alive(status.get("supervisor_pid")):
        return "failed"
    if state == "queued" and not _alive(status.get("supervisor_pid")):
        return "failed"
    return state


def model_kind_of(run: Run) -> str:
    """The kind of model a run trains (the recognizer pages it can serve): the kind its job was
    started as, else the ``kind`` its config names when that is a registered kind (a typeset run
    started from the command line sits under ``formulas/`` with ``"kind": "typeset"``), else the
    name of its folder."""
    started_as = (read_json(run.path / JOB_FILE, {}) or {}).get("kind")
    configured = run.config().get("kind")
    for kind in (started_as, configured):
        if kind in KINDS:
            return kind
    return run.kind


def is_active(run: Run) -> bool:
    return run_state(run) in ("queued", "running", "stopping")


def stop_run(run: Run) -> None:
    """Stop a running or queued run; its checkpoints stay, so it can be resumed."""
    status = run.status()
    state = run_state(run)
    if state == "queued":
        run.update_status(state="stopped", stop_requested=True)
        _signal(status.get("supervisor_pid"), signal.SIGTERM)
        return
    if state in ("running", "stopping"):
        run.update_status(state="stopping", stop_requested=True)
        _signal(status.get("pid"), signal.SIGTERM)


def _signal(pid, signum) -> None:
    if pid and _alive(pid):
        try:
            os.killpg(os.getpgid(int(pid)), signum)
        except (ProcessLookupError, PermissionError):
            pass


def read_metrics(run: Run) -> list[dict]:
    """The per-epoch metrics rows (numbers as floats)."""
    import csv

    if not run.metrics_file.exists():
        return []
    with run.metrics_file.open(newline="") as handle:
        rows = []
        for row in csv.DictReader(handle):
            try:
                rows.append({k: float(v) for k, v in row.items() if v not in ("", None)})
            except ValueError:
                continue
    return rows


def log_tail(run: Run, lines: int = 30) -> str:
    if not run.log_file.exists():
        return ""
    with run.log_file.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 200 * lines))
        text = handle.read().decode(errors="replace")
    # progress bars redraw with carriage returns: keep what a terminal would show
    shown = [line.split("\r")[-1] for line in text.splitlines()]
    return "\n".join(shown[-lines:])


# ---------------------------------------------------------------------------------------------
# Which model the recognizer pages use


def _active_file(root: Path | None = None) -> Path:
    return (Path(root) if root else runs_root()) / ACTIVE_FILE


def active_models(root: Path | None = None) -> dict:
    return read_json(_active_file(root), {}) or {}


def active_model_dir(kind: str, root: Path | None = None) -> Path:
    """The model directory the recognizer pages load for a kind: the promoted one, else the shipped one."""
    entry = active_models(root).get(kind)
    if entry and entry.get("path") and Path(entry["path"]).exists():
        return Path(entry["path"])
    return MODELS_DIR / kind


def promote(run: Run, loader, root: Path | None = None) -> Path:
    """Make a finished run's model the active one for its kind. ``loader(path)`` must load it (the
    recognizer's own loader): a model that fails to load is refused and the active one kept.
    The switch is one atomic file replace; the previous choice is kept for switching back."""
    if not run.model_dir.is_dir():
        raise ValueError(f"run {run.name} has no exported model (it has not finished)")
    kind = model_kind_of(run)
    # a copy the run cannot change any more, loaded before it becomes active
    target = (Path(root) if root else runs_root()) / "promoted" / kind / f"{run.name}-{int(time.time())}"
    staging = Path(tempfile.mkdtemp(dir=target.parent.parent if target.parent.parent.exists() else None))
    try:
        shutil.copytree(run.model_dir, staging / "model")
        try:
            loader(staging / "model")
        except Exception as err:  # noqa: BLE001 - any failure to load means: refuse
            raise ValueError(f"the model of run {run.name} does not load ({type(err).__name__}: {err}); "
                             "the active model is unchanged") from None
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / "model", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _set_active(kind, target, source=run.name, root=root)


def _set_active(kind: str, path: Path | None, source: str, root: Path | None = None) -> Path:
    models = active_models(root)
    previous = models.get(kind)
    history = (previous or {}).get("history", [])
    if previous and previous.get("path"):
        history = [{"path": previous["path"], "source": previous.get("source")}] + history[:9]
    if path is None:
        models.pop(kind, None)
        if history:
            models[kind] = {"path": None, "history": history}
    else:
        models[kind] = {"path": str(path), "source": source, "since": time.time(), "history": history}
    write_json_atomic(_active_file(root), models)
    return active_model_dir(kind, root)


def use_shipped(kind: str, root: Path | None = None) -> Path:
    """Switch a kind back to the model shipped in the repository."""
    return _set_active(kind, None, source="shipped", root=root)


def switch_to(kind: str, path: str | Path, loader, root: Path | None = None) -> Path:
    """Switch back to an earlier model (from the history), after checking that it loads."""
    try:
        loader(Path(path))
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"{path} does not load ({type(err).__name__}: {err}); the active model is unchanged") from None
    return _set_active(kind, Path(path), source=Path(path).name, root=root)


# ---------------------------------------------------------------------------------------------
# The kinds of model this project trains (the training commands' flags; light: no TensorFlow here)

_COMMON = (
    Param("epochs", "--epochs", int, 20, 1, 1000, "passes over the training data"),
    Param("batch_size", "--batch-size", int, 128, 1, 4096, "samples per training step"),
    Param("learning_rate", "--learning-rate", float, 2e-3, 1e-6, 1.0, "the optimizer's peak learning rate"),
    Param("fraction", "--fraction", float, 1.0, 0.001, 1.0, "the share of the training data to use"),
)

register_kind(ModelKind(
    name="symbols", title="Symbols (CNN)", module="training.symbols",
    params=(
        Param("model", "--preset", str, "compact", help="baseline: the seed's small CNN; compact: the shipped one",
              choices=("baseline", "compact")),
        *_COMMON,
        Param("image_size", "--size", int, 32, 16, 128, "symbol image side in pixels"),
        Param("dropout", "--dropout", float, 0.3, 0.0, 0.9, "dropout before the classifier"),
        Param("augment", "--augment", float, 1.0, 0.0, 3.0, "augmentation strength (0: none, 1: the default)"),
    ),
    presets={
        "smoke (about a minute)": {"model": "baseline", "epochs": 2, "fraction": 0.03, "batch_size": 64},
        "standard": {"model": "compact", "epochs": 20},
    },
))

def _formula_params(augment_help: str) -> tuple[Param, ...]:
    """The settings of ``training.formulas``, handwritten or typeset."""
    return (
        Param("epochs", "--epochs", int, 200, 1, 1000, "passes over the training data"),
        Param("batch_size", "--batch-size", int, 32, 1, 1024, "formulas per training step"),
        Param("learning_rate", "--learning-rate", float, 1e-3, 1e-6, 1.0, "the optimizer's learning rate"),
        Param("fraction", "--fraction", float, 1.0, 0.001, 1.0, "the share of the training formulas to use"),
        Param("image_height", "--height", int, 48, 16, 256, "formula image height in pixels"),
        Param("units", "--units", int, 256, 8, 2048, "model size: the GRUs' width"),
        Param("blocks", "--blocks", int, 0, 0, 8, "residual blocks at the end of the encoder (each starts as "
              "the identity, so a run warm-started from a model with fewer computes what it did)"),
        Param("top_blocks", "--top-blocks", int, 0, 0, 8, "residual blocks after the encoder's last pooling, "
              "on the grid the attention reads (identity at first, as --blocks)"),
        Param("augment", "--no-augment", bool, True, help=augment_help),
        Param("steps_per_epoch", "--steps-per-epoch", int, 300, 1, 100000, "training steps between validations"),
    )


# The regularisation that took the shipped handwritten model from 8 % to 19 % ExpRate, and the
# relabelled formulas that took it on to 24 % greedy (its model card)
HANDWRITTEN_RECIPE = {"dropout": 0.3, "token_dropout": 0.2, "augment_strength": 2.0, "guide_weight": 0.5,
                      "relabel": 0.25}

register_kind(ModelKind(
    name="formulas", title="Handwritten formulas (seq2seq)", module="training.formulas",
    params=(
        *_formula_params("re-render the ink with random slant, scale, jitter"),
        Param("augment_strength", "--augment-strength", float, 1.0, 0.0, 4.0,
              "how far augmentation bends the ink (1: the default amounts)"),
        Param("swap_symbols", "--swap-symbols", float, 0.0, 0.0, 1.0,
              "the share of symbols rewritten in another writer's strokes, each epoch"),
        Param("relabel", "--relabel", float, 0.0, 0.0, 1.0,
              "the chance that each digit, letter or operator is replaced throughout by another of its kind, "
              "each epoch (new token sequences)"),
        Param("concat", "--concat", float, 0.0, 0.0, 1.0,
              "the share of each epoch's formulas written on one line with another (longer, new sequences)"),
        Param("stack", "--stack", float, 0.0, 0.0, 1.0,
              "the share of the other formulas made fractions of two short ones (new nested layouts)"),
        Param("script", "--script", float, 0.0, 0.0, 1.0,
              "the share of the formulas still single given a made-up superscript or subscript (or a prime)"),
        Param("synth", "--synth", float, 0.0, 0.0, 1.0,
              "the share of the formulas still single replaced by a formula laid out by a typesetter and "
              "written symbol by symbol in other writers' strokes (CROHME's and im2latex's formulas)"),
        Param("synth_im2latex", "--synth-im2latex", str, "covered",
              help="covered: made-up formulas from the im2latex formulas the vocabulary covers; rewritten: from "
              "the others too, their symbols rewritten into the vocabulary; pieces: besides, the long ones cut "
              "into clauses, equations and runs of terms that fit the input",
              choices=("covered", "rewritten", "pieces")),
        Param("dropout", "--dropout", float, 0.2, 0.0, 0.9, "dropout in the encoder and decoder"),
        Param("token_dropout", "--token-dropout", float, 0.0, 0.0, 0.9,
              "the share of previous tokens hidden from the decoder in training"),
        Param("guide_weight", "--guide-weight", float, 0.0, 0.0, 10.0,
              "weight of the first attention pass's own loss (0: unguided coverage)"),
        Param("counting", "--counting", float, 0.0, 0.0, 10.0,
              "weight of a symbol-counting head's loss; its counts shift the decoder's logits (0: no head)"),
        Param("label_smoothing", "--label-smoothing", float, 0.0, 0.0, 0.5,
              "the share of each target spread over the whole vocabulary (0: plain cross-entropy)"),
        Param("lr_schedule", "--lr-schedule", str, "plateau", help="plateau: halve on a plateau; cosine: decay "
              "to 1e-5 over the epochs", choices=("plateau", "cosine")),
    ),
    presets={
        "smoke (about a minute)": {"epochs": 1, "fraction": 0.05, "units": 32, "steps_per_epoch": 5,
                                   "batch_size": 8},
        "standard": dict(HANDWRITTEN_RECIPE),
    },
))

# The same model and command on im2latex's formulas as LaTeX draws them (`python -m mathocr data
# render` first); its runs sit beside the handwritten ones, as training.formulas writes them.
register_kind(ModelKind(
    name="typeset", title="Typeset formulas (seq2seq, im2latex)", module="training.formulas",
    params=(
        *_formula_params("draw each formula a little smaller, blurred or bolder, as screenshots differ"),
        Param("max_width", "--max-width", int, 1024, 64, 4096, "widest input in pixels (wider formulas are "
                                                                "scaled down)"),
        Param("val_limit", "--val-limit", int, 300, 0, 100000, "validate on the first N held-out formulas "
                                                               "after each epoch (0: all)"),
        Param("final_test", "--no-test", bool, True, help="evaluate on the held-out test split at the end"),
    ),
    presets={
        "smoke (about a minute)": {"epochs": 1, "fraction": 0.05, "units": 32, "steps_per_epoch": 5,
                                   "batch_size": 8, "max_width": 320, "val_limit": 16, "final_test": False},
        "standard": {},
    },
    base_args=("--dataset", "im2latex"),
    run_folder="formulas",
))

# what loads a model directory of each kind (checked before a model is promoted)
LOADERS = {"symbols": ("mathocr.symbols", "SymbolRecognizer"),
           "formulas": ("mathocr.formula_decode", "FormulaRecognizer.load"),
           "typeset": ("mathocr.formula_decode", "FormulaRecognizer.load")}


def model_loader(kind: str):
    """The recognizer class (or function) that loads a model directory of this kind."""
    import importlib

    module, name = LOADERS[kind]
    loader = importlib.import_module(module)
    for part in name.split("."):  # "Class.load" names a class method
        loader = getattr(loader, part)
    return loader


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "supervise":
        return supervise(Path(argv[1]))
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = [
    "KINDS", "ModelKind", "Param", "register_kind", "start_run", "resume_run", "stop_run", "run_state",
    "is_active", "model_kind_of", "read_metrics", "log_tail", "active_model_dir", "promote", "use_shipped", "switch_to",
    "list_runs", "Run",
]
