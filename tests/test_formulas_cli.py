"""The formula commands: ``evaluate formulas`` on InkML files and on images with a label file,
and ``training.formulas`` on synthetic InkML directories (train, export, resume)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fixtures import symbols_in_a_row, write_inkml
from mathocr.photo import PAPERS
from test_formula_model import SYNTHETIC, save_tiny_recognizer

KEYS = {"n", "exprate", "le1", "le2", "bleu4", "token_edit_distance", "ms_per_formula"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_recognizer(tmp_path_factory.mktemp("formula_model"))


@pytest.fixture(scope="module")
def inkml_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inkml")
    for i, (labels, truth, offsets) in enumerate(SYNTHETIC):
        write_inkml(folder / f"f{i}.inkml", symbols_in_a_row(labels, y_offsets=offsets), truth)
    return folder


def run_cli(argv, capsys):
    from mathocr.cli import main

    code = main(argv)
    return code, capsys.readouterr()


def test_evaluate_inkml_prints_one_json_object(model_dir, inkml_dir, capsys):
    code, out = run_cli(["evaluate", "formulas", "--model", str(model_dir), "--inkml-dir", str(inkml_dir),
                         "--json"], capsys)
    assert code == 0
    scores = json.loads(out.out)
    assert KEYS <= set(scores)
    assert scores["n"] == len(SYNTHETIC)
    assert 0 <= scores["exprate"] <= scores["le1"] <= scores["le2"] <= 1
    assert scores["ms_per_formula"] > 0
    bins = scores["exprate_by_length"]
    assert sum(b["n"] for b in bins.values()) == scores["n"]
    assert sum(b["n"] * b["exprate"] for b in bins.values()) == pytest.approx(scores["n"] * scores["exprate"], abs=1e-3)
    # the commonest edits, each at most once per edit the distances count
    conf = scores["confusions"]
    assert bool(conf) == (scores["exprate"] < 1)
    assert 0 < sum(c["count"] for c in conf) <= round(scores["token_edit_distance"] * scores["n"])
    assert [c["count"] for c in conf] == sorted((c["count"] for c in conf), reverse=True)
    assert all(c["truth"] is not None or c["predicted"] is not None for c in conf)


def test_evaluate_splits_exprate_by_formulas_seen_in_training(model_dir, inkml_dir, tmp_path, capsys):
    # "training" holds two of the evaluated formulas' truths (in other ink: written in a row again)
    train = tmp_path / "train"
    train.mkdir()
    for i in (0, 1):
        labels, truth, offsets = SYNTHETIC[i]
        write_inkml(train / f"t{i}.inkml", symbols_in_a_row(labels, y_offsets=offsets), truth)
    args = ["evaluate", "formulas", "--model", str(model_dir), "--inkml-dir", str(inkml_dir)]
    code, out = run_cli(args + ["--json", "--novelty", str(train)], capsys)
    assert code == 0
    scores = json.loads(out.out)
    novelty = scores["exprate_by_novelty"]
    assert (novelty["seen"]["n"], novelty["new"]["n"]) == (2, len(SYNTHETIC) - 2)
    assert sum(b["n"] * b["exprate"] for b in novelty.values()) == pytest.approx(scores["n"] * scores["exprate"], abs=1e-3)
    code, out = run_cli(args + ["--novelty", str(train)], capsys)
    assert code == 0 and "ExpRate by whether the truth was a training formula: seen in training:" in out.out
    # without --novelty there is no split; a folder without InkML is refused with its name
    code, out = run_cli(args + ["--json"], capsys)
    assert "exprate_by_novelty" not in json.loads(out.out)
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = run_cli(args + ["--json", "--novelty", str(empty)], capsys)
    assert code == 2 and f"--novelty {empty}: no .inkml files there" in out.err


def test_evaluate_reads_inkml_drawn_as_pictures(model_dir, inkml_dir, capsys):
    args = ["evaluate", "formulas", "--model", str(model_dir), "--inkml-dir", str(inkml_dir), "--json"]
    scores = {}
    for flags in ([], ["--no-pen-normalise"]):
        code, out = run_cli(args + ["--as-picture", "150,12", *flags], capsys)
        assert code == 0
        scores[bool(flags)] = json.loads(out.out)
    assert scores[False]["picture"] == [150, 12.0] and scores[False]["pen_normalise"] is True
    assert scores[True]["pen_normalise"] is False and scores[False]["n"] == len(SYNTHETIC)
    code, out = run_cli(args, capsys)
    assert json.loads(out.out)["picture"] is None and scores[False]["photo"] is None
    for flags in (["--as-photo"], ["--as-photo", "--no-flatten"], ["--as-photo", "ruled"],
                  ["--as-photo", "ruled", "--keep-ruling"], ["--as-photo", "squared"],
                  ["--as-photo", "squared", "--photo-tilt", "-5"],
                  ["--as-photo", "squared", "--photo-tilt", "-5", "--keep-tilt"], ["--as-photo", "plain", "--photo-tilt", "8"]):
        code, out = run_cli(args + ["--as-picture", "150,12", *flags], capsys)
        assert code == 0
        photo = json.loads(out.out)
        flattened = "--no-flatten" not in flags
        assert photo["photo"] == {"paper": flags[1] if len(flags) > 1 and flags[1] in PAPERS else "plain",
                                  "flatten": flattened,
                                  "remove_ruling": flattened and "--keep-ruling" not in flags,
                                  "tilt": float(flags[flags.index("--photo-tilt") + 1]) if "--photo-tilt" in flags else 0.0,
                                  "level": flattened and "--keep-tilt" not in flags}
        assert 0 <= photo["unreadable"] <= photo["n"] == len(SYNTHETIC) and KEYS <= set(photo)
        # turned level where the photo was taken askew, and asked to: by the page's lines, or on plain paper by the
        # writing (which may run a little askew even in a level photo); never where the lines lie level
        if "--keep-tilt" in flags or "--no-flatten" in flags:
            assert photo["turned"] == 0
        elif "--photo-tilt" in flags:
            assert photo["turned"] == photo["n"], (flags, photo["turned"])
            assert photo["turned_by_writing"] == (photo["n"] if "plain" in flags else 0)
        elif flags[1:] in (["ruled"], ["squared"]):
            assert photo["turned"] == 0, (flags, photo["turned"])
    code, out = run_cli(args + ["--as-photo"], capsys)
    assert code == 2 and "--as-picture" in out.err
    code, out = run_cli(args + ["--as-picture", "150,12", "--photo-tilt", "5"], capsys)
    assert code == 2 and "--as-photo" in out.err
    with pytest.raises(SystemExit) as exit_info:
        run_cli(args + ["--as-picture", "tall"], capsys)
    assert exit_info.value.code == 2 and "HEIGHT,PEN" in capsys.readouterr().err


def test_evaluate_readable_report_shows_the_worst(model_dir, inkml_dir, capsys):
    code, out = run_cli(["evaluate", "formulas", "--model", str(model_dir), "--inkml-dir", str(inkml_dir),
                         "--beam", "2", "--worst", "2"], capsys)
    assert code == 0
    assert "ExpRate" in out.out and "the 2 worst" in out.out and "truth" in out.out
    assert "ExpRate by the length of the truth" in out.out
    assert "commonest errors (truth -> recognized)" in out.out  # the barely trained model errs


def test_evaluate_images_with_a_label_file(model_dir, tmp_path, capsys):
    from mathocr.render import render_strokes

    labels = []
    for i, (glyphs, truth, offsets) in enumerate(SYNTHETIC[:3]):
        strokes = [s for _, group in symbols_in_a_row(glyphs, y_offsets=offsets) for s in group]
        render_strokes(strokes, height=120, stroke_width=4).convert("RGB").save(tmp_path / f"img{i}.png")
        labels.append(f"img{i}.png\t{truth}")
    (tmp_path / "labels.tsv").write_text("\n".join(labels) + "\n")
    code, out = run_cli(["evaluate", "formulas", "--model", str(model_dir), "--images", str(tmp_path),
                         "--labels", str(tmp_path / "labels.tsv"), "--json"], capsys)
    assert code == 0
    assert json.loads(out.out)["n"] == 3


def test_evaluate_without_labels_is_an_error(model_dir, tmp_path, capsys):
    code, out = run_cli(["evaluate", "formulas", "--model", str(model_dir), "--images", str(tmp_path)], capsys)
    assert code == 2 and "--labels" in out.err


def test_compare_pairs_two_reports_by_formula_and_refuses_different_formulas(model_dir, inkml_dir, tmp_path,
                                                                               capsys):
    first = tmp_path / "a.json"
    code, _ = run_cli(["evaluate", "formulas", "--model", str(model_dir), "--inkml-dir", str(inkml_dir), "--json",
                       "--out", str(first)], capsys)
    assert code == 0
    report = json.loads(first.read_text())
    # B: the same report with the first formula now right and the examples in another order
    examples = [dict(e) for e in report["examples"]][::-1]
    for e in examples:
        e["errors"] = 0 if e["id"] == report["examples"][0]["id"] else max(e["errors"], 1)
    second = tmp_path / "b.json"
    second.write_text(json.dumps({"scores": {}, "examples": examples}))
    code, out = run_cli(["evaluate", "compare", str(first), str(second), "--json"], capsys)
    assert code == 0
    result = json.loads(out.out)
    was_right = report["examples"][0]["errors"] == 0
    others_right = sum(e["errors"] == 0 for e in report["examples"][1:])
    assert result["n"] == len(SYNTHETIC)
    assert result["gained_ids"] == ([] if was_right else [report["examples"][0]["id"]])
    assert result["lost"] == others_right
    assert result["exprate_a"] == pytest.approx(json.loads(first.read_text())["scores"]["exprate"], abs=1e-4)
    code, out = run_cli(["evaluate", "compare", str(first), str(second)], capsys)
    assert code == 0 and "exact McNemar test: p =" in out.out and "B - A:" in out.out
    # other formulas, or the same ids with other truths, are refused with a reason
    fewer = tmp_path / "fewer.json"
    fewer.write_text(json.dumps({"examples": examples[1:]}))
    code, out = run_cli(["evaluate", "compare", str(first), str(fewer)], capsys)
    assert code == 2 and "different formulas: 1 only in A" in out.err
    examples[0]["truth"] = "y"
    second.write_text(json.dumps({"examples": examples}))
    code, out = run_cli(["evaluate", "compare", str(first), str(second)], capsys)
    assert code == 2 and "different truths" in out.err
    del examples[0]["errors"]
    examples[0]["truth"] = report["examples"][-1]["truth"]
    second.write_text(json.dumps({"examples": examples}))
    code, out = run_cli(["evaluate", "compare", str(first), str(second)], capsys)
    assert code == 2 and "without their error count" in out.err
    (tmp_path / "broken.json").write_text("{not json")
    code, out = run_cli(["evaluate", "compare", str(first), str(tmp_path / "broken.json")], capsys)
    assert code == 2 and "is not JSON" in out.err


def test_compare_ranks_both_reports_again_at_the_weight_asked(tmp_path, capsys):
    def report(path, examples):
        path.write_text(json.dumps({"scores": {}, "examples": [
            {"id": i, "truth": truth, "prediction": "", "errors": 0,
             "candidates": [{"tokens": t, "agreements": pair} for t, pair in candidates]}
            for i, truth, candidates in examples]}))
        return str(path)

    # A reads x1 right only with the rescorer (weight 1), B reads x2 right only with it
    a = report(tmp_path / "a.json", [("x1", "a", [("a", [-1.0, -3.0]), ("c", [-0.5, -5.0])]),
                                     ("x2", "b", [("b", [-1.0, -1.0])])])
    b = report(tmp_path / "b.json", [("x1", "a", [("a", [-0.2, -0.2])]),
                                     ("x2", "b", [("b", [-2.0, -0.1]), ("d", [-1.0, -3.0])])])
    code, out = run_cli(["evaluate", "compare", a, b, "--json"], capsys)  # as reported: both all right
    assert code == 0 and json.loads(out.out)["gained"] == json.loads(out.out)["lost"] == 0
    code, out = run_cli(["evaluate", "compare", a, b, "--json", "--weight", "0"], capsys)
    result = json.loads(out.out)
    assert (result["gained_ids"], result["lost_ids"]) == (["x1"], ["x2"])
    assert result["exprate_a"] == result["exprate_b"] == 0.5
    code, out = run_cli(["evaluate", "compare", a, b, "--json", "--weight", "1"], capsys)
    assert json.loads(out.out)["exprate_a"] == json.loads(out.out)["exprate_b"] == 1.0
    code, out = run_cli(["evaluate", "compare", a, b, "--weight", "0.75"], capsys)
    assert code == 0 and "ranked with the rescorer's weight 0.75" in out.out
    # a report without pooled candidates (one model, or no --rescore-weights) cannot be ranked again
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"examples": [{"id": i, "truth": t, "errors": 0} for i, t in (("x1", "a"), ("x2", "b"))]}))
    code, out = run_cli(["evaluate", "compare", a, str(bare), "--weight", "0.75"], capsys)
    assert code == 2 and "report B: 2 examples without pooled candidates" in out.err
    code, out = run_cli(["evaluate", "compare", a, str(bare)], capsys)
    assert code == 0


def test_training_command_trains_exports_and_resumes(inkml_dir, tmp_path, capsys):
    from mathocr.formula_decode import FormulaRecognizer
    from training.formulas import main

    common = ["--name", "tiny", "--runs", str(tmp_path / "runs"), "--train-dir", str(inkml_dir),
              "--val-dir", str(inkml_dir), "--test-dir", str(inkml_dir), "--filters", "4,8,8,8,8",
              "--units", "16", "--attention-dim", "16", "--batch-size", "6", "--guide-weight", "0.5", "--verbose", "0"]
    assert main(common + ["--epochs", "1", "--export", str(tmp_path / "export"), "--swap-symbols", "0.5", "--relabel", "0.3",
                          "--concat", "0.4", "--synth", "0.5", "--synth-source", "crohme", "--synth-im2latex", "pieces", "--lr-monitor", "val_exprate",
                          "--pad-margin", "64"]) == 0
    run = tmp_path / "runs" / "formulas" / "tiny"
    config = json.loads((run / "config.json").read_text())
    assert (config["swap_symbols"], config["relabel"], config["concat"], config["lr_monitor"], config["pad_margin"]) == (
        0.5, 0.3, 0.4, "val_exprate", 64)
    assert (config["synth"], config["synth_source"], config["synth_im2latex"]) == (0.5, "crohme", "pieces")
    for name in ("config.json", "vocabulary.json", "metrics.csv", "best.keras", "evaluation.json"):
        assert (run / name).exists(), name
    assert "val_exprate" in (run / "metrics.csv").read_text()
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert KEYS <= set(evaluation["test"])
    assert FormulaRecognizer.load(tmp_path / "export").margins == (64, 128, 192)  # handwritten: three readings
    # the same command with more epochs carries on from the finished epoch, here keeping each epoch's model
    assert main(common + ["--epochs", "2", "--no-test", "--keep-epochs"]) == 0
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2  # header, epoch 1, epoch 2
    assert sorted(p.name for p in (run / "epochs").iterdir()) == ["epoch-02.keras"]  # epoch 1 ran without it
    assert main(["--name", "tiny", "--runs", str(tmp_path / "runs"), "--export-only", "--epoch", "2",
                 "--export", str(tmp_path / "epoch2")]) == 0
    import keras
    last = keras.saving.load_model(run / "last.keras", compile=False)  # epoch 2 was the last
    for mine, theirs in zip(FormulaRecognizer.load(tmp_path / "epoch2").model.get_weights(), last.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    with pytest.raises(SystemExit, match="no model of epoch 1"):
        main(["--name", "tiny", "--runs", str(tmp_path / "runs"), "--export-only", "--epoch", "1"])
    # a third epoch, then the mean of epochs 2 and 3 in weight space
    assert main(common + ["--epochs", "3", "--no-test", "--keep-epochs"]) == 0
    assert main(["--name", "tiny", "--runs", str(tmp_path / "runs"), "--export-only", "--average-epochs", "2-3",
                 "--export", str(tmp_path / "mean")]) == 0
    two, three = (keras.saving.load_model(run / "epochs" / f"epoch-0{e}.keras", compile=False).get_weights()
                  for e in (2, 3))
    mean = FormulaRecognizer.load(tmp_path / "mean").model.get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(two, three))  # the epochs differ; their mean lies between
    for m, a, b in zip(mean, two, three):
        np.testing.assert_allclose(m, (a + b) / 2, rtol=1e-5, atol=1e-6)
    with pytest.raises(SystemExit, match="no model of epoch 1"):
        main(["--name", "tiny", "--runs", str(tmp_path / "runs"), "--export-only", "--average-epochs", "1-3"])
    # --export-only takes the run's own recorded settings, whatever this command line's defaults are
    assert main(["--name", "tiny", "--runs", str(tmp_path / "runs"), "--export-only",
                 "--export", str(tmp_path / "again")]) == 0
    exported = json.loads((tmp_path / "again" / "config.json").read_text())
    assert exported["model"]["guide_weight"] == 0.5 and exported["model"]["units"] == 16
    assert FormulaRecognizer.load(tmp_path / "again").vocab.tokens == FormulaRecognizer.load(tmp_path / "export").vocab.tokens
    with pytest.raises(SystemExit, match="not a formula run"):
        main(["--name", "missing", "--runs", str(tmp_path / "runs"), "--export-only"])


def test_ema_checkpoints_hold_the_averaged_weights(inkml_dir, tmp_path):
    """--ema: the validated, checkpointed weights are the moving average. The average starts at the
    weights after the first step, and with a momentum near 1 it stays there: the checkpoint of five
    steps with it matches one step without it, while five steps without it have moved on."""
    import keras
    import numpy as np

    from training.formulas import main

    def run(name, *extra):
        assert main(["--name", name, "--runs", str(tmp_path / "runs"), "--train-dir", str(inkml_dir),
                     "--val-dir", str(inkml_dir), "--no-test", "--filters", "4,8,8,8,8", "--units", "16",
                     "--attention-dim", "16", "--batch-size", "6", "--verbose", "0", "--epochs", "1",
                     "--learning-rate", "0.05", *extra]) == 0
        best = keras.saving.load_model(tmp_path / "runs" / "formulas" / name / "best.keras", compile=False)
        return [np.asarray(w) for w in best.trainable_weights]

    def distance(a, b):
        return max(float(np.abs(x - y).max()) for x, y in zip(a, b))

    one = run("one", "--steps-per-epoch", "1")
    five = run("five", "--steps-per-epoch", "5")
    averaged = run("ema", "--steps-per-epoch", "5", "--ema", "0.999999")
    assert distance(five, one) > 1e-2 and distance(averaged, one) < 1e-4, (distance(five, one), distance(averaged, one))
    assert json.loads((tmp_path / "runs" / "formulas" / "ema" / "config.json").read_text())["ema"] == 0.999999


@pytest.mark.data
def test_shipped_model_on_crohme_2014(real_data, capsys):
    from mathocr.data import crohme_available
    from mathocr.formula_decode import SHIPPED_MODEL_DIR

    if not (SHIPPED_MODEL_DIR / "formulas.keras").exists():
        pytest.skip(f"no shipped formula model at {SHIPPED_MODEL_DIR}")
    if not crohme_available(real_data):
        pytest.skip(f"CROHME is not under {real_data}")
    code, out = run_cli(["evaluate", "formulas", "--limit", "20", "--json"], capsys)
    assert code == 0
    scores = json.loads(out.out)
    assert scores["n"] == 20 and KEYS <= set(scores)
    assert scores["ms_per_formula"] < 1000


def test_cosine_schedule_runs_from_the_learning_rate_to_the_floor(inkml_dir, tmp_path):
    import csv

    from training.formulas import cosine_learning_rate, main

    rates = [cosine_learning_rate(e, 1e-3, 5) for e in range(5)]
    assert rates[0] == pytest.approx(1e-3) and rates[-1] == pytest.approx(1e-5)
    assert rates == sorted(rates, reverse=True) and rates[2] == pytest.approx((1e-3 + 1e-5) / 2)
    assert main(["--name", "cos", "--runs", str(tmp_path / "runs"), "--train-dir", str(inkml_dir),
                 "--val-dir", str(inkml_dir), "--no-test", "--filters", "4,8,8,8,8", "--units", "16",
                 "--attention-dim", "16", "--batch-size", "6", "--verbose", "0", "--epochs", "3",
                 "--steps-per-epoch", "1", "--learning-rate", "0.01", "--lr-schedule", "cosine"]) == 0
    with open(tmp_path / "runs" / "formulas" / "cos" / "metrics.csv", newline="") as handle:
        logged = [float(row["learning_rate"]) for row in csv.DictReader(handle)]
    assert logged == pytest.approx([0.01, (0.01 + 1e-5) / 2, 1e-5], rel=1e-4)


def test_a_model_learns_from_a_teacher_and_refuses_one_that_reads_other_inputs(inkml_dir, tmp_path):
    from mathocr.formula_decode import FormulaRecognizer
    from training.formulas import main

    common = ["--runs", str(tmp_path / "runs"), "--train-dir", str(inkml_dir), "--val-dir", str(inkml_dir),
              "--filters", "4,8,8,8,8", "--units", "16", "--attention-dim", "16", "--batch-size", "6",
              "--verbose", "0", "--epochs", "1", "--no-test", "--guide-weight", "0.5"]
    assert main([*common, "--name", "teacher", "--direction", "r2l", "--steps-per-epoch", "1", "--export", str(tmp_path / "teacher")]) == 0
    assert main([*common, "--name", "student", "--distill-from", str(tmp_path / "teacher"), "--distill-weight", "0.3",
                 "--steps-per-epoch", "2", "--export", str(tmp_path / "student")]) == 0
    recorded = json.loads((tmp_path / "runs" / "formulas" / "student" / "config.json").read_text())
    assert (recorded["distill_from"], recorded["distill_weight"]) == (str(tmp_path / "teacher"), 0.3)
    assert FormulaRecognizer.load(tmp_path / "student").direction == "l2r"
    with open(tmp_path / "runs" / "formulas" / "student" / "metrics.csv") as handle:
        assert "val_logits_loss" in handle.readline()  # validation stays the plain cross-entropy
    with pytest.raises(SystemExit, match="vocabulary and input height"):
        main([*common, "--name", "taller", "--height", "32", "--distill-from", str(tmp_path / "teacher")])


def test_a_right_to_left_model_trains_and_rescores_the_evaluation(model_dir, inkml_dir, tmp_path, capsys):
    from mathocr.formula_decode import FormulaRecognizer
    from training.formulas import main

    assert main(["--name", "backwards", "--runs", str(tmp_path / "runs"), "--train-dir", str(inkml_dir),
                 "--val-dir", str(inkml_dir), "--filters", "4,8,8,8,8", "--units", "16", "--attention-dim", "16",
                 "--batch-size", "6", "--verbose", "0", "--epochs", "1", "--no-test", "--direction", "r2l",
                 "--export", str(tmp_path / "r2l")]) == 0
    assert json.loads((tmp_path / "runs" / "formulas" / "backwards" / "config.json").read_text())["direction"] == "r2l"
    assert FormulaRecognizer.load(tmp_path / "r2l").direction == "r2l"
    capsys.readouterr()  # the training log
    args = ["evaluate", "formulas", "--model", str(model_dir), "--inkml-dir", str(inkml_dir), "--json", "--beam", "2"]
    plain = json.loads(run_cli(args, capsys)[1].out)
    assert plain["rescore"] is None
    greedy = json.loads(run_cli(args[:-2] + ["--rescore-with", str(tmp_path / "r2l")], capsys)[1].out)
    assert greedy["rescore"] == {"model": str(tmp_path / "r2l"), "weight": 1.0}  # greedy is re-ranked too
    rescored = json.loads(run_cli(args + ["--rescore-with", str(tmp_path / "r2l")], capsys)[1].out)
    assert rescored["rescore"] == {"model": str(tmp_path / "r2l"), "weight": 1.0} and rescored["n"] == plain["n"]
    off = json.loads(run_cli(args + ["--rescore-with", str(tmp_path / "r2l"), "--rescore-weight", "0"], capsys)[1].out)
    assert off["rescore"] is None and off["exprate"] == plain["exprate"] and off["bleu4"] == plain["bleu4"]
    # one search, the pooled candidates ranked with several weights: the search's own weight gives its own answers
    for decoding in (args, args[:-2]):
        ends = []
        for own in ("1", "0.5"):
            weighed = json.loads(run_cli(decoding + ["--rescore-with", str(tmp_path / "r2l"), "--rescore-weight", own,
                                                     "--rescore-weights", f"0,{own},40"], capsys)[1].out)
            assert [w["weight"] for w in weighed["by_rescore_weight"]] == [0, float(own), 40]
            same = weighed["by_rescore_weight"][1]
            assert {k: same[k] for k in ("exprate", "le1", "le2", "bleu4")} == \
                {k: weighed[k] for k in ("exprate", "le1", "le2", "bleu4")}
            if own == "1":
                assert weighed["bleu4"] == (rescored if decoding is args else greedy)["bleu4"]
            ends.append([weighed["by_rescore_weight"][i] for i in (0, 2)])
        assert ends[0] == ends[1]  # the pool does not depend on the weight the search ran with
    # --out keeps every pooled candidate with both agreements: ranked again, they give the same answers
    from mathocr.formulas_cli import pooled_candidates, ranked_by_weight
    from mathocr.metrics import score_tokens

    report_file = tmp_path / "weighed.json"
    weighed = json.loads(run_cli(args + ["--rescore-with", str(tmp_path / "r2l"), "--rescore-weights", "0,40",
                                         "--out", str(report_file)], capsys)[1].out)
    report = json.loads(report_file.read_text())
    pooled = pooled_candidates(report)
    assert len(pooled) == len(report["examples"]) == weighed["n"]
    assert all(len(candidates) == len(agreements) >= 1 for candidates, agreements in pooled)
    assert [" ".join(a) for a in ranked_by_weight(pooled, 1.0)] == [e["prediction"] for e in report["examples"]]
    truths = [e["truth"].split() for e in report["examples"]]
    for weight, scored in zip((0, 40), weighed["by_rescore_weight"]):
        assert score_tokens(ranked_by_weight(pooled, weight), truths).to_dict()["bleu4"] == scored["bleu4"]
    without = tmp_path / "plain.json"
    run_cli(args + ["--out", str(without)], capsys)
    assert pooled_candidates(json.loads(without.read_text())) == []  # one model: no agreements to keep
    # weights need a second model, and formulas read one at a time
    code, out = run_cli(args + ["--rescore-weights", "0,1"], capsys)
    assert code != 0 and "--rescore-with" in out.err
    code, out = run_cli(args[:-2] + ["--rescore-with", str(tmp_path / "r2l"), "--batch-size", "4",
                                     "--rescore-weights", "0,1"], capsys)
    assert code != 0 and "one at a time" in out.err


def test_benchmark_times_the_two_model_decoding_and_the_model_alone(model_dir, tmp_path, capsys):
    import shutil

    both = shutil.copytree(model_dir, tmp_path / "both")
    shutil.copytree(model_dir, both / "rescorer")
    twin = json.loads((both / "rescorer" / "config.json").read_text())
    (both / "rescorer" / "config.json").write_text(json.dumps({**twin, "direction": "r2l"}))
    config = json.loads((both / "config.json").read_text())
    (both / "config.json").write_text(json.dumps({**config, "rescore": {"model": "rescorer", "weight": 0.5}}))
    small = ["--batch-size", "2", "--steps", "1", "--width", "64", "--tokens", "8", "--repeats", "3", "--beam", "2",
             "--json"]
    timed = {}
    for name, directory in (("alone", model_dir), ("both", both)):
        code, out = run_cli(["benchmark", "formulas", "--model", str(directory)] + small, capsys)
        assert code == 0
        timed[name] = json.loads(out.out)["inference"]
    assert timed["alone"]["formulas"] == 3 and "greedy_alone_ms_mean" not in timed["alone"]
    for key in ("greedy_ms_mean", "beam2_ms_mean", "greedy_alone_ms_mean", "beam2_alone_ms_mean"):
        assert timed["both"][key] > 0
