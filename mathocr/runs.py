"""Training runs: one directory per run, shared by the training commands and the app.

A run directory holds everything about one training run, so that a run outlives the process
(and the session) that started it, and any page or command can follow it::

    runs/<kind>/<name>/
        config.json        the full configuration, written before training starts
        status.json        state (queued, running, finished, failed, stopped), epoch/step progress, pid
        metrics.csv        one row per epoch (appended across resumes, in the columns of its first row)
        log.txt            the training process's output
        backup/            BackupAndRestore's state: a killed run resumes from its last epoch
        best.keras         the best model so far on the validation metric
        epochs/            with ``keep_epochs``: every epoch's model (epoch-01.keras, epoch-02.keras, ...)
        model/             the exported model that recognizers load (written at the end)
        evaluation.json    the final evaluation on the test split

This module does not import TensorFlow at import time; ``make_strategy`` and ``training_callbacks``
do, when called.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mathocr.data import REPO_ROOT

RUNS_ENV = "MATHOCR_RUNS"
STRATEGIES = ("default", "mirrored", "multiworker")


def runs_root() -> Path:
    """Where runs live: ``$MATHOCR_RUNS``, else ``runs/`` in the repository (git-ignored)."""
    env = os.environ.get(RUNS_ENV)
    return Path(env).expanduser() if env else REPO_ROOT / "runs"


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON so that a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2, default=str)
    os.replace(tmp, path)


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return default


@dataclass(frozen=True)
class Run:
    """A run directory and the files in it."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def kind(self) -> str:
        return self.path.parent.name

    config_file = property(lambda self: self.path / "config.json")
    status_file = property(lambda self: self.path / "status.json")
    metrics_file = property(lambda self: self.path / "metrics.csv")
    log_file = property(lambda self: self.path / "log.txt")
    backup_dir = property(lambda self: self.path / "backup")
    best_model = property(lambda self: self.path / "best.keras")
    epochs_dir = property(lambda self: self.path / "epochs")
    model_dir = property(lambda self: self.path / "model")
    evaluation_file = property(lambda self: self.path / "evaluation.json")

    def epoch_model(self, epoch: int) -> Path:
        """Where ``keep_epochs`` saves the model at the end of ``epoch`` (counted from 1, as Keras logs)."""
        return self.epochs_dir / f"epoch-{epoch:02d}.keras"

    def config(self) -> dict:
        return read_json(self.config_file, {})

    def status(self) -> dict:
        return read_json(self.status_file, {})

    def update_status(self, **fields: Any) -> dict:
        status = self.status()
        status.update(fields, updated=time.time())
        write_json_atomic(self.status_file, status)
        return status


def create_run(kind: str, config: dict, name: str | None = None, root: Path | None = None) -> Run:
    """A new run directory (or the existing one of that name, to resume), with its config."""
    root = Path(root) if root else runs_root()
    name = name or time.strftime("%Y%m%d-%H%M%S")
    run = Run(root / kind / name)
    run.path.mkdir(parents=True, exist_ok=True)
    previous = run.config()
    if previous and previous != config:
        # a resumed run keeps its first config; a changed one is recorded beside it
        write_json_atomic(run.path / f"config-resumed-{int(time.time())}.json", config)
    else:
        write_json_atomic(run.config_file, config)
    return run


def list_runs(kind: str | None = None, root: Path | None = None) -> list[Run]:
    root = Path(root) if root else runs_root()
    if not root.is_dir():
        return []
    kinds = [root / kind] if kind else [p for p in root.iterdir() if p.is_dir()]
    runs = [Run(p) for k in kinds if k.is_dir() for p in k.iterdir()
            if any((p / f).exists() for f in ("config.json", "status.json"))]
    return sorted(runs, key=lambda r: r.path.stat().st_mtime, reverse=True)


def make_strategy(name: str = "default"):
    """A ``tf.distribute`` strategy by name: ``default`` (one device), ``mirrored`` (every local
    GPU, or the logical CPUs), ``multiworker`` (many machines, described by ``TF_CONFIG``)."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("the multiworker strategy needs TF_CONFIG describing the cluster")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")


def training_callbacks(run: Run, monitor: str = "val_loss", mode: str = "min", patience: int | None = None,
                       steps_per_epoch: int | None = None, epochs: int | None = None,
                       keep_epochs: bool = False) -> list:
    """The callbacks every training command uses: resume after a kill (BackupAndRestore), the best
    checkpoint, per-epoch metrics appended to CSV, early stopping, and live status for the app.
    ``keep_epochs`` also saves every epoch's model (``Run.epoch_model``), so that an epoch can be
    chosen afterwards by another measure than the monitored one."""
    import keras

    callbacks = [
        keras.callbacks.BackupAndRestore(str(run.backup_dir)),
        keras.callbacks.ModelCheckpoint(str(run.best_model), monitor=monitor, mode=mode, save_best_only=True),
        keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: append_metrics(run.metrics_file, epoch, logs)),
        StatusCallback(run, steps_per_epoch=steps_per_epoch, epochs=epochs),
    ]
    if keep_epochs:
        run.epochs_dir.mkdir(parents=True, exist_ok=True)
        callbacks.insert(2, keras.callbacks.ModelCheckpoint(str(run.epochs_dir / "epoch-{epoch:02d}.keras")))
    if patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience,
                                                       restore_best_weights=True))
    return callbacks


def append_metrics(path: Path, epoch: int, logs: dict | None) -> None:
    """One epoch's metrics as a row of the CSV file at ``path``. The file's first row names its
    columns for good: a resumed run whose callbacks log one more metric (or one fewer) leaves
    that cell out (or empty), instead of shifting every later column as Keras' CSVLogger does
    when it appends to a file with another header."""
    import csv

    row = {"epoch": epoch}
    for key, value in (logs or {}).items():
        try:
            row[key] = float(value)
        except (TypeError, ValueError):
            continue
    path = Path(path)
    fields = None
    if path.exists() and path.stat().st_size:
        with path.open(newline="") as handle:
            fields = next(csv.reader(handle), None)
    with path.open("a", newline="") as handle:
        if not fields:
            fields = ["epoch", *sorted(k for k in row if k != "epoch")]
            csv.writer(handle).writerow(fields)
        csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore").writerow(row)


def _status_callback_class():
    import keras

    class _StatusCallback(keras.callbacks.Callback):
        """Writes progress (epoch, step, latest metrics) to status.json, at most twice a second."""

        def __init__(self, run: Run, steps_per_epoch: int | None = None, epochs: int | None = None):
            super().__init__()
            self.run = run
            self.steps_per_epoch = steps_per_epoch
            self.epochs = epochs
            self.epoch = 0
            self._last = 0.0

        def on_train_begin(self, logs=None):
            epochs = self.epochs or self.params.get("epochs")
            steps = self.steps_per_epoch or self.params.get("steps")
            self.run.update_status(state="running", pid=os.getpid(), epochs=epochs, steps=steps, started=time.time())

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.run.update_status(epoch=epoch, step=0)

        def on_train_batch_end(self, batch, logs=None):
            now = time.monotonic()
            if now - self._last > 0.5:
                self._last = now
                self.run.update_status(epoch=self.epoch, step=batch + 1,
                                       loss=float(logs["loss"]) if logs and "loss" in logs else None)

        def on_epoch_end(self, epoch, logs=None):
            self.run.update_status(epoch=epoch + 1, step=self.steps_per_epoch or self.params.get("steps"),
                                   last_epoch_logs={k: float(v) for k, v in (logs or {}).items()})

    return _StatusCallback


def StatusCallback(run: Run, steps_per_epoch: int | None = None, epochs: int | None = None):  # noqa: N802
    """A Keras callback that keeps ``status.json`` current (built lazily so TF loads only when training)."""
    return _status_callback_class()(run, steps_per_epoch=steps_per_epoch, epochs=epochs)
