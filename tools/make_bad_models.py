"""Build the invalid models that the bad-input tests feed to tinycompile.

Run with a Python that has TensorFlow: `.venv-tf/bin/python tools/make_bad_models.py`. It writes
tests/models/bad/{int16_activations,two_subgraphs,dynamic_shape}.tflite, which are committed so
the tests need no TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

OUT = Path(__file__).resolve().parents[1] / "tests" / "models" / "bad"


def representative(shape):
    def generate():
        rng = np.random.default_rng(0)
        for _ in range(16):
            yield [rng.uniform(-1, 1, size=shape).astype(np.float32)]
    return generate


def int16_activations() -> bytes:
    """Convert a dense layer with 16-bit activations and 8-bit weights."""
    model = tf.keras.Sequential([tf.keras.Input((8,), batch_size=1), tf.keras.layers.Dense(4)])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative((1, 8))
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    converter.inference_input_type = tf.int16
    converter.inference_output_type = tf.int16
    return converter.convert()


def two_subgraphs() -> bytes:
    """Convert a while loop, which the converter keeps as a WHILE op with cond and body subgraphs."""

    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    def loop(x):
        i = tf.constant(0)
        _, y = tf.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, v * 2.0), [i, x])
        return y

    converter = tf.lite.TFLiteConverter.from_concrete_functions([loop.get_concrete_function()], loop)
    return converter.convert()


def dynamic_shape() -> bytes:
    """Convert a mean whose input length is unknown until run time."""

    @tf.function(input_signature=[tf.TensorSpec([1, None], tf.float32)])
    def pool(x):
        return tf.reduce_mean(x, axis=1, keepdims=True) + 1.0

    converter = tf.lite.TFLiteConverter.from_concrete_functions([pool.get_concrete_function()], pool)
    return converter.convert()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, build in (("int16_activations", int16_activations), ("two_subgraphs", two_subgraphs),
                        ("dynamic_shape", dynamic_shape)):
        (OUT / f"{name}.tflite").write_bytes(build())
        print(f"wrote {OUT / name}.tflite")


if __name__ == "__main__":
    main()
