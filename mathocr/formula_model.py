"""The formula recognizer: a CNN encoder, Bahdanau (additive) attention with coverage, GRU decoders.

Training is parallel over time (teacher forcing), which is what makes it fast on a CPU:

1. ``query_gru`` runs over the target tokens ``<s> t1 .. t(n-1)`` (its state carried from step to
   step) and gives one attention query per step.
2. ``attention`` scores every query against every cell of the encoder's feature grid, twice: a
   first pass without coverage gives weights ``a1``; their exclusive running sum over time is the
   *coverage* (how much each place has been looked at before this step); a second pass adds a
   feature of the coverage map to the scores and gives the weights ``a`` that make the context.
   Because the coverage comes from the first pass, it is a cumulative sum that needs no loop, and
   the stepped decoder at inference computes exactly the same thing.
3. ``output_gru`` runs over ``[query; context]`` (state carried), and a deep output layer over
   ``[output; context; token embedding]`` gives the next token's logits.

At inference the same layers are stepped one token at a time with their states carried
(``formula_decode``). ``build_formula_model`` returns a functional ``keras.Model`` with named
layers (``conv1`` .. ``conv5`` for the feature-map viewer, ``attention`` for the attention
viewer); only the two custom layers below need registering to load a saved ``.keras`` file.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import keras
import numpy as np
from keras import layers, ops


@dataclass
class FormulaModelConfig:
    filters: tuple[int, ...] = (24, 48, 96, 128, 160)
    embed_dim: int = 128
    units: int = 256
    attention_dim: int = 192
    position_dim: int = 32
    coverage: bool = True
    coverage_filters: int = 16
    dropout: float = 0.2
    # Weight of a second loss on the first attention pass's own prediction of the next token (0: none).
    # Without it the first pass is trained only through the coverage it feeds, and may stay vague.
    guide_weight: float = 0.0
    # Residual blocks at the end of the encoder (``ResidualBlock``: two 3x3 convolutions of the last
    # width, at 1/8 of the input). Each starts as the identity, so a model with more blocks can be
    # warm-started from one with fewer (``warm_start``) and first computes exactly what it did.
    blocks: int = 0
    # Residual blocks after the last pooling (``top1`` ..), at 1/16 of the input, on the grid the
    # attention reads: each widens what a grid cell sees by two cells either way (a quarter of the cost
    # of a block at 1/8), so that a cell can compare its symbol with its neighbours' (their size: s or
    # S, x or X). Identity at first, as ``blocks``.
    top_blocks: int = 0
    # Weight of a symbol-counting loss (0: no counting head). With it a small head on the encoder's
    # grid (``CountingHead``) predicts how often each token occurs in the formula, weakly supervised
    # by the counts in its truth, and those counts bias every step's logits (``CountBias``), as in
    # CAN (Li et al., "Counting-Aware Network", ECCV 2022). The bias starts at zero, so a model
    # warm-started from one without the head first computes exactly what that one did.
    counting: float = 0.0
    # Input channels beside the ink: 3 reads what the pen did too (``render.pen_channels``: its
    # direction and where strokes begin and end), which only pen strokes have (InkML, the canvas);
    # pictures reach such a model with those channels zero. ``warm_start`` from a model of the ink
    # alone gives the first convolution zero weights on them, so it first computes what that one did.
    pen_channels: int = 0
    # Spatial dropout in the encoder (whole feature maps dropped in training) after its third to fifth
    # convolutions and each residual block: against features that memorise the training writers' ink
    # (the model reads its own training formulas at 75 %, new writers' at 37 %). No weights, so a
    # warm start from a model without it first computes what that one did.
    encoder_dropout: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["filters"] = list(self.filters)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FormulaModelConfig":
        d = dict(d)
        if "filters" in d:
            d["filters"] = tuple(d["filters"])
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


ENCODER_STRIDE = 16  # width in pixels of one column of the feature grid


def _sinusoid(positions, dim: int):
    """Sinusoidal codes of integer positions ``(n,)`` as ``(n, dim)``."""
    half = dim // 2
    freqs = ops.exp(ops.arange(half, dtype="float32") * (-math.log(1000.0) / max(half - 1, 1)))
    angles = ops.cast(positions, "float32")[:, None] * freqs[None, :]
    return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)


@keras.saving.register_keras_serializable(package="mathocr")
class FeatureGrid(layers.Layer):
    """The encoder's feature map ``(b, h, w, c)`` as a sequence of grid cells ``(b, h*w, c + p)``,
    each with a sinusoidal code of its row and column appended (attention alone has no sense of
    place, and reading order is left to right)."""

    def __init__(self, position_dim: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.position_dim = position_dim

    def call(self, features):
        shape = ops.shape(features)
        b, h, w = shape[0], shape[1], shape[2]
        col = _sinusoid(ops.arange(w), self.position_dim // 2)
        row = _sinusoid(ops.arange(h), self.position_dim // 2)
        col = ops.broadcast_to(col[None, :, :], (h, w, ops.shape(col)[-1]))
        row = ops.broadcast_to(row[:, None, :], (h, w, ops.shape(row)[-1]))
        pos = ops.concatenate([row, col], axis=-1)
        pos = ops.broadcast_to(pos[None], (b, h, w, ops.shape(pos)[-1]))
        grid = ops.concatenate([features, ops.cast(pos, features.dtype)], axis=-1)
        return ops.reshape(grid, (b, h * w, ops.shape(grid)[-1]))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None, input_shape[-1] + 2 * (self.position_dim // 2))

    def get_config(self):
        return {**super().get_config(), "position_dim": self.position_dim}


@keras.saving.register_keras_serializable(package="mathocr")
class CoverageAttention(layers.Layer):
    """Bahdanau (additive) attention of decoder queries over grid cells, with coverage.

    ``call([queries (b,t,u), keys (b,n,a), memory (b,n,c), features (b,h,w,c)])`` returns
    ``(alpha (b,t,n), context (b,t,c))`` for all steps at once; ``step`` does one step for the
    stepped decoder and also returns the first-pass weights that feed the coverage.
    """

    def __init__(self, attention_dim: int = 192, coverage: bool = True, coverage_filters: int = 16,
                 first_pass_context: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.attention_dim = attention_dim
        self.coverage = coverage
        self.coverage_filters = coverage_filters
        self.first_pass_context = first_pass_context  # also return the first pass's context (for its own loss)

    def build(self, input_shape):
        q_dim = input_shape[0][-1]
        a = self.attention_dim
        self.query1 = self.add_weight(name="query1", shape=(q_dim, a), initializer="glorot_uniform")
        self.score1 = self.add_weight(name="score1", shape=(a,), initializer="glorot_uniform")
        if self.coverage:
            self.query2 = self.add_weight(name="query2", shape=(q_dim, a), initializer="glorot_uniform")
            self.score2 = self.add_weight(name="score2", shape=(a,), initializer="glorot_uniform")
            self.cov_kernel = self.add_weight(name="coverage_kernel", shape=(3, 5, 1, self.coverage_filters),
                                              initializer="glorot_uniform")
            self.cov_proj = self.add_weight(name="coverage_projection", shape=(self.coverage_filters + 1, a),
                                            initializer="glorot_uniform")

    @staticmethod
    def _weights(queries, keys, kernel, score, extra=None, bias=None):
        # queries (..., a) broadcast against keys (b, [t,] n, a); bias (b, [1,] n) is added to the scores
        energy = ops.expand_dims(ops.matmul(queries, kernel), -2) + keys
        if extra is not None:
            energy = energy + extra
        scores = ops.tensordot(ops.tanh(energy), score, axes=1)
        if bias is not None:
            scores = scores + bias
        return ops.softmax(scores, axis=-1)

    def _coverage_features(self, coverage, h, w):
        """``coverage (m, n)`` -> ``(m, n, a)``: a small convolution over the coverage map."""
        m = ops.shape(coverage)[0]
        grid = ops.reshape(coverage, (m, h, w, 1))
        conv = ops.conv(grid, self.cov_kernel, padding="same")
        feats = ops.concatenate([grid, conv], axis=-1)
        return ops.matmul(ops.reshape(feats, (m, h * w, self.coverage_filters + 1)), self.cov_proj)

    def call(self, inputs, cell_bias=None):
        """``cell_bias (b, n)``, if given, is added to every step's scores: a large negative value
        keeps the attention off a cell (the columns beyond a reading's own width)."""
        queries, keys, memory, features = inputs
        keys_t = ops.expand_dims(keys, 1)  # (b, 1, n, a)
        bias = None if cell_bias is None else ops.expand_dims(cell_bias, 1)
        alpha1 = self._weights(queries, keys_t, self.query1, self.score1, bias=bias)
        if not self.coverage:
            return alpha1, ops.matmul(alpha1, memory)
        shape = ops.shape(features)
        b, h, w = shape[0], shape[1], shape[2]
        t, n = ops.shape(alpha1)[1], ops.shape(alpha1)[2]
        coverage = ops.cumsum(alpha1, axis=1) - alpha1  # what earlier steps looked at
        cov = self._coverage_features(ops.reshape(coverage, (b * t, n)), h, w)
        cov = ops.reshape(cov, (b, t, n, self.attention_dim))
        alpha = self._weights(queries, keys_t, self.query2, self.score2, cov, bias)
        if self.first_pass_context:
            return alpha, ops.matmul(alpha, memory), ops.matmul(alpha1, memory)
        return alpha, ops.matmul(alpha, memory)

    def step(self, query, keys, memory, coverage, h, w, cell_bias=None):
        """One decoding step: ``query (b,u)``, ``coverage (b,n)`` -> ``alpha, alpha1, context``."""
        alpha1 = self._weights(query, keys, self.query1, self.score1, bias=cell_bias)
        if not self.coverage:
            return alpha1, alpha1, ops.squeeze(ops.matmul(alpha1[:, None, :], memory), 1)
        cov = self._coverage_features(coverage, h, w)
        alpha = self._weights(query, keys, self.query2, self.score2, cov, cell_bias)
        return alpha, alpha1, ops.squeeze(ops.matmul(alpha[:, None, :], memory), 1)

    def compute_output_shape(self, input_shape):
        q, _, mem, _ = input_shape
        shapes = ((q[0], q[1], mem[1]), (q[0], q[1], mem[-1]))
        return shapes + ((q[0], q[1], mem[-1]),) if self.first_pass_context else shapes

    def get_config(self):
        return {**super().get_config(), "attention_dim": self.attention_dim, "coverage": self.coverage,
                "coverage_filters": self.coverage_filters, "first_pass_context": self.first_pass_context}


@keras.saving.register_keras_serializable(package="mathocr")
class ResidualBlock(layers.Layer):
    """``relu(x + bn_b(conv_b(relu(bn_a(conv_a(x))))))``: two 3x3 convolutions with a shortcut, as in
    ResNet. ``bn_b``'s scale starts at zero, so a new block is the identity on the (non-negative)
    activations of the ReLU before it: added to a trained encoder, it changes nothing until
    training moves it. ``inside`` (``(b, 1, w, 1)``, optional) zeroes the inner activations beyond a
    cut, as the encoder's own ReLUs are zeroed there when a reading is cut to a width."""

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.conv_a = layers.Conv2D(self.filters, 3, padding="same", use_bias=False, name="conv_a")
        self.bn_a = layers.BatchNormalization(name="bn_a")
        self.conv_b = layers.Conv2D(self.filters, 3, padding="same", use_bias=False, name="conv_b")
        self.bn_b = layers.BatchNormalization(gamma_initializer="zeros", name="bn_b")

    def build(self, input_shape):
        if input_shape[-1] != self.filters:
            raise ValueError(f"a residual block of {self.filters} filters on {input_shape[-1]} channels")
        inner = (*input_shape[:-1], self.filters)
        self.conv_a.build(input_shape)
        self.bn_a.build(inner)
        self.conv_b.build(inner)
        self.bn_b.build(inner)
        super().build(input_shape)

    def call(self, x, training=None, inside=None):
        y = ops.relu(self.bn_a(self.conv_a(x), training=training))
        if inside is not None:
            y = y * ops.cast(inside, y.dtype)
        y = self.bn_b(self.conv_b(y), training=training)
        return ops.relu(x + y)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


# Tokens that are not counted: the vocabulary's specials (padding, start, end, unknown) and the
# braces, which delimit groups rather than mark ink. ``count_mask`` turns them into a mask.
UNCOUNTED = ("<pad>", "<s>", "</s>", "<unk>", "{", "}")


@keras.saving.register_keras_serializable(package="mathocr")
class CountingHead(layers.Layer):
    """A density map of each token over the encoder's grid, summed: ``(b, h, w, c)`` -> ``(b, vocab)``,
    how many times each token's symbol appears (a 3x3 convolution, then a 1x1 one with a sigmoid per
    token and cell). ``inside`` ``(b, 1, w, 1)`` (optional) leaves out the cells beyond a reading's
    cut. ``mask`` (``vocab``,) is 1 for the tokens that are counted; the others always count 0."""

    # The head learns this many times faster than the rest of a warm-started model: its convolutions'
    # outputs are multiplied by it (and their weights start that many times smaller), so that each
    # optimizer step, about the same size for every weight with Adam, moves them that much further.
    # At the learning rate of a warm start (3e-4) the head otherwise barely counts after an epoch.
    RATE = 10.0

    def __init__(self, vocab_size: int, filters: int = 128, mask=None, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.filters = int(vocab_size), int(filters)
        self.mask = [1.0] * self.vocab_size if mask is None else [float(x) for x in mask]
        small = 1.0 / self.RATE ** 2  # variance scaling: weights RATE times smaller than Keras's defaults
        self.conv = layers.Conv2D(self.filters, 3, padding="same", name="count_conv",
                                  kernel_initializer=keras.initializers.VarianceScaling(2.0 * small, "fan_in"))
        # every cell starts near zero (sigmoid(-8) ~ 3e-4), so the first counts are small even for
        # a wide formula's few hundred cells
        self.density = layers.Conv2D(self.vocab_size, 1, name="count_density",
                                     kernel_initializer=keras.initializers.VarianceScaling(small, "fan_avg", "uniform"),
                                     bias_initializer=keras.initializers.Constant(-8.0 / self.RATE))

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.density.build((*input_shape[:-1], self.filters))
        super().build(input_shape)

    def call(self, features, inside=None):
        hidden = ops.relu(self.RATE * self.conv(features))
        density = ops.sigmoid(self.RATE * self.density(hidden))
        if inside is not None:
            density = density * ops.cast(inside, density.dtype)
        return ops.sum(density, axis=(1, 2)) * ops.convert_to_tensor(self.mask, density.dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.vocab_size)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "filters": self.filters, "mask": self.mask}


@keras.saving.register_keras_serializable(package="mathocr")
class CountBias(layers.Layer):
    """``[logits (b, t, v), counts (b, v)]`` -> ``logits + counts @ kernel``: the predicted counts
    shift every step's logits. The kernel starts at zero (no shift)."""

    def build(self, input_shape):
        v = input_shape[1][-1]
        self.kernel = self.add_weight(name="kernel", shape=(v, input_shape[0][-1]), initializer="zeros")
        super().build(input_shape)

    def shift(self, counts):
        return ops.matmul(counts, self.kernel)

    def call(self, inputs):
        logits, counts = inputs
        return logits + ops.expand_dims(self.shift(counts), 1)

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package="mathocr")
class CountLoss(keras.losses.Loss):
    """Smooth L1 (Huber, delta 1) between predicted counts ``(b, v)`` and the counts of the tokens in
    the targets ``(b, t)`` (ids; padding 0 and the head's uncounted tokens count nothing), summed over
    the vocabulary."""

    def __init__(self, vocab_size: int, mask=None, name: str = "count_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.vocab_size = int(vocab_size)
        self.mask = [1.0] * self.vocab_size if mask is None else [float(x) for x in mask]

    def call(self, y_true, y_pred):
        ids = ops.cast(y_true, "int32")
        mask = ops.convert_to_tensor(self.mask, "float32")
        truth = ops.sum(ops.one_hot(ids, self.vocab_size), axis=1) * mask
        error = ops.abs(ops.cast(y_pred, "float32") - truth)
        huber = ops.where(error < 1.0, 0.5 * ops.square(error), error - 0.5)
        return ops.sum(huber, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "vocab_size": self.vocab_size, "mask": self.mask}


def count_mask(tokens) -> list[float]:
    """1 for each token of a vocabulary's ``tokens`` (in id order) that ``CountingHead`` counts."""
    return [0.0 if token in UNCOUNTED else 1.0 for token in tokens]


def build_encoder(height: int, filters=(24, 48, 96, 128, 160), blocks: int = 0, top_blocks: int = 0,
                  channels: int = 1, dropout: float = 0.0) -> keras.Model:
    """Five 3x3 convolutions, pooled to 1/16 of the input: ``(b, height, w, channels)`` -> ``(b, height/16, w/16, c)``,
    ``blocks`` residual blocks (``res1`` ..) after the fifth, before its pooling (at 1/8), and
    ``top_blocks`` (``top1`` ..) after that pooling (at 1/16). ``dropout``: spatial dropout (training
    only) after the third to fifth convolutions and after each block.
    The first layers run at full resolution and decide the training speed, so they are thin."""
    images = keras.Input((height, None, channels), name="image")
    x = images
    pools = [(2, 2), (2, 2), None, (2, 2), (2, 2)]
    for i, (f, pool) in enumerate(zip(filters, pools), 1):
        x = layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        if dropout and i >= 3:
            x = layers.SpatialDropout2D(dropout, name=f"drop{i}")(x)
        if i == len(filters):
            for k in range(1, blocks + 1):
                x = ResidualBlock(f, name=f"res{k}")(x)
                if dropout:
                    x = layers.SpatialDropout2D(dropout, name=f"res{k}_drop")(x)
        if pool:
            x = layers.MaxPooling2D(pool, name=f"pool{i}")(x)
    for k in range(1, top_blocks + 1):
        x = ResidualBlock(filters[-1], name=f"top{k}")(x)
        if dropout:
            x = layers.SpatialDropout2D(dropout, name=f"top{k}_drop")(x)
    return keras.Model(images, x, name="encoder")


def warm_start(model: keras.Model, source: keras.Model) -> list[str]:
    """Copy ``source``'s weights into ``model`` layer by layer, by name (into the encoder's layers
    too), and return the names of ``model``'s layers that ``source`` lacks: those keep their
    initialisation. Only residual blocks and the counting layers may be new (they start as the
    identity, or with no effect on the logits, so ``model`` computes what ``source`` did), and the
    first convolution may read more input channels (pen channels: their weights start at zero, and
    the layer's name is returned too); layers without weights (dropout) may be in either model alone
    and are not returned; any other difference raises ``ValueError``."""
    new: list[str] = []

    def copy(target, origin, prefix=""):
        known = {layer.name: layer for layer in origin.layers}
        for layer in target.layers:
            other = known.get(layer.name)
            if other is None:
                if isinstance(layer, layers.SpatialDropout2D):
                    continue
                if not isinstance(layer, (ResidualBlock, CountingHead, CountBias)):
                    raise ValueError(f"layer {prefix}{layer.name} is not in the source model")
                new.append(prefix + layer.name)
            elif isinstance(layer, keras.Model):
                copy(layer, other, prefix + layer.name + "/")
            else:
                mine, theirs = layer.get_weights(), other.get_weights()
                if (layer.name == "conv1" and len(mine) == len(theirs) == 1 and mine[0].ndim == 4
                        and mine[0].shape[:2] + mine[0].shape[3:] == theirs[0].shape[:2] + theirs[0].shape[3:]
                        and mine[0].shape[2] > theirs[0].shape[2]):  # new input channels, weighed 0 at first
                    kernel = np.zeros_like(mine[0])
                    kernel[:, :, : theirs[0].shape[2]] = theirs[0]
                    layer.set_weights([kernel])
                    new.append(prefix + layer.name)
                    continue
                if [w.shape for w in mine] != [w.shape for w in theirs]:
                    raise ValueError(f"layer {prefix}{layer.name}: weights of other shapes")
                layer.set_weights(theirs)
        missing = {name for name, layer in known.items() if not isinstance(layer, layers.SpatialDropout2D)}
        missing -= {layer.name for layer in target.layers}
        if missing:
            raise ValueError(f"layers {sorted(missing)} of the source model are not in this one")

    copy(model, source)
    return new


def build_formula_model(vocab_size: int, height: int = 48, config: FormulaModelConfig | None = None,
                        count_mask: list[float] | None = None) -> keras.Model:
    """The training model: ``[images (b,h,w,1), tokens_in (b,t)]`` -> logits ``(b,t,vocab)``; a guided
    model also returns its first pass's logits, and a counting one (``config.counting``) then its
    counts ``(b, vocab)`` (``count_mask``: which tokens are counted, default all)."""
    cfg = config or FormulaModelConfig()
    images = keras.Input((height, None, 1 + cfg.pen_channels), name="image")
    tokens = keras.Input((None,), dtype="int32", name="tokens")

    features = build_encoder(height, cfg.filters, cfg.blocks, cfg.top_blocks, 1 + cfg.pen_channels,
                             cfg.encoder_dropout)(images)
    memory = FeatureGrid(cfg.position_dim, name="grid")(features)
    keys = layers.Dense(cfg.attention_dim, use_bias=True, name="attention_keys")(memory)
    summary = layers.GlobalAveragePooling1D(name="summary")(memory)
    h1 = layers.Dense(cfg.units, activation="tanh", name="init_query")(summary)
    h2 = layers.Dense(cfg.units, activation="tanh", name="init_output")(summary)

    embedded = layers.Embedding(vocab_size, cfg.embed_dim, name="embedding")(tokens)
    queries = layers.GRU(cfg.units, return_sequences=True, name="query_gru")(embedded, initial_state=h1)
    guided = cfg.coverage and cfg.guide_weight > 0
    attended = CoverageAttention(cfg.attention_dim, cfg.coverage, cfg.coverage_filters, first_pass_context=guided,
                                 name="attention")([queries, keys, memory, features])
    alpha, context = attended[0], attended[1]
    outputs = layers.GRU(cfg.units, return_sequences=True, name="output_gru")(
        layers.Concatenate(name="gru_input")([queries, context]), initial_state=h2)
    deep = layers.Dense(cfg.units, activation="tanh", name="deep_output")(
        layers.Concatenate(name="deep_input")([outputs, context, embedded]))
    deep = layers.Dropout(cfg.dropout, name="dropout")(deep)
    logits = layers.Dense(vocab_size, name="logits")(deep)
    counts = None
    if cfg.counting > 0:
        counts = CountingHead(vocab_size, mask=count_mask, name="counting")(features)
        logits = CountBias(name="count_bias")([logits, counts])
    outputs = [logits]
    if guided:  # the first pass predicts the next token too, from its query and its own context
        guide = layers.Dense(cfg.units, activation="tanh", name="first_pass_deep")(
            layers.Concatenate(name="first_pass_input")([queries, attended[2]]))
        outputs.append(layers.Dense(vocab_size, name="first_pass_logits")(guide))
    if counts is not None:
        outputs.append(counts)
    outputs = outputs[0] if len(outputs) == 1 else outputs
    model = keras.Model([images, tokens], outputs, name="formula_recognizer")
    model.formula_config = cfg
    return model


@keras.saving.register_keras_serializable(package="mathocr")
class SmoothedTokenLoss(keras.losses.Loss):
    """Cross-entropy of integer token targets against logits, padding (id 0) ignored, with label
    smoothing: the target puts ``1 - smoothing`` on the true token and spreads ``smoothing`` evenly
    over the whole vocabulary. With ``smoothing`` 0 it equals Keras's
    ``SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)``: the mean over real tokens.
    (Keras's sparse loss has no smoothing, and its dense one no ignored class.)"""

    def __init__(self, smoothing: float = 0.1, name: str = "smoothed_token_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"label smoothing must be in [0, 1), not {smoothing}")
        self.smoothing = float(smoothing)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        true_log_prob = ops.squeeze(ops.take_along_axis(log_probs, ops.expand_dims(y_true, -1), axis=-1), -1)
        per_token = -(1.0 - self.smoothing) * true_log_prob - self.smoothing * ops.mean(log_probs, axis=-1)
        mask = ops.cast(ops.not_equal(y_true, 0), "float32")
        # the reduction divides by every position: scaled so that it gives the mean over real tokens
        scale = ops.cast(ops.size(mask), "float32") / ops.maximum(ops.sum(mask), 1.0)
        return per_token * mask * scale

    def get_config(self) -> dict:
        return {**super().get_config(), "smoothing": self.smoothing}


@keras.saving.register_keras_serializable(package="mathocr")
class DistilledTokenLoss(keras.losses.Loss):
    """Cross-entropy of the token targets plus ``weight`` times the KL divergence from a teacher's
    next-token distribution to the model's, as in the bidirectional mutual learning of ABM (Bian et
    al., AAAI 2022), where each direction learns from the other's distribution over the same token.
    ``y_true``: the token ids ``(b, t)`` (then this is plain cross-entropy, as in validation), or
    ``(b, t, 1 + v)``: the ids in channel 0 and the teacher's probabilities after them, all zero at
    positions it does not teach (``teacher_targets``). Padding (id 0) is ignored; the mean is over
    real tokens, as ``SmoothedTokenLoss`` with no smoothing."""

    def __init__(self, weight: float = 0.5, name: str = "distilled_token_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if weight < 0:
            raise ValueError(f"the distillation weight must be at least 0, not {weight}")
        self.weight = float(weight)

    def call(self, y_true, y_pred):
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        taught = len(y_true.shape) == 3
        ids = ops.cast(y_true[..., 0] if taught else y_true, "int32")
        per_token = -ops.squeeze(ops.take_along_axis(log_probs, ops.expand_dims(ids, -1), axis=-1), -1)
        if taught and self.weight:
            teacher = ops.cast(y_true[..., 1:], "float32")
            entropy = ops.sum(ops.where(teacher > 0, teacher * ops.log(ops.maximum(teacher, 1e-12)), 0.0), -1)
            per_token = per_token + self.weight * (entropy - ops.sum(teacher * log_probs, -1))
        mask = ops.cast(ops.not_equal(ids, 0), "float32")
        scale = ops.cast(ops.size(mask), "float32") / ops.maximum(ops.sum(mask), 1.0)
        return per_token * mask * scale

    def get_config(self) -> dict:
        return {**super().get_config(), "weight": self.weight}


def teacher_targets(teacher: keras.Model, images, targets, start_id: int, end_id: int, flip: bool):
    """Targets for ``DistilledTokenLoss``: ``targets`` (token ids ``t1 .. tn </s>``, padded with 0,
    in the student's reading order) with ``teacher``'s next-token probabilities for the same images,
    teacher-forced on the same truth, in channels 1 .. v. ``flip``: the teacher reads the other way
    round; it is fed the reversed truth and its distribution over ``t_i`` is put at the student's
    position of ``t_i``. The end position is not taught (the two directions end after different
    tokens), nor is padding. A TensorFlow function, for ``tf.data``."""
    import tensorflow as tf

    images, targets = tf.convert_to_tensor(images, tf.float32), tf.cast(targets, tf.int32)
    n = tf.reduce_sum(tf.cast(tf.not_equal(targets, 0), tf.int32), axis=1) - 1  # tokens before </s>
    order = tf.reverse_sequence(targets, n, seq_axis=1, batch_axis=0) if flip else targets
    shifted = tf.concat([tf.fill([tf.shape(order)[0], 1], start_id), order[:, :-1]], axis=1)
    tokens_in = tf.where(tf.equal(shifted, end_id), 0, shifted)
    probs = tf.nn.softmax(tf.cast(main_logits(teacher([images, tokens_in], training=False)), tf.float32), -1)
    if flip:
        probs = tf.reverse_sequence(probs, n, seq_axis=1, batch_axis=0)
    taught = tf.sequence_mask(n, tf.shape(targets)[1], tf.float32)[..., None]
    return tf.concat([tf.cast(targets, tf.float32)[..., None], tf.stop_gradient(probs) * taught], axis=-1)


def model_outputs(model: keras.Model) -> list[str]:
    """What each of a training model's outputs is: ``"tokens"`` (the next-token logits), then
    ``"guide"`` (a guided model's first pass) and ``"counts"`` (a counting model's)."""
    names = list(model.output_names)
    return ["tokens"] + [kind for kind, name in (("guide", "first_pass_logits"), ("counts", "counting"))
                         if name in names]


def compile_formula_model(model: keras.Model, learning_rate: float = 1e-3, guide_weight: float = 0.0,
                          ema: float = 0.0, label_smoothing: float = 0.0, counting: float = 0.0,
                          distill: float = 0.0) -> keras.Model:
    """Adam with gradient clipping; cross-entropy over the tokens, padding ignored. A guided model
    (two outputs) adds its first pass's loss with ``guide_weight``; its targets are ``(y, y)``.
    ``ema`` > 0 keeps an exponential moving average of the weights with that momentum (Polyak
    averaging; ``keras.callbacks.SwapEMAWeights`` evaluates and checkpoints it). ``label_smoothing``
    > 0 trains both outputs against smoothed targets (``SmoothedTokenLoss``). A counting model's
    counts learn ``CountLoss`` against the same token targets, with weight ``counting``; every
    output's targets are the token ids (``model_outputs`` says how many). ``distill`` > 0: the main
    output learns from a teacher too (``DistilledTokenLoss``; its targets from ``teacher_targets``)."""
    if distill and label_smoothing:
        raise ValueError("distillation and label smoothing do not go together")
    loss = (SmoothedTokenLoss(label_smoothing) if label_smoothing
            else keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0))
    main_loss = DistilledTokenLoss(distill) if distill else loss
    kinds = model_outputs(model)
    if not 0.0 <= ema < 1.0:
        raise ValueError(f"the EMA momentum must be in [0, 1), not {ema}")
    optimizer = (keras.optimizers.Adam(learning_rate, clipnorm=5.0, use_ema=True, ema_momentum=ema) if ema
                 else keras.optimizers.Adam(learning_rate, clipnorm=5.0))
    losses, weights = [main_loss], [1.0]
    if "guide" in kinds:
        losses.append(loss)
        weights.append(guide_weight)
    if "counts" in kinds:
        head = model.get_layer("counting")
        losses.append(CountLoss(head.vocab_size, head.mask))
        weights.append(counting)
    model.compile(optimizer=optimizer, loss=losses if len(losses) > 1 else main_loss,
                  loss_weights=weights if len(losses) > 1 else None)
    return model


def main_logits(outputs):
    """The next-token logits of a model's output (a guided model also returns its first pass's)."""
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs
