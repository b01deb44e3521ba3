"""Train the symbol classifier: ``python -m training.symbols --preset compact``.

Trains on CROHME's training split, chooses the checkpoint on validation (the 2013 test set), and
ends with an evaluation on the test split (the 2014 test set). Any InkML directories can stand in
for the splits (``--train-dir`` ...), which is how the tests train on synthetic symbols.

A run directory (``runs/symbols/<name>/``, see ``mathocr.runs``) holds the config, per-epoch
metrics, the best checkpoint, ``model/`` (what ``SymbolRecognizer`` loads) and ``evaluation.json``.
Run it again with the same ``--name`` and a killed run resumes from its last finished epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from mathocr import runs  # noqa: E402
from mathocr.inkml import inkml_files  # noqa: E402
from mathocr.symbol_data import SymbolSet, load_crohme_symbols, load_symbol_set  # noqa: E402
from mathocr.symbol_model import PRESETS, preset  # noqa: E402


def parse_layers(text: str) -> list:
    """``"32,32,M,64"`` -> ``[32, 32, "M", 64]``."""
    return [item if item == "M" else int(item) for item in text.replace(" ", "").split(",") if item]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.symbols", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="compact", choices=sorted(PRESETS), help="starting configuration")
    parser.add_argument("--name", help="run name (default: a timestamp); an existing run resumes")
    parser.add_argument("--runs", help="runs root (default: $MATHOCR_RUNS, else runs/)")
    parser.add_argument("--strategy", default="default", choices=runs.STRATEGIES,
                        help="tf.distribute strategy: default, mirrored (local devices), multiworker (TF_CONFIG)")
    parser.add_argument("--data", help="data directory (default: $MATHOCR_DATA, else data/)")
    parser.add_argument("--train-dir", help="InkML directory to train on instead of CROHME's train split")
    parser.add_argument("--val-dir", help="InkML directory to validate on instead of CROHME 2013")
    parser.add_argument("--test-dir", help="InkML directory for the final evaluation instead of CROHME 2014")
    parser.add_argument("--no-test", action="store_true", help="skip the final evaluation on the test split")
    parser.add_argument("--fraction", type=float, default=1.0, help="train on this random fraction of the training symbols")
    parser.add_argument("--export", help="also copy the final model and labels to this directory (e.g. models/symbols)")
    for name, kind in (("size", int), ("epochs", int), ("batch-size", int), ("learning-rate", float),
                       ("dropout", float), ("label-smoothing", float), ("weight-decay", float),
                       ("patience", int), ("seed", int), ("context-dropout", float)):
        parser.add_argument(f"--{name}", type=kind, help="override the preset's value")
    parser.add_argument("--layers", type=parse_layers, help='convolution plan, e.g. "32,32,M,64,64,M,128,M"')
    parser.add_argument("--dense", type=lambda s: [int(x) for x in s.split(",") if x], help="hidden Dense sizes")
    parser.add_argument("--no-augment", action="store_true", help="train on the rendered images as they are")
    parser.add_argument("--augment", type=float, default=1.0,
                        help="augmentation strength: every range times this (0: none, 1: the default)")
    parser.add_argument("--verbose", type=int, default=2, help="Keras fit verbosity (0, 1, 2)")
    return parser


def config_from_args(args):
    overrides = {k: v for k, v in {
        "size": args.size, "epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
        "dropout": args.dropout, "label_smoothing": args.label_smoothing, "weight_decay": args.weight_decay,
        "patience": args.patience, "seed": args.seed, "layers": args.layers, "dense": args.dense,
        "context_dropout": args.context_dropout,
    }.items() if v is not None}
    if args.no_augment:
        overrides["augment"] = False
    return preset(args.preset, **overrides)


def load_split(split: str, directory: str | None, size: int, root: str | None) -> SymbolSet:
    if directory:
        files = inkml_files(directory)
        if not files:
            raise FileNotFoundError(f"no .inkml files under {directory}")
        return load_symbol_set(files, size, name=f"dir-{split}")
    return load_crohme_symbols(split, size, root)


def known(symbols: SymbolSet, index: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images, contexts and class ids of the symbols whose label is a known class."""
    keep = np.array([label in index for label in symbols.labels], dtype=bool)
    ids = np.array([index[label] for label in symbols.labels[keep]], dtype=np.int32)
    return symbols.images[keep], symbols.context[keep], ids


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    import keras
    import tensorflow as tf

    from mathocr.symbol_data import Augmentation, make_dataset
    from mathocr.symbol_model import build_symbol_model, compile_symbol_model
    from mathocr.symbols import SymbolRecognizer, evaluate_symbols, save_recognizer_files

    start = time.time()
    keras.utils.set_random_seed(config.seed)
    train = load_split("train", args.train_dir, config.size, args.data)
    val = load_split("validation", args.val_dir, config.size, args.data)
    labels = sorted(set(train.labels.tolist()))
    index = {label: i for i, label in enumerate(labels)}
    x_train, c_train, y_train = known(train, index)
    if args.fraction < 1.0:
        pick = np.random.default_rng(config.seed).permutation(len(y_train))[: max(1, int(len(y_train) * args.fraction))]
        x_train, c_train, y_train = x_train[pick], c_train[pick], y_train[pick]
    x_val, c_val, y_val = known(val, index)
    print(f"{len(y_train)} training symbols in {len(labels)} classes, {len(y_val)} validation symbols "
          f"({len(val) - len(y_val)} of unknown classes left out); data ready in {time.time() - start:.1f} s", flush=True)

    run_config = {"model": config.to_dict(), "augment_strength": args.augment, "strategy": args.strategy, "fraction": args.fraction,
                  "train_dir": args.train_dir, "val_dir": args.val_dir, "test_dir": args.test_dir,
                  "n_train": int(len(y_train)), "n_val": int(len(y_val)), "classes": len(labels),
                  "command": " ".join(["python -m training.symbols"] + sys.argv[1:] if argv is None else argv)}
    run = runs.create_run("symbols", run_config, name=args.name, root=args.runs)
    (run.path / "labels.json").write_text(json.dumps(labels, ensure_ascii=False))
    print(f"run directory: {run.path}\nconfig: {json.dumps(config.to_dict())}", flush=True)

    strategy = runs.make_strategy(args.strategy)
    print(f"strategy: {args.strategy}, replicas in sync: {strategy.num_replicas_in_sync}", flush=True)
    batch = config.batch_size
    augmentation = Augmentation().scaled(args.augment) if config.augment and args.augment > 0 else None
    train_ds = make_dataset(x_train, y_train, len(labels), batch, training=True, augmentation=augmentation,
                            seed=config.seed, context=c_train if config.context else None,
                            context_dropout=config.context_dropout)
    val_ds = make_dataset(x_val, y_val, len(labels), 512, context=c_val if config.context else None)
    steps = len(y_train) // batch
    if steps == 0:
        raise ValueError(f"{len(y_train)} training symbols are fewer than one batch of {batch}")
    with strategy.scope():
        model = build_symbol_model(config, len(labels))
        compile_symbol_model(model, config, steps_per_epoch=steps)
    model.summary(print_fn=lambda line, **_: print(line))
    callbacks = runs.training_callbacks(run, monitor="val_loss", mode="min", patience=config.patience,
                                        steps_per_epoch=steps, epochs=config.epochs)
    fit_start = time.time()
    try:
        history = model.fit(train_ds, validation_data=val_ds if len(y_val) else None, epochs=config.epochs,
                            callbacks=callbacks, verbose=args.verbose, shuffle=False)  # tf.data shuffles
    except BaseException as err:
        run.update_status(state="stopped" if isinstance(err, KeyboardInterrupt) else "failed", error=repr(err))
        raise
    fit_seconds = time.time() - fit_start
    epochs_run = len(history.history.get("loss", []))

    # the best checkpoint on validation is the model; export it where the recognizer looks
    best = keras.saving.load_model(run.best_model, compile=False) if run.best_model.exists() else model
    save_recognizer_files(best, labels, run.model_dir, config=config.to_dict())
    if args.export:
        save_recognizer_files(best, labels, args.export, config=config.to_dict())
    result = {"fit_seconds": round(fit_seconds, 1), "epochs_run_this_process": epochs_run,
              "seconds_per_epoch": round(fit_seconds / max(epochs_run, 1), 1),
              "total_seconds": round(time.time() - start, 1)}
    if not args.no_test:
        test = load_split("test", args.test_dir, config.size, args.data)
        recognizer = SymbolRecognizer(run.model_dir)
        evaluation = evaluate_symbols(recognizer, test)
        result["test"] = evaluation.to_dict()
        print(f"test: n={evaluation.n} top1={evaluation.top1:.4f} top5={evaluation.top5:.4f}", flush=True)
        if recognizer.uses_context:  # and as the canvas sees a symbol: alone
            alone = evaluate_symbols(recognizer, test, use_context=False)
            result["test_without_context"] = alone.summary()
            print(f"test without context: top1={alone.top1:.4f} top5={alone.top5:.4f}", flush=True)
        try:
            from mathocr.symbol_plots import save_confusion_plot
            save_confusion_plot(evaluation, run.path / "confusion.png")
        except ImportError:
            pass
    runs.write_json_atomic(run.evaluation_file, result)
    run.update_status(state="finished", **{k: v for k, v in result.items() if not k.startswith("test")})
    print(json.dumps({k: v for k, v in result.items() if not k.startswith("test")}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
