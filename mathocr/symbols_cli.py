"""``python -m mathocr evaluate symbols`` and ``python -m mathocr benchmark symbols``.

Registered by ``mathocr.cli`` when this module exists; both are thin fronts on ``mathocr.symbols``.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path


def _recognizer(model_dir: str | None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from mathocr.symbols import SHIPPED_MODEL_DIR, SymbolRecognizer

    return SymbolRecognizer(model_dir or SHIPPED_MODEL_DIR)


def cmd_evaluate_symbols(args) -> int:
    from mathocr.data import crohme_split_dir
    from mathocr.inkml import inkml_files
    from mathocr.symbol_data import render_symbol_files
    from mathocr.symbols import evaluate_symbols

    directory = Path(args.inkml_dir) if args.inkml_dir else crohme_split_dir("test", args.data)
    files = inkml_files(directory)
    if not files:
        raise FileNotFoundError(f"no .inkml files under {directory}")
    recognizer = _recognizer(args.model)
    recognizer.pen_normalise = not args.no_pen_normalise
    start = time.perf_counter()
    symbols = render_symbol_files(files, recognizer.size, picture=args.as_picture, pen_normalise=recognizer.pen_normalise,
                                  photo=args.as_photo, flatten=not args.no_flatten, ruling=not args.keep_ruling,
                                  tilt=args.photo_tilt, level=not args.keep_tilt)
    render_seconds = time.perf_counter() - start
    if len(symbols) == 0:
        raise ValueError(f"the {len(files)} InkML files under {directory} hold no segmented symbols")
    # an uploaded symbol stands alone: no expression around it to give a context model
    evaluation = evaluate_symbols(recognizer, symbols, batch_size=args.batch_size, render_seconds=render_seconds,
                                  use_context=not (args.no_context or args.as_picture))

    if args.out:
        write_reports(evaluation, Path(args.out))
    if args.json:
        summary = evaluation.summary()
        summary.update(inkml_dir=str(directory), files=len(files), model=str(recognizer.directory),
                       picture=list(args.as_picture) if args.as_picture else None,
                       pen_normalise=recognizer.pen_normalise,
                       photo={"paper": args.as_photo, "flatten": not args.no_flatten,
                              "remove_ruling": not args.no_flatten and not args.keep_ruling, "tilt": args.photo_tilt,
                              "level": not args.no_flatten and not args.keep_ruling and not args.keep_tilt}
                       if args.as_photo else None,
                       confusions=[list(c) for c in evaluation.confusions[: args.top]])
        print(json.dumps(summary))
        return 0
    print(f"{evaluation.n} symbols from {len(files)} files in {directory}")
    print(f"model: {recognizer.directory}")
    if args.as_picture:
        side, pen = args.as_picture
        print(f"each drawn as a {side}-pixel square picture with a {pen:g}-pixel pen, "
              + (f"made a phone's photo of {args.as_photo} paper "
                 f"({'paper flattened' if not args.no_flatten else 'paper as photographed'}"
                 f"{', lines kept' if args.as_photo != 'plain' and args.keep_ruling else ''}"
                 f"{f', taken {args.photo_tilt:g} degrees askew' if args.photo_tilt else ''}"
                 f"{', not turned level' if args.photo_tilt and args.keep_tilt else ''}), "
                 if args.as_photo else "")
              + f"read as an upload ({'pen normalised' if recognizer.pen_normalise else 'pen as drawn'})")
    print(f"top-1 {evaluation.top1:.2%}   top-5 {evaluation.top5:.2%}"
          + ("   (with each symbol's size and place in its expression)" if evaluation.context else ""))
    print(f"model time {evaluation.ms_per_symbol:.3f} ms per symbol (batches of {evaluation.batch_size}); "
          f"rendering {evaluation.render_ms_per_symbol:.3f} ms per symbol")
    if evaluation.unknown_labels:
        print(f"labels the model does not know (counted as errors): {evaluation.unknown_labels}")
    print(f"\nmost confused pairs (truth -> predicted: count):")
    for truth, predicted, count in evaluation.confusions[: args.top]:
        print(f"  {truth:>12} -> {predicted:<12} {count}")
    worst = sorted(evaluation.per_class.items(), key=lambda kv: (kv[1]["top1"], -kv[1]["n"]))[: args.top]
    print("\nweakest classes (top-1, n):")
    for label, row in worst:
        print(f"  {label:>12}  {row['top1']:.1%}  n={row['n']}")
    if args.out:
        print(f"\nper-class table, confusion matrix and evaluation.json written to {args.out}")
    return 0


def write_reports(evaluation, out: Path) -> None:
    """``evaluation.json``, ``per_class.csv`` and ``confusion.png`` in ``out``."""
    from mathocr.symbol_plots import save_confusion_plot

    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(json.dumps(evaluation.to_dict(), indent=1, ensure_ascii=False))
    with (out / "per_class.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "n", "top1", "top5"])
        for label, row in sorted(evaluation.per_class.items(), key=lambda kv: kv[1]["top1"]):
            writer.writerow([label, row["n"], f"{row['top1']:.4f}", f"{row['top5']:.4f}"])
    save_confusion_plot(evaluation, out / "confusion.png")


def cmd_benchmark_symbols(args) -> int:
    from mathocr.symbols import benchmark_latency

    recognizer = _recognizer(args.model)
    result = benchmark_latency(recognizer, repeats=args.repeats)
    result["model_dir"] = str(recognizer.directory)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"model {recognizer.directory} ({result['parameters']:,} parameters, {result['size']} px input)")
    for name, what in (("model", "compiled model call, one symbol"),
                       ("strokes_to_top5", "strokes -> image -> model -> top 5")):
        row = result[name]
        print(f"{what:<36} median {row['median_ms']:.2f} ms   p90 {row['p90_ms']:.2f} ms   "
              f"mean {row['mean_ms']:.2f} ms   ({args.repeats} runs)")
    return 0


def add_commands(evaluate_sub, benchmark_sub) -> None:
    from mathocr.cli import add_photo_arguments, picture_size  # the same options as evaluate formulas

    evaluate = evaluate_sub.add_parser("symbols", help="top-1/top-5 of the symbol recognizer on InkML symbols")
    evaluate.add_argument("--inkml-dir", help="a directory of CROHME InkML files (default: CROHME's 2014 test set)")
    evaluate.add_argument("--data", help="data directory for the default test set (default: $MATHOCR_DATA)")
    evaluate.add_argument("--model", help="model directory (default: the shipped models/symbols)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--out", help="write evaluation.json, per_class.csv and confusion.png here")
    evaluate.add_argument("--top", type=int, default=15, help="how many confused pairs and weak classes to list")
    evaluate.add_argument("--batch-size", type=int, default=256)
    evaluate.add_argument("--no-context", action="store_true",
                          help="hide each symbol's expression from a context model (as for a symbol drawn alone)")
    evaluate.add_argument("--as-picture", type=picture_size, metavar="HEIGHT,PEN",
                          help="draw each symbol as a picture HEIGHT pixels square with a PEN pixels wide and read it "
                               "as an upload (a photo's or scan's path through the model; no context)")
    add_photo_arguments(evaluate, writing=False)
    evaluate.add_argument("--no-pen-normalise", action="store_true",
                          help="read pictures with their own stroke width (to measure what normalising it gains)")
    evaluate.set_defaults(func=cmd_evaluate_symbols)

    bench = benchmark_sub.add_parser("symbols", help="latency of recognizing one symbol")
    bench.add_argument("--model", help="model directory (default: the shipped models/symbols)")
    bench.add_argument("--repeats", type=int, default=300)
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.set_defaults(func=cmd_benchmark_symbols)
