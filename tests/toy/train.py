"""A training command of the same shape as training/symbols.py, small enough to follow in a test:
a real Keras model, the real run directory and callbacks (BackupAndRestore included), a pause per
epoch so a test can stop or kill it mid-way."""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--pause", type=float, default=0.0)
    parser.add_argument("--name")
    parser.add_argument("--runs")
    args = parser.parse_args()

    import keras
    import numpy as np

    from mathocr import runs

    run = runs.create_run("toy", vars(args), name=args.name, root=args.runs)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.SGD(args.learning_rate), "sparse_categorical_crossentropy")
    pause = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: time.sleep(args.pause))
    model.fit(x, y, validation_data=(x, y), epochs=args.epochs, batch_size=16, verbose=2,
              callbacks=runs.training_callbacks(run, epochs=args.epochs, steps_per_epoch=4) + [pause])
    run.model_dir.mkdir(exist_ok=True)
    model.save(run.model_dir / "model.keras")
    run.update_status(state="finished")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
