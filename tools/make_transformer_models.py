"""Train and convert the int8 transformer models that tests/test_transformer.py compiles.

The main family follows EmbBERT-Q (Bravin et al., 2025): a token table (vocabulary x 16) and a
position table (max length x 16), each widened to the model width by a dense layer; per layer an
RMSNorm feeding two parallel branches, an attention whose query alone is projected (keys and
values are the normalized input) and a causal depthwise 1-D convolution followed by SiLU and a
dense layer, combined with learned scalar weights; a classifier on the first token. The variant
model uses the standard Keras blocks instead (Embedding, LayerNormalization, MultiHeadAttention,
GELU), which the converter emits as other op patterns. Small single-op models cover the kernels'
edge cases.

Training data is real text that ships with Python: the language reference topics in the standard
library's pydoc_data module (about 460 KB of English). Each topic belongs to one of four classes
(statements, expressions, built-in types, other), the task is to name the class of a window of
tokens, and a byte-level BPE tokenizer (the `tokenizers` package) trained on the same text gives
the token ids. Training is short (minutes on two cores); the point is realistic weights and
activation ranges, not accuracy.

Usage: .venv-tf/bin/python tools/make_transformer_models.py [--out DIR] [--only REGEX] [--epochs N]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import re
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from keras import layers  # noqa: E402

log = logging.getLogger("make_transformer_models")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "tests" / "models" / "transformer"
NUM_CLASSES = 4
TEST_SEQUENCES = 12
REPRESENTATIVE_SEQUENCES = 64

STATEMENT_TOPICS = {"assert", "assignment", "async", "augassign", "break", "class", "compound", "continue", "del",
                    "else", "for", "function", "global", "if", "import", "nonlocal", "pass", "raise", "return",
                    "try", "while", "with", "yield", "exceptions"}
EXPRESSION_TOPICS = {"atom-identifiers", "atom-literals", "attribute-references", "await", "binary", "bitwise",
                     "booleans", "calls", "comparisons", "conversions", "exprlists", "lambda", "operator-summary",
                     "power", "shifting", "slicings", "subscriptions", "unary", "in", "formatstrings"}
TYPE_TOPICS = {"dict", "floating", "imaginary", "integers", "lists", "numbers", "numeric-types", "sequence-types",
               "string-methods", "strings", "typesfunctions", "typesmapping", "typesmethods", "typesmodules",
               "typesseq", "typesseq-mutable", "types", "bltin-code-objects", "bltin-ellipsis-object",
               "bltin-null-object", "bltin-type-objects", "truth"}


def topic_class(name: str) -> int:
    if name in STATEMENT_TOPICS:
        return 0
    if name in EXPRESSION_TOPICS:
        return 1
    if name in TYPE_TOPICS:
        return 2
    return 3


# Data.

@dataclass
class TextData:
    """Token windows of the pydoc topics and their classes, split for training and tests."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def load_text_data(vocab: int, seq: int, seed: int = 0) -> TextData:
    """Tokenize the pydoc topics with a BPE vocabulary of `vocab` ids and cut windows of `seq` tokens."""
    import pydoc_data.topics
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    topics = sorted(pydoc_data.topics.topics.items())
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator([text for _, text in topics], trainer=trainer)
    windows, labels = [], []
    for name, text in topics:
        ids = np.array(tokenizer.encode(text).ids, np.int32)
        ids = ids[ids < vocab]
        step = max(seq // 2, 1)
        for start in range(0, max(len(ids) - seq, 0) + 1, step):
            window = ids[start:start + seq]
            if len(window) < seq:
                window = np.pad(window, (0, seq - len(window)))
            windows.append(window)
            labels.append(topic_class(name))
    x = np.stack(windows)
    y = np.array(labels, np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    split = max(len(x) // 10, TEST_SEQUENCES)
    log.info("text data: %d windows of %d tokens (vocabulary %d, %d learned)", len(x), seq, vocab,
             tokenizer.get_vocab_size())
    return TextData(x[split:], y[split:], x[:split], y[:split])


# EmbBERT-Q style model.

class TokenTable(layers.Layer):
    """A trainable table read with tf.gather, which the converter emits as GATHER on an int8 table."""

    def __init__(self, rows: int, width: int, **kwargs):
        super().__init__(**kwargs)
        self.rows, self.width = rows, width

    def build(self, input_shape):
        self.table = self.add_weight(shape=(self.rows, self.width), initializer="random_normal", name="table")

    def call(self, ids):
        return tf.gather(self.table, ids)


class PositionTable(layers.Layer):
    """Position table (max length x width); a sequence reads its first rows."""

    def __init__(self, max_length: int, width: int, **kwargs):
        super().__init__(**kwargs)
        self.max_length, self.width = max_length, width

    def build(self, input_shape):
        self.table = self.add_weight(shape=(self.max_length, self.width), initializer="random_normal", name="table")

    def call(self, x):
        return self.table[None, : x.shape[1], :]


class RMSNorm(layers.Layer):
    def build(self, input_shape):
        self.gamma = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="gamma")

    def call(self, x):
        mean_square = tf.reduce_mean(x * x, axis=-1, keepdims=True)
        return x * tf.math.rsqrt(mean_square + 1e-6) * self.gamma


class QueryOnlyAttention(layers.Layer):
    """Softmax(q h^T) h, where only the query q is projected from the normalized input h."""

    def call(self, inputs):
        q, h = inputs
        scores = tf.matmul(q, h, transpose_b=True)
        return tf.matmul(tf.nn.softmax(scores, axis=-1), h)


class Scalar(layers.Layer):
    def build(self, input_shape):
        self.weight = self.add_weight(shape=(), initializer=keras.initializers.Constant(0.5), name="weight")

    def call(self, x):
        return x * self.weight


class FirstToken(layers.Layer):
    def call(self, x):
        return x[:, 0, :]


def embbert_model(vocab: int, seq: int, width: int, num_layers: int, embed: int = 16, kernel: int = 32,
                  max_length: int = 256, batch_size: int | None = 1) -> keras.Model:
    ids = keras.Input((seq,), dtype="int32", batch_size=batch_size, name="tokens")
    x = layers.Dense(width, name="token_widen")(TokenTable(vocab, embed, name="token_table")(ids))
    x = x + layers.Dense(width, name="position_widen")(PositionTable(max_length, embed, name="position_table")(x))
    for i in range(num_layers):
        h = RMSNorm(name=f"norm{i}")(x)
        q = layers.Dense(width, name=f"query{i}")(h)
        attention = QueryOnlyAttention(name=f"attention{i}")([q, h])
        c = layers.ZeroPadding1D((kernel - 1, 0), name=f"causal_pad{i}")(h)
        c = layers.DepthwiseConv1D(kernel, name=f"conv{i}")(c)
        c = layers.Activation("silu", name=f"silu{i}")(c)
        c = layers.Dense(width, name=f"conv_dense{i}")(c)
        x = x + Scalar(name=f"attention_weight{i}")(attention) + Scalar(name=f"conv_weight{i}")(c)
    first = FirstToken(name="first_token")(x)
    return keras.Model(ids, layers.Dense(NUM_CLASSES, name="classifier")(first))


def standard_model(vocab: int, seq: int, width: int, num_layers: int, heads: int = 4,
                   batch_size: int | None = 1) -> keras.Model:
    ids = keras.Input((seq,), dtype="int32", batch_size=batch_size, name="tokens")
    x = layers.Embedding(vocab, width, name="embedding")(ids)
    for i in range(num_layers):
        h = layers.LayerNormalization(name=f"norm_a{i}")(x)
        x = x + layers.MultiHeadAttention(heads, width // heads, name=f"mha{i}")(h, h)
        h = layers.LayerNormalization(name=f"norm_b{i}")(x)
        h = layers.Dense(2 * width, activation="gelu", name=f"ffn_in{i}")(h)
        x = x + layers.Dense(width, name=f"ffn_out{i}")(h)
    first = FirstToken(name="first_token")(x)
    return keras.Model(ids, layers.Dense(NUM_CLASSES, name="classifier")(first))


def convert(model: keras.Model, representative: Callable[[], list]) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


@dataclass
class TextModel:
    """One trained text model: its builder, sizes and training budget."""

    name: str
    build: Callable[[int | None], keras.Model]     # argument: the batch size, None while training
    vocab: int
    seq: int
    epochs: int


def text_models() -> list[TextModel]:
    return [
        TextModel("embbert_small", lambda b: embbert_model(512, 32, 64, 2, kernel=8, max_length=32, batch_size=b),
                  512, 32, 4),
        TextModel("embbert_full", lambda b: embbert_model(8192, 256, 128, 4, batch_size=b), 8192, 256, 1),
        TextModel("standard_small", lambda b: standard_model(512, 32, 64, 2, batch_size=b), 512, 32, 4),
    ]


def build_text_model(spec: TextModel, out_dir: Path, epochs_override: int | None) -> None:
    data = load_text_data(spec.vocab, spec.seq)
    keras.utils.set_random_seed(0)
    # The converter needs batch size 1; training uses a copy with a free batch size.
    trainable = spec.build(None)
    trainable.compile(optimizer=keras.optimizers.Adam(2e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    epochs = epochs_override if epochs_override is not None else spec.epochs
    trainable.fit(data.train_x, data.train_y, batch_size=32, epochs=epochs, verbose=0)
    _, accuracy = trainable.evaluate(data.test_x, data.test_y, verbose=0)
    model = spec.build(1)
    model.set_weights(trainable.get_weights())
    log.info("%s: %d parameters, test accuracy %.2f after %d epochs", spec.name, model.count_params(), accuracy,
             epochs)

    def representative():
        for window in data.train_x[:REPRESENTATIVE_SEQUENCES]:
            yield [window[None, :].astype(np.int32)]

    (out_dir / f"{spec.name}.tflite").write_bytes(convert(model, representative))
    np.save(out_dir / f"{spec.name}_tokens.npy", data.test_x[:TEST_SEQUENCES].astype(np.int32))


# Single-op models for the kernel tests. Each has float inputs that the converter quantizes.

@dataclass
class OpModel:
    """A tf.function over float inputs of fixed shapes, with the range the representative data covers."""

    name: str
    fn: Callable
    shapes: list[tuple[int, ...]]
    low: float = -4.0
    high: float = 4.0
    int_input: tuple[int, int] | None = None   # (index of an int32 id input, exclusive upper bound)


def _rng(name: str) -> np.random.Generator:
    # crc32, not hash(): Python salts str hashes per process, which would change the data every run.
    return np.random.default_rng(zlib.crc32(name.encode()))


def op_models() -> list[OpModel]:
    rng = np.random.default_rng(1)
    table = tf.constant(rng.normal(size=(50, 6)).astype(np.float32))
    perms = list(itertools.permutations(range(4)))
    gamma = tf.constant(rng.uniform(0.5, 1.5, size=(8,)).astype(np.float32))
    # Keras layers must exist before tf.function traces them.
    layer_norm = layers.LayerNormalization(beta_initializer="random_normal")
    layer_norm.build((1, 6, 8))
    embedding = layers.Embedding(50, 6, embeddings_initializer="random_normal")
    embedding.build((1, 7))
    models = [
        OpModel("logistic", lambda x: tf.sigmoid(x), [(4, 64)], -10.0, 10.0),
        OpModel("tanh", lambda x: tf.tanh(x), [(4, 64)], -6.0, 6.0),
        OpModel("gelu", lambda x: tf.nn.gelu(x, approximate=False), [(4, 64)], -8.0, 8.0),
        OpModel("gelu_approximate", lambda x: tf.nn.gelu(x, approximate=True), [(4, 64)], -8.0, 8.0),
        OpModel("hard_swish", lambda x: x * tf.nn.relu6(x + 3.0) / 6.0, [(4, 64)], -6.0, 6.0),
        OpModel("rsqrt", lambda x: tf.math.rsqrt(x), [(4, 64)], 0.01, 4.0),
        OpModel("squared_difference", lambda a, b: tf.math.squared_difference(a, b),
                [(2, 3, 4, 5), (2, 3, 4, 5)]),
        OpModel("squared_difference_broadcast", lambda a, b: tf.math.squared_difference(a, b),
                [(2, 1, 4, 1), (1, 3, 1, 5)]),
        OpModel("layer_norm", lambda x: layer_norm(x), [(1, 6, 8)]),
        OpModel("rms_norm", lambda x: x * tf.math.rsqrt(tf.reduce_mean(x * x, -1, keepdims=True) + 1e-6) * gamma,
                [(1, 6, 8)]),
        OpModel("batch_matmul", lambda a, b: tf.matmul(a, b), [(2, 5, 7), (2, 7, 3)]),
        OpModel("batch_matmul_adj", lambda a, b: tf.matmul(a, b, transpose_a=True, transpose_b=True),
                [(3, 7, 5), (3, 4, 7)]),
        OpModel("batch_matmul_broadcast", lambda a, b: tf.matmul(a, b), [(2, 3, 4, 6), (1, 3, 6, 5)]),
        OpModel("transpose_all", lambda x: [tf.transpose(x, p) + 0.0 for p in perms if p != (0, 1, 2, 3)],
                [(2, 3, 4, 5)]),
        OpModel("concatenation", lambda a, b: tf.concat([a, b, a], axis=1), [(2, 3, 4), (2, 5, 4)]),
        OpModel("slice", lambda x: tf.slice(x, [0, 1, 2, 0], [1, 2, 2, 5]), [(2, 3, 4, 5)]),
        OpModel("strided_slice", lambda x: [x[:, 0, :], x[1:, ::2, 3:0:-1], x[..., -1]], [(3, 4, 5)]),
        OpModel("gather", lambda ids: tf.gather(table, ids) * 1.0, [(1, 7)], int_input=(0, 50)),
        OpModel("embedding", lambda ids: embedding(ids),
                [(1, 7)], int_input=(0, 50)),
    ]
    return models


def convert_op_model(case: OpModel) -> bytes:
    specs = []
    for i, shape in enumerate(case.shapes):
        dtype = tf.int32 if case.int_input and case.int_input[0] == i else tf.float32
        specs.append(tf.TensorSpec(shape, dtype, name=f"input{i}"))
    module = tf.Module()
    module.fn = tf.function(case.fn, input_signature=specs)
    concrete = module.fn.get_concrete_function()
    rng = _rng(case.name)

    def representative():
        for _ in range(32):
            # A dict, because the converter may order the model's inputs differently from the signature.
            sample = {}
            for i, shape in enumerate(case.shapes):
                if case.int_input and case.int_input[0] == i:
                    sample[f"input{i}"] = rng.integers(0, case.int_input[1], size=shape).astype(np.int32)
                else:
                    sample[f"input{i}"] = rng.uniform(case.low, case.high, size=shape).astype(np.float32)
            yield sample if len(sample) > 1 else list(sample.values())

    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--only", default="", help="regular expression: build only the models it matches")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs of the text models")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(args.only)
    for case in op_models():
        if pattern.search(case.name):
            (args.out / f"op_{case.name}.tflite").write_bytes(convert_op_model(case))
            log.info("wrote op_%s.tflite", case.name)
    for spec in text_models():
        if pattern.search(spec.name):
            build_text_model(spec, args.out, args.epochs)
            log.info("wrote %s.tflite", spec.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
