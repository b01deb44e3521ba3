"""The symbol recognizer: model building, a short training run, the evaluation and benchmark
commands, the recognizer's inputs, the mirrored strategy, and (when present) the shipped model."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixtures import GLYPH_LABELS, glyph, write_inkml
from mathocr.photo import PAPERS
from mathocr.render import augment_strokes, load_image, render_strokes

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "models" / "symbols"
TINY = ["--layers", "8,M,16", "--epochs", "5", "--batch-size", "16", "--learning-rate", "0.01", "--patience", "0",
        "--dropout", "0", "--verbose", "0"]


def write_symbol_files(directory: Path, copies: int, seed: int, per_file: int = 6) -> int:
    """Every synthetic glyph ``copies`` times, each a randomly distorted handwriting, a few symbols
    to a file. Returns how many symbols were written."""
    rng = np.random.default_rng(seed)
    items = [(label, augment_strokes(glyph(label), rng, rotate_deg=8, shear=0.2, scale=0.15))
             for label in GLYPH_LABELS for _ in range(copies)]
    order = rng.permutation(len(items))
    for start in range(0, len(items), per_file):
        chunk = [items[i] for i in order[start:start + per_file]]
        placed = [(label, [s + (300 * k, 0) for s in strokes]) for k, (label, strokes) in enumerate(chunk)]
        write_inkml(directory / f"expr{start:04d}.inkml", placed, " ".join(label for label, _ in chunk))
    return len(items)


@pytest.fixture(scope="module")
def symbol_dirs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("symbols")
    counts = {split: write_symbol_files(root / split, copies, seed)
              for split, copies, seed in (("train", 12, 1), ("val", 3, 2), ("test", 3, 3))}
    return {"root": root, "counts": counts, **{split: root / split for split in counts}}


@pytest.fixture(scope="module")
def trained_run(symbol_dirs) -> Path:
    """A run of the training command on the synthetic symbols: a tiny model that also reads each
    symbol's context (the ``context`` preset), five epochs."""
    from training.symbols import main

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MATHOCR_CACHE", str(symbol_dirs["root"] / "cache"))
        code = main(["--train-dir", str(symbol_dirs["train"]), "--val-dir", str(symbol_dirs["val"]),
                     "--test-dir", str(symbol_dirs["test"]), "--runs", str(symbol_dirs["root"] / "runs"),
                     "--name", "tiny", "--preset", "context", *TINY])
    assert code == 0
    return symbol_dirs["root"] / "runs" / "symbols" / "tiny"


def test_symbol_context_measures_size_and_place_within_the_expression():
    from mathocr.symbol_data import symbol_context

    # x, a superscript 2 half its size, a comma on the baseline, and a tall (
    x, two, comma, paren = glyph("x"), glyph("2", 120, -40, 50), [np.array([[260, 95], [255, 110]])], glyph("(", 300, -20, 140)
    context = symbol_context([x, two, comma, paren])
    assert (context[:, 0] == 1).all()
    height = context[:, 1]
    assert height[1] < height[0] < height[3] and height[2] < height[1]
    offset = context[:, 3]
    assert offset[1] < offset[0] < offset[2]  # y grows downwards: the superscript sits highest


def test_both_presets_build_from_one_function():
    from mathocr.symbol_model import build_symbol_model, conv_layer_names, preset

    baseline = build_symbol_model(preset("baseline"), 25)
    assert [layer.name for layer in baseline.layers[1:]] == ["conv1", "pool1", "conv2", "pool2", "conv3", "flatten",
                                                              "classes"]
    assert baseline.output_shape == (None, 25)
    compact = build_symbol_model(preset("compact", size=40), 101)
    assert compact.input_shape == (None, 40, 40, 1) and compact.output_shape == (None, 101)
    assert conv_layer_names(compact)[:2] == ["conv1", "conv2"]
    assert compact.count_params() < 2_000_000
    with_context = build_symbol_model(preset("context"), 101)
    assert [tensor.name for tensor in with_context.inputs] == ["image", "context"]


def test_short_training_lowers_the_loss_and_fills_the_run_directory(trained_run, symbol_dirs):
    with (trained_run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5
    losses = [float(r["loss"]) for r in rows]
    assert losses[-1] < losses[0] - 0.2, losses
    for name in ("config.json", "best.keras", "labels.json", "model/symbols.keras", "model/labels.json",
                 "evaluation.json", "confusion.png"):
        assert (trained_run / name).exists(), name
    config = json.loads((trained_run / "config.json").read_text())
    assert config["model"]["layers"] == [8, "M", 16] and config["classes"] == len(GLYPH_LABELS)
    evaluation = json.loads((trained_run / "evaluation.json").read_text())
    assert evaluation["test"]["n"] == symbol_dirs["counts"]["test"] and evaluation["test"]["context"]
    assert evaluation["test_without_context"]["context"] is False


def test_evaluate_command_prints_one_json_object(trained_run, symbol_dirs, capsys):
    from mathocr.cli import main

    assert main(["evaluate", "symbols", "--inkml-dir", str(symbol_dirs["test"]), "--model",
                 str(trained_run / "model"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == symbol_dirs["counts"]["test"]
    assert 0 <= result["top1"] <= result["top5"] <= 1
    assert result["ms_per_symbol"] > 0


def test_evaluate_command_report_and_files(trained_run, symbol_dirs, capsys, tmp_path):
    from mathocr.cli import main

    out = tmp_path / "report"
    assert main(["evaluate", "symbols", "--inkml-dir", str(symbol_dirs["test"]), "--model",
                 str(trained_run / "model"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "top-1" in text and "most confused pairs" in text
    with (out / "per_class.csv").open() as handle:
        assert {row["label"] for row in csv.DictReader(handle)} == set(GLYPH_LABELS)
    assert (out / "confusion.png").stat().st_size > 1000


def test_evaluate_command_on_a_directory_without_inkml(tmp_path, trained_run, capsys):
    from mathocr.cli import main

    assert main(["evaluate", "symbols", "--inkml-dir", str(tmp_path), "--model", str(trained_run / "model")]) == 2
    assert "no .inkml files" in capsys.readouterr().err


def test_benchmark_command(trained_run, capsys):
    from mathocr.cli import main

    assert main(["benchmark", "symbols", "--model", str(trained_run / "model"), "--repeats", "20", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"]["median_ms"] > 0 and result["strokes_to_top5"]["median_ms"] > 0


def _picture_bytes(fmt: str, mode: str) -> bytes:
    """A glyph drawn large, saved as an upload would be: colour, alpha or not, any format."""
    paper = render_strokes(glyph("x"), 300, 400, stroke_width=12)
    image = Image.merge("RGB", [paper] * 3)
    if mode == "RGBA":  # ink on a transparent background
        image = Image.new("RGBA", paper.size, (30, 30, 200, 0))
        image.putalpha(Image.eval(paper, lambda v: 255 - v))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt,mode", [("PNG", "RGBA"), ("JPEG", "RGB"), ("BMP", "RGB")])
def test_recognizer_reads_pictures_like_strokes(trained_run, fmt, mode):
    from mathocr.symbols import SymbolRecognizer

    recognizer = SymbolRecognizer(trained_run / "model")
    from_picture = recognizer.image_from_picture(load_image(_picture_bytes(fmt, mode)))
    from_strokes = recognizer.image_from_strokes(glyph("x"))
    assert from_picture.shape == from_strokes.shape == (recognizer.size, recognizer.size)
    # the same symbol, whichever way it came: the two inputs overlap far more than they differ
    overlap = np.minimum(from_picture, from_strokes).sum() / np.maximum(from_picture, from_strokes).sum()
    assert overlap > 0.4
    candidates = recognizer.top_k(from_picture)
    assert len(candidates) == 5
    probabilities = [c.probability for c in candidates]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1.0001


def _median_stroke_width(image: np.ndarray) -> float:
    """Of a model input; 0 when no stroke is dark enough to have a middle (a faint trace)."""
    from mathocr.formula_kind import stroke_widths

    widths = stroke_widths(image.astype(np.float64))
    return float(np.median(widths)) if widths.size else 0.0


def test_pictures_drawn_with_a_thin_pen_reach_the_model_with_the_training_pen(trained_run):
    from mathocr.symbol_data import stroke_width_for
    from mathocr.symbols import SymbolRecognizer

    recognizer = SymbolRecognizer(trained_run / "model")
    assert recognizer.pen_normalise
    trained = stroke_width_for(recognizer.size)  # 1.6 pixels at 32
    for pen, label in itertools.product((2, 12), ("x", "2", "(")):
        # drawn 150 pixels square: a 2-pixel pen reaches the model's 32 pixels as a faint 0.4-pixel
        # trace, a 12-pixel marker as 2.3-pixel strokes
        picture = render_strokes(glyph(label), 150, 150, stroke_width=pen)
        normalised = _median_stroke_width(recognizer.image_from_picture(picture))
        recognizer.pen_normalise = False
        as_drawn = _median_stroke_width(recognizer.image_from_picture(picture))
        recognizer.pen_normalise = True
        if pen < 5:
            assert abs(normalised - trained) < abs(as_drawn - trained) - 0.3, (pen, label, normalised, as_drawn)
        else:  # thick strokes are not thinned: the model reads them better as they are
            assert normalised == pytest.approx(as_drawn, abs=0.25) and normalised > trained + 0.4, (label, normalised)


def test_pictures_without_pen_normalisation_are_only_fitted(trained_run):
    from mathocr.render import fit_bitmap, ink_array
    from mathocr.symbols import SymbolRecognizer

    recognizer = SymbolRecognizer(trained_run / "model")
    recognizer.pen_normalise = False
    picture = render_strokes(glyph("a"), 150, 150, stroke_width=12)
    assert np.array_equal(recognizer.image_from_picture(picture),
                          ink_array(fit_bitmap(picture, recognizer.size, recognizer.size)))


def test_evaluate_command_reads_inkml_drawn_as_pictures(trained_run, symbol_dirs, capsys):
    from mathocr.cli import main

    args = ["evaluate", "symbols", "--inkml-dir", str(symbol_dirs["test"]), "--model", str(trained_run / "model"),
            "--json", "--as-picture", "150,12"]
    results = {}
    for flags in ([], ["--no-pen-normalise"]):
        assert main(args + flags) == 0
        results[bool(flags)] = json.loads(capsys.readouterr().out)
    assert results[False]["picture"] == [150, 12.0] and results[False]["pen_normalise"] is True
    assert results[True]["pen_normalise"] is False
    for result in results.values():
        # an upload stands alone: no context, even for a model that reads it
        assert result["n"] == symbol_dirs["counts"]["test"] and result["context"] is False
        assert 0 <= result["top1"] <= result["top5"] <= 1
    assert main(args[:-2]) == 0 and json.loads(capsys.readouterr().out)["picture"] is None
    assert main(args[:-3] + ["--as-picture", "150,12"]) == 0
    assert "150-pixel square picture with a 12-pixel pen" in capsys.readouterr().out
    for flags in (["--as-photo"], ["--as-photo", "--no-flatten"], ["--as-photo", "ruled"],
                  ["--as-photo", "ruled", "--keep-ruling"], ["--as-photo", "squared"],
                  ["--as-photo", "squared", "--photo-tilt", "5"], ["--as-photo", "squared", "--photo-tilt", "5", "--keep-tilt"]):
        assert main(args + flags) == 0
        photo = json.loads(capsys.readouterr().out)
        flattened = "--no-flatten" not in flags
        assert photo["photo"] == {"paper": flags[1] if len(flags) > 1 and flags[1] in PAPERS else "plain",
                                  "flatten": flattened,
                                  "remove_ruling": flattened and "--keep-ruling" not in flags,
                                  "tilt": 5.0 if "--photo-tilt" in flags else 0.0,
                                  "level": flattened and "--keep-ruling" not in flags and "--keep-tilt" not in flags}
        assert photo["n"] == symbol_dirs["counts"]["test"] and 0 <= photo["top1"] <= photo["top5"] <= 1
    assert main(args[:-3] + ["--as-picture", "150,12", "--as-photo"]) == 0
    assert "made a phone's photo of plain paper (paper flattened)" in capsys.readouterr().out
    assert main(args[:-3] + ["--as-picture", "150,12", "--as-photo", "ruled", "--keep-ruling"]) == 0
    assert "made a phone's photo of ruled paper (paper flattened, lines kept)" in capsys.readouterr().out
    assert main(args[:-3] + ["--as-picture", "150,12", "--as-photo", "ruled", "--photo-tilt", "4", "--keep-tilt"]) == 0
    assert ("photo of ruled paper (paper flattened, taken 4 degrees askew, not turned level)"
            in capsys.readouterr().out)
    assert main(args + ["--photo-tilt", "4"]) == 2 and "--as-photo" in capsys.readouterr().err
    assert main(args[:-2] + ["--as-photo"]) == 2 and "--as-picture" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(args[:-1] + ["tall"])
    assert exit_info.value.code == 2 and "HEIGHT,PEN" in capsys.readouterr().err


def test_missing_model_says_how_to_make_one(tmp_path):
    from mathocr.symbols import ModelMissing, SymbolRecognizer

    with pytest.raises(ModelMissing, match="training.symbols"):
        SymbolRecognizer(tmp_path)


MIRRORED_SCRIPT = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from training.symbols import main
sys.exit(main(sys.argv[1:]))
"""


def test_training_with_the_mirrored_strategy_over_two_logical_cpus(symbol_dirs, tmp_path):
    env = {**os.environ, "MATHOCR_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": str(REPO)}
    args = ["--train-dir", str(symbol_dirs["train"]), "--val-dir", str(symbol_dirs["val"]), "--no-test",
            "--runs", str(tmp_path / "runs"), "--name", "mirrored", "--strategy", "mirrored", *TINY]
    args[args.index("--epochs") + 1] = "2"
    done = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "replicas in sync: 2" in done.stdout
    assert (tmp_path / "runs" / "symbols" / "mirrored" / "model" / "symbols.keras").exists()


# ---------------------------------------------------------------------------------------------
# The shipped model

shipped = pytest.mark.skipif(not (SHIPPED / "symbols.keras").exists(), reason="no shipped model in models/symbols")


@shipped
def test_shipped_model_knows_crohmes_classes_and_reads_clear_glyphs():
    from mathocr.symbols import SymbolRecognizer

    recognizer = SymbolRecognizer()
    assert len(recognizer.labels) == 101 and {"\\alpha", "\\sum", "(", "x", "<"} <= set(recognizer.labels)
    hits = 0
    for label in ("x", "+", "=", "2", "(", "b"):
        candidates = recognizer.recognize_strokes(glyph(label))
        hits += label in [c.label for c in candidates]
    assert hits >= 5


@shipped
def test_shipped_model_answers_within_ten_milliseconds():
    from mathocr.symbols import SymbolRecognizer, benchmark_latency

    result = benchmark_latency(SymbolRecognizer(), repeats=50)
    assert result["model"]["median_ms"] < 10


@shipped
@pytest.mark.data
def test_shipped_model_on_part_of_crohme_2014(real_data, capsys, tmp_path):
    from mathocr.cli import main
    from mathocr.data import crohme_files

    subset = tmp_path / "subset"
    subset.mkdir()
    for path in crohme_files("test", real_data)[:60]:
        (subset / path.name).symlink_to(path)
    assert main(["evaluate", "symbols", "--inkml-dir", str(subset), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] > 300 and result["top1"] > 0.85


def test_a_killed_training_run_resumes_from_its_last_epoch(symbol_dirs, tmp_path):
    import signal
    import time

    env = {**os.environ, "MATHOCR_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": str(REPO)}
    args = ["--train-dir", str(symbol_dirs["train"]), "--val-dir", str(symbol_dirs["val"]), "--no-test",
            "--runs", str(tmp_path / "runs"), "--name", "killed", *TINY]
    args[args.index("--epochs") + 1] = "12"
    command = [sys.executable, "-m", "training.symbols", *args]
    metrics = tmp_path / "runs" / "symbols" / "killed" / "metrics.csv"

    def epochs_logged() -> list[int]:
        if not metrics.exists():
            return []
        with metrics.open() as handle:
            return [int(row["epoch"]) for row in csv.DictReader(handle)]

    first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(epochs_logged()) < 2 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = epochs_logged()
    assert 2 <= len(before) < 12, before

    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    after = epochs_logged()[len(before):]
    # the second process started where the backup left off, not from epoch 0, and finished the plan
    assert after[0] >= 1 and after[0] <= before[-1] + 1 and after[-1] == 11, (before, after)
