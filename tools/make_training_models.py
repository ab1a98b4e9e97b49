"""Make the int8 models and data sets that the training tests use (needs TensorFlow and scikit-learn).

Run with the TensorFlow virtual environment from the repository root:

    .venv-tf/bin/python tools/make_training_models.py

It writes into tests/models/training/:
  - gradcheck_cnn.tflite: a small random CNN with every op the backward pass supports
    (CONV_2D with ReLU6, DEPTHWISE_CONV_2D with ReLU, a 1x1 CONV_2D, ADD, MAX_POOL_2D,
    AVERAGE_POOL_2D, RESHAPE, FULLY_CONNECTED, SOFTMAX), for the gradient check.
  - padded_cnn.tflite: convolutions with a ZeroPadding2D (PAD) between them, which has no
    backward rule, for the error test.
  - digits_base.tflite: a CNN pre-trained with TensorFlow on the digits 0-4 of scikit-learn's
    bundled 8x8 digits data set, converted to full-integer int8.
  - digits_transfer.npz: the new task, digits 5-9 relabelled 0-4, split into x_train/y_train
    and x_test/y_test (float32 pixels in [0, 1], shape N x 8 x 8 x 1).
Outputs are deterministic for one TensorFlow version up to the nondeterminism of its kernels.

    .venv-tf/bin/python tools/make_training_models.py tf-memory MODEL.json

instead measures the host memory of one TensorFlow training step of a float Keras replica of a
tiny-training model (same layer shapes, ReLU6, residual adds, a new 10-class head, batch size 1,
plain SGD updating every parameter). TensorFlow's CPU allocator is switched to its BFC allocator
(TF_CPU_ALLOCATOR_USE_BFC), which keeps allocation statistics. After three warm-up steps the
statistics are reset and one compiled training step runs. The peak is every tensor alive at
once in TensorFlow's allocator: parameters, activations, gradients and temporaries, without the
runtime's own code and bookkeeping.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

# Must be set before TensorFlow starts: the BFC allocator on the CPU keeps memory statistics.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
import tensorflow as tf  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "models" / "training"


def convert(model: tf.keras.Model, samples: np.ndarray) -> bytes:
    """Convert a Keras model to full-integer int8 with int8 input and output."""
    def representative():
        for x in samples:
            yield [x[None].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def gradcheck_model() -> bytes:
    tf.keras.utils.set_random_seed(1)
    x = inputs = tf.keras.Input((8, 8, 2), batch_size=1)
    a = tf.keras.layers.Conv2D(6, 3, padding="same", activation="relu6")(x)
    b = tf.keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(a)
    b = tf.keras.layers.Conv2D(6, 1, padding="same")(b)
    x = tf.keras.layers.Add()([a, b])
    x = tf.keras.layers.MaxPooling2D(2)(x)
    x = tf.keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = tf.keras.layers.AveragePooling2D(2)(x)
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(4)(x)
    outputs = tf.keras.layers.Softmax()(x)
    model = tf.keras.Model(inputs, outputs)
    rng = np.random.default_rng(1)
    samples = rng.uniform(-1, 1, (64, 8, 8, 2)).astype(np.float32)
    return convert(model, samples)


def padded_model() -> bytes:
    tf.keras.utils.set_random_seed(3)
    inputs = tf.keras.Input((8, 8, 1), batch_size=1)
    x = tf.keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = tf.keras.layers.ZeroPadding2D(2)(x)
    x = tf.keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = tf.keras.layers.AveragePooling2D(8)(x)
    x = tf.keras.layers.Flatten()(x)
    outputs = tf.keras.layers.Dense(3)(x)
    rng = np.random.default_rng(3)
    return convert(tf.keras.Model(inputs, outputs), rng.uniform(0, 1, (32, 8, 8, 1)).astype(np.float32))


def digits_data():
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    return x, y


def digits_network(batch_size: int | None) -> tf.keras.Model:
    inputs = tf.keras.Input((8, 8, 1), batch_size=batch_size)
    h = tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    h = tf.keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6")(h)
    h = tf.keras.layers.Conv2D(16, 1, activation="relu")(h)
    h = tf.keras.layers.MaxPooling2D(2)(h)
    h = tf.keras.layers.Conv2D(24, 3, padding="same", activation="relu")(h)
    h = tf.keras.layers.AveragePooling2D(4)(h)
    h = tf.keras.layers.Flatten()(h)
    logits = tf.keras.layers.Dense(5)(h)
    outputs = tf.keras.layers.Softmax()(logits)
    return tf.keras.Model(inputs, outputs)


def digits_model(x: np.ndarray, y: np.ndarray) -> bytes:
    """Train on batches, then convert a batch-1 copy: a fixed batch keeps Flatten a plain RESHAPE."""
    tf.keras.utils.set_random_seed(2)
    model = digits_network(None)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=30, batch_size=32, verbose=0, validation_split=0.2)
    print(f"digits 0-4 pre-training: accuracy {history.history['accuracy'][-1]:.3f}, "
          f"validation {history.history['val_accuracy'][-1]:.3f}")
    single = digits_network(1)
    single.set_weights(model.get_weights())
    return convert(single, x[:200])


def mcunet_replica(spec: dict, num_classes: int) -> tf.keras.Model:
    """Build a float Keras model with the layer shapes of a tiny-training model description."""
    first = spec["first_conv"]
    size = int(first.get("in_shape", 128))
    inputs = tf.keras.Input((size, size, int(first.get("in_channel", 3))), batch_size=1)

    def conv(layer, x):
        k = layer["kernel_size"][0]
        if int(layer.get("groups", 1)) > 1:
            y = tf.keras.layers.DepthwiseConv2D(k, strides=layer["stride"], padding="same")(x)
        else:
            y = tf.keras.layers.Conv2D(layer["out_channel"], k, strides=layer["stride"], padding="same")(x)
        return tf.keras.layers.ReLU(6.0)(y)

    x = conv(first, inputs)
    for block in spec["blocks"]:
        shortcut = x
        for part in ("pointwise1", "depthwise", "pointwise2"):
            if block.get(part) is not None:
                x = conv(block[part], x)
        if block.get("residual") is not None:
            x = tf.keras.layers.Add()([shortcut, x])
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(num_classes)(x))


def measure_tf_memory(model_json: Path) -> None:
    """Print the peak allocator memory of one TensorFlow training step of the replica."""
    model = mcunet_replica(json.loads(model_json.read_text()), 10)
    optimizer = tf.keras.optimizers.SGD(0.01)
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    x = tf.random.uniform((1, *model.input_shape[1:]))
    y = tf.constant([3])

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for _ in range(3):
        step()
    params = sum(int(v.numpy().nbytes) for v in model.trainable_variables)
    tf.config.experimental.reset_memory_stats("CPU:0")
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    step()
    peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
    print(f"TensorFlow {tf.__version__}, {model_json.name} float replica, batch 1, full update with SGD")
    print(f"parameters: {params} bytes ({model.count_params()} values)")
    print(f"allocated before the step: {before} bytes")
    print(f"peak allocated during one step: {peak} bytes")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "tf-memory":
        measure_tf_memory(Path(sys.argv[2]))
        return
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "gradcheck_cnn.tflite").write_bytes(gradcheck_model())
    (OUT / "padded_cnn.tflite").write_bytes(padded_model())

    x, y = digits_data()
    base = y < 5
    (OUT / "digits_base.tflite").write_bytes(digits_model(x[base], y[base]))
    new_x, new_y = x[~base], y[~base] - 5
    x_train, x_test, y_train, y_test = train_test_split(new_x, new_y, test_size=0.4, random_state=0, stratify=new_y)
    np.savez_compressed(OUT / "digits_transfer.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    print(f"wrote {OUT}: {len(x_train)} training and {len(x_test)} test samples of digits 5-9")


if __name__ == "__main__":
    main()
