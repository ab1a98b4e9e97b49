"""tinycompile: compile full-integer int8 models to static-memory C99 for microcontrollers."""

__version__ = "0.1.0"
