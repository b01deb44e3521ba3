"""The symbol classifier: one function builds every configuration of it.

A configuration is a plain dataclass. Its ``layers`` list reads like VGG's: a number is a 3x3
convolution with that many filters, ``"M"`` a 2x2 max-pool. Convolutions are named ``conv1``,
``conv2``..., so the activation viewer can fetch ``model.get_layer("conv2")``.

Two presets:

* ``baseline``: the seed project's CNN, Conv32-Pool-Conv64-Pool-Conv64-Flatten-Dense-softmax
  (unpadded convolutions, no normalisation; the seed's Dense had 25 outputs for its 25 classes).
* ``compact``: a small VGG-style net with batch norm, global average pooling, dropout and label
  smoothing: far more accurate, still a few milliseconds per symbol on a CPU.
* ``context``: ``compact`` that also reads the symbol's size and position within its expression
  (``symbol_data.symbol_context``) through a second input, ``context``, joined to the image
  features before a hidden Dense layer. Trained with a share of contexts blanked, it works on
  a symbol drawn alone (context all zeros) too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace


@dataclass
class SymbolConfig:
    """Everything that decides a symbol model and its training."""

    preset: str = "compact"
    size: int = 32  # input image side, pixels
    # one convolution per resolution: on a 2-core CPU a second one at 32 x 32 costs more than it gives
    layers: list = field(default_factory=lambda: [32, "M", 64, "M", 128, "M", 256])
    padding: str = "same"
    batch_norm: bool = True
    head: str = "gap"  # "gap" (global average pooling) or "flatten"
    dense: list = field(default_factory=list)  # hidden Dense layers before the classifier
    dropout: float = 0.3
    context: bool = False  # a second input: the symbol's size and place in its expression
    context_dropout: float = 0.3  # share of training symbols whose context is blanked
    label_smoothing: float = 0.1
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 128
    epochs: int = 16
    patience: int = 4  # early stopping on validation loss
    augment: bool = True
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "SymbolConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


PRESETS = {
    "baseline": SymbolConfig(
        preset="baseline", layers=[32, "M", 64, "M", 64], padding="valid", batch_norm=False, head="flatten",
        dense=[], dropout=0.0, label_smoothing=0.0, learning_rate=1e-3, weight_decay=0.0,
    ),
    "compact": SymbolConfig(),
    "context": SymbolConfig(preset="context", context=True, dense=[128]),
}


def preset(name: str, **overrides) -> SymbolConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)


def build_symbol_model(config: SymbolConfig, n_classes: int):
    """A Keras model from ``(size, size, 1)`` ink images to ``n_classes`` probabilities (uncompiled)."""
    import keras
    from keras import layers

    inputs = keras.Input((config.size, config.size, 1), name="image")
    x = inputs
    n_conv = n_pool = 0
    for spec in config.layers:
        if spec == "M":
            n_pool += 1
            x = layers.MaxPooling2D(2, name=f"pool{n_pool}")(x)
            continue
        n_conv += 1
        if config.batch_norm:
            x = layers.Conv2D(int(spec), 3, padding=config.padding, use_bias=False, name=f"conv{n_conv}")(x)
            x = layers.BatchNormalization(name=f"bn{n_conv}")(x)
            x = layers.ReLU(name=f"relu{n_conv}")(x)
        else:
            x = layers.Conv2D(int(spec), 3, padding=config.padding, activation="relu", name=f"conv{n_conv}")(x)
    if config.head == "gap":
        x = layers.GlobalAveragePooling2D(name="gap")(x)
    else:
        x = layers.Flatten(name="flatten")(x)
    if config.context:
        from mathocr.symbol_data import CONTEXT_FEATURES

        context = keras.Input((CONTEXT_FEATURES,), name="context")
        x = layers.Concatenate(name="with_context")([x, context])
        inputs = [inputs, context]
    for i, units in enumerate(config.dense, 1):
        if config.dropout:
            x = layers.Dropout(config.dropout, name=f"dropout{i}")(x)
        x = layers.Dense(units, activation="relu", name=f"dense{i}")(x)
    if config.dropout:
        x = layers.Dropout(config.dropout, name="dropout")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs, name=f"symbols_{config.preset}")


def compile_symbol_model(model, config: SymbolConfig, steps_per_epoch: int | None = None) -> None:
    """Adam(W) with a cosine decay over the planned epochs, label-smoothed cross-entropy on one-hot
    labels, and top-1 / top-5 accuracy."""
    import keras

    rate = config.learning_rate
    if steps_per_epoch:
        rate = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps_per_epoch * config.epochs,
                                                      alpha=0.02)
    if config.weight_decay:
        optimizer = keras.optimizers.AdamW(rate, weight_decay=config.weight_decay)
    else:
        optimizer = keras.optimizers.Adam(rate)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="top1"), keras.metrics.TopKCategoricalAccuracy(5, name="top5")],
    )


def conv_layer_names(model) -> list[str]:
    """The model's convolution layers in order (what the activation viewer offers)."""
    import keras

    return [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
