"""Lowerings of each supported op family; importing this package registers them all."""

from tinycompile.codegen.ops import conv, elementwise, fully_connected, pad, pool, reduce, reshape, softmax  # noqa: F401
from tinycompile.codegen.ops import onnx_support  # noqa: F401,E402
from tinycompile.codegen.ops import transformer_gather, transformer_lut, transformer_matmul, transformer_shape  # noqa: F401,E402
