"""Lowerings of each supported op family; importing this package registers them all."""

from tinycompile.codegen.ops import conv, elementwise, fully_connected, pool, pad, reshape, softmax  # noqa: F401
