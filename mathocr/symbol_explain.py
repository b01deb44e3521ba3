"""What the symbol network looks at: each convolution's feature maps, and Grad-CAM.

Grad-CAM (Selvaraju et al., 2017) weights the last convolution's feature maps by how much the
chosen class's score grows with each of them (the gradient, averaged over the map), keeps the
positive part, and scales the result up to the input: a heatmap of the evidence for that class.
"""

from __future__ import annotations

import numpy as np


def activation_layer(model, conv_name: str):
    """The layer whose output shows a convolution's feature maps as the network uses them: the ReLU
    after it (``relu3`` for ``conv3``, when batch norm sits between), else the convolution itself."""
    suffix = conv_name.removeprefix("conv")
    for name in (f"relu{suffix}", conv_name):
        try:
            return model.get_layer(name)
        except ValueError:
            continue
    raise ValueError(f"no layer {conv_name!r} in {model.name}")


def feature_maps(model, image: np.ndarray, conv_name: str) -> np.ndarray:
    """The feature maps ``(h, w, channels)`` of one convolution for one ``(size, size)`` input."""
    import keras

    # the convolutions see the image alone, also in a model that reads a context beside it
    probe = keras.Model(model.inputs[0], activation_layer(model, conv_name).output)
    return np.asarray(probe(np.asarray(image, np.float32)[None, ..., None], training=False))[0]


def grad_cam(model, image: np.ndarray, class_index: int, conv_name: str | None = None,
             context: np.ndarray | None = None) -> np.ndarray:
    """A ``(size, size)`` heatmap in [0, 1] of where the evidence for ``class_index`` lies, from the
    last convolution (or ``conv_name``). ``context`` feeds a model that reads one (default: unknown)."""
    import keras
    import tensorflow as tf

    from mathocr.symbol_model import conv_layer_names

    conv_name = conv_name or conv_layer_names(model)[-1]
    probe = keras.Model(model.inputs, [activation_layer(model, conv_name).output, model.output])
    x = tf.constant(np.asarray(image, np.float32)[None, ..., None])
    if len(model.inputs) == 2:
        width = model.inputs[1].shape[-1]
        c = np.zeros((1, width), np.float32) if context is None else np.asarray(context, np.float32).reshape(1, width)
        x = [x, tf.constant(c)]
    with tf.GradientTape() as tape:
        maps, probs = probe(x, training=False)
        # the log-probability: the softmax's saturation would otherwise flatten the gradients
        score = tf.math.log(probs[:, class_index] + 1e-9)
    grads = tape.gradient(score, maps)[0].numpy()
    maps = maps[0].numpy()
    weights = grads.mean(axis=(0, 1))
    cam = np.maximum((maps * weights).sum(axis=-1), 0)
    if cam.max() > 0:
        cam /= cam.max()
    size = image.shape[0]
    return tf.image.resize(cam[..., None], (size, size), method="bilinear").numpy()[..., 0]
