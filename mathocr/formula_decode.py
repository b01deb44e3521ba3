"""Decoding a formula model one token at a time: greedy (batched) and beam search, and the
recognizer that the command line and the app share.

The stepped decoder uses the training model's own layers (``query_gru.cell``, ``attention.step``,
``output_gru.cell``...), so training and inference compute the same function; the states of both
GRUs and the coverage are carried from step to step. Both searches are ``tf.function``s with a
``tf.range`` loop that stops when every hypothesis has ended, or at a length limit that grows with
the image's width (a formula cannot have many more tokens than its ink has room for, and the limit
is what ends any loop of repeated tokens that the coverage did not prevent).
"""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image
import tensorflow as tf

from mathocr.data import REPO_ROOT
from mathocr.formula_data import (HEIGHT, MAX_WIDTH, STROKE_WIDTH, WIDTH_STEP, formula_bitmap, formula_input,
                                  pad_batch, pad_tokens, with_channels)
from mathocr.formula_model import ENCODER_STRIDE, ResidualBlock
from mathocr.latex import Vocabulary
from mathocr.render import ink_array

SHIPPED_MODEL_DIR = REPO_ROOT / "models" / "formulas"
MAX_STEPS = 200
# Blank columns added after the ink before a model reads it. Training pads most formulas to a wider
# neighbour in their batch, and the models read a tightly cropped formula worse: on CROHME 2014
# the handwritten model's ExpRate is 18.7 % without a margin and 20.0 % with 64 columns; im2latex
# exact match 36.7 % and 38.7 % (`evaluate formulas --margin N`).
MARGIN = 64
# A recognizer may read each input with several margins (``margins``; config.json "margins") and
# answer with the reading whose tokens are likeliest on average (log-probability per token, the end
# included): the attention is not masked, so the blank columns change what the model reads, and the
# readings disagree on about one formula in five. The shipped handwritten model reads with 64, 128
# and 192 columns (chosen on CROHME 2013): greedy ExpRate 22.5 % -> 24.3 % on validation, 20.0 % ->
# 21.4 % on CROHME 2014. The readings are one batch (``FormulaRecognizer.margins_at_once``): the widest
# padding, each row cut to its own width inside the encoder and the attention (``FormulaDecoder._encode``),
# with the same answers as separate readings; CROHME 2014, greedy, this model alone: 39.5 -> 30.1 ms a
# formula, with its twin 128.3 -> 109.9 ms; beam 5 with its twin 254.8 -> 250.5 ms. A search hands that
# encoding on to the scoring of the pooled candidates (``FormulaRecognizer._search``), which no longer
# encodes again, and each reading re-encodes only the band before its cut (CUT_BAND, below): with the
# twin, greedy 109.9 -> 79.6 ms, beam 5 250.5 -> 206.7 ms; alone, greedy 30.1 -> 24.6 ms; the same answers.
# Models saved without the key read with ``MARGIN``; training exports both kinds with three margins
# (EXPORT_MARGINS). The typeset model read one until session 10, when three cost 120 ms a formula read
# apart; read at once, im2latex test: greedy exact match 38.7 % -> 39.7 %, BLEU-4 0.8872 -> 0.8886,
# 31 -> 54 ms; beam 5 40.6 % -> 42.0 %, 0.8894 -> 0.8902, 55 -> 101 ms (chosen on validation: greedy
# 38.4 % -> 39.9 %).
EXPORT_MARGINS = {"handwritten": (64, 128, 192), "typeset": (64, 128, 192)}
# Length limit: tokens per column of the feature grid (16 pixels), plus a constant. Measured on
# CROHME's training truths: a median of 1.2 tokens per column, but narrow stacked formulas (fractions,
# matrices) reach 17; 4 per column + 40 cuts none of the 8,834 training truths (4 + 16 cut 101) and
# 3 of the 986 CROHME 2014 test truths (one is 204 tokens long).
# Reading within a cut (FormulaDecoder._encode): the last BAND_COLS grid columns before a cut are
# encoded again from the CUT_BAND pixels before it; the rest is the full width's encoding. For the
# encoder of formula_model.build_encoder (3x3 convolutions at strides 1, 2, 4, 4 and 8, four 2x2
# poolings), whose receptive field reaches 34 pixels to the right of a column and 19 to its left:
# a cut changes its last two columns (test_a_reading_cut_to_a_width_is_encoded_as_that_narrower_image_alone
# fails with one), and the crop's left edge its first two. Each residual block (FormulaModelConfig.blocks:
# two 3x3 convolutions at stride 8) reaches 16 pixels further either way, a grid column: an encoder
# with blocks takes BLOCK_COLS more columns from the band for each, and the band is BLOCK_BAND pixels
# wider for each, for those and for the reach of the crop's left edge (``cut_band``; with four blocks,
# the band of none changes the features, as the test shows). A block after the last pooling
# (FormulaModelConfig.top_blocks: two 3x3 convolutions at stride 16) reaches two grid columns either way:
# TOP_COLS more columns from the band, and TOP_BAND more pixels.
CUT_BAND = 128
BAND_COLS = 4
BLOCK_BAND = 32
BLOCK_COLS = 1
TOP_BAND = 64
TOP_COLS = 2


def cut_band(blocks: int, top_blocks: int = 0) -> tuple[int, int]:
    """The pixels re-encoded before a cut and the grid columns taken from them, for an encoder with
    ``blocks`` residual blocks at 1/8 and ``top_blocks`` at 1/16."""
    return (CUT_BAND + BLOCK_BAND * blocks + TOP_BAND * top_blocks,
            BAND_COLS + BLOCK_COLS * blocks + TOP_COLS * top_blocks)
STEPS_PER_COLUMN = 4
STEPS_EXTRA = 40


def max_steps_for(width: int) -> int:
    columns = math.ceil(width / ENCODER_STRIDE)
    return int(min(MAX_STEPS, STEPS_PER_COLUMN * columns + STEPS_EXTRA))


_DECODING_POOL: ThreadPoolExecutor | None = None


def _decoding_pool() -> ThreadPoolExecutor:
    """Threads, shared by every recognizer, that run the second model's search and scoring while
    the calling thread runs the first's (``FormulaRecognizer.concurrent``)."""
    global _DECODING_POOL
    if _DECODING_POOL is None:
        _DECODING_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mathocr-decoding")
    return _DECODING_POOL


class FormulaDecoder:
    """Greedy and beam search over a trained formula model (from ``build_formula_model``)."""

    def __init__(self, model, start_id: int, end_id: int, pad_id: int = 0,
                 braces: tuple[int, int] | None = None):
        self.model = model
        self.start_id, self.end_id, self.pad_id = start_id, end_id, pad_id
        # the ids of "{" and "}": with them a search can keep its groups balanced (see _balanced)
        self.braces = braces
        get = model.get_layer
        self.encoder, self.grid, self.keys_layer = get("encoder"), get("grid"), get("attention_keys")
        residual = [layer.name for layer in self.encoder.layers if isinstance(layer, ResidualBlock)]
        top = sum(name.startswith("top") for name in residual)
        self.cut_band, self.band_cols = cut_band(len(residual) - top, top)
        self.init_query, self.init_output = get("init_query"), get("init_output")
        self.embedding, self.attention = get("embedding"), get("attention")
        self.query_gru, self.output_gru = get("query_gru"), get("output_gru")
        self.query_cell, self.output_cell = self.query_gru.cell, self.output_gru.cell
        self.deep, self.logits_layer = get("deep_output"), get("logits")
        self.vocab_size = int(self.logits_layer.units)
        # a counting model's head and the shift its counts give the logits (``CountingHead``), or None
        names = {layer.name for layer in model.layers}
        self.counting = get("counting") if "counting" in names else None
        self.count_bias = get("count_bias") if "counting" in names else None
        height = int(model.inputs[0].shape[1])
        self.height = height
        self.channels = int(model.inputs[0].shape[-1])  # the ink, and pen channels if it reads them
        image_spec = tf.TensorSpec((None, height, None, self.channels), tf.float32)
        scalar, flag = tf.TensorSpec((), tf.int32), tf.TensorSpec((), tf.bool)
        cols, ids = tf.TensorSpec((None,), tf.int32), tf.TensorSpec((None, None), tf.int32)
        self.greedy_fn = tf.function(lambda images, max_steps, balance: self._greedy(images, max_steps, balance),
                                     input_signature=[image_spec, scalar, flag], reduce_retracing=True)
        self.greedy_within_fn = tf.function(self._greedy, input_signature=[image_spec, scalar, flag, cols, cols],
                                            reduce_retracing=True)
        self.beam_fn = tf.function(lambda image, width, max_steps, balance: self._beam(image, width, max_steps, balance),
                                   input_signature=[image_spec, scalar, scalar, flag], reduce_retracing=True)
        self.beam_within_fn = tf.function(self._beam, input_signature=[image_spec, scalar, scalar, flag, cols, cols],
                                          reduce_retracing=True)
        self.forced_fn = tf.function(lambda image, tokens_in: self._forced(image, tokens_in),
                                     input_signature=[image_spec, ids])
        # The same, in two parts: the readings encoded once (``encode``), then searched and scored
        # from that encoding, so that a search and the scoring after it share the encoder's work.
        spec = tf.TensorSpec
        encoded_spec = (spec((None, None, None, None)), spec((None, None, None)), spec((None, None, None)),
                        spec((None, None)), spec((None, None)), spec((None, None)), spec((None, None)))
        self.encode_within_fn = tf.function(self._encode, input_signature=[image_spec, cols])
        self.greedy_encoded_fn = tf.function(self._greedy_encoded, input_signature=[encoded_spec, scalar, flag, cols],
                                             reduce_retracing=True)
        self.beam_encoded_fn = tf.function(self._beam_encoded, input_signature=[encoded_spec, scalar, scalar, flag, cols],
                                           reduce_retracing=True)
        self.forced_encoded_fn = tf.function(self._forced_encoded, input_signature=[encoded_spec, ids])

    # -- the pieces -------------------------------------------------------------------------
    def _shift(self, features, inside=None):
        """The logits' shift ``(b, vocab)`` from a counting model's predicted counts (zero without
        a counting head)."""
        if self.counting is None:
            return tf.zeros([tf.shape(features)[0], self.vocab_size])
        return self.count_bias.shift(self.counting(features, inside=inside))

    def _encode(self, images, cols=None):
        """The feature grid of ``images``, the decoder's first states (and ``bias``, below), and the
        shift of every step's logits (``_shift``).

        With ``cols (m,)``, reading ``i`` is what the model computes for its input cut to its first
        ``cols[i]`` grid columns (``cols[i] * ENCODER_STRIDE`` pixels), as if that narrower image
        were read alone: after every ReLU the encoder's activations beyond that width are zeroed,
        which is what the next layer's "same" padding gives a narrower image; ``bias`` keeps the
        attention off the cells beyond it, and the first states average the cells within it.
        ``images`` holds ``m`` rows, or ``m / m'`` readings of each of its ``m'`` rows in turn
        (one input read with several margins is its widest padding, cut to each margin's width).
        Widths must be multiples of the pooling (``WIDTH_STEP``) for the cut to be exact. Only the
        few columns before each cut differ from the full width's encoding, and only those are
        encoded again (``CUT_BAND``)."""
        if cols is None:
            features = self.encoder(images, training=False)
            memory = self.grid(features)
            summary = tf.reduce_mean(memory, axis=1)
            return (features, memory, self.keys_layer(memory), self.init_query(summary), self.init_output(summary),
                    None, self._shift(features))
        # Each reading equals its input's full-width encoding except in the last grid columns before
        # its cut, the only ones whose receptive field (19 pixels either side of a column's 16, plus
        # the poolings: 34 to the right) reaches the cut. Those BAND_COLS columns come from the
        # encoder run again on the CUT_BAND pixels before the cut, cut there; the crop's own left edge
        # reaches only its first two columns. So the encoder reads each input once at full width
        # and each reading's BAND pixels, instead of every reading at full width.
        n = tf.shape(images)[0]
        m = tf.shape(cols)[0] // n
        band = self.cut_band
        full = tf.repeat(self.encoder(images, training=False), m, 0)
        rows = tf.repeat(images, m, 0)
        rows = tf.pad(rows, [[0, 0], [0, 0], [0, tf.maximum(band - tf.shape(rows)[2], 0)], [0, 0]])
        pixels = cols * ENCODER_STRIDE
        start = tf.maximum(pixels - band, 0)
        crops = tf.gather(rows, start[:, None] + tf.range(band)[None, :], axis=2, batch_dims=1)
        x, cut = crops, pixels - start

        def inside(x):
            w = tf.shape(x)[2]
            keep = tf.range(w)[None, :] < (cut * w // band)[:, None]
            return tf.cast(keep, x.dtype)[:, None, :, None]

        for layer in self.encoder.layers[1:]:
            if isinstance(layer, ResidualBlock):
                x = layer(x, training=False, inside=inside(x)) * inside(x)
            else:
                x = layer(x, training=False)
            if layer.name.startswith("relu"):
                x = x * inside(x)
        column = tf.range(tf.shape(full)[2])[None, :]
        band_cols = band // ENCODER_STRIDE
        banded = tf.gather(x, tf.clip_by_value(column - (start // ENCODER_STRIDE)[:, None], 0, band_cols - 1),
                           axis=2, batch_dims=1)
        in_band = (column >= cols[:, None] - self.band_cols) & (column < cols[:, None])
        inside = tf.cast(column < cols[:, None], full.dtype)[:, None, :, None]
        x = tf.where(in_band[:, None, :, None], banded, full * inside)
        features = x
        memory = self.grid(features)
        keys = self.keys_layer(memory)
        column = tf.range(tf.shape(memory)[1]) % tf.shape(features)[2]
        valid = tf.cast(column[None, :] < cols[:, None], memory.dtype)  # (m, cells)
        summary = tf.reduce_sum(memory * valid[..., None], 1) / tf.reduce_sum(valid, 1, keepdims=True)
        bias = (1.0 - valid) * -1e9
        within = tf.cast(tf.range(tf.shape(features)[2])[None, :] < cols[:, None], features.dtype)[:, None, :, None]
        return (features, memory, keys, self.init_query(summary), self.init_output(summary), bias,
                self._shift(features, within))

    def _forced(self, image, tokens_in, cols=None):
        """Teacher-forced next-token log-probabilities ``(k, t, vocab)`` of ``k`` decoder inputs
        ``<s> t1 ..`` over one image ``(1, h, w, 1)``, all steps at once as in training; the image
        is encoded once for all ``k``. With ``cols (m,)`` (see ``_encode``): ``(m * k, t, vocab)``,
        the ``k`` inputs as read within each of ``m`` widths, reading after reading."""
        return self._forced_encoded(self._encode(image[:1], cols), tokens_in)

    def _forced_encoded(self, encoded, tokens_in):
        """``_forced`` from ``_encode``'s output (one row per reading)."""
        features, memory, keys, h1, h2, bias, shift = encoded
        m, k = tf.shape(memory)[0], tf.shape(tokens_in)[0]
        states = (features, memory, keys, h1, h2, shift) + (() if bias is None else (bias,))
        features, memory, keys, h1, h2, shift, *bias = (tf.repeat(x, k, 0) for x in states)
        bias = bias[0] if bias else None
        tokens_in = tf.tile(tokens_in, [m, 1])
        embedded = self.embedding(tokens_in)
        queries = self.query_gru(embedded, initial_state=h1, training=False)
        alpha, context = self.attention([queries, keys, memory, features], cell_bias=bias)[:2]
        outputs = self.output_gru(tf.concat([queries, context], -1), initial_state=h2, training=False)
        logits = self.logits_layer(self.deep(tf.concat([outputs, context, embedded], -1)))
        return tf.nn.log_softmax(logits + shift[:, None, :])

    def _step(self, token, h1, h2, coverage, keys, memory, hf, wf, bias=None, shift=None):
        embedded = self.embedding(token)
        query, states = self.query_cell(embedded, [h1], training=False)
        h1 = states[0]
        alpha, alpha1, context = self.attention.step(query, keys, memory, coverage, hf, wf, cell_bias=bias)
        output, states = self.output_cell(tf.concat([query, context], -1), [h2], training=False)
        h2 = states[0]
        logits = self.logits_layer(self.deep(tf.concat([output, context, embedded], -1)))
        if shift is not None:
            logits = logits + shift
        return tf.nn.log_softmax(logits), h1, h2, coverage + alpha1, alpha

    def _balanced(self, logp, depth, balance):
        """``logp`` with the moves that would unbalance the braces ruled out: no "}" without an open
        group, no end while a group is open. ``depth`` counts the open groups of each row. The
        start and padding tokens are never emitted (an undertrained model may favour them)."""
        v = tf.shape(logp)[-1]
        never = tf.equal(tf.range(v), self.pad_id) | tf.equal(tf.range(v), self.start_id)
        logp = tf.where(never[None, :], tf.constant(-1e9, logp.dtype), logp)
        if self.braces is None:
            return logp
        close = tf.equal(tf.range(v), self.braces[1])[None, :] & (depth <= 0)[:, None]
        end = tf.equal(tf.range(v), self.end_id)[None, :] & (depth > 0)[:, None]
        return tf.where(balance & (close | end), tf.constant(-1e9, logp.dtype), logp)

    def _depth_change(self, token):
        if self.braces is None:
            return tf.zeros_like(token)
        return tf.cast(tf.equal(token, self.braces[0]), tf.int32) - tf.cast(tf.equal(token, self.braces[1]), tf.int32)

    def _greedy(self, images, max_steps, balance, cols=None, limits=None):
        """Greedy search of a batch; with ``cols`` (see ``_encode``), of its readings, each stopped
        after its own ``limits`` steps."""
        return self._greedy_encoded(self._encode(images, cols), max_steps, balance, limits)

    def _greedy_encoded(self, encoded, max_steps, balance, limits=None):
        """``_greedy`` from ``_encode``'s output."""
        features, memory, keys, h1, h2, bias, shift = encoded
        b = tf.shape(memory)[0]
        hf, wf = tf.shape(features)[1], tf.shape(features)[2]
        token = tf.fill([b], self.start_id)
        coverage = tf.zeros([b, hf * wf])
        done = tf.zeros([b], tf.bool)
        score = tf.zeros([b])
        depth = tf.zeros([b], tf.int32)
        tokens_ta = tf.TensorArray(tf.int32, size=0, dynamic_size=True)
        alphas_ta = tf.TensorArray(tf.float32, size=0, dynamic_size=True)
        for t in tf.range(max_steps):
            if limits is not None:
                done = done | (t >= limits)
            logp, h1, h2, coverage, alpha = self._step(token, h1, h2, coverage, keys, memory, hf, wf, bias, shift)
            logp = self._balanced(logp, depth, balance)
            best = tf.argmax(logp, axis=-1, output_type=tf.int32)
            best = tf.where(done, self.pad_id, best)
            score += tf.where(done, 0.0, tf.reduce_max(logp, axis=-1))
            tokens_ta = tokens_ta.write(t, best)
            alphas_ta = alphas_ta.write(t, alpha)
            done = done | tf.equal(best, self.end_id)
            depth += self._depth_change(best)
            token = best
            if tf.reduce_all(done):
                break
        return tf.transpose(tokens_ta.stack()), tf.transpose(alphas_ta.stack(), [1, 0, 2]), score, hf, wf

    def _beam(self, image, width, max_steps, balance, cols=None, limits=None):
        """Beam search of one image; with ``cols (m,)`` (see ``_encode``), of ``m`` readings of it at
        once, ``width`` beams each (rows ``r * width ..``), each reading stopped after its own
        ``limits`` steps (its unended beams then add padding)."""
        return self._beam_encoded(self._encode(image[:1], cols), width, max_steps, balance, limits)

    def _beam_encoded(self, encoded, width, max_steps, balance, limits=None):
        """``_beam`` from ``_encode``'s output (one row per reading)."""
        features, memory, keys, h1, h2, bias, shift = encoded
        m = tf.shape(memory)[0]
        hf, wf = tf.shape(features)[1], tf.shape(features)[2]
        memory, keys, shift = tf.repeat(memory, width, 0), tf.repeat(keys, width, 0), tf.repeat(shift, width, 0)
        h1, h2 = tf.repeat(h1, width, 0), tf.repeat(h2, width, 0)
        if bias is not None:
            bias = tf.repeat(bias, width, 0)
        v = self.vocab_size
        # only the first beam of each reading is alive at the start, so the first step picks distinct tokens
        scores = tf.tile(tf.concat([tf.zeros([1]), tf.fill([width - 1], -1e9)], 0), [m])
        first_row = tf.repeat(tf.range(m) * width, width)  # the row of each beam's reading's first beam
        rows = m * width
        token = tf.fill([rows], self.start_id)
        coverage = tf.zeros([rows, hf * wf])
        done = tf.zeros([rows], tf.bool)
        depth = tf.zeros([rows], tf.int32)
        ended_row = tf.where(tf.equal(tf.range(v), self.end_id), 0.0, -1e9)  # an ended beam stays as it is
        padded_row = tf.where(tf.equal(tf.range(v), self.pad_id), 0.0, -1e9)  # one past its reading's limit too
        stopped = tf.zeros([rows], tf.bool)
        tokens_ta = tf.TensorArray(tf.int32, size=0, dynamic_size=True)
        parents_ta = tf.TensorArray(tf.int32, size=0, dynamic_size=True)
        alphas_ta = tf.TensorArray(tf.float32, size=0, dynamic_size=True)
        for t in tf.range(max_steps):
            if limits is not None:
                stopped = tf.repeat(t >= limits, width)
            logp, nh1, nh2, ncov, alpha = self._step(token, h1, h2, coverage, keys, memory, hf, wf, bias, shift)
            logp = tf.where(done[:, None], ended_row[None, :], self._balanced(logp, depth, balance))
            logp = tf.where(stopped[:, None] & ~done[:, None], padded_row[None, :], logp)
            candidates = tf.reshape(scores[:, None] + logp, [m, width * v])
            scores, index = tf.math.top_k(candidates, k=width)
            scores, index = tf.reshape(scores, [-1]), tf.reshape(index, [-1])
            parent, token = index // v + first_row, index % v
            h1, h2 = tf.gather(nh1, parent), tf.gather(nh2, parent)
            coverage = tf.gather(ncov, parent)
            done = tf.gather(done, parent) | tf.equal(token, self.end_id)
            depth = tf.gather(depth, parent) + self._depth_change(token)
            tokens_ta = tokens_ta.write(t, token)
            parents_ta = parents_ta.write(t, parent)
            alphas_ta = alphas_ta.write(t, tf.gather(alpha, parent))
            if tf.reduce_all(done | stopped):
                break
        return tokens_ta.stack(), parents_ta.stack(), alphas_ta.stack(), scores, done, hf, wf

    # -- the searches, numpy in and out ---------------------------------------------------------
    def _length(self, ids: list[int]) -> tuple[int, bool]:
        """How many of a search's tokens are the hypothesis (up to its end token, or up to the padding
        of a reading stopped at its limit), and whether it ended."""
        for n, token in enumerate(ids):
            if token == self.end_id:
                return n, True
            if token == self.pad_id:
                return n, False
        return len(ids), False

    def encode(self, image: np.ndarray, cols: Sequence[int]) -> tuple:
        """The readings of ``image`` within ``cols`` (see ``_encode``), encoded once for a search
        (``greedy``/``beam`` with ``encoded``) and the scoring after it (``forced``)."""
        return tuple(self.encode_within_fn(image.astype(np.float32), np.asarray(cols, np.int32)))

    def forced(self, encoded: tuple, tokens_in: np.ndarray) -> np.ndarray:
        """``_forced``'s log-probabilities ``(m * k, t, vocab)`` of ``k`` decoder inputs in each of
        the ``m`` readings of ``encoded``, reading after reading."""
        return self.forced_encoded_fn(encoded, np.asarray(tokens_in, np.int32)).numpy()

    def greedy(self, images: np.ndarray, max_steps: int | None = None, balance: bool = True,
               cols: Sequence[int] | None = None, limits: Sequence[int] | None = None,
               encoded: tuple | None = None) -> list[dict]:
        """Greedy decoding of a batch ``(b, h, w, 1)``: for each image, ``ids`` (without the end
        token), ``logprob``, ``alphas (len(ids)+1, hf, wf)``, and ``ended`` (False when the length
        limit stopped it). With ``balance`` (and ``braces``) every "}" closes a "{" and every
        group is closed before the end. With ``cols`` (grid columns, one per reading; see
        ``_encode``) each reading attends within its own width, its ``alphas`` are that wide, and it
        stops after its own ``limits`` steps (default: ``max_steps``); ``encoded``: those readings
        as ``encode`` gave them, not encoded again."""
        steps = max_steps or max_steps_for(images.shape[2])
        if cols is None:
            tokens, alphas, scores, hf, wf = self.greedy_fn(images.astype(np.float32), np.int32(steps), bool(balance))
        else:
            limits = np.asarray([steps] * len(cols) if limits is None else limits, np.int32)
            if encoded is None:
                tokens, alphas, scores, hf, wf = self.greedy_within_fn(
                    images.astype(np.float32), np.int32(limits.max()), bool(balance), np.asarray(cols, np.int32), limits)
            else:
                tokens, alphas, scores, hf, wf = self.greedy_encoded_fn(encoded, np.int32(limits.max()), bool(balance),
                                                                        limits)
        tokens, alphas, scores = tokens.numpy(), alphas.numpy(), scores.numpy()
        hf, wf = int(hf), int(wf)
        out = []
        for i in range(len(tokens)):
            n, ended = self._length([int(x) for x in tokens[i]])
            maps = alphas[i, : n + int(ended)].reshape(-1, hf, wf)
            out.append({"ids": [int(x) for x in tokens[i, :n]], "logprob": float(scores[i]), "ended": ended,
                        "alphas": maps if cols is None else maps[:, :, : int(cols[i])]})
        return out

    def beam(self, image: np.ndarray, width: int = 5, max_steps: int | None = None,
             length_penalty: float = 0.0, balance: bool = True, cols: Sequence[int] | None = None,
             limits: Sequence[int] | None = None, encoded: tuple | None = None) -> list:
        """Beam search of one image ``(1, h, w, 1)``: the ``width`` best hypotheses, best first, each
        as in ``greedy``. With ``length_penalty`` > 0 they are ranked by ``logprob / len**penalty``.
        With ``cols`` (and ``limits`` and ``encoded``, as in ``greedy``): one such list for each
        reading, searched at once."""
        steps = max_steps or max_steps_for(image.shape[2])
        if cols is None:
            out = self.beam_fn(image[:1].astype(np.float32), np.int32(width), np.int32(steps), bool(balance))
        else:
            limits = np.asarray([steps] * len(cols) if limits is None else limits, np.int32)
            if encoded is None:
                out = self.beam_within_fn(image[:1].astype(np.float32), np.int32(width), np.int32(limits.max()),
                                          bool(balance), np.asarray(cols, np.int32), limits)
            else:
                out = self.beam_encoded_fn(encoded, np.int32(width), np.int32(limits.max()), bool(balance), limits)
        tokens, parents, alphas, scores, done, hf, wf = out
        tokens, parents, alphas = tokens.numpy(), parents.numpy(), alphas.numpy()
        scores, hf, wf = scores.numpy(), int(hf), int(wf)
        readings = []
        for r in range(1 if cols is None else len(cols)):
            hypotheses = []
            for j in range(r * width, (r + 1) * width):
                ids, alpha_rows, slot = [], [], j
                for t in range(len(tokens) - 1, -1, -1):
                    ids.append(int(tokens[t, slot]))
                    alpha_rows.append(alphas[t, slot])
                    slot = int(parents[t, slot])
                ids.reverse()
                alpha_rows.reverse()
                n, ended = self._length(ids)
                maps = np.stack(alpha_rows[: n + int(ended)]).reshape(-1, hf, wf)
                hypotheses.append({"ids": ids[:n], "logprob": float(scores[j]), "ended": ended,
                                   "alphas": maps if cols is None else maps[:, :, : int(cols[r])]})
            if length_penalty:
                hypotheses.sort(key=lambda h: -h["logprob"] / max(len(h["ids"]) + 1, 1) ** length_penalty)
            readings.append(hypotheses)
        return readings[0] if cols is None else readings


@dataclass
class Candidate:
    latex: str
    tokens: list[str]
    logprob: float

    @property
    def probability(self) -> float:
        return math.exp(self.logprob)


@dataclass
class Recognition:
    """What a recognizer makes of one formula: the best LaTeX, the other candidates, the model's
    input bitmap, and the attention map ``(hf, wf)`` behind every emitted token (the last one is
    the end token's)."""

    latex: str
    tokens: list[str]
    logprob: float
    candidates: list[Candidate]
    image: np.ndarray
    attention: np.ndarray
    ended: bool
    ms: float = 0.0
    extra: dict = field(default_factory=dict)
    # what the pen did ``(h, w, 3)`` as the model read it beside ``image`` (a model that reads pen
    # channels: ``render.pen_channels``, zero for a picture), or None
    pen: np.ndarray | None = None

    @property
    def input(self) -> np.ndarray:
        """The whole input as the model read it: ``image``, with ``pen`` as more channels if any."""
        return self.image if self.pen is None else np.concatenate([self.image[..., None], self.pen], -1)

    @property
    def confidence(self) -> float:
        return math.exp(self.logprob)


class FormulaRecognizer:
    """A trained formula model with its vocabulary: strokes or images in, LaTeX out."""

    MODEL_FILE = "formulas.keras"
    VOCAB_FILE = "vocabulary.json"
    CONFIG_FILE = "config.json"
    RESCORER_DIR = "rescorer"

    DIRECTIONS = ("l2r", "r2l")

    def __init__(self, model, vocab: Vocabulary, height: int = HEIGHT, max_width: int = MAX_WIDTH,
                 direction: str = "l2r"):
        self.model = model
        self.vocab = vocab
        self.height, self.max_width = height, max_width
        if direction not in self.DIRECTIONS:
            raise ValueError(f"a model reads left to right (l2r) or right to left (r2l), not {direction!r}")
        # "r2l": trained on reversed targets (training.formulas --direction r2l); its hypotheses are
        # turned round before anyone sees them, and its groups open with "}"
        self.direction = direction
        braces = (vocab.index["{"], vocab.index["}"]) if "{" in vocab and "}" in vocab else None
        if braces and direction == "r2l":
            braces = braces[::-1]
        self.decoder = FormulaDecoder(model, vocab.start_id, vocab.end_id, vocab.pad_id, braces)
        self.length_limit = True
        self.balance_braces = True  # searches keep "{" and "}" paired (off: to measure what that gains)
        # a model that reads pen channels gets them from strokes (off: zero, as for a picture, to
        # measure what they gain: evaluate formulas --no-pen)
        self.read_pen = True
        self.pen_normalise = True  # handwritten pictures: strokes brought to the training pen (formula_data.normalise_pen)
        self.margins: tuple[int, ...] = (MARGIN,)
        self.kind = "handwritten"  # or "typeset": set by load from config.json
        # A second model (one reading right to left) that searches too and re-ranks: the candidates of
        # both models' searches (all readings, greedy or beam) are pooled, and each is scored by both
        # models (``_rescored``). config.json: "rescore": {"model": SUBFOLDER, "weight": W}. Shipped
        # model, CROHME 2013: greedy 24.3 % -> 28.3 %, beam 5 24.4 % -> 29.7 % (session 7; the first
        # version, which only re-scored this model's beam candidates, gave beam 5 27.7 %).
        self.rescorer: FormulaRecognizer | None = None
        # with a rescorer, the two models search and score in two threads at once
        self.concurrent = True
        # Several margins read at once (greedy search, scoring, batches): the input is encoded once,
        # with the widest margin, and each reading attends within its own width (see
        # FormulaDecoder._encode). Off: each margin is a separate reading of its own padded image.
        self.margins_at_once = True
        self.rescore_weight = 0.0

    @classmethod
    def load(cls, directory: str | Path) -> "FormulaRecognizer":
        import keras

        import mathocr.formula_model  # noqa: F401  (registers the custom layers)

        directory = Path(directory)
        path = directory / cls.MODEL_FILE
        if not path.exists():
            raise FileNotFoundError(f"no formula model at {path}")
        model = keras.models.load_model(path, compile=False)
        vocab = Vocabulary.load(directory / cls.VOCAB_FILE)
        config = json.loads((directory / cls.CONFIG_FILE).read_text()) if (directory / cls.CONFIG_FILE).exists() else {}
        recognizer = cls(model, vocab, config.get("height", HEIGHT), config.get("max_width", MAX_WIDTH),
                         config.get("direction", "l2r"))
        recognizer.kind = config.get("kind", "handwritten")  # or "typeset": what it was trained on
        margins = config.get("margins", [config.get("margin", MARGIN)])  # "margin": models of before margins
        recognizer.margins = tuple(int(m) for m in margins)
        if config.get("rescore"):
            recognizer.rescorer = cls.load(directory / config["rescore"]["model"])
            recognizer.rescore_weight = float(config["rescore"]["weight"])
        return recognizer

    def save(self, directory: str | Path, extra_config: dict | None = None) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save(directory / self.MODEL_FILE)
        self.vocab.save(directory / self.VOCAB_FILE)
        config = {"height": self.height, "max_width": self.max_width, "margins": list(self.margins),
                  "direction": self.direction, **(extra_config or {})}
        if self.rescorer is not None:
            self.rescorer.save(directory / self.RESCORER_DIR)
            config["rescore"] = {"model": self.RESCORER_DIR, "weight": self.rescore_weight}
        (directory / self.CONFIG_FILE).write_text(json.dumps(config, indent=2))

    def step_limit(self, width: int) -> int:
        """How many tokens a search may emit for an input ``width`` pixels wide: the width-based
        limit, or ``MAX_STEPS`` for everything when ``length_limit`` is off (to measure loops)."""
        return max_steps_for(width) if self.length_limit else MAX_STEPS

    def warm_up(self, beam_width: int = 5) -> "FormulaRecognizer":
        """Trace the compiled searches once (a few seconds), so a user's first formula is fast."""
        blank = with_channels(np.zeros((self.height, 64), np.float32), self.channels)
        self.recognize_array(blank, 1)
        self.recognize_array(blank, beam_width)
        return self

    # inputs
    @property
    def channels(self) -> int:
        """Input channels: 1 (the ink), or 4 for a model that also reads what the pen did
        (``render.pen_channels``)."""
        return self.decoder.channels

    def input_from_strokes(self, strokes) -> np.ndarray:
        """``(h, w)``, or ``(h, w, 4)`` with what the pen did for a model that reads it (zero
        without ``read_pen``)."""
        array = formula_input(strokes, self.height, self.max_width, pen=self.channels > 1 and self.read_pen)
        return with_channels(array, self.channels)

    def input_from_image(self, image) -> np.ndarray:
        """``(h, w)``; for a model that reads pen channels ``(h, w, 4)``, those zero (a picture has no strokes)."""
        # handwriting: strokes brought to the pen the model was trained with (typeset: the font's own)
        pen = STROKE_WIDTH if self.kind == "handwritten" and self.pen_normalise else None
        return with_channels(ink_array(formula_bitmap(image, self.height, self.max_width, pen)), self.channels)

    # recognition
    @property
    def margin(self) -> int:
        """The first (or only) margin."""
        return self.margins[0]

    @margin.setter
    def margin(self, value: int) -> None:
        self.margins = (int(value),)

    def _paddings(self, arrays: Sequence[np.ndarray]) -> list[tuple[int, np.ndarray]]:
        """``(margin, batch)``: the batch as read with each margin (margins that round to the same
        width read it once)."""
        batches, widths = [], set()
        for margin in self.margins:
            batch = pad_batch(list(arrays), margin=margin)
            if batch.shape[2] not in widths:
                widths.add(batch.shape[2])
                batches.append((margin, batch))
        return batches

    def _reading_widths(self, width: int) -> list[tuple[int, int]]:
        """``(margin, padded width)`` of each distinct reading of an input ``width`` pixels wide."""
        out, seen = [], set()
        for margin in self.margins:
            padded = int(math.ceil((width + margin) / WIDTH_STEP) * WIDTH_STEP)
            if padded not in seen:
                seen.add(padded)
                out.append((margin, padded))
        return out

    def _at_once(self, array: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]] | None:
        """The input padded to its widest reading and the readings' ``(margin, width)``, when its
        margins are read at once; None when they are not (one margin, or ``margins_at_once`` off)."""
        widths = self._reading_widths(array.shape[1])
        if not self.margins_at_once or len(widths) < 2:
            return None
        widest = max(w for _, w in widths)
        return pad_batch([array], margin=widest - array.shape[1]), widths

    def _in_reading_order(self, hyps: list[dict]) -> list[dict]:
        """A right-to-left model's hypotheses turned round: tokens left to right, each with its
        own attention map (the end token's stays last)."""
        if self.direction == "r2l":
            for h in hyps:
                n = len(h["ids"])
                h["ids"] = h["ids"][::-1]
                h["alphas"] = np.concatenate([h["alphas"][:n][::-1], h["alphas"][n:]])
        return hyps

    @staticmethod
    def per_token(hyp: dict) -> float:
        """A reading's log-probability per token (the end token counted): how readings with
        different margins are compared."""
        return hyp["logprob"] / (len(hyp["ids"]) + 1)

    def _readings(self, array: np.ndarray, beam_width: int) -> list[tuple[list[dict], np.ndarray, int]]:
        """``(hypotheses best first, the input as read, margin)`` for each margin: greedy
        (``beam_width`` 1) or beam search."""
        return self._search(array, beam_width)[0]

    def _search(self, array: np.ndarray, beam_width: int) -> tuple[list[tuple[list[dict], np.ndarray, int]], tuple | None]:
        """``_readings``, and the readings as encoded when they were read at once (``score`` can
        start from them), or None."""
        together = self._at_once(array)
        if together is not None:
            image, widths = together
            cols = [w // ENCODER_STRIDE for _, w in widths]
            limits = [self.step_limit(w) for _, w in widths]
            encoded = self.decoder.encode(image, cols)
            if beam_width <= 1:
                found = [[h] for h in self.decoder.greedy(image, None, self.balance_braces, cols, limits, encoded)]
            else:
                found = self.decoder.beam(image, beam_width, None, balance=self.balance_braces, cols=cols,
                                          limits=limits, encoded=encoded)
            readings = [(self._in_reading_order(hyps), image[:, :, :w], margin) for hyps, (margin, w) in zip(found, widths)]
            return readings, encoded
        readings = []
        for margin, batch in self._paddings([array]):
            if beam_width <= 1:
                hyps = self.decoder.greedy(batch, self.step_limit(batch.shape[2]), self.balance_braces)
            else:
                hyps = self.decoder.beam(batch, beam_width, self.step_limit(batch.shape[2]),
                                         balance=self.balance_braces)
            readings.append((self._in_reading_order(hyps), batch, margin))
        return readings, None

    def recognize_array(self, array: np.ndarray, beam_width: int = 1) -> Recognition:
        start = time.perf_counter()
        if self.rescoring:
            their_array = self.rescorer.at_height(array)
            theirs = self._alongside(self.rescorer._search, their_array, beam_width)
            readings, encoded = self._search(array, beam_width)
            hyps, batch, margin = self._rescored(array, (readings, encoded), theirs.result(), their_array)
        else:  # with several margins: the reading whose best hypothesis is likeliest per token
            readings = self._readings(array, beam_width)
            hyps, batch, margin = max(readings, key=lambda r: self.per_token(r[0][0]))
        ms = (time.perf_counter() - start) * 1000
        candidates = []
        for h in hyps:
            tokens = self.vocab.decode(h["ids"])
            candidates.append(Candidate(" ".join(tokens), tokens, h["logprob"]))
        best = hyps[0]
        # the image as the model read it (with its margin), so attention maps lie over it cell for cell
        # per_token: this model's surest reading on its own, per token (what formula_kind.settle compares
        # across models; with a rescorer the answer may be one this model alone finds less likely)
        alone = max(self.per_token(r[0][0]) for r in readings)
        extra = {"margin": margin, "per_token": alone, "readings": len(readings)}
        if "rescored" in best:  # the combined score, the direction of the model that re-ranked, who found it
            # agreements: (this model's, the rescorer's) for every candidate, so that other weights can
            # rank the same candidates (evaluate formulas --rescore-weights)
            extra.update(rescored=best["rescored"], rescorer=self.rescorer.direction, found_by=best["found_by"],
                         agreements=[h["agreements"] for h in hyps])
        return Recognition(candidates[0].latex, candidates[0].tokens, best["logprob"], candidates,
                           batch[0, :, :, 0], best["alphas"], best["ended"], ms, extra,
                           batch[0, :, :, 1:] if batch.shape[-1] > 1 else None)

    @property
    def rescoring(self) -> bool:
        return self.rescorer is not None and self.rescore_weight > 0

    @staticmethod
    def agreement(scores: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """How much a model agrees with each candidate, from ``score``'s ``(readings, candidates)``
        log-probabilities: the mean of the best reading's and the average reading's log-probability
        per token (the end token counted). Chosen on CROHME 2013 among the best, the average, their
        sum, and a linear re-ranker fitted on such features (cross-validated, no better)."""
        return (scores.max(axis=0) + scores.mean(axis=0)) / (2 * lengths)

    def _alongside(self, fn, *args) -> Future:
        """``fn(*args)`` in the decoding thread while this thread goes on (``concurrent``), or here and
        now. A search's small steps leave a core idle, so two models' searches side by side take less
        than one after the other: on CROHME 2014 on the 2-core CPU, greedy decoding with both models
        154 -> 128 ms a formula, beam 5 297 -> 255 ms, the same answers."""
        if not self.concurrent:
            done: Future = Future()
            done.set_result(fn(*args))
            return done
        return _decoding_pool().submit(fn, *args)

    def at_height(self, array: np.ndarray) -> np.ndarray:
        """An input of another model (a rescorer trained at another height, or with other channels)
        as this model reads it: scaled to its input height, the width in proportion, with its channels
        (``formula_data.with_channels``); unchanged when both agree."""
        if (array.shape[2] if array.ndim == 3 else 1) != self.channels:
            array = with_channels(array, self.channels)
        if array.shape[0] == self.height:
            return array
        width = max(1, round(array.shape[1] * self.height / array.shape[0]))
        planes = [array] if array.ndim == 2 else [array[..., k] for k in range(array.shape[2])]
        scaled = [np.asarray(Image.fromarray(np.asarray(a, np.float32), mode="F").resize((width, self.height),
                                                                                          Image.BILINEAR), np.float32)
                  for a in planes]
        if array.ndim == 2:
            return np.clip(scaled[0], 0.0, 1.0)
        return np.stack([np.clip(scaled[0], 0.0, 1.0)] + [np.clip(a, -1.0, 1.0) for a in scaled[1:]], -1)

    def _rescored(self, array: np.ndarray, searched: tuple, their_searched: tuple,
                  their_array: np.ndarray | None = None) -> tuple[list[dict], np.ndarray, int]:
        """Both models' candidates, ranked: the hypotheses of this model's readings (``searched``:
        ``_search``'s readings (hypotheses, batch, margin) and encoding) and of the rescorer's
        (``their_searched``), each once, scored
        ``agreement(this model) + rescore_weight * agreement(rescorer)``. Each gets that score as
        ``rescored``, this model's best teacher-forced log-probability as ``logprob``, and the
        direction of the model whose search found it as ``found_by``. Returns them with the batch
        and margin of the reading that found the best. ``their_array``: the input at the rescorer's
        height (default: ``array``)."""
        their_array = array if their_array is None else their_array
        (readings, encoded), (their_readings, their_encoded) = searched, their_searched
        found: dict[tuple, tuple[dict, np.ndarray, int, FormulaRecognizer]] = {}
        for model, model_readings in ((self, readings), (self.rescorer, their_readings)):
            for hyps, batch, margin in model_readings:
                for h in hyps:
                    key = tuple(int(i) for i in h["ids"])
                    if key not in found or (model is self and found[key][3] is self
                                            and self.per_token(h) > self.per_token(found[key][0])):
                        found[key] = (h, batch, margin, model)
        keys = list(found)
        lengths = np.array([len(k) + 1 for k in keys], np.float32)
        theirs = self._alongside(self.rescorer.score, their_array, keys, their_encoded)
        own = self.score(array, keys, encoded)
        own_agreement, their_agreement = self.agreement(own, lengths), self.agreement(theirs.result(), lengths)
        combined = own_agreement + self.rescore_weight * their_agreement
        scored = []
        for key, total, value, mine, other in zip(keys, own.max(axis=0), combined, own_agreement, their_agreement):
            h, batch, margin, finder = found[key]
            scored.append(({**h, "logprob": float(total), "rescored": float(value), "found_by": finder.direction,
                            "agreements": (float(mine), float(other))}, batch, margin))
        scored.sort(key=lambda item: -item[0]["rescored"])
        return [h for h, _, _ in scored], scored[0][1], scored[0][2]

    def recognize_strokes(self, strokes, beam_width: int = 1) -> Recognition:
        return self.recognize_array(self.input_from_strokes(strokes), beam_width)

    def recognize_image(self, image, beam_width: int = 1) -> Recognition:
        return self.recognize_array(self.input_from_image(image), beam_width)

    def recognize_batch(self, arrays: Sequence[np.ndarray]) -> list[dict]:
        """Greedy hypotheses (see ``FormulaDecoder.greedy``) for inputs decoded together; with
        several margins, each input's likeliest reading per token. With ``margins_at_once``, each
        input is read within its own width plus each margin, as if it were alone; otherwise
        within the batch's widest input plus each margin."""
        if self.margins_at_once:
            m = len(self.margins)
            batch = pad_batch(list(arrays), margin=max(self.margins))
            cols = [int(math.ceil((a.shape[1] + margin) / WIDTH_STEP) * WIDTH_STEP) // ENCODER_STRIDE
                    for a in arrays for margin in self.margins]
            limits = [self.step_limit(c * ENCODER_STRIDE) for c in cols]
            hyps = self._in_reading_order(self.decoder.greedy(batch, None, self.balance_braces, cols, limits))
            return [max(hyps[i * m:(i + 1) * m], key=self.per_token) for i in range(len(arrays))]
        readings = [self._in_reading_order(self.decoder.greedy(batch, self.step_limit(batch.shape[2]),
                                                               self.balance_braces))
                    for _, batch in self._paddings(arrays)]
        return [max((hyps[i] for hyps in readings), key=self.per_token) for i in range(len(arrays))]

    def recognize_many(self, arrays: Sequence[np.ndarray], batch_size: int = 32, progress=None) -> list[dict]:
        """Greedy hypotheses for many inputs, batched by width (the order of ``arrays`` is kept);
        each also has ``tokens``."""
        order = sorted(range(len(arrays)), key=lambda i: arrays[i].shape[1])
        out: list[dict | None] = [None] * len(arrays)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            for i, hyp in zip(chunk, self.recognize_batch([arrays[i] for i in chunk])):
                hyp["tokens"] = self.vocab.decode(hyp["ids"])
                out[i] = hyp
            if progress is not None:
                progress(min(start + batch_size, len(order)), len(order))
        return out

    def score(self, array: np.ndarray, sequences: Sequence[Sequence[int]], encoded: tuple | None = None) -> np.ndarray:
        """How likely this model finds each of ``sequences`` (token ids, left to right, whatever the
        model's direction) for one input: ``(readings, len(sequences))``, the total log-probability
        of each sequence with its end token, teacher-forced, as read with each of the margins.
        ``encoded``: the input's readings as ``_search`` encoded them, not encoded again."""
        if not sequences:
            return np.zeros((len(self._paddings([array])), 0), np.float32)
        if self.direction == "r2l":
            sequences = [list(seq)[::-1] for seq in sequences]
        tokens_in, targets = pad_tokens(sequences, self.vocab)
        together = self._at_once(array)
        if together is not None:
            image, widths = together
            if encoded is None:
                encoded = self.decoder.encode(image, [w // ENCODER_STRIDE for _, w in widths])
            logp = self.decoder.forced(encoded, tokens_in)
            picked = np.take_along_axis(logp.reshape(len(widths), *targets.shape, -1), targets[None, ..., None], -1)
            return ((picked[..., 0] * (targets != self.vocab.pad_id)).sum(2)).astype(np.float32)
        out = []
        for _, batch in self._paddings([array]):
            logp = self.decoder.forced_fn(batch, tokens_in).numpy()
            picked = np.take_along_axis(logp, targets[..., None], -1)[..., 0]
            out.append((picked * (targets != self.vocab.pad_id)).sum(1))
        return np.array(out, np.float32)

    def feature_layers(self) -> list[str]:
        """The encoder layers whose activations ``feature_maps`` shows, input side first: each
        convolution's ReLU (``relu1`` .. ``relu5``), then the residual blocks (``res1`` .., at 1/8;
        ``top1`` .., at 1/16), if any; the last is the grid the attention weighs (before its pooling,
        unless it is a ``top`` block)."""
        return [layer.name for layer in self.model.get_layer("encoder").layers
                if layer.name.startswith("relu") or isinstance(layer, ResidualBlock)]

    def feature_maps(self, array: np.ndarray, layer: str) -> np.ndarray:
        """The activations ``(h, w, channels)`` of one encoder layer (``conv1`` .. ``conv5``,
        ``relu1``...) for one input (``Recognition.input``; the ink alone reaches a model of pen
        channels with them zero)."""
        import keras

        encoder = self.model.get_layer("encoder")
        probe = keras.Model(encoder.input, encoder.get_layer(layer).output)
        return np.asarray(probe(pad_batch([with_channels(array, self.channels)]), training=False))[0]
