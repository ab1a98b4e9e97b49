"""Build the 256-entry lookup tables of int8 element-wise ops, as the reference interpreters compute them.

An int8 op with one int8 input and no other run-time state is a function of 256 input values, so
the compiler evaluates it once per value and the generated code only indexes a table. The values
must match the reference bit for bit, so each builder reproduces one reference algorithm:

- LiteRT's reference LOGISTIC, TANH and GELU fill a table at prepare time from float32 math
  (dequantize, transform, multiply by 1 / output scale, round half away from zero, clamp). The
  float32 libm functions (`expf`, `tanhf`, `erfcf`) come from the C library through ctypes, the
  same functions the reference calls, with a numpy fallback where no C library loads.
- TFLM's LOGISTIC and TANH run gemmlowp's fixed-point `logistic` and `tanh` on the rescaled input;
  this module reimplements those in Python integers.
- RSQRT (both references) uses TFLite's `GetInvSqrtQuantizedMultiplierExp` Newton-Raphson.
- HARD_SWISH (both references) uses the 16-bit fixed-point reference kernel.

Integer helpers mirror TFLite's C++ functions of the same names, with C's truncating division.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math

import numpy as np

from tinycompile import quant

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1
INT8_VALUES = np.arange(-128, 128, dtype=np.int32)

# Fixed-point integer arithmetic (gemmlowp and TFLite's common.h).


def _c_div(a: int, b: int) -> int:
    """Divide with truncation toward zero, as C does."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _wrap32(x: int) -> int:
    return (x + 2**31) % 2**32 - 2**31


def srdhm(a: int, b: int) -> int:
    """SaturatingRoundingDoublingHighMul for int32."""
    if a == INT32_MIN and b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return _c_div(ab + nudge, 1 << 31)


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def saturating_rounding_multiply_by_pot(x: int, exponent: int) -> int:
    if exponent > 0:
        return max(INT32_MIN, min(INT32_MAX, x * (1 << exponent)))
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    return x


def multiply_by_quantized_multiplier(x: int, multiplier: int, shift: int, single_rounding: bool) -> int:
    """MultiplyByQuantizedMultiplier in TFLite's single- or double-rounding build."""
    if single_rounding:
        total_shift = 31 - shift
        return _wrap32((x * multiplier + (1 << (total_shift - 1))) >> total_shift)
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    return rounding_divide_by_pot(srdhm(_wrap32(x * (1 << left)), multiplier), right)


def _mul(a: int, b: int) -> int:
    """FixedPoint product: the integer bits of the result are the sum of the operands'."""
    return srdhm(a, b)


def _rescale(x: int, src_bits: int, dst_bits: int) -> int:
    return saturating_rounding_multiply_by_pot(x, src_bits - dst_bits)


def _one(integer_bits: int) -> int:
    return INT32_MAX if integer_bits == 0 else 1 << (31 - integer_bits)


def _rounding_half_sum(a: int, b: int) -> int:
    s = a + b
    return _c_div(s + (1 if s >= 0 else -1), 2)


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: int) -> int:
    constant_term = 1895147668
    constant_1_over_3 = 715827883
    x = _wrap32(a + (1 << 28))
    x2 = _mul(x, x)
    x3 = _mul(x2, x)
    x4 = _mul(x2, x2)
    x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2)
    poly = saturating_rounding_multiply_by_pot(_wrap32(_mul(_wrap32(x4_over_4 + x3), constant_1_over_3) + x2), -1)
    return _wrap32(constant_term + _mul(constant_term, _wrap32(x + poly)))


_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a: int, integer_bits: int) -> int:
    """gemmlowp exp_on_negative_values: a is Q(integer_bits), the result Q0."""
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    mask = one_quarter - 1
    a_mod_quarter_minus_one_quarter = _wrap32((a & mask) - one_quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        _rescale(a_mod_quarter_minus_one_quarter, integer_bits, 0))
    remainder = _wrap32(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent and remainder & (1 << (fractional_bits + exponent)):
            result = _mul(result, multiplier)
    if integer_bits > 5 and a < -(1 << (36 - integer_bits)):
        result = 0
    if a == 0:
        result = _one(0)
    return result


def _newton_one_over_one_plus(a: int) -> int:
    """Return x in Q2 with x ~= 1 / ((1 + a) / 2) after gemmlowp's three Newton-Raphson steps."""
    half_denominator = _rounding_half_sum(a, _one(0))
    x = _wrap32(1515870810 + _mul(half_denominator, -1010580540))
    for _ in range(3):
        half_denominator_times_x = _mul(half_denominator, x)
        one_minus = _wrap32(_one(2) - half_denominator_times_x)
        x = _wrap32(x + _rescale(_mul(x, one_minus), 4, 2))
    return x


def gemmlowp_logistic(a: int, integer_bits: int) -> int:
    """gemmlowp logistic of a Q(integer_bits) value; the result is Q0."""
    if a == 0:
        return 1 << 30
    abs_a = a if a > 0 else _wrap32(-a)
    e = exp_on_negative_values(_wrap32(-abs_a), integer_bits)
    x = _newton_one_over_one_plus(e)
    # ExactMulByPot<-1> keeps the raw value and reads it as Q1; Rescale<0> then shifts it.
    positive = _rescale(x, 1, 0)
    return positive if a > 0 else _wrap32(_one(0) - positive)


def gemmlowp_tanh(a: int, integer_bits: int) -> int:
    """gemmlowp tanh of a Q(integer_bits) value; the result is Q0."""
    if a == 0:
        return 0
    n = a if a < 0 else _wrap32(-a)
    # ExactMulByPot<1> doubles the value by reading the same raw value with one more integer bit.
    e = exp_on_negative_values(n, integer_bits + 1)
    x = _newton_one_over_one_plus(e)
    t = _rescale(_wrap32(x - _one(2)), 2, 0)
    return _wrap32(-t) if a < 0 else t


# Float32 math as the C library computes it.

def _load_libm():
    for name in (ctypes.util.find_library("m"), "libm.so.6", "libSystem.dylib"):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        functions = {}
        for fn in ("expf", "tanhf", "erfcf"):
            f = getattr(lib, fn, None)
            if f is None:
                break
            f.restype = ctypes.c_float
            f.argtypes = [ctypes.c_float]
            functions[fn] = f
        else:
            return functions
    return None


_LIBM = _load_libm()


def _f32(x) -> np.float32:
    return np.float32(x)


def _expf(x: np.float32) -> np.float32:
    if _LIBM is not None:
        return _f32(_LIBM["expf"](float(x)))
    return _f32(math.exp(float(x)))


def _tanhf(x: np.float32) -> np.float32:
    if _LIBM is not None:
        return _f32(_LIBM["tanhf"](float(x)))
    return _f32(math.tanh(float(x)))


def _erfcf(x: np.float32) -> np.float32:
    if _LIBM is not None:
        return _f32(_LIBM["erfcf"](float(x)))
    return _f32(math.erfc(float(x)))


def float_lut(input_scale: float, input_zp: int, output_scale: float, output_zp: int, transform) -> np.ndarray:
    """Fill a table the way TFLite's PopulateLookupTable / LUTPopulate does, in float32."""
    inverse_scale = _f32(1.0) / _f32(output_scale)
    table = np.zeros(256, np.int8)
    with np.errstate(over="ignore", invalid="ignore"):
        for i, val in enumerate(INT8_VALUES):
            dequantized = _f32(input_scale) * _f32(int(val) - input_zp)
            transformed = _f32(transform(dequantized))
            rescaled = quant.round_half_away(float(transformed * inverse_scale))
            table[i] = max(-128, min(127, rescaled + output_zp))
    return table


def litert_logistic(x: np.float32) -> np.float32:
    return _f32(1.0) / (_f32(1.0) + _expf(-x))


def litert_tanh(x: np.float32) -> np.float32:
    return _tanhf(x)


def litert_gelu(x: np.float32) -> np.float32:
    return _f32(0.5) * x * _erfcf(x * _f32(-0.7071067811865476))


def litert_gelu_approximate(x: np.float32) -> np.float32:
    sqrt_2_over_pi = _f32(0.7978845608028654)
    inner = sqrt_2_over_pi * (x + _f32(0.044715) * x * x * x)
    return _f32(0.5) * x * (_f32(1.0) + _tanhf(inner))


# Integer tables.

def _tflm_sigmoid_params(input_scale: float) -> tuple[int, int, int]:
    """Return (multiplier, left shift, input radius) as TFLM's CalculateArithmeticOpData computes them."""
    integer_bits = 4
    real = float(np.float32(input_scale)) * float(1 << (31 - integer_bits))
    q, left_shift = math.frexp(real)
    multiplier = quant.round_half_away(q * (1 << 31))
    radius_real = ((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / (1 << left_shift) if left_shift >= 0 \
        else ((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) * (2.0 ** -left_shift)
    return multiplier, left_shift, int(math.floor(radius_real))


def tflm_logistic_lut(input_scale: float, input_zp: int) -> np.ndarray:
    """reference_integer_ops::Logistic (int8), which TFLM runs; the output is 1/256 scale, zero point -128."""
    multiplier, left_shift, radius = _tflm_sigmoid_params(input_scale)
    table = np.zeros(256, np.int8)
    for i, val in enumerate(INT8_VALUES):
        x = int(val) - input_zp
        if x <= -radius:
            table[i] = -128
        elif x >= radius:
            table[i] = 127
        else:
            q4 = multiply_by_quantized_multiplier(x, multiplier, left_shift, single_rounding=False)
            q0 = gemmlowp_logistic(q4, 4)
            table[i] = max(-128, min(127, rounding_divide_by_pot(q0, 23) - 128))
    return table


def tflm_tanh_lut(input_scale: float, input_zp: int) -> np.ndarray:
    """reference_integer_ops::Tanh (int8), which TFLM runs; the output is 1/128 scale, zero point 0."""
    multiplier, left_shift, radius = _tflm_sigmoid_params(input_scale)
    table = np.zeros(256, np.int8)
    for i, val in enumerate(INT8_VALUES):
        x = int(val) - input_zp
        if x <= -radius:
            table[i] = -128
        elif x >= radius:
            table[i] = 127
        else:
            q4 = multiply_by_quantized_multiplier(x, multiplier, left_shift, single_rounding=False)
            q0 = gemmlowp_tanh(q4, 4)
            table[i] = max(-128, min(127, rounding_divide_by_pot(q0, 24)))
    return table


def inv_sqrt_multiplier_exp(value: int) -> tuple[int, int]:
    """GetInvSqrtQuantizedMultiplierExp with reverse_shift = -1."""
    if value <= 1:
        return INT32_MAX, 0
    shift = 11
    while value >= (1 << 29):
        value //= 4
        shift += 1
    max_left_shift_bits = (32 - value.bit_length()) - 1
    left_shift_bit_pairs = max_left_shift_bits // 2 - 1
    shift -= left_shift_bit_pairs
    value <<= 2 * left_shift_bit_pairs
    fixed_input = value >> 1                               # Q3
    half_input = saturating_rounding_multiply_by_pot(fixed_input, -1)
    half_three = (1 << 28) + (1 << 27)
    x = _one(3)
    for _ in range(5):
        x3 = _rescale(_mul(_mul(x, x), x), 9, 3)
        x = _rescale(_wrap32(_mul(half_three, x) - _mul(half_input, x3)), 6, 3)
    x = _mul(x, 1518500250)
    if shift < 0:
        x = _wrap32(x << -shift)
        shift = 0
    return x, -shift


def rsqrt_lut(input_scale: float, input_zp: int, output_scale: float, output_zp: int,
              single_rounding: bool) -> np.ndarray:
    """RsqrtEvalQuantized (int8) of LiteRT and TFLM; inputs below the zero point map to the table's clamp."""
    k_shift = 20
    real = 1.0 / float(np.float32(np.sqrt(np.float32(input_scale))) * np.float32(output_scale))
    multiplier, shift = quant.quantize_multiplier(real, single_rounding)
    table = np.zeros(256, np.int8)
    for i, val in enumerate(INT8_VALUES):
        x = int(val) - input_zp
        if x == 0:
            table[i] = 127
            continue
        inv_mult, inv_shift = inv_sqrt_multiplier_exp(x)
        data = multiply_by_quantized_multiplier(1, inv_mult, inv_shift + k_shift, single_rounding)
        out = multiply_by_quantized_multiplier(data, multiplier, shift - k_shift, single_rounding) + output_zp
        table[i] = max(-128, min(127, out))
    return table


def _srdhm16(a: int, b: int) -> int:
    if a == b == INT16_MIN:
        return INT16_MAX
    ab = a * b
    nudge = (1 << 14) if ab >= 0 else 1 - (1 << 14)
    return _c_div(ab + nudge, 1 << 15)


def _sdhm16(a: int, b: int) -> int:
    if a == b == INT16_MIN:
        return INT16_MAX
    return _c_div(a * b, 1 << 15)


def _saturating_left_shift16(x: int, amount: int) -> int:
    return max(INT16_MIN, min(INT16_MAX, x * (1 << amount)))


def _downscale_to_int16(multiplier: int) -> int:
    if multiplier >= INT32_MAX - (1 << 15):
        return INT16_MAX
    return (multiplier + (1 << 15)) >> 16


def hard_swish_lut(input_scale: float, input_zp: int, output_scale: float, output_zp: int) -> np.ndarray:
    """reference_ops::HardSwish (int8) with the parameters of HardSwishPrepare; the same in TFLM and LiteRT."""
    hires_input_scale = np.float32(1.0 / 128.0) * np.float32(input_scale)
    reluish_scale = np.float32(3.0 / 32768.0)
    output_multiplier, output_exponent = quant.quantize_multiplier(float(hires_input_scale / np.float32(output_scale)))
    reluish_multiplier, reluish_exponent = quant.quantize_multiplier(float(hires_input_scale / reluish_scale))
    output_multiplier16 = _downscale_to_int16(output_multiplier)
    reluish_multiplier16 = _downscale_to_int16(reluish_multiplier)
    table = np.zeros(256, np.int8)
    for i, val in enumerate(INT8_VALUES):
        x = int(val) - input_zp
        hires = x * 128
        preshift_output = _srdhm16(hires, output_multiplier16)
        reluish = hires
        if reluish_exponent > 0:
            reluish = _saturating_left_shift16(reluish, reluish_exponent - 1)
        reluish = _srdhm16(reluish, reluish_multiplier16)
        if reluish_exponent > 0:
            reluish = _saturating_left_shift16(reluish, 1)
        if reluish_exponent < 0:
            reluish = rounding_divide_by_pot(reluish, -reluish_exponent)
        reluish = (reluish + (1 << 15)) >> 1
        out = _sdhm16(reluish, preshift_output)
        out = rounding_divide_by_pot(out, -output_exponent) + output_zp
        table[i] = max(-128, min(127, out))
    return table


def affine_float_lut(input_scale: float, input_zp: int, output_scale: float, output_zp: int, function) -> np.ndarray:
    """Table of QUANTIZE(function(DEQUANTIZE(x))), for a float island between the two.

    DEQUANTIZE computes scale * (q - zero_point) in float32 and QUANTIZE computes
    round(value / scale) + zero_point with the division in float32, rounding half away from zero.
    `function` must be exact in float32 (negation, square, absolute value) so that the table
    matches the reference on every value.
    """
    table = np.zeros(256, np.int8)
    with np.errstate(over="ignore"):
        for i, val in enumerate(INT8_VALUES):
            real = _f32(input_scale) * _f32(int(val) - input_zp)
            y = _f32(function(real))
            q = quant.round_half_away(float(y / _f32(output_scale))) + output_zp
            table[i] = max(-128, min(127, q))
    return table
