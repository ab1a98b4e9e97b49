"""Lowerings of each supported op family; importing this package registers them all."""

from tinycompile.codegen.ops import (  # noqa: F401
    activation, conv, elementwise, fully_connected, pad, pool, quantize, reduce, reshape, softmax,
)
from tinycompile.codegen.ops import onnx_support  # noqa: F401,E402
from tinycompile.codegen.ops import transformer_gather, transformer_lut, transformer_matmul, transformer_shape  # noqa: F401,E402
