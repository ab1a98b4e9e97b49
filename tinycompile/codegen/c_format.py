"""Render Python values as C99 literals: arrays, struct initializers and identifiers."""

from __future__ import annotations

import re

import numpy as np

from tinycompile.codegen.lowering import ConstArray, CStruct

_C_TYPES = {
    np.dtype(np.int8): "int8_t",
    np.dtype(np.uint8): "uint8_t",
    np.dtype(np.int16): "int16_t",
    np.dtype(np.int32): "int32_t",
    np.dtype(np.int64): "int64_t",
    np.dtype(np.float32): "float",
    np.dtype(np.bool_): "uint8_t",
}


def c_type_of(array: np.ndarray) -> str:
    return _C_TYPES[array.dtype]


def c_identifier(text: str, max_length: int = 48) -> str:
    """Make a valid, readable C identifier from an arbitrary tensor name."""
    cleaned = re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").lower()
    if not cleaned or cleaned[0].isdigit():
        cleaned = "t_" + cleaned
    return cleaned[:max_length].rstrip("_")


def c_number(value) -> str:
    if isinstance(value, (float, np.floating)):
        text = repr(float(value))
        if "inf" in text or "nan" in text:
            raise ValueError(f"cannot emit {text} as a C constant")
        return text + "f"
    value = int(value)
    if value == -(2**31):
        return "(-2147483647 - 1)"
    if value > 2**31 - 1 or value < -(2**31):
        return f"{value}LL"
    return str(value)


def c_array_body(values: np.ndarray, per_line: int = 16, indent: str = "    ") -> str:
    """Return the comma-separated elements of an array, `per_line` to a line."""
    flat = np.asarray(values).reshape(-1)
    if flat.dtype == np.bool_:
        flat = flat.astype(np.uint8)
    if flat.dtype.kind == "f":
        items = [c_number(v) for v in flat]
    else:
        items = [c_number(v) if abs(int(v)) >= 2**31 - 1 else str(int(v)) for v in flat.tolist()]
    lines = [indent + ", ".join(items[i:i + per_line]) + "," for i in range(0, len(items), per_line)]
    return "\n".join(lines)


def c_initializer(value, indent: int = 1) -> str:
    """Render a CStruct, list, ConstArray symbol, number or C expression as an initializer."""
    pad = "    " * indent
    if isinstance(value, CStruct):
        inner = ",\n".join(f"{pad}.{k} = {c_initializer(v, indent + 1)}" for k, v in value.fields.items())
        return "{\n" + inner + "\n" + "    " * (indent - 1) + "}"
    if isinstance(value, ConstArray):
        return value.symbol
    if isinstance(value, (list, tuple)):
        return "{ " + ", ".join(c_initializer(v, indent) for v in value) + " }"
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    return c_number(value)


def collect_const_arrays(value, found: list[ConstArray]) -> None:
    """Append every ConstArray inside a CStruct (depth first, in field order) to `found`."""
    if isinstance(value, CStruct):
        for v in value.fields.values():
            collect_const_arrays(v, found)
    elif isinstance(value, ConstArray):
        found.append(value)
    elif isinstance(value, (list, tuple)):
        for v in value:
            collect_const_arrays(v, found)
