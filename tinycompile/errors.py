"""Errors that the CLI reports as one line with exit code 2 instead of a traceback."""


class TinyCompileError(Exception):
    """A problem with the user's model, input or options.

    The message is a single line that names the value, where it is (operator index, op or
    tensor name, file) and what the user can do about it.
    """

    exit_code = 2


class UnsupportedModelError(TinyCompileError):
    """The model uses a feature, op or data type that tinycompile does not compile."""


class ModelFormatError(TinyCompileError):
    """The model file is malformed, truncated or not a model at all."""


class BudgetError(TinyCompileError):
    """The memory plan does not fit the board's SRAM or flash."""


class ToolError(TinyCompileError):
    """An external tool (C compiler, Arm toolchain, QEMU, PlatformIO) is missing or failed."""
