"""Generate the small int8 TFLite models that the memory-planning tests compile and verify.

- inverted_residual.tflite: a MobileNetV2 block (1x1 expand to 6x the channels, 3x3 depthwise,
  1x1 project, residual ADD) followed by a stride-2 depthwise layer. The depthwise layer on the
  expanded tensor is the peak unless it runs in place, so in-place depthwise lowers the arena
  below the bound of separate buffers.
- two_branches.tflite: two branches from one input, each widening to 32 channels and narrowing
  back to 4, joined by ADD. The operators are stored interleaved (both wide layers first). That
  order is valid but keeps both wide tensors alive together, while running one branch to the end
  before starting the other keeps one wide tensor alive at a time.

Weights and calibration data come from a fixed NumPy seed, so one TensorFlow version writes the
same files every time.

Usage: .venv-tf/bin/python tests/models/planning/make_models.py
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

OUT = Path(__file__).resolve().parent


def convert(model: tf.keras.Model, shape: tuple[int, ...], seed: int) -> bytes:
    """Quantize `model` to full int8 (int8 input and output) with random calibration data."""
    rng = np.random.default_rng(seed)

    def representative():
        for _ in range(32):
            yield [rng.uniform(-1.0, 1.0, size=(1, *shape)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def inverted_residual() -> bytes:
    tf.keras.utils.set_random_seed(1)
    layers = tf.keras.layers
    x = layers.Input((16, 16, 8), batch_size=1)
    e = layers.Conv2D(48, 1, activation="relu6")(x)
    d = layers.DepthwiseConv2D(3, padding="same", activation="relu6")(e)
    p = layers.Conv2D(8, 1)(d)
    y = layers.Add()([x, p])
    z = layers.DepthwiseConv2D(3, strides=2, padding="same", activation="relu")(y)
    return convert(tf.keras.Model(x, z), (16, 16, 8), seed=1)


def two_branches() -> bytes:
    tf.keras.utils.set_random_seed(2)
    layers = tf.keras.layers
    x = layers.Input((16, 16, 4), batch_size=1)
    a = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    b = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    a = layers.Conv2D(4, 1)(a)
    b = layers.Conv2D(4, 1)(b)
    y = layers.Add()([a, b])
    return convert(tf.keras.Model(x, y), (16, 16, 4), seed=2)


def reorder_operators(model: bytes, order: list[int]) -> bytes:
    """Return `model` with the operators of its main subgraph stored in `order`.

    Raises ValueError unless the new order runs every operator after the producers of its inputs.
    """
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    tree = schema.ModelT.InitFromPackedBuf(model, 0)
    graph = tree.subgraphs[0]
    if sorted(order) != list(range(len(graph.operators))):
        raise ValueError(f"order {order} is not a permutation of {len(graph.operators)} operators")
    operators = [graph.operators[i] for i in order]
    available = set(graph.inputs.tolist())
    available.update(i for i, t in enumerate(graph.tensors) if tree.buffers[t.buffer].data is not None)
    for position, op in enumerate(operators):
        missing = [int(t) for t in op.inputs if t >= 0 and t not in available]
        if missing:
            raise ValueError(f"operator {order[position]} reads tensors {missing} before they are written")
        available.update(int(t) for t in op.outputs)
    graph.operators = operators

    builder = flatbuffers.Builder(len(model) + 1024)
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def two_branches_interleaved() -> bytes:
    # The converter stores branch a, then branch b: [wide a, narrow a, wide b, narrow b, add].
    return reorder_operators(two_branches(), [0, 2, 1, 3, 4])


def main() -> None:
    for name, build in (("inverted_residual", inverted_residual), ("two_branches", two_branches_interleaved)):
        path = OUT / f"{name}.tflite"
        path.write_bytes(build())
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
