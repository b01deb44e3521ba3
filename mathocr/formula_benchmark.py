"""Timing the formula model: training throughput beside the straightforward design, and latency.

The *baseline* is the design the issue starts from: the same encoder, then Bahdanau attention
queried by the GRU's previous state and a GRU cell stepped once per target token in a traced
``tf.range`` loop (the state carried, so it is the corrected version of that design). The
recognizer's model computes the same kind of attention but trains parallel over time.
"""

from __future__ import annotations

import time

import numpy as np

from mathocr.formula_data import HEIGHT


def _synthetic_batch(batch_size: int, width: int, tokens: int, vocab_size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = (rng.random((batch_size, HEIGHT, width, 1)) > 0.9).astype("float32")
    ids = rng.integers(4, vocab_size, (batch_size, tokens)).astype("int32")
    return images, ids


def _baseline_train_step(vocab_size: int, units: int = 256, attention_dim: int = 192):
    """A compiled training step of the straightforward design, and its model's parameter count."""
    import keras
    import tensorflow as tf

    from mathocr.formula_model import build_encoder

    encoder = build_encoder(HEIGHT)
    keys_layer = keras.layers.Dense(attention_dim)
    query_layer = keras.layers.Dense(attention_dim, use_bias=False)
    score_layer = keras.layers.Dense(1, use_bias=False)
    init = keras.layers.Dense(units, activation="tanh")
    embedding = keras.layers.Embedding(vocab_size, 128)
    cell = keras.layers.GRUCell(units)
    out_layer = keras.layers.Dense(vocab_size)
    optimizer = keras.optimizers.Adam(1e-3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
    parts = [encoder, keys_layer, query_layer, score_layer, init, embedding, cell, out_layer]

    @tf.function(reduce_retracing=True)
    def step(images, tokens_in, targets):
        with tf.GradientTape() as tape:
            features = encoder(images, training=True)
            b = tf.shape(features)[0]
            memory = tf.reshape(features, [b, -1, features.shape[-1]])
            keys = keys_layer(memory)
            h = init(tf.reduce_mean(memory, 1))
            logits_ta = tf.TensorArray(tf.float32, size=tf.shape(tokens_in)[1])
            for t in tf.range(tf.shape(tokens_in)[1]):
                query = query_layer(h)[:, None, :]
                alpha = tf.nn.softmax(tf.squeeze(score_layer(tf.tanh(query + keys)), -1), -1)
                context = tf.reduce_sum(alpha[:, :, None] * memory, 1)
                output, states = cell(tf.concat([embedding(tokens_in[:, t]), context], -1), [h], training=True)
                h = states[0]  # the state carried to the next step
                logits_ta = logits_ta.write(t, out_layer(tf.concat([output, context], -1)))
            logits = tf.transpose(logits_ta.stack(), [1, 0, 2])
            loss = loss_fn(targets, logits)
        variables = [v for p in parts for v in p.trainable_variables]
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return step, parts


def _time_steps(run_step, steps: int) -> float:
    run_step()  # trace
    run_step()
    start = time.perf_counter()
    for _ in range(steps):
        run_step()
    return time.perf_counter() - start


def benchmark_training(batch_size: int = 32, steps: int = 8, width: int = 256, tokens: int = 40,
                       vocab_size: int = 111, baseline: bool = False) -> dict:
    """Training samples per second on synthetic batches of one shape."""
    from mathocr.formula_model import build_formula_model, compile_formula_model

    images, ids = _synthetic_batch(batch_size, width, tokens, vocab_size)
    model = compile_formula_model(build_formula_model(vocab_size))
    seconds = _time_steps(lambda: model.train_on_batch([images, ids], ids), steps)
    out = {"input": f"{batch_size} x {HEIGHT} x {width}, {tokens} tokens", "parameters": int(model.count_params()),
           "samples_per_second": round(batch_size * steps / seconds, 1),
           "seconds_per_step": round(seconds / steps, 3)}
    if baseline:
        step, _ = _baseline_train_step(vocab_size)
        seconds = _time_steps(lambda: step(images, ids, ids), steps)
        out["baseline_samples_per_second"] = round(batch_size * steps / seconds, 1)
        out["baseline_seconds_per_step"] = round(seconds / steps, 3)
        out["speedup"] = round(out["samples_per_second"] / out["baseline_samples_per_second"], 2)
    return out


def benchmark_inference(recognizer, beam_width: int = 5, repeats: int = 20, data: str | None = None) -> dict:
    """Milliseconds per formula, greedy and beam, one formula at a time (CROHME 2014 test formulas
    when the data is there, else synthetic scribbles), after a warm-up call."""
    arrays = []
    try:
        from mathocr.formula_data import load_crohme_formulas

        arrays = [recognizer.input_from_strokes(f.strokes) for f in load_crohme_formulas("test", data)[:repeats]]
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        for _ in range(repeats):
            strokes = [np.cumsum(rng.normal(0, 3, (20, 2)), 0) + [30 * k, 0] for k in range(6)]
            arrays.append(recognizer.input_from_strokes(strokes))
    out = {"formulas": len(arrays), "mean_width": round(float(np.mean([a.shape[1] for a in arrays])), 1)}
    weight = recognizer.rescore_weight
    # with a twin that searches and ranks too (config.json "rescore"): also this model alone
    settings = [("", weight)] + ([("_alone", 0.0)] if recognizer.rescoring else [])
    try:
        for suffix, recognizer.rescore_weight in settings:
            for name, width in (("greedy", 1), (f"beam{beam_width}", beam_width)):
                recognizer.recognize_array(arrays[0], width)
                times = []
                for array in arrays:
                    start = time.perf_counter()
                    recognizer.recognize_array(array, width)
                    times.append((time.perf_counter() - start) * 1000)
                out[f"{name}{suffix}_ms_mean"] = round(float(np.mean(times)), 1)
                out[f"{name}{suffix}_ms_p90"] = round(float(np.percentile(times, 90)), 1)
    finally:
        recognizer.rescore_weight = weight
    return out
