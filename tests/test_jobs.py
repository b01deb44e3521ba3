"""Training runs as background jobs: queueing, following, killing, resuming, promoting."""

import os
import signal
import time
from pathlib import Path

import pytest

from mathocr import jobs
from mathocr.runs import Run

TOY = jobs.ModelKind(
    name="toy", title="Toy", module="tests.toy.train",
    params=(jobs.Param("epochs", "--epochs", int, 3, 1, 100), jobs.Param("learning_rate", "--learning-rate", float,
                                                                          0.01, 1e-6, 1.0),
            jobs.Param("pause", "--pause", float, 0.0, 0.0, 10.0)),
)


@pytest.fixture(autouse=True)
def toy_kind(tmp_path, monkeypatch):
    monkeypatch.setitem(jobs.KINDS, "toy", TOY)
    monkeypatch.setitem(jobs.LOADERS, "toy", ("keras.saving", "load_model"))
    monkeypatch.setenv("MATHOCR_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    yield


def wait_for(predicate, timeout=90.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_settings_are_validated_before_anything_starts(tmp_path):
    with pytest.raises(ValueError) as err:
        jobs.start_run("toy", {"epochs": "-3", "learning_rate": "fast"})
    message = str(err.value)
    assert "epochs must be at least 1" in message and "learning_rate must be a number" in message
    with pytest.raises(ValueError, match="whole number"):
        jobs.start_run("toy", {"epochs": "2.5"})
    with pytest.raises(ValueError, match="unknown setting"):
        jobs.start_run("toy", {"epochz": "2"})
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("status.json"))


def test_a_run_finishes_with_its_metrics_and_a_second_start_is_queued():
    first = jobs.start_run("toy", {"epochs": "3", "pause": "0.5"}, name="first")
    second = jobs.start_run("toy", {"epochs": "1"}, name="second")
    wait_for(lambda: jobs.run_state(first) == "running", what="the first run to start")
    assert jobs.run_state(second) == "queued"
    wait_for(lambda: jobs.run_state(first) == "finished", what="the first run to finish")
    wait_for(lambda: jobs.run_state(second) == "finished", what="the queued run to finish")
    metrics = jobs.read_metrics(first)
    assert [row["epoch"] for row in metrics] == [0.0, 1.0, 2.0]
    assert "val_loss" in metrics[0]
    assert "Epoch 3/3" in jobs.log_tail(first)
    assert first.status()["exit_code"] == 0
    with pytest.raises(ValueError, match="exists already"):
        jobs.start_run("toy", {}, name="first")


def test_a_killed_run_shows_as_failed_and_resumes_from_its_checkpoint():
    run = jobs.start_run("toy", {"epochs": "6", "pause": "1.0"}, name="killed")
    wait_for(lambda: len(jobs.read_metrics(run)) >= 2, what="two epochs")
    os.kill(run.status()["pid"], signal.SIGKILL)
    wait_for(lambda: jobs.run_state(run) == "failed", what="the run to show as failed")
    done_before = len(jobs.read_metrics(run))
    assert done_before < 6
    jobs.resume_run(run)
    wait_for(lambda: jobs.run_state(run) == "finished", timeout=120, what="the resumed run to finish")
    epochs = [int(row["epoch"]) for row in jobs.read_metrics(run)]
    # BackupAndRestore: the resumed process starts after the last finished epoch, not from zero
    assert epochs[-1] == 5 and epochs.count(0) == 1


def test_stop_then_resume():
    run = jobs.start_run("toy", {"epochs": "30", "pause": "0.5"}, name="stopped")
    wait_for(lambda: len(jobs.read_metrics(run)) >= 1, what="an epoch")
    jobs.stop_run(run)
    wait_for(lambda: jobs.run_state(run) == "stopped", what="the run to stop")
    with pytest.raises(ValueError):
        jobs.promote(run, jobs.model_loader("toy"))


def test_promote_is_refused_for_a_broken_model_and_switches_atomically(tmp_path):
    run = jobs.start_run("toy", {"epochs": "1"}, name="good")
    wait_for(lambda: jobs.run_state(run) == "finished", what="the run to finish")
    loader = lambda path: jobs.model_loader("toy")(Path(path) / "model.keras")  # noqa: E731
    assert jobs.active_model_dir("toy") == jobs.MODELS_DIR / "toy"
    active = jobs.promote(run, loader)
    assert active != run.model_dir and (active / "model.keras").exists()
    assert jobs.active_model_dir("toy") == active

    broken = Run(run.path.parent / "broken")
    (broken.model_dir).mkdir(parents=True)
    (broken.model_dir / "model.keras").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="does not load"):
        jobs.promote(broken, loader)
    assert jobs.active_model_dir("toy") == active  # unchanged

    jobs.use_shipped("toy")
    assert jobs.active_model_dir("toy") == jobs.MODELS_DIR / "toy"
    history = jobs.active_models()["toy"]["history"]
    assert history[0]["path"] == str(active)
    assert jobs.switch_to("toy", active, loader) == active


def test_every_kind_turns_its_presets_into_command_arguments():
    for kind in jobs.KINDS.values():
        for preset in kind.presets.values():
            values = {p.name: preset.get(p.name, p.default) for p in kind.params}
            args = kind.command_args(values)
            assert all(isinstance(a, str) for a in args)
    formulas = jobs.KINDS["formulas"]
    assert "--no-augment" in formulas.command_args({"augment": "off"})
    assert "--no-augment" not in formulas.command_args({"augment": True})
    with pytest.raises(ValueError, match="on or off"):
        formulas.command_args({"augment": "maybe"})
    typeset = jobs.KINDS["typeset"]
    smoke = typeset.command_args(typeset.presets["smoke (about a minute)"])
    assert smoke[:2] == ["--dataset", "im2latex"] and "--no-test" in smoke
    # the training commands accept what the page sends, defaults and presets alike
    for kind in (jobs.KINDS["symbols"], jobs.KINDS["formulas"], typeset):
        parser = __import__(kind.module, fromlist=["build_parser"]).build_parser()
        defaults = {p.name: p.default for p in kind.params}
        for values in (defaults, *({**defaults, **preset} for preset in kind.presets.values())):
            args = parser.parse_args(kind.command_args(values) + ["--name", "x", "--runs", "/tmp/x"])
    assert args.dataset == "im2latex" and args.max_width == 1024 and args.val_limit == 300
    # the handwritten standard preset is the shipped model's recipe
    parser = __import__(formulas.module, fromlist=["build_parser"]).build_parser()
    standard = {**{p.name: p.default for p in formulas.params}, **formulas.presets["standard"]}
    args = parser.parse_args(formulas.command_args(standard) + ["--name", "x"])
    assert (args.dropout, args.token_dropout, args.augment_strength, args.guide_weight, args.relabel,
            args.swap_symbols) == (0.3, 0.2, 2.0, 0.5, 0.25, 0.0)
    with pytest.raises(ValueError, match="swap_symbols must be at most 1"):
        formulas.command_args({"swap_symbols": "1.5"})


def test_a_run_is_of_the_kind_it_was_started_as_or_its_config_names(tmp_path):
    """training.formulas writes typeset runs under formulas/, so the folder alone does not say."""
    from mathocr.runs import write_json_atomic

    root = tmp_path / "runs"
    started = Run(root / "formulas" / "from-the-page")
    write_json_atomic(started.path / jobs.JOB_FILE, {"kind": "typeset"})
    typed = Run(root / "formulas" / "from-the-command-line")
    write_json_atomic(typed.config_file, {"kind": "typeset"})
    handwritten = Run(root / "formulas" / "handwritten")
    write_json_atomic(handwritten.config_file, {"kind": "handwritten"})
    assert [jobs.model_kind_of(r) for r in (started, typed, handwritten)] == ["typeset", "typeset", "formulas"]
    assert jobs.model_kind_of(Run(root / "symbols" / "any")) == "symbols"


def test_metrics_keep_the_columns_of_their_first_row(tmp_path):
    """A run resumed by newer code that logs one more metric (learning_rate) and one fewer: the
    old columns keep their values (Keras' CSVLogger shifted them)."""
    import csv

    from mathocr.runs import append_metrics

    path = tmp_path / "metrics.csv"
    append_metrics(path, 0, {"loss": 1.5, "val_exprate": 0.1, "val_loss": 2.0})
    append_metrics(path, 1, {"loss": 1.25, "learning_rate": 1e-3, "val_exprate": 0.2, "note": "text"})
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["epoch", "loss", "val_exprate", "val_loss"]
    assert [(r["epoch"], r["loss"], r["val_exprate"], r["val_loss"]) for r in rows] == [
        ("0", "1.5", "0.1", "2.0"), ("1", "1.25", "0.2", "")]
    assert path.read_text().count("\n") == 3
