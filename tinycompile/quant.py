"""Fixed-point quantization arithmetic shared by the lowerings.

These functions reproduce how TFLite's kernels turn float scales into integer multipliers at
prepare time, so that the generated C computes exactly what the reference interpreters compute.
A multiplier is a Q31 value in [2^30, 2^31) with a power-of-two exponent: real ~= m * 2^(shift - 31).
"""

from __future__ import annotations

import math

import numpy as np

from tinycompile import ir

INT8_MIN, INT8_MAX = -128, 127


def round_half_away(x: float) -> int:
    """Round to the nearest integer, halves away from zero (C's round(), TFLite's TfLiteRound)."""
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def quantize_multiplier(real: float, single_rounding: bool = False) -> tuple[int, int]:
    """Return (multiplier, shift) with real ~= multiplier * 2^(shift - 31), as TFLite's QuantizeMultiplier.

    `single_rounding` applies the extra clamp that TFLite builds with TFLITE_SINGLE_ROUNDING use.
    """
    if real == 0.0:
        return 0, 0
    mantissa, shift = math.frexp(real)
    q_fixed = round_half_away(mantissa * (1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift = 0
        q_fixed = 0
    if single_rounding and shift > 30:
        shift = 30
        q_fixed = (1 << 31) - 1
    return int(q_fixed), int(shift)


def quantize_multiplier_smaller_than_one(real: float, single_rounding: bool = False) -> tuple[int, int]:
    """QuantizeMultiplierSmallerThanOneExp: the same as quantize_multiplier, for 0 < real < 1."""
    if not 0.0 < real < 1.0:
        raise ValueError(f"multiplier {real} is outside (0, 1)")
    multiplier, shift = quantize_multiplier(real, single_rounding)
    if shift > 0:
        raise ValueError(f"multiplier {real} gave a positive shift {shift}")
    return multiplier, shift


def quantize_float_to_int(value: float, scale: float, zero_point: int) -> int:
    """Quantize one float the way TFLite computes activation bounds: zp + round(value / scale), float32."""
    q = np.float32(value) / np.float32(scale)
    return zero_point + round_half_away(float(q))


def activation_range(activation: ir.Activation, quant: ir.Quantization | None,
                     qmin: int = INT8_MIN, qmax: int = INT8_MAX) -> tuple[int, int]:
    """Return the clamp bounds of a fused activation in the output's quantized domain."""
    if activation == ir.Activation.NONE:
        return qmin, qmax
    if quant is None:
        raise ValueError("fused activation on an unquantized tensor")
    scale = quant.scalar_scale
    zp = quant.scalar_zero_point
    if activation == ir.Activation.RELU:
        return max(qmin, quantize_float_to_int(0.0, scale, zp)), qmax
    if activation == ir.Activation.RELU6:
        return (max(qmin, quantize_float_to_int(0.0, scale, zp)),
                min(qmax, quantize_float_to_int(6.0, scale, zp)))
    if activation == ir.Activation.RELU_N1_TO_1:
        return (max(qmin, quantize_float_to_int(-1.0, scale, zp)),
                min(qmax, quantize_float_to_int(1.0, scale, zp)))
    raise ValueError(f"fused activation {activation.value} has no integer form")


def per_channel_multipliers(input_scale: float, weight_scales: np.ndarray, output_scale: float,
                            channels: int, single_rounding: bool) -> tuple[np.ndarray, np.ndarray]:
    """Return int32 multiplier and shift arrays of length `channels` for a conv or FC layer.

    The effective scale is input_scale * weight_scale[c] / output_scale in double precision, as
    TFLite's PopulateConvolutionQuantizationParams computes it; a per-tensor weight scale is
    repeated for every channel.
    """
    scales = np.asarray(weight_scales, dtype=np.float32)
    if scales.size == 1:
        scales = np.full(channels, scales[0], np.float32)
    mult = np.zeros(channels, np.int32)
    shift = np.zeros(channels, np.int32)
    for c in range(channels):
        real = float(input_scale) * float(scales[c]) / float(output_scale)
        mult[c], shift[c] = quantize_multiplier(real, single_rounding)
    return mult, shift
