"""``python -m mathocr evaluate formulas`` and ``python -m mathocr benchmark formulas``.

Registered by ``mathocr.cli`` when this module exists; both are thin fronts on
``mathocr.formula_decode.FormulaRecognizer`` and ``mathocr.metrics``.

    python -m mathocr evaluate formulas                      CROHME 2014 test, the shipped model
    python -m mathocr evaluate formulas --inkml-dir DIR --json
    python -m mathocr evaluate formulas --images DIR --labels FILE   (FILE: name<TAB>LaTeX per line)
    python -m mathocr evaluate formulas --model models/typeset --im2latex   (the held-out rendered split)
    python -m mathocr evaluate compare A.json B.json          two --out reports: gained, lost, McNemar p
    python -m mathocr benchmark formulas                     training samples/s and ms per formula
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np


def _recognizer(model_dir: str | None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from mathocr.formula_decode import SHIPPED_MODEL_DIR, FormulaRecognizer

    return FormulaRecognizer.load(model_dir or SHIPPED_MODEL_DIR)


def ranked_by_weight(pooled: Sequence[tuple[Sequence[Sequence[str]], Sequence[tuple[float, float]]]],
                     weight: float) -> list[list[str]]:
    """For each formula's pooled candidates (their tokens, and their ``(this model's, the
    rescorer's)`` agreements, as ``Recognition.extra["agreements"]``), the answer that the
    rescorer's weight ``weight`` would have chosen: the same sum and tie-break as
    ``FormulaRecognizer._rescored``."""
    answers = []
    for candidates, agreements in pooled:
        values = np.asarray(agreements, np.float32)
        answers.append(list(candidates[int(np.argmax(values[:, 0] + weight * values[:, 1]))]))
    return answers


def evaluate_arrays(recognizer, ids: Sequence[str], arrays: Sequence[np.ndarray], truths: Sequence[Sequence[str]],
                    beam_width: int = 1, batch_size: int = 1, progress=None,
                    rescore_weights: Sequence[float] = (), known: Sequence[Sequence[str]] | None = None) -> dict:
    """Recognize every input and score it. With ``batch_size`` 1 (the default) every formula is
    decoded alone, so ``ms_per_formula`` is the latency a user of the app sees. With
    ``rescore_weights`` (both models searching), the same pooled candidates are also ranked with
    each of those weights for the rescorer, and scored (``by_rescore_weight``): one search
    compares them all. With ``known`` (the training truths): ExpRate of the formulas seen in
    training and of the new ones (``exprate_by_novelty``)."""
    from mathocr.metrics import (confusions, exprate_by_length, exprate_by_novelty, repetition_loop, score_tokens,
                                 token_edit_distance)

    if rescore_weights and not recognizer.rescoring:
        raise ValueError("--rescore-weights compares weights for a second model: give --rescore-with DIR "
                         "or a model whose config.json has one, and a weight above 0")
    if rescore_weights and beam_width <= 1 and batch_size > 1:
        raise ValueError("--rescore-weights needs the formulas read one at a time (no --batch-size)")
    predictions, ended, pooled = [], [], []
    start = time.perf_counter()
    if beam_width <= 1 and batch_size > 1:
        hyps = recognizer.recognize_many(arrays, batch_size, progress=progress)
        predictions = [h["tokens"] for h in hyps]
        ended = [h["ended"] for h in hyps]
    else:
        for k, array in enumerate(arrays):
            result = recognizer.recognize_array(array, beam_width)
            predictions.append(result.tokens)
            ended.append(result.ended)
            if rescore_weights:
                pooled.append(([c.tokens for c in result.candidates], result.extra["agreements"]))
            if progress is not None:
                progress(k + 1, len(arrays))
    seconds = time.perf_counter() - start
    scores = score_tokens(predictions, truths).to_dict()
    if rescore_weights:
        by_weight = []
        for weight in rescore_weights:
            ranked = score_tokens(ranked_by_weight(pooled, weight), truths).to_dict()
            by_weight.append({"weight": weight, **{key: ranked[key] for key in ("exprate", "le1", "le2", "bleu4")}})
        scores["by_rescore_weight"] = by_weight
    n = len(arrays)
    scores.update(
        ms_per_formula=round(seconds * 1000 / max(n, 1), 2), beam_width=beam_width, batch_size=batch_size,
        length_limit=recognizer.length_limit, balanced_braces=recognizer.balance_braces, margins=list(recognizer.margins),
        margins_at_once=recognizer.margins_at_once, unended=sum(not e for e in ended),
        repetition_loops=sum(repetition_loop(p) for p in predictions),
        truth_repetition_loops=sum(repetition_loop(t) for t in truths),
        exprate_by_length=exprate_by_length(predictions, truths),
        confusions=confusions(predictions, truths, top=20),
    )
    if known is not None:
        scores["exprate_by_novelty"] = exprate_by_novelty(predictions, truths, known)
    examples = [{"id": i, "truth": " ".join(t), "prediction": " ".join(p), "errors": token_edit_distance(p, t),
                 "ended": e} for i, t, p, e in zip(ids, truths, predictions, ended)]
    for example, (candidates, agreements) in zip(examples, pooled):
        # every pooled candidate with both models' agreements, so that other rankings can be studied
        # from the report alone (``ranked_by_weight`` reads them back: ``pooled_candidates``)
        example["candidates"] = [{"tokens": " ".join(c), "agreements": [float(a) for a in pair]}
                                 for c, pair in zip(candidates, agreements)]
    return {"scores": scores, "examples": examples}


def pooled_candidates(report: dict) -> list[tuple[list[list[str]], list[tuple[float, float]]]]:
    """The pooled candidates an ``evaluate formulas --rescore-weights ... --out`` report kept, as
    ``ranked_by_weight`` takes them."""
    return [([c["tokens"].split() for c in e["candidates"]], [tuple(c["agreements"]) for c in e["candidates"]])
            for e in report["examples"] if "candidates" in e]


def evaluate_formulas(recognizer, formulas, beam_width: int = 1, batch_size: int = 1, progress=None,
                      picture: tuple[int, float] | None = None, rescore_weights: Sequence[float] = (),
                      known: Sequence[Sequence[str]] | None = None, photo: str | None = None,
                      flatten: bool = True, ruling: bool = True, tilt: float = 0.0, level: bool = True) -> dict:
    """``evaluate_arrays`` on ``InkFormula``s, rendered the way the model was trained; or, with
    ``picture`` (height, pen width in pixels), first drawn as a picture that size and read as an
    upload is (``input_from_image``). With ``photo`` too (``"plain"``, ``"ruled"`` or ``"squared"``), each
    picture is made a phone's photo of that paper (``photo.photo_of_paper``, the n-th formula's from seed n) and read the way an uploaded file is (``render.paper_image``; with
    ``flatten`` False, its paper is not flattened; with ``ruling`` False, its ruling is not taken away; ``tilt``:
    the photo taken that many degrees askew; with ``level`` False, not turned level by its lines or, on plain
    paper, its writing). The scores then count the pictures that could not be read (``unreadable``) and the
    photos turned level (``turned``; ``turned_by_writing`` of them by their writing)."""
    if picture is None:
        if photo:
            raise ValueError("photos are made from pictures: give --as-picture HEIGHT,PEN with --as-photo")
        arrays = [recognizer.input_from_strokes(f.strokes) for f in formulas]
    else:
        from mathocr.photo import photo_of_paper
        from mathocr.render import ImageError, paper_image, render_strokes

        height, pen = picture
        arrays, unreadable, turned, by_writing = [], 0, 0, 0
        for n, f in enumerate(formulas):
            image = render_strokes(f.strokes, height=height, max_width=40 * height, stroke_width=pen)
            if photo:
                done = {}
                image = paper_image(photo_of_paper(image, n, photo, tilt), flatten=flatten, ruling=ruling,
                                    level=level, writing=True, report=done)
                turned += bool(done["turned"])
                by_writing += done["turned_by"] == "writing"
            try:
                arrays.append(recognizer.input_from_image(image))
            except ImageError:  # what a user would be told (e.g. no ink found): read as a blank, a miss
                arrays.append(np.zeros((recognizer.height, 16), np.float32))
                unreadable += 1
        report = evaluate_arrays(recognizer, [f.id for f in formulas], arrays, [f.tokens for f in formulas],
                                 beam_width, batch_size, progress, rescore_weights, known)
        report["scores"]["unreadable"] = unreadable
        if photo:
            report["scores"]["turned"] = turned
            report["scores"]["turned_by_writing"] = by_writing
        return report
    return evaluate_arrays(recognizer, [f.id for f in formulas], arrays, [f.tokens for f in formulas],
                           beam_width, batch_size, progress, rescore_weights, known)


def read_label_file(path: Path) -> list[tuple[str, str]]:
    """``name<TAB>LaTeX`` lines (blank lines and ``#`` comments skipped)."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        if "\t" not in line:
            raise ValueError(f"{path}:{number}: expected 'file name<TAB>LaTeX'")
        name, latex = line.split("\t", 1)
        rows.append((name.strip(), latex.strip()))
    return rows


def _numbers(text: str, convert, kind: str, meaning: str) -> tuple:
    """``text``'s comma-separated numbers (``convert``: int or float), none below 0, for argparse."""
    import argparse

    try:
        numbers = tuple(convert(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {kind} separated by commas, not {text!r}") from None
    if not numbers or min(numbers) < 0:
        raise argparse.ArgumentTypeError(f"{meaning}: {text!r}")
    return numbers


def _margins(text: str) -> tuple[int, ...]:
    return _numbers(text, int, "whole numbers", "margins are blank columns, 0 or more")


def _weights(text: str) -> tuple[float, ...]:
    return _numbers(text, float, "numbers", "weights are 0 or more")


def _progress(description: str):
    from mathocr.cli import _progress_bar

    return _progress_bar(description)


def _edit_text(truth: str | None, predicted: str | None) -> str:
    if truth is None:
        return f"extra {predicted}"
    if predicted is None:
        return f"missed {truth}"
    return f"{truth} -> {predicted}"


def training_truths(folder: str | None, data: str | None, im2latex: bool = False) -> list[list[str]]:
    """The truths a model was trained on, for ``--novelty``: of the InkML files under ``folder``, or
    of CROHME's training split (im2latex's, with ``im2latex``)."""
    if folder:
        from mathocr.formula_data import load_inkml_formulas
        from mathocr.inkml import inkml_files

        files = inkml_files(folder)
        if not files:
            raise FileNotFoundError(f"--novelty {folder}: no .inkml files there")
        return [list(f.tokens) for f in load_inkml_formulas(files)[0]]
    if im2latex:
        from mathocr.data import load_im2latex

        return [f.tokens.split() for f in load_im2latex(data, "train") if f.tokens]
    from mathocr.formula_data import load_crohme_formulas

    return [list(f.tokens) for f in load_crohme_formulas("train", data)]


def cmd_evaluate_formulas(args) -> int:
    from mathocr.latex import normalize_tokens, tokenize_latex
    from mathocr.render import load_image

    if args.photo_tilt and not args.as_photo:
        raise ValueError("--photo-tilt turns photos: give --as-photo [PAPER] with it")
    recognizer = _recognizer(args.model)
    recognizer.length_limit = not args.no_length_limit
    recognizer.pen_normalise = not args.no_pen_normalise
    recognizer.read_pen = not args.no_pen
    recognizer.balance_braces = not args.no_brace_balance
    if args.margin is not None:
        recognizer.margins = args.margin
    if args.rescore_with:
        from mathocr.formula_decode import FormulaRecognizer

        recognizer.rescorer = FormulaRecognizer.load(args.rescore_with)
        recognizer.rescore_weight = 1.0
    for model in (recognizer, recognizer.rescorer):
        if model is not None:
            model.margins_at_once = not args.margins_apart
    if args.rescore_weight is not None:
        recognizer.rescore_weight = args.rescore_weight
    progress = None if args.json else _progress("recognizing")
    known = None if args.novelty is None else training_truths(args.novelty, args.data, args.im2latex)
    if args.images:
        if not args.labels:
            raise ValueError("--images needs --labels FILE (tab-separated: file name, LaTeX)")
        folder = Path(args.images)
        rows = read_label_file(Path(args.labels))[: args.limit or None]
        ids, arrays, truths = [], [], []
        for name, latex in rows:
            path = folder / name
            arrays.append(recognizer.input_from_image(load_image(path.read_bytes())))
            ids.append(name)
            truths.append(normalize_tokens(tokenize_latex(latex)))
        source = str(folder)
        report = evaluate_arrays(recognizer, ids, arrays, truths, args.beam, args.batch_size, progress,
                                 args.rescore_weights, known)
    elif args.im2latex:
        from mathocr.typeset_data import load_array, load_typeset_formulas, rendered_dir

        formulas = load_typeset_formulas(args.split, args.data, args.rendered)[: args.limit or None]
        arrays = [load_array(f.image_path, recognizer.height, recognizer.max_width) for f in formulas]
        source = f"im2latex {args.split} ({args.rendered or rendered_dir()})"
        report = evaluate_arrays(recognizer, [f.id for f in formulas], arrays, [f.tokens for f in formulas],
                                 args.beam, args.batch_size, progress, args.rescore_weights, known)
    else:
        from mathocr.data import crohme_split_dir
        from mathocr.formula_data import load_crohme_formulas, load_inkml_formulas
        from mathocr.inkml import inkml_files

        if args.inkml_dir:
            files = inkml_files(args.inkml_dir)
            if not files:
                raise FileNotFoundError(f"no .inkml files under {args.inkml_dir}")
            formulas, skipped = load_inkml_formulas(files)
            source = args.inkml_dir
        else:
            formulas = load_crohme_formulas(args.split, args.data)
            source = str(crohme_split_dir(args.split, args.data))
        formulas = formulas[: args.limit or None]
        if not formulas:
            raise ValueError(f"no readable formulas in {source}")
        report = evaluate_formulas(recognizer, formulas, args.beam, args.batch_size, progress, args.as_picture,
                                   args.rescore_weights, known, args.as_photo, not args.no_flatten,
                                   not args.keep_ruling, args.photo_tilt, not args.keep_tilt)
    scores = report["scores"]
    scores.update(source=source, model=str(args.model or "models/formulas"),
                  picture=list(args.as_picture) if args.as_picture else None, pen_normalise=recognizer.pen_normalise,
                  pen_channels=recognizer.channels > 1 and recognizer.read_pen and not args.as_picture
                  and not args.images and not args.im2latex,
                  photo={"paper": args.as_photo, "flatten": not args.no_flatten,
                         "remove_ruling": not args.no_flatten and not args.keep_ruling,
                         "tilt": args.photo_tilt,
                         "level": not args.no_flatten and not args.keep_tilt}
                  if args.as_photo else None,
                  rescore={"model": args.rescore_with or "config.json",
                           "weight": recognizer.rescore_weight} if recognizer.rescoring else None)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1, ensure_ascii=False))
    if args.json:
        print(json.dumps(scores))
        return 0
    print(f"{scores['n']} formulas from {source}; model {scores['model']}; "
          f"{'greedy' if args.beam <= 1 else f'beam width {args.beam}'}")
    print(f"ExpRate {scores['exprate']:.2%}   <=1 error {scores['le1']:.2%}   <=2 errors {scores['le2']:.2%}   "
          f"BLEU-4 {scores['bleu4']:.4f}")
    print(f"token edit distance {scores['token_edit_distance']:.2f} per formula "
          f"(token error rate {scores['token_error_rate']:.2%})")
    print(f"{scores['ms_per_formula']:.1f} ms per formula (batches of {scores['batch_size']}); "
          f"{scores['unended']} stopped by the length limit; {scores['repetition_loops']} end in a repeated-token loop")
    print("ExpRate by the length of the truth (tokens): " + ", ".join(
        f"{name}: {b['exprate']:.1%} ({b['n']})" for name, b in scores["exprate_by_length"].items()))
    if "exprate_by_novelty" in scores:
        print("ExpRate by whether the truth was a training formula: " + ", ".join(
            f"{'seen in training' if name == 'seen' else 'new'}: {b['exprate']:.1%} ({b['n']})"
            for name, b in scores["exprate_by_novelty"].items()))
    if "by_rescore_weight" in scores:
        print("the same candidates ranked with other weights for the second model: " + ", ".join(
            f"{w['weight']:g}: {w['exprate']:.2%}" for w in scores["by_rescore_weight"]))
    if scores["confusions"]:
        print("commonest errors (truth -> recognized): " + ", ".join(
            f"{_edit_text(c['truth'], c['predicted'])} ({c['count']})" for c in scores["confusions"][:12]))
    worst = sorted(report["examples"], key=lambda e: -e["errors"])[: args.worst]
    print(f"\nthe {len(worst)} worst:")
    for e in worst:
        print(f"  {e['id']}  ({e['errors']} errors{'' if e['ended'] else ', no end token'})\n"
              f"    truth      {e['truth']}\n    recognized {e['prediction']}")
    return 0


def compare_reports(report_a: dict, report_b: dict, weight: float | None = None) -> dict:
    """Two ``evaluate formulas --out`` reports of the same formulas, paired by id
    (``metrics.paired_comparison``), with the ids of the formulas B gained and lost. With
    ``weight``, each report's answers are first ranked again from its pooled candidates with that
    weight for the rescorer (``ranked_by_weight``; reports of ``--rescore-with`` and
    ``--rescore-weights``), so two pairs are compared at the weight that would ship."""
    from mathocr.metrics import paired_comparison

    examples = []
    for name, report in (("A", report_a), ("B", report_b)):
        if not isinstance(report, dict) or not isinstance(report.get("examples"), list):
            raise ValueError(f"report {name} is not an `evaluate formulas --out` report (no examples)")
        try:
            examples.append({e["id"]: e for e in report["examples"]})
        except (KeyError, TypeError):
            raise ValueError(f"report {name}: every example needs an id") from None
    a, b = examples
    if a.keys() != b.keys():
        only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
        raise ValueError(f"the reports hold different formulas: {len(only_a)} only in A "
                         f"({', '.join(only_a[:3]) or '-'}), {len(only_b)} only in B ({', '.join(only_b[:3]) or '-'})")
    ids = sorted(a)
    differ = [i for i in ids if a[i].get("truth") != b[i].get("truth")]
    if differ:
        raise ValueError(f"{len(differ)} formulas have different truths in the two reports (first: {differ[0]})")
    for name, report in (("A", a), ("B", b)):
        missing = [i for i in ids if not isinstance(report[i].get("errors"), int)]
        if missing:
            raise ValueError(f"report {name}: {len(missing)} examples without their error count (first: {missing[0]})")
    if weight is None:
        a_right = [a[i]["errors"] == 0 for i in ids]
        b_right = [b[i]["errors"] == 0 for i in ids]
    else:
        rights = []
        for name, report in (("A", a), ("B", b)):
            bare = [i for i in ids if not report[i].get("candidates")]
            if bare:
                raise ValueError(f"report {name}: {len(bare)} examples without pooled candidates (first: {bare[0]}); "
                                 "--weight needs reports of `evaluate formulas --rescore-with DIR --rescore-weights "
                                 "W,... --out`")
            answers = ranked_by_weight(pooled_candidates({"examples": [report[i] for i in ids]}), weight)
            rights.append([answer == report[i]["truth"].split() for answer, i in zip(answers, ids)])
        a_right, b_right = rights
    result = paired_comparison(a_right, b_right)
    result["gained_ids"] = [i for i, x, y in zip(ids, a_right, b_right) if y and not x]
    result["lost_ids"] = [i for i, x, y in zip(ids, a_right, b_right) if x and not y]
    return result


def cmd_evaluate_compare(args) -> int:
    reports = []
    for path in (args.a, args.b):
        try:
            reports.append(json.loads(Path(path).read_text(encoding="utf-8")))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not JSON ({err.msg}, line {err.lineno})") from None
    result = compare_reports(*reports, weight=args.weight)
    if args.json:
        print(json.dumps(result))
        return 0
    low, high = result["interval95"]
    at = "" if args.weight is None else f", both ranked with the rescorer's weight {args.weight:g}"
    print(f"{result['n']} formulas: A {result['exprate_a']:.2%} ({args.a}), B {result['exprate_b']:.2%} ({args.b}){at}")
    print(f"B - A: {result['difference'] * 100:+.2f} points (95 % bootstrap interval {low * 100:+.2f} to "
          f"{high * 100:+.2f}); B right where A is wrong: {result['gained']}, the reverse: {result['lost']}")
    verdict = "a difference at the 5 % level" if result["p_value"] < 0.05 else "no evidence of a difference at 5 %"
    print(f"exact McNemar test: p = {result['p_value']:.3g} ({verdict})")
    for key, name in (("gained_ids", "gained"), ("lost_ids", "lost")):
        if result[key]:
            shown = result[key][: args.show]
            more = len(result[key]) - len(shown)
            print(f"  {name}: {', '.join(shown)}" + (f" and {more} more" if more > 0 else ""))
    return 0


def cmd_evaluate_kind(args) -> int:
    """How often an upload's kind (handwritten or typeset) is told right: the rule, and the rule
    with the models settling the pictures it is unsure of."""
    from mathocr.formula_decode import SHIPPED_MODEL_DIR, FormulaRecognizer
    from mathocr.formula_kind import HANDWRITING_MARGIN
    from mathocr.kind_eval import TYPESET_ENGINES, evaluate_kind, kind_samples
    from mathocr.typeset import latex_available

    engines = tuple(e for e in TYPESET_ENGINES if e != "latex" or latex_available())
    samples = kind_samples(args.split, args.n, args.data, engines=engines)
    recognizers = {"handwritten": _recognizer(args.model),
                   "typeset": FormulaRecognizer.load(args.typeset_model or SHIPPED_MODEL_DIR.parent / "typeset")}
    margins = tuple(args.margins or ())
    rows = evaluate_kind(samples, recognizers, args.beam, None if args.json else _progress("judging"), margins)
    if args.json:
        print(json.dumps({"split": args.split, "margin": HANDWRITING_MARGIN, "sources": rows}))
        return 0
    print(f"{args.split} split: the share of pictures whose kind is called right "
          f"(the models settle unsure ones with a margin of {HANDWRITING_MARGIN:g} nats per token for handwriting)")
    for source, row in rows.items():
        print(f"  {source:22s} ({row['kind']}, {row['n']}): rule {row['rule']:.1%}, with the models {row['settled']:.1%} "
              f"({row['unsure']} unsure)")
    if margins:
        print("with the models, by margin:  " + "  ".join(f"{source:>12s}" for source in rows))
        for m in margins:
            print(f"  {m:>6g}" + " " * 21 + "  ".join(f"{row['by_margin'][m]:>12.1%}" for row in rows.values()))
    return 0


def cmd_benchmark_formulas(args) -> int:
    """Training throughput (samples/s) of the parallel-over-time model, optionally beside the
    straightforward baseline, and inference latency (greedy and beam)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from mathocr.formula_benchmark import benchmark_inference, benchmark_training

    result = {"training": benchmark_training(args.batch_size, args.steps, args.width, args.tokens,
                                             baseline=args.baseline)}
    if not args.skip_inference:
        recognizer = _recognizer(args.model)
        result["inference"] = benchmark_inference(recognizer, args.beam, args.repeats, args.data)
    if args.json:
        print(json.dumps(result))
    else:
        for section, rows in result.items():
            print(section)
            for key, value in rows.items():
                print(f"  {key}: {value}")
    return 0


def add_commands(evaluate_sub, benchmark_sub) -> None:
    from mathocr.cli import add_photo_arguments, picture_size

    ev = evaluate_sub.add_parser("formulas", help="ExpRate, <=1, <=2 errors, BLEU-4 of the formula model")
    ev.add_argument("--model", help="model directory (default: models/formulas)")
    ev.add_argument("--inkml-dir", help="a folder of InkML files with truths (default: CROHME's --split)")
    ev.add_argument("--images", help="a folder of images, with --labels")
    ev.add_argument("--labels", help="tab-separated label file: image file name, LaTeX")
    ev.add_argument("--im2latex", action="store_true",
                    help="evaluate on rendered im2latex formulas (`python -m mathocr data render`) of --split")
    ev.add_argument("--rendered", help="folder of rendered im2latex images (default: the cache)")
    ev.add_argument("--split", default="test", choices=["train", "validation", "test"],
                    help="split when no folder is given (CROHME: test = CROHME 2014; im2latex: the held-out 5 %%)")
    ev.add_argument("--data", help="data directory (default: $MATHOCR_DATA, else data/)")
    ev.add_argument("--beam", type=int, default=1, help="beam width (1: greedy)")
    ev.add_argument("--batch-size", type=int, default=1,
                    help="decode greedy in batches (faster; ms_per_formula is then not a latency)")
    ev.add_argument("--limit", type=int, help="only the first N formulas")
    ev.add_argument("--no-length-limit", action="store_true",
                    help="let every search run to 200 tokens instead of the width-based limit (to count loops)")
    ev.add_argument("--margin", type=_margins, metavar="N[,N...]",
                    help="blank columns added after each input before reading it; several (64,128,192): read with "
                         "each and answer with the likeliest reading per token (default: the model's config.json)")
    ev.add_argument("--margins-apart", action="store_true",
                    help="read each margin as a separate padded image, and a batch's inputs within its widest one "
                         "(the way before margins were read at once; to compare)")
    ev.add_argument("--as-picture", type=picture_size, metavar="HEIGHT,PEN",
                    help="InkML: draw each formula as a picture HEIGHT pixels high with a PEN pixels wide and read it "
                         "as an upload (a photo's or scan's path through the model)")
    add_photo_arguments(ev, writing=True)
    ev.add_argument("--no-pen-normalise", action="store_true",
                    help="read handwritten pictures with their own stroke width (to measure what normalising it gains)")
    ev.add_argument("--no-pen", action="store_true",
                    help="a model that reads what the pen did (training.formulas --pen): read InkML with those "
                         "channels zero, as a picture's (to measure what they gain)")
    ev.add_argument("--no-brace-balance", action="store_true",
                    help="let searches emit unpaired { and } (to measure what keeping them paired gains)")
    ev.add_argument("--rescore-with", metavar="DIR",
                    help="a second model (e.g. a right-to-left one, training.formulas --direction r2l) that searches "
                         "too; both models' candidates are pooled and scored by both (weight 1 unless --rescore-weight)")
    ev.add_argument("--rescore-weights", type=_weights, default=(), metavar="W[,W...]",
                    help="also rank the same pooled candidates with each of these weights for the second model "
                         "and score them (by_rescore_weight in the JSON): one search compares the weights")
    ev.add_argument("--rescore-weight", type=float, metavar="W",
                    help="the second model's weight in the re-ranking (0: off; default: the model's config.json)")
    ev.add_argument("--novelty", nargs="?", const="", metavar="DIR",
                    help="also ExpRate of the formulas whose truth is a training formula (written by other hands) "
                         "and of the new ones: the truths of the InkML files under DIR, or without DIR of "
                         "CROHME's training split (im2latex's with --im2latex)")
    ev.add_argument("--worst", type=int, default=10, help="how many of the worst examples to show")
    ev.add_argument("--out", help="write every example and the scores to this JSON file")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.set_defaults(func=cmd_evaluate_formulas)

    cp = evaluate_sub.add_parser("compare", help="two `evaluate formulas --out` reports of the same formulas: "
                                 "which formulas B gains and loses, and whether the difference is beyond chance")
    cp.add_argument("a", help="the first report (e.g. the shipped model's)")
    cp.add_argument("b", help="the second report (e.g. a candidate's)")
    cp.add_argument("--weight", type=float, metavar="W",
                    help="rank both reports' pooled candidates again with this weight for the rescorer first "
                         "(reports of --rescore-with and --rescore-weights; default: the answers as reported)")
    cp.add_argument("--show", type=int, default=10, help="how many gained and lost ids to list")
    cp.add_argument("--json", action="store_true", help="print one JSON object")
    cp.set_defaults(func=cmd_evaluate_compare)

    kd = evaluate_sub.add_parser("kind", help="how often an upload is told handwritten or typeset right")
    kd.add_argument("--split", default="validation", choices=["validation", "test"])
    kd.add_argument("--n", type=int, default=150, help="pictures per source (CROHME ink, and each typeset engine)")
    kd.add_argument("--data", help="data directory (default: $MATHOCR_DATA, else data/)")
    kd.add_argument("--model", help="the handwritten model (default: models/formulas)")
    kd.add_argument("--typeset-model", help="the typeset model (default: models/typeset)")
    kd.add_argument("--beam", type=int, default=5, help="beam width of the models' readings (the page's default)")
    kd.add_argument("--margins", type=lambda s: [float(x) for x in s.split(",")], metavar="M1,M2,...",
                    help="also score these handwriting margins of formula_kind.settle (nats per token), "
                         "from the same readings: how the margin is chosen on the validation split")
    kd.add_argument("--json", action="store_true", help="print one JSON object")
    kd.set_defaults(func=cmd_evaluate_kind)

    bm = benchmark_sub.add_parser("formulas", help="training samples/s and ms per formula")
    bm.add_argument("--model", help="model directory (default: models/formulas)")
    bm.add_argument("--data", help="data directory, for real formulas to time (default: synthetic input)")
    bm.add_argument("--batch-size", type=int, default=32)
    bm.add_argument("--steps", type=int, default=8, help="timed training steps")
    bm.add_argument("--width", type=int, default=256, help="training image width")
    bm.add_argument("--tokens", type=int, default=40, help="training target length")
    bm.add_argument("--baseline", action="store_true",
                    help="also time the straightforward design (a GRU cell stepped in a traced loop)")
    bm.add_argument("--beam", type=int, default=5)
    bm.add_argument("--repeats", type=int, default=20, help="formulas timed for inference")
    bm.add_argument("--skip-inference", action="store_true")
    bm.add_argument("--json", action="store_true")
    bm.set_defaults(func=cmd_benchmark_formulas)
