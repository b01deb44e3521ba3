"""The command line: ``python -m mathocr data info``, ``evaluate symbols``, ``benchmark ...``.

Each subcommand is a thin front on a library function; heavy modules (TensorFlow) are imported
only by the subcommands that need them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from tqdm import tqdm


def _progress_bar(description: str):
    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=description, unit="file", file=sys.stderr, mininterval=0.5)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def picture_size(text: str) -> tuple[int, float]:
    """``HEIGHT,PEN`` of the ``--as-picture`` options (evaluate formulas, evaluate symbols)."""
    try:
        height, pen = text.split(",")
        height, pen = int(height), float(pen)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHT,PEN (e.g. 150,4), not {text!r}") from None
    if height < 16 or pen <= 0:
        raise argparse.ArgumentTypeError(f"a picture at least 16 pixels high and a pen wider than 0: {text!r}")
    return height, pen


def add_photo_arguments(parser: argparse.ArgumentParser, writing: bool) -> None:
    """The simulated-photo options of ``evaluate formulas`` (``writing``: a plain page askew is turned level by
    its writing) and ``evaluate symbols``: ``--as-photo [PAPER]``, ``--photo-tilt``, and what to leave undone
    to measure what it gains (``--no-flatten``, ``--keep-ruling``, ``--keep-tilt``)."""
    from mathocr.photo import PAPERS, RULE_MAX_TILT

    parser.add_argument("--as-photo", nargs="?", const="plain", choices=PAPERS,
                        help="with --as-picture: make each picture a phone's photo of paper (gray, unevenly lit, "
                             "noisy, a JPEG; 'ruled': with ruled lines across it, 'squared': both ways) and read it "
                             "as an uploaded file is")
    parser.add_argument("--photo-tilt", type=float, default=0.0, metavar="DEGREES",
                        help="with --as-photo: the photos taken askew, page and writing turned by DEGREES "
                             f"(counter-clockwise; ruled lines are looked for up to {RULE_MAX_TILT:g} degrees)")
    parser.add_argument("--no-flatten", action="store_true",
                        help="read photos without flattening their paper (to measure what flattening gains)")
    parser.add_argument("--keep-ruling", action="store_true",
                        help="read photos without taking ruled paper's lines away (to measure what that gains)")
    parser.add_argument("--keep-tilt", action="store_true",
                        help="read photos askew as they are, not turned level by their lines (ruled paper)"
                             + (" or their writing (plain paper)" if writing else "") + " (to measure what that gains)")


def cmd_data_info(args) -> int:
    from mathocr import data

    root = data.data_dir(args.data)
    print(f"data directory: {root}")
    if not data.crohme_available(root):
        print(f"CROHME: missing. {data.CROHME_HELP}")
    else:
        start = time.perf_counter()
        index = data.load_crohme_index(root, progress=_progress_bar("indexing CROHME"), rebuild=args.rebuild)
        elapsed = time.perf_counter() - start
        counts = index.split_counts()
        symbol_counts = {split: sum(index.symbol_counts(split).values()) for split in data.CROHME_SPLITS}
        classes = index.symbol_counts("train")
        report = {
            "expressions": counts,
            "skipped": index.skipped,
            "symbols": symbol_counts,
            "train_symbol_classes": len(classes),
            "index_build_seconds": round(index.build_seconds, 2),
            "index_load_seconds": round(elapsed, 2),
        }
        if args.json:
            print(json.dumps({"crohme": report}))
        else:
            for split, n in counts.items():
                print(f"CROHME {split:<10} {n:>6} expressions  {symbol_counts[split]:>7} symbols  "
                      f"({data.CROHME_DIR}/{data.CROHME_SPLITS[split]})")
            print(f"training symbol classes: {len(classes)}")
            for path, why in index.skipped.items():
                print(f"skipped {path}: {why}")
            print(f"index built in {index.build_seconds:.1f} s; this command took {elapsed:.1f} s")
    if data.im2latex_available(root):
        formulas = data.load_im2latex(root)
        by_split = {s: sum(f.split == s for f in formulas) for s in data.IM2LATEX_FRACTIONS}
        print(f"im2latex formulas: {len(formulas)} " + ", ".join(f"{k} {v}" for k, v in by_split.items()))
    else:
        print("im2latex: missing (im2latex/im2latex_test.csv, im2latex_validate.csv)")
    return 0


def cmd_data_import(args) -> int:
    from mathocr import data

    target = data.import_crohme(args.source, args.data, progress=_progress_bar("copying"))
    print(f"imported into {target}")
    if args.data is None and data.data_dir() != target.parent:
        print(f"(set MATHOCR_DATA={target.parent} to use it)")
    return 0


def cmd_data_render(args) -> int:
    from mathocr import typeset, typeset_data

    engine = args.engine or typeset.default_engine()
    if engine == "mathtext" and not typeset.latex_available():
        print("LaTeX is not installed (latex and dvipng; ./test.sh installs them): drawing with matplotlib's "
              "mathtext instead, which cannot draw every formula; the images are marked as mathtext's", file=sys.stderr)
    result = typeset_data.render_im2latex(args.data, engine=engine, dpi=args.dpi, workers=args.workers,
                                          progress=_progress_bar(f"rendering im2latex ({engine})"),
                                          directory=args.out, limit=args.limit, retry_failed=args.retry_failed,
                                          split=args.split)
    reasons: dict[str, int] = {}
    for why in result.failed.values():
        reasons[why] = reasons.get(why, 0) + 1
    report = {"directory": str(result.directory), "engine": result.engine, "rendered": len(result.rendered),
              "failed": len(result.failed), "seconds": round(result.seconds, 1),
              "failure_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:10])}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{report['rendered']} formulas rendered, {report['failed']} failed, into {result.directory} "
              f"({result.engine}, {report['seconds']} s of rendering in all)")
        for why, n in report["failure_reasons"].items():
            print(f"  {n:>5} x {why}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from mathocr.typeset import ENGINES

    parser = argparse.ArgumentParser(prog="python -m mathocr", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log every skipped file")
    commands = parser.add_subparsers(dest="command", required=True)

    data_cmd = commands.add_parser("data", help="the datasets: counts, index, import")
    data_sub = data_cmd.add_subparsers(dest="data_command", required=True)
    info = data_sub.add_parser("info", help="index the data (cached) and print its counts and the time taken")
    info.add_argument("--data", help="data directory (default: $MATHOCR_DATA, else data/)")
    info.add_argument("--rebuild", action="store_true", help="rebuild the index even if cached")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=cmd_data_info)
    imp = data_sub.add_parser("import", help="copy a CROHME 2016 download (folder or .zip) into the data directory")
    imp.add_argument("source")
    imp.add_argument("--data", help="data directory to import into (default: $MATHOCR_DATA, else data/)")
    imp.set_defaults(func=cmd_data_import)
    render = data_sub.add_parser("render", help="render the im2latex formulas to images (cached, resumable)")
    render.add_argument("--data", help="data directory (default: $MATHOCR_DATA, else data/)")
    render.add_argument("--engine", choices=ENGINES, help="default: latex where installed; "
                        "mathtext-<font> draws in another of mathtext's font sets (e.g. mathtext-dejavusans)")
    render.add_argument("--dpi", type=int, default=200)
    render.add_argument("--workers", type=int, help="processes (default: one per core)")
    render.add_argument("--out", help="folder for the images (default: the cache, im2latex-<engine>-<dpi>dpi)")
    render.add_argument("--limit", type=int, help="only the first N formulas (a quick look)")
    render.add_argument("--split", choices=("train", "validation", "test"),
                        help="only one split's formulas (--split test: enough to evaluate a typeset model)")
    render.add_argument("--retry-failed", action="store_true", help="try the formulas that failed before again")
    render.add_argument("--json", action="store_true", help="print one JSON object")
    render.set_defaults(func=cmd_data_render)

    evaluate = commands.add_parser("evaluate", help="measure a model on a dataset")
    evaluate_sub = evaluate.add_subparsers(dest="evaluate_command", required=True)
    benchmark = commands.add_parser("benchmark", help="measure a model's speed")
    benchmark_sub = benchmark.add_subparsers(dest="benchmark_command", required=True)
    for module in ("mathocr.symbols_cli", "mathocr.formulas_cli"):
        try:
            mod = __import__(module, fromlist=["add_commands"])
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            continue
        mod.add_commands(evaluate_sub, benchmark_sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, format="%(levelname)s %(message)s")
    try:
        return args.func(args) or 0
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
