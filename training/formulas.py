"""Train the formula recognizer: ``python -m training.formulas --name crohme``.

``--dataset crohme`` (handwritten, the default) trains on CROHME's training split, re-rendered from augmented ink on every epoch; chooses the
checkpoint by ExpRate on validation (the 2013 test set, greedy decoding after every epoch); ends
with an evaluation on the test split (the 2014 test set). Any InkML directories can stand in for
the splits (``--train-dir`` ...), which is how the tests train on synthetic formulas.

``--dataset im2latex`` (typeset) trains the same model on im2latex's formulas rendered by LaTeX
(``python -m mathocr data render`` first; ``mathocr.typeset_data``): its own vocabulary, wider
images (``--max-width 640``), longer sequences, validation and test on the held-out splits.

A run directory (``runs/formulas/<name>/``, see ``mathocr.runs``) holds the config, the vocabulary,
per-epoch metrics, the best checkpoint, ``model/`` (what ``FormulaRecognizer.load`` reads) and
``evaluation.json``. Run the same command again (same ``--name``) and a killed run resumes from its
last finished epoch; ``--epochs`` may be raised to train a finished run further.
``--export-only --export models/formulas`` copies the best checkpoint so far without training.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from mathocr import runs  # noqa: E402
from mathocr.formula_data import HEIGHT, MAX_WIDTH, TrainingBatches, load_crohme_formulas, load_inkml_formulas, plain_images  # noqa: E402
from mathocr.formula_model import FormulaModelConfig  # noqa: E402
from mathocr.formula_synth import PIECE_TOKENS  # noqa: E402
from mathocr.inkml import inkml_files  # noqa: E402
from mathocr.latex import Vocabulary  # noqa: E402
from mathocr.render import PEN_CHANNELS  # noqa: E402
from mathocr.typeset_data import TYPESET_HEIGHT, TYPESET_MAX_WIDTH, TypesetBatches, load_array  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.formulas", description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="run name (default: a timestamp); an existing run resumes")
    parser.add_argument("--runs", help="runs root (default: $MATHOCR_RUNS, else runs/)")
    parser.add_argument("--strategy", default="default", choices=runs.STRATEGIES,
                        help="tf.distribute strategy: default, mirrored (local devices), multiworker (TF_CONFIG)")
    parser.add_argument("--data", help="data directory (default: $MATHOCR_DATA, else data/)")
    parser.add_argument("--dataset", default="crohme", choices=("crohme", "im2latex"),
                        help="handwritten CROHME ink, or typeset im2latex formulas rendered by LaTeX")
    parser.add_argument("--rendered", help="folder of rendered im2latex images (default: the cache)")
    parser.add_argument("--also-rendered", action="append", metavar="DIR",
                        help="typeset: another rendering of the formulas (another font: `python -m mathocr data "
                             "render --engine mathtext-dejavusans`), drawn half the time in training; repeatable")
    parser.add_argument("--val-limit", type=int, help="validate on the first N validation formulas only")
    parser.add_argument("--train-dir", help="InkML directory to train on instead of CROHME's train split")
    parser.add_argument("--val-dir", help="InkML directory to validate on instead of CROHME 2013")
    parser.add_argument("--test-dir", help="InkML directory for the final evaluation instead of CROHME 2014")
    parser.add_argument("--no-test", action="store_true", help="skip the final evaluation on the test split")
    parser.add_argument("--export", help="also save the final model here (e.g. models/formulas)")
    parser.add_argument("--export-only", action="store_true", help="export the run's best checkpoint and stop")
    parser.add_argument("--keep-epochs", action="store_true",
                        help="also save every epoch's model in the run's epochs/ folder (about 21 MB each), "
                             "to choose one afterwards as the product reads (with the twin, beam search)")
    parser.add_argument("--epoch", type=int, help="with --export-only: export this epoch's model (--keep-epochs) "
                                                   "instead of the best checkpoint")
    parser.add_argument("--average-epochs", type=_epoch_range, metavar="FIRST-LAST",
                        help="with --export-only: export the mean of the weights of these epochs' models "
                             "(--keep-epochs), e.g. 5-9")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--max-tokens", type=int, help="longer training formulas are left out (default: 120 "
                                                          "handwritten, 160 typeset)")
    parser.add_argument("--height", type=int, help=f"input height (default {HEIGHT}; typeset {TYPESET_HEIGHT})")
    parser.add_argument("--max-width", type=int,
                        help=f"widest input (default {MAX_WIDTH}; typeset {TYPESET_MAX_WIDTH})")
    parser.add_argument("--filters", type=lambda s: tuple(int(x) for x in s.split(",")),
                        default=FormulaModelConfig.filters, help="encoder filters, five numbers")
    parser.add_argument("--blocks", type=int, default=FormulaModelConfig.blocks,
                        help="residual blocks at the end of the encoder (each starts as the identity, so "
                             "--init-from a model with fewer keeps what it computes)")
    parser.add_argument("--top-blocks", type=int, default=FormulaModelConfig.top_blocks,
                        help="residual blocks after the encoder's last pooling, on the grid the attention reads "
                             "(identity at first, as --blocks)")
    parser.add_argument("--counting", type=float, default=FormulaModelConfig.counting, metavar="WEIGHT",
                        help="add a symbol-counting head whose counts shift the logits (CAN), its loss with "
                             "this weight (0: none); a warm start adds it with no effect at first")
    parser.add_argument("--units", type=int, default=FormulaModelConfig.units)
    parser.add_argument("--attention-dim", type=int, default=FormulaModelConfig.attention_dim)
    parser.add_argument("--dropout", type=float, default=FormulaModelConfig.dropout)
    parser.add_argument("--encoder-dropout", type=float, default=FormulaModelConfig.encoder_dropout, metavar="RATE",
                        help="spatial dropout in the encoder, after its third to fifth convolutions and each block "
                             "(0: none; no weights, so --init-from keeps what the model computes)")
    parser.add_argument("--no-coverage", action="store_true", help="attention without coverage (for comparison)")
    parser.add_argument("--guide-weight", type=float, default=FormulaModelConfig.guide_weight,
                        help="weight of the first attention pass's own next-token loss (0: none)")
    parser.add_argument("--no-augment", action="store_true", help="train on the plain renderings")
    parser.add_argument("--augment-strength", type=float, default=1.0,
                        help="handwritten: scale of the random rotation, slant, stretch and per-stroke shift")
    parser.add_argument("--elastic", type=float, default=0.0, metavar="AMPLITUDE",
                        help="handwritten: with augmentation, bend the ink by a smooth random field (symbols' shapes "
                             "change, the layout stays) of an amplitude drawn up to this fraction of a symbol's size "
                             "(0: none; 0.1 bends visibly, 0.2 breaks symbols)")
    parser.add_argument("--pen", action="store_true",
                        help="also read what the pen did (its direction, where strokes begin and end: render.pen_channels) "
                             "beside the ink; pictures are read with those channels zero. With --init-from a model "
                             "without them, they start with zero weights")
    parser.add_argument("--pen-dropout", type=float, default=0.25, metavar="RATE",
                        help="with --pen: this share of the training examples have no pen channels, as pictures (default 0.25)")
    parser.add_argument("--swap-symbols", type=float, default=0.0, metavar="RATE",
                        help="handwritten: with augmentation, write each symbol in another writer's strokes (from "
                             "the training set's segmentation) with this probability")
    parser.add_argument("--relabel", type=float, default=0.0, metavar="RATE",
                        help="handwritten: with augmentation, replace each replaceable symbol throughout by another "
                             "of its group (a digit by a digit, ...) in another writer's strokes, with this "
                             "probability, and the target tokens with it: token sequences the training set lacks")
    parser.add_argument("--concat", type=float, default=0.0, metavar="RATE",
                        help="handwritten: with augmentation, write this share of each epoch's formulas on one line "
                             "with another training formula (joined by another writer's +, - or =, or side by side), "
                             "the targets following: longer, new token sequences")
    parser.add_argument("--stack", type=float, default=0.0, metavar="RATE",
                        help="handwritten: with augmentation, make this share of the other formulas fractions of "
                             "two short training formulas (another writer's bar between them), half of them after "
                             "a third and an operator: y = \\frac{a}{b} from three formulas' ink")
    parser.add_argument("--script", type=float, default=0.0, metavar="RATE",
                        help="handwritten: with augmentation, make this share of the formulas still single a short "
                             "formula with a made-up superscript or subscript (another short formula, written "
                             "smaller, raised or lowered; or another writer's prime), half of them followed by an "
                             "operator and a third: x^{n-1} + a from three formulas' ink")
    parser.add_argument("--synth", type=float, default=0.0, metavar="RATE",
                        help="handwritten: with augmentation, replace this share of the formulas still single by "
                             "a made-up one: a formula laid out by matplotlib's mathtext and written symbol by "
                             "symbol in other writers' strokes (mathocr.formula_synth); the formulas are the "
                             "training truths and, where MATHOCR_DATA has im2latex, its training formulas that "
                             "the vocabulary covers (--synth-source)")
    parser.add_argument("--synth-source", default="both", choices=("both", "crohme", "im2latex"),
                        help="the formulas --synth lays out")
    parser.add_argument("--synth-im2latex", default="covered", choices=("covered", "rewritten", "pieces"),
                        help="the im2latex formulas --synth lays out: covered, those whose every token the "
                             "vocabulary holds (about 1,600); rewritten, the others too where their symbols can be "
                             "rewritten into it, accents and fonts dropped, letters outside it replaced by others "
                             "of their kind (mathocr.formula_synth.fit_vocabulary; about 14,800); pieces, those "
                             "and, of each longer than %d tokens, the clauses, equations and runs of terms it "
                             "can be cut into (mathocr.formula_synth.pieces; about 33,100 in all, most of which "
                             "fit the input)" % PIECE_TOKENS)
    parser.add_argument("--pad-margin", type=int, default=0, metavar="MAX",
                        help="pad each training batch with 0..MAX blank columns after its widest formula (the "
                             "models read their inputs with such a margin)")
    parser.add_argument("--direction", default="l2r", choices=("l2r", "r2l"),
                        help="r2l: learn to write each formula from its last token to its first (a second "
                             "opinion for rescoring; see evaluate --rescore-with)")
    parser.add_argument("--lr-schedule", default="plateau", choices=("plateau", "cosine"),
                        help="plateau: halve the learning rate when --lr-monitor stops improving for 4 epochs; "
                             "cosine: decay it from --learning-rate to 1e-5 along half a cosine over --epochs")
    parser.add_argument("--lr-monitor", default="val_loss", choices=("val_loss", "val_exprate"),
                        help="what the plateau schedule watches")
    parser.add_argument("--token-dropout", type=float, default=0.0,
                        help="fraction of the decoder's previous tokens hidden as <unk> in training (against "
                             "memorising the training formulas)")
    parser.add_argument("--label-smoothing", type=float, default=0.0, metavar="EPS",
                        help="train against targets with EPS spread over the vocabulary (0: none)")
    parser.add_argument("--distill-from", metavar="DIR",
                        help="a trained recognizer (e.g. models/formulas/rescorer, the other direction) whose "
                             "next-token distributions, teacher-forced on the same augmented images, this model "
                             "also learns (ABM's mutual learning, one way; the teacher stays frozen)")
    parser.add_argument("--distill-weight", type=float, default=0.5, metavar="W",
                        help="weight of the KL divergence to the teacher (with --distill-from)")
    parser.add_argument("--fraction", type=float, default=1.0, help="train on this random fraction of the formulas")
    parser.add_argument("--steps-per-epoch", type=int, help="default: one pass over the training formulas")
    parser.add_argument("--patience", type=int, default=20, help="early stopping on validation ExpRate")
    parser.add_argument("--ema", type=float, default=0.0, metavar="MOMENTUM",
                        help="validate, checkpoint and export an exponential moving average of the weights "
                             "(e.g. 0.999; 0: off)")
    parser.add_argument("--init-from", metavar="DIR",
                        help="start a new run from the weights of a saved recognizer (e.g. models/formulas) with "
                             "the same architecture; its vocabulary is kept")
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow threads per op (0: one per core); 1 lets two runs share two cores fairly")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=2, help="Keras fit verbosity (0, 1, 2)")
    return parser


def load_split(split: str, directory: str | None, root: str | None, args=None):
    if args is not None and args.dataset == "im2latex":
        from mathocr.typeset_data import load_typeset_formulas

        return load_typeset_formulas(split, root, args.rendered)
    if directory:
        files = inkml_files(directory)
        if not files:
            raise FileNotFoundError(f"no .inkml files under {directory}")
        return load_inkml_formulas(files)[0]
    return load_crohme_formulas(split, root)


def synth_formulas(train, vocab, args) -> list[list[str]]:
    """The token sequences --synth lays out: the training truths and/or im2latex's training formulas
    that the vocabulary covers (none of its validation or test formulas)."""
    pool = [list(f.tokens) for f in train] if args.synth_source in ("both", "crohme") else []
    if args.synth_source in ("both", "im2latex"):
        from mathocr.formula_synth import im2latex_formulas

        extra = im2latex_formulas(vocab, args.data, fit=args.synth_im2latex != "covered", seed=args.seed,
                                  piece_tokens=PIECE_TOKENS if args.synth_im2latex == "pieces" else 0)
        if not extra and args.synth_source == "im2latex":
            raise FileNotFoundError("--synth-source im2latex: no im2latex formulas in the vocabulary under the data")
        print(f"--synth: {len(extra)} im2latex training formulas in the vocabulary ({args.synth_im2latex})", flush=True)
        pool += extra
    return pool


def exprate_callback(recognizer, arrays, truths, every: int = 1):
    """A callback that adds ``val_exprate`` (greedy, canonical tokens) to each epoch's logs, before
    the checkpoint callback reads them."""
    import keras

    from mathocr.metrics import score_tokens

    class ValidationExpRate(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is None or (epoch + 1) % every:
                return
            start = time.time()
            hyps = recognizer.recognize_many(arrays)
            scores = score_tokens([h["tokens"] for h in hyps], truths)
            logs["val_exprate"] = scores.exprate
            logs["val_le1"] = scores.le1
            logs["val_unended"] = sum(not h["ended"] for h in hyps) / max(len(hyps), 1)
            print(f"\nepoch {epoch + 1}: val exprate {scores.exprate:.4f} le1 {scores.le1:.4f} le2 {scores.le2:.4f} "
                  f"bleu4 {scores.bleu4:.4f} unended {logs['val_unended']:.4f} ({time.time() - start:.1f} s)", flush=True)

    return ValidationExpRate()


def cosine_learning_rate(epoch: int, base: float, epochs: int, floor: float = 1e-5) -> float:
    """The learning rate of ``epoch`` (0-based) on half a cosine from ``base`` to ``floor``."""
    progress = min(epoch / max(epochs - 1, 1), 1.0)
    return floor + 0.5 * (base - floor) * (1 + math.cos(math.pi * progress))


def learning_rate_callback(args):
    import keras

    if args.lr_schedule == "cosine":  # set at each epoch's start, so a resumed run picks up its place
        return keras.callbacks.LearningRateScheduler(
            lambda epoch, _: cosine_learning_rate(epoch, args.learning_rate, args.epochs), verbose=0)
    # validation loss suits typeset formulas; on CROHME it rises with overconfidence while ExpRate still improves
    return keras.callbacks.ReduceLROnPlateau(monitor=args.lr_monitor, mode="max" if args.lr_monitor == "val_exprate"
                                             else "min", factor=0.5, patience=4, min_lr=1e-5, verbose=1)


def best_so_far(run, monitor: str = "val_exprate") -> float | None:
    """The best value of ``monitor`` in the run's metrics.csv (so a resumed run keeps its best checkpoint)."""
    try:
        with open(run.metrics_file, newline="") as handle:
            values = [float(row[monitor]) for row in csv.DictReader(handle) if row.get(monitor)]
    except (FileNotFoundError, ValueError, KeyError):
        return None
    return max(values) if values else None


def completed_epochs(run) -> int:
    try:
        with open(run.metrics_file, newline="") as handle:
            return len(list(csv.DictReader(handle)))
    except FileNotFoundError:
        return 0


def export(run, model_path: Path, vocab: Vocabulary, directory, config: dict) -> None:
    import keras

    from mathocr.formula_decode import EXPORT_MARGINS, FormulaRecognizer

    model = keras.saving.load_model(model_path, compile=False)
    kind = config.get("kind", "handwritten")
    recognizer = FormulaRecognizer(model, vocab, config["height"], config["max_width"],
                                   config.get("direction", "l2r"))
    recognizer.margins = EXPORT_MARGINS[kind]
    recognizer.save(directory, {"run": str(run.path), "model": config["model"], "kind": kind})


def export_only(args) -> int:
    """Export an existing run's best checkpoint with the config and vocabulary the run recorded when it
    started (not this command line's defaults), without loading any data."""
    if not args.name:
        raise SystemExit("--export-only needs the --name of an existing run")
    run = runs.Run((Path(args.runs) if args.runs else runs.runs_root()) / "formulas" / args.name)
    config, vocab_file = run.config(), run.path / "vocabulary.json"
    if not config or not vocab_file.exists():
        raise SystemExit(f"{run.path}: not a formula run (no config.json and vocabulary.json)")
    if args.epoch is not None and args.average_epochs:
        raise SystemExit("--epoch and --average-epochs: choose one")
    epochs = [args.epoch] if args.epoch is not None else list(args.average_epochs or ())
    sources = [run.epoch_model(e) for e in epochs] or [run.best_model]
    for epoch, source in zip(epochs or [None], sources):
        if not source.exists():
            raise SystemExit(f"{run.path}: no best checkpoint yet (it is written after the first epoch)"
                             if epoch is None else
                             f"{run.path}: no model of epoch {epoch} (saved only with --keep-epochs; there are "
                             f"{len(list(run.epochs_dir.glob('epoch-*.keras')))})")
    target = args.export or run.model_dir
    vocab = Vocabulary.load(vocab_file)
    if len(sources) == 1:
        export(run, sources[0], vocab, target, config)
        print(f"exported {sources[0]} to {target}")
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        averaged = Path(scratch) / "averaged.keras"
        average_models(sources, averaged)
        export(run, averaged, vocab, target, config)
    print(f"exported the mean of epochs {epochs[0]}-{epochs[-1]}'s weights to {target}")
    return 0


def _epoch_range(text: str) -> range:
    first, _, last = text.partition("-")
    try:
        first, last = int(first), int(last or first)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not FIRST-LAST: {text!r}") from None
    if not 1 <= first <= last:
        raise argparse.ArgumentTypeError(f"not 1 <= FIRST <= LAST: {text!r}")
    return range(first, last + 1)


def average_models(paths: list[Path], target: Path) -> None:
    """Save the first model with every weight (batch-norm statistics too) replaced by its mean over
    the models at ``paths``, which share one architecture: the checkpoints of one run's late epochs,
    averaged in weight space (Izmailov et al. 2018, "Averaging weights leads to wider optima")."""
    import keras

    models = [keras.saving.load_model(p, compile=False) for p in paths]
    weights = [m.get_weights() for m in models]
    first = weights[0]
    models[0].set_weights([np.mean([w[i] for w in weights], axis=0).astype(first[i].dtype)
                           if np.issubdtype(first[i].dtype, np.floating) else first[i] for i in range(len(first))])
    models[0].save(target)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    typeset = args.dataset == "im2latex"
    if typeset and args.pen:
        raise SystemExit("--pen reads what the pen did: only handwritten formulas (InkML) have pen strokes")
    if args.height is None:
        args.height = TYPESET_HEIGHT if typeset else HEIGHT
    if args.max_width is None:
        args.max_width = TYPESET_MAX_WIDTH if typeset else MAX_WIDTH
    if args.max_tokens is None:
        args.max_tokens = 160 if typeset else 120
    import keras

    from mathocr.formula_decode import FormulaRecognizer
    from mathocr.formula_model import (build_formula_model, compile_formula_model, count_mask, model_outputs,
                                       teacher_targets, warm_start)

    start = time.time()
    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(args.seed)
    model_config = FormulaModelConfig(filters=tuple(args.filters), units=args.units, attention_dim=args.attention_dim,
                                      dropout=args.dropout, coverage=not args.no_coverage,
                                      guide_weight=args.guide_weight, blocks=args.blocks,
                                      top_blocks=args.top_blocks, counting=args.counting,
                                      pen_channels=len(PEN_CHANNELS) if args.pen else 0,
                                      encoder_dropout=args.encoder_dropout)
    run_config = {
        "model": model_config.to_dict(), "height": args.height, "max_width": args.max_width,
        "batch_size": args.batch_size, "learning_rate": args.learning_rate, "max_tokens": args.max_tokens,
        "augment": not args.no_augment, "token_dropout": args.token_dropout, "label_smoothing": args.label_smoothing, "augment_strength": args.augment_strength, "elastic": args.elastic, "pen_dropout": args.pen_dropout if args.pen else 0.0, "swap_symbols": args.swap_symbols, "relabel": args.relabel, "concat": args.concat, "stack": args.stack, "script": args.script, "synth": args.synth, "synth_source": args.synth_source, "synth_im2latex": args.synth_im2latex, "pad_margin": args.pad_margin, "direction": args.direction, "lr_schedule": args.lr_schedule, "lr_monitor": args.lr_monitor, "ema": args.ema, "strategy": args.strategy, "seed": args.seed, "fraction": args.fraction,
        "distill_from": args.distill_from, "distill_weight": args.distill_weight if args.distill_from else 0.0,
        "train_dir": args.train_dir, "val_dir": args.val_dir, "test_dir": args.test_dir, "dataset": args.dataset, "also_rendered": args.also_rendered,
        "kind": "typeset" if typeset else "handwritten",
    }
    if args.export_only:
        return export_only(args)
    run = runs.create_run("formulas", run_config, name=args.name, root=args.runs)
    vocab_file = run.path / "vocabulary.json"
    train = load_split("train", args.train_dir, args.data, args)
    if vocab_file.exists():  # a resumed run keeps its vocabulary
        vocab = Vocabulary.load(vocab_file)
    elif args.init_from:  # a warm start keeps the vocabulary its output layer was trained on
        vocab = Vocabulary.load(Path(args.init_from) / FormulaRecognizer.VOCAB_FILE)
        vocab.save(vocab_file)
    else:
        vocab = Vocabulary.from_sequences(f.tokens for f in train)
        vocab.save(vocab_file)
    if not 0 < args.fraction <= 1:
        raise ValueError(f"--fraction must be in (0, 1], not {args.fraction}")
    if args.fraction < 1:  # the vocabulary above still comes from every training formula
        pick = np.random.default_rng(args.seed).permutation(len(train))[: max(1, int(len(train) * args.fraction))]
        train = [train[i] for i in sorted(pick)]
    val = load_split("validation", args.val_dir, args.data, args)[: args.val_limit or None]
    batches = TypesetBatches if typeset else TrainingBatches
    extra = ({"also": args.also_rendered or ()} if typeset
             else {"augment_strength": args.augment_strength, "elastic": args.elastic, "pen": args.pen,
                   "pen_dropout": args.pen_dropout,
                   "swap_symbols": args.swap_symbols,
                   "relabel": args.relabel, "concat": args.concat, "stack": args.stack,
                   "script": args.script, "synth": args.synth,
                   "synth_formulas": synth_formulas(train, vocab, args) if args.synth > 0 else None})
    source = batches(train, vocab, args.batch_size, args.max_tokens, seed=args.seed,
                     augment=not args.no_augment, height=args.height, max_width=args.max_width,
                     token_dropout=args.token_dropout, pad_margin=args.pad_margin,
                     reverse=args.direction == "r2l", **extra)
    val_source = batches(val, vocab, args.batch_size, max_tokens=10_000, seed=0, augment=False,
                         height=args.height, max_width=args.max_width, reverse=args.direction == "r2l",
                         **({} if typeset else {"pen": args.pen}))
    val_arrays = val_source.plain if typeset else plain_images(val, args.height, args.max_width, args.pen)
    steps = args.steps_per_epoch or source.steps_per_epoch()
    print(f"{len(source.formulas)} training formulas ({len(train) - len(source.formulas)} longer than "
          f"{args.max_tokens} tokens left out), {len(val)} validation, vocabulary {len(vocab)}; "
          f"{steps} steps per epoch; data ready in {time.time() - start:.1f} s", flush=True)
    command = "python -m training.formulas " + " ".join(sys.argv[1:] if argv is None else argv)
    run.update_status(command=command, n_train=len(source.formulas), n_val=len(val), vocabulary=len(vocab))
    print(f"run directory: {run.path}\nconfig: {json.dumps(run_config)}", flush=True)

    strategy = runs.make_strategy(args.strategy)
    last = run.path / "last.keras"
    initial_epoch = 0
    with strategy.scope():
        if last.exists() and not run.backup_dir.exists():
            # a run that finished (BackupAndRestore removes its backup then) goes on from its last state
            model = keras.saving.load_model(last)
            initial_epoch = completed_epochs(run)
            print(f"continuing from {last} after epoch {initial_epoch}", flush=True)
        else:
            model = build_formula_model(len(vocab), args.height, model_config, count_mask(vocab.tokens))
            if args.init_from and not run.backup_dir.exists():
                initial = FormulaRecognizer.load(args.init_from).model
                try:
                    added = warm_start(model, initial)
                except ValueError as err:
                    raise SystemExit(f"--init-from {args.init_from}: not the same architecture as this run ({err})")
                print(f"initialised from {args.init_from}"
                      + (f" (new, with no effect at first: {', '.join(added)})" if added else ""), flush=True)
            compile_formula_model(model, args.learning_rate, args.guide_weight, args.ema,
                                  args.label_smoothing, args.counting,
                                  args.distill_weight if args.distill_from else 0.0)
    model.summary(print_fn=lambda line, **_: print(line))
    recognizer = FormulaRecognizer(model, vocab, args.height, args.max_width, args.direction)

    callbacks = runs.training_callbacks(run, monitor="val_exprate", mode="max", patience=args.patience,
                                        steps_per_epoch=steps, epochs=args.epochs, keep_epochs=args.keep_epochs)
    best = best_so_far(run)
    for cb in callbacks:
        if isinstance(cb, keras.callbacks.ModelCheckpoint) and best is not None:
            cb.best = best
    # ExpRate first, so the schedule, the checkpoint and the CSV log (which then has learning_rate) see it
    callbacks[:0] = [exprate_callback(recognizer, val_arrays, [f.tokens for f in val]), learning_rate_callback(args)]
    if args.ema:  # first: the averaged weights are in the model for validation, the callbacks and the checkpoints
        callbacks.insert(0, keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    train_ds, val_ds = source.dataset(), val_source.dataset(repeat=False)
    outputs = len(model_outputs(model))
    if outputs > 1:  # a guided model's first pass learns the same targets; a counting model counts them
        val_ds = val_ds.map(lambda x, y: (x, (y,) * outputs))
        if not args.distill_from:
            train_ds = train_ds.map(lambda x, y: (x, (y,) * outputs))
    if args.distill_from:  # the main output learns the teacher's distributions too; validation is plain
        teacher = FormulaRecognizer.load(args.distill_from)
        if teacher.vocab.tokens != vocab.tokens or teacher.height != args.height:
            raise SystemExit(f"--distill-from {args.distill_from}: the teacher needs this run's vocabulary "
                             f"and input height ({args.height})")
        flip = teacher.direction != args.direction
        print(f"learning from {args.distill_from} ({teacher.direction}), weight {args.distill_weight}", flush=True)

        def taught(x, y):
            first = teacher_targets(teacher.model, x[0], y, vocab.start_id, vocab.end_id, flip)
            return x, ((first, *(y,) * (outputs - 1)) if outputs > 1 else first)

        train_ds = train_ds.map(taught).prefetch(2)
    fit_start = time.time()
    try:
        history = model.fit(train_ds, steps_per_epoch=steps, validation_data=val_ds,
                            epochs=args.epochs, initial_epoch=initial_epoch, callbacks=callbacks,
                            verbose=args.verbose, shuffle=False)  # the batches are shuffled where they are made
    except BaseException as err:
        run.update_status(state="stopped" if isinstance(err, KeyboardInterrupt) else "failed", error=repr(err))
        raise
    fit_seconds = time.time() - fit_start
    epochs_run = len(history.history.get("loss", []))
    samples = epochs_run * steps * args.batch_size

    model.save(last)
    best_path = run.best_model if run.best_model.exists() else last
    export(run, best_path, vocab, run.model_dir, run_config)
    if args.export:
        export(run, best_path, vocab, args.export, run_config)
    result = {"fit_seconds": round(fit_seconds, 1), "epochs_run_this_process": epochs_run,
              "seconds_per_epoch": round(fit_seconds / max(epochs_run, 1), 1),
              "samples_per_second": round(samples / max(fit_seconds, 1e-9), 1),
              "total_seconds": round(time.time() - start, 1)}
    if not args.no_test:
        from mathocr.formulas_cli import evaluate_formulas

        test = load_split("test", args.test_dir, args.data, args)
        if typeset:
            from mathocr.formulas_cli import evaluate_arrays

            recognizer = FormulaRecognizer.load(run.model_dir)
            arrays = [load_array(f.image_path, args.height, args.max_width) for f in test]
            report = evaluate_arrays(recognizer, [f.id for f in test], arrays, [f.tokens for f in test])
        else:
            report = evaluate_formulas(FormulaRecognizer.load(run.model_dir), test)
        result["test"] = report["scores"]
        print(f"test: {json.dumps(report['scores'])}", flush=True)
    runs.write_json_atomic(run.evaluation_file, result)
    run.update_status(state="finished", **{k: v for k, v in result.items() if k != "test"})
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
