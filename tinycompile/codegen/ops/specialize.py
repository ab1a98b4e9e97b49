"""Choose specialized kernels for lowered layers from the shapes and constants fixed at compile time.

Every lowering first builds the layer for the portable kernel. `specialize_layer` then swaps in a
kernel from firmware/include/tc_kernels_fast.h when the layer's shapes and constants allow it, and
precomputes the data that kernel reads:

- convolutions (and depthwise layers with one input channel, which are convolutions) become a
  matrix multiply over im2col rows. The weights become zero-padded int16 rows, and the input
  offset is folded into the bias: sum(w * (x + off)) + b = sum(w * x) + (b + off * sum(w));
- depthwise layers with depth multiplier 1 get int16 weights in the channel order SXTB16 unpacks
  and a folded bias (the kernel pads its input with the zero point, so every tap counts);
- fully connected layers get zero-padded int8 rows and a folded bias;
- ADD and SUB get a 256-entry table per input holding each int8 value already rescaled;
- pooling switches to kernels that walk the window with pointers.

The output stage picks the one-instruction requantization (TC_RQ_FAST) only after bounding the
accumulator over every possible input: |acc| <= |bias| + sum|w| * max|x + off| must stay below
2^30, and every channel must shift right by at least one. Otherwise the specialized kernel
requantizes exactly as the portable one. A layer whose partial sums could leave int32 keeps its
portable kernel, which wraps exactly as the reference does. Results are bit-identical to the
portable kernels in every case; the generated C selects each kernel's DSP, MVE or plain C body
with the preprocessor, so one generated folder serves every target.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from tinycompile import ir
from tinycompile.codegen.lowering import ConstArray, CStruct, Layer, LoweringOptions, Scratch
from tinycompile.codegen.ops.common import layer_symbol

log = logging.getLogger(__name__)

# "auto" and "optimized": specialized kernels; "compact": the same with int8 convolution weights
# (half their flash, more instructions); "portable": the portable C kernels only.
KERNEL_MODES = ("auto", "optimized", "compact", "portable")

# tc_fast_out.mode values (tc_kernels_fast.h).
RQ_EXACT, RQ_DOUBLE, RQ_FAST = 0, 1, 2

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
FAST_BOUND = 2**30          # |acc| below this lets TC_RQ_FAST double it without overflow
FAST_MAX_SHIFT = 22         # right shifts up to this keep TC_RQ_FAST's addend inside int32
ADD_TABLE_SIZE = 256
DW_MAX_FILTER_H = 16         # TC_FAST_DW_MAX_FILTER_H


def _round_up(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


# Fixed-point arithmetic of firmware/include/tc_common.h, in Python integers.


def _wrap32(x: int) -> int:
    return (x + 2**31) % 2**32 - 2**31


def _sat_rounding_doubling_high_mul(a: int, b: int) -> int:
    if a == INT32_MIN and b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    total = ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30))
    # C division truncates toward zero.
    return total // (1 << 31) if total >= 0 else -((-total) // (1 << 31))


def _rounding_divide_by_pot(x: int, exponent: int) -> int:
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def requantize_double(x: int, multiplier: int, shift: int) -> int:
    """tc_requantize_double: TFLM's double rounding."""
    shifted = _wrap32(x << max(shift, 0))
    return _rounding_divide_by_pot(_sat_rounding_doubling_high_mul(shifted, multiplier), max(-shift, 0))


# The output stage shared by the specialized kernels.


def output_stage(name: str, bias: np.ndarray, multiplier: np.ndarray, shift: np.ndarray, bounds: np.ndarray,
                 output_offset: int, act_min: int, act_max: int, double_rounding: bool, channels: int,
                 constant: np.ndarray | None = None, bias_scale: int = 1,
                 constant_bias: np.ndarray | None = None) -> CStruct:
    """Build a tc_fast_out struct with one record per channel, padded to `channels` records.

    `bias`, `multiplier`, `shift` and `bounds` have one entry per real channel (multiplier,
    shift and bounds may have one entry for all); `bounds` bounds |accumulator| over all inputs.
    `constant` marks channels whose accumulator is always exactly their bias (all weights zero).
    The records store the bias times `bias_scale` (2 for kernels with doubled weights). The
    constant output of such a channel comes from `constant_bias` when given, else from `bias`.
    `double_rounding` is True when the reference rounds twice whatever the build (convolutions and
    element-wise ops, or any op in TFLM mode). Otherwise it follows TC_SINGLE_ROUNDING.
    """
    count = bias.size
    bias = np.asarray(bias, dtype=np.int64)
    mult = np.broadcast_to(np.asarray(multiplier, dtype=np.int64), (count,))
    shifts = np.broadcast_to(np.asarray(shift, dtype=np.int64), (count,))
    bounds = np.broadcast_to(np.asarray(bounds, dtype=np.int64), (count,))
    exponent = -shifts
    # A channel's output is a compile-time constant when its accumulator is (all weights zero),
    # when its multiplier is 0, or when its right shift is so large that the rounded result is 0
    # for every reachable accumulator (|h| < 2^(e-1), h the doubling high multiply).
    fixed = np.zeros(count, dtype=bool) if constant is None else np.asarray(constant, dtype=bool).copy()
    fixed |= mult == 0
    high = (2 * bounds * mult + (1 << 31)) >> 32
    fixed |= (exponent > FAST_MAX_SHIFT) & (high < np.left_shift(1, np.clip(exponent - 1, 0, 62)) - 1)
    live = ~fixed
    # TC_RQ_FAST adds 2 * acc * m / 2^32 (at most 2^30 in magnitude) to the addend
    # 2^(e-1) + zp * 2^e in 32 bits; e <= 22 keeps that sum inside int32.
    fast = (double_rounding and bool(np.all(bounds[live] < FAST_BOUND)) and bool(np.all(exponent[live] >= 1))
            and bool(np.all(exponent[live] <= FAST_MAX_SHIFT)) and bool(np.all(mult >= 0)))
    records = np.zeros((channels, 4), dtype=np.int64)
    records[:count, 0] = bias * bias_scale
    records[:count, 1] = mult
    if fast:
        e = np.where(live, exponent, 1)
        records[:count, 1] = np.where(live, mult, 0)
        records[:count, 2] = (1 << (e - 1)) + (output_offset << e)
        records[:count, 3] = e
        for c in np.flatnonzero(fixed):
            # With multiplier 0 the record yields (2^(e-1) + sign + value * 2^e) >> e = value, e = 1.
            source = bias if constant_bias is None else np.asarray(constant_bias, dtype=np.int64)
            held = requantize_double(int(source[c]), int(mult[c]), int(shifts[c])) if constant is not None and \
                constant[c] else 0
            value = min(max(held + output_offset, act_min), act_max)
            records[c, 2] = 1 + (value << 1)
        mode = RQ_FAST
    else:
        records[:count, 2] = shifts
        mode = RQ_DOUBLE if double_rounding else RQ_EXACT
    return CStruct("tc_fast_out", {
        "mode": mode,
        "output_offset": output_offset,
        "act_min": act_min,
        "act_max": act_max,
        "rq": ConstArray(f"{name}_rq", "int32_t", records.astype(np.int32).reshape(-1),
                         "per channel: bias, multiplier, rounding addend or shift, right shift"),
    })


def _pack_words(rows: np.ndarray) -> np.ndarray:
    """Pack an int8 or int16 matrix whose rows are multiples of 4 bytes into little-endian int32 words."""
    little = rows.astype(rows.dtype.newbyteorder("<"))
    return np.ascontiguousarray(little).view("<i4").reshape(-1).astype(np.int32)


def _input_span(input_offset: int) -> int:
    """max |x + input_offset| over int8 x."""
    return max(abs(-128 + input_offset), abs(127 + input_offset))


def _requant_fields(q: CStruct) -> tuple[np.ndarray, np.ndarray]:
    return (np.asarray(q.fields["multiplier"].values, dtype=np.int64),
            np.asarray(q.fields["shift"].values, dtype=np.int64))


def _double_rounding(options: LoweringOptions, always_double: bool) -> bool:
    return always_double or not options.single_rounding


def _matrix_layer(layer: Layer, options: LoweringOptions, rows: np.ndarray, bias: np.ndarray, q: CStruct,
                  always_double: bool, wide: bool, conv: bool = True) -> tuple[np.ndarray, CStruct] | None:
    """Pack weight rows (out x k) and build the folded-bias output stage, or None if unsafe.

    Rows are padded to a multiple of 4 values with zeros and stored as int16 when `wide` (the
    convolution kernels reuse every weight for many pixels, so they take them unpacked, at twice
    the flash), as int8 otherwise. Wide weights and their bias are doubled: the kernels then
    accumulate 2 * acc, which the fast requantization multiplies, and save one shift per output.
    Convolution rows (`conv`) are padded to an even count, since the kernel takes channel pairs.
    """
    out_c, k = rows.shape
    input_offset = int(q.fields["input_offset"])
    w = rows.astype(np.int64)
    folded = bias + input_offset * w.sum(axis=1)
    abs_sum = np.abs(w).sum(axis=1)
    # Wide kernels double weights and bias (see below). Partial sums of raw int8 products
    # on top of the folded bias must stay inside int32.
    scale = 2 if wide else 1
    dead = abs_sum == 0
    overflow = scale * (np.abs(folded) + 128 * abs_sum) > INT32_MAX
    if np.any(overflow & ~dead):
        return None
    # A dead channel's output is a constant (see output_stage), so its accumulator only matters
    # when the layer does not get the fast output stage; checked below.
    folded = np.where(overflow, 0, folded)
    bounds = np.abs(bias) + _input_span(input_offset) * abs_sum
    k4 = _round_up(max(k, 1), 4)
    padded = np.zeros((_round_up(out_c, 2) if conv else out_c, k4), dtype=np.int16 if wide else np.int8)
    padded[:out_c, :k] = rows
    padded *= scale
    multiplier, shift = _requant_fields(q)
    name = layer_symbol(layer.op)
    out = output_stage(name, folded, multiplier, shift, bounds, int(q.fields["output_offset"]),
                       int(q.fields["act_min"]), int(q.fields["act_max"]),
                       _double_rounding(options, always_double), _round_up(out_c, 2), constant=dead,
                       bias_scale=scale, constant_bias=bias)
    if np.any(overflow) and out.fields["mode"] != RQ_FAST:
        return None
    return _pack_words(padded), out


def _bias_values(bias: ir.Tensor | None, channels: int) -> np.ndarray:
    if bias is None:
        return np.zeros(channels, dtype=np.int64)
    return np.asarray(bias.data, dtype=np.int64).reshape(-1)


def _conv_struct(layer: Layer, geometry: dict, k: int, packed: np.ndarray, out: CStruct, wide: bool) -> CStruct:
    name = layer_symbol(layer.op)
    k4 = _round_up(max(k, 1), 4)
    fields = {key: geometry[key] for key in (
        "batches", "in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "filter_h", "filter_w",
        "stride_h", "stride_w", "dilation_h", "dilation_w", "pad_top", "pad_left")}
    description = ("doubled int16 weight rows, zero-padded to multiples of 4, two to a word" if wide
                   else "int8 weight rows, zero-padded to multiples of 4, four to a word")
    fields.update(k=k, k4=k4, wide=1 if wide else 0, pad_value=-int(geometry["q"].fields["input_offset"]),
                  weights=ConstArray(f"{name}_weights", "int32_t", packed, description), out=out)
    return CStruct("tc_fast_conv_params", fields)


def _conv_scratch(k: int, in_c: int) -> Scratch:
    k4 = _round_up(max(k, 1), 4)
    return Scratch(4 * k4 + (2 * k4 if in_c % 4 else 0))


def specialize_conv(layer: Layer, options: LoweringOptions) -> Layer:
    params, x, w, bias, y = layer.args
    g = params.fields
    if g["filter_in_c"] != g["in_c"]:
        return layer                      # grouped convolution: portable kernel
    out_c = g["out_c"]
    k = g["filter_h"] * g["filter_w"] * g["in_c"]
    rows = np.asarray(w.data, dtype=np.int8).reshape(out_c, k)
    # CONV_2D rounds twice in both references (tc_conv2d_s8 calls tc_requantize_double).
    wide = options.kernels != "compact"
    packed = _matrix_layer(layer, options, rows, _bias_values(bias, out_c), g["q"], always_double=True, wide=wide)
    if packed is None:
        return layer
    struct = _conv_struct(layer, g, k, *packed, wide)
    return dataclasses.replace(layer, kernel="tc_fast_conv_s8", args=[struct, x, y, _conv_scratch(k, g["in_c"])],
                               sources=("tc_fast_conv_s8.c",), inplace_ok=())


def specialize_depthwise(layer: Layer, options: LoweringOptions) -> Layer:
    params, x, w, bias, y = layer.args
    g = params.fields
    q = g["q"]
    out_c = g["out_c"]
    taps = g["filter_h"] * g["filter_w"]
    weights = np.asarray(w.data, dtype=np.int8).reshape(taps, out_c)
    if g["in_c"] == 1:
        # One input channel: a convolution with out_c filters of depth 1 (OHWI).
        rows = np.ascontiguousarray(weights.T)
        wide = options.kernels != "compact"
        packed = _matrix_layer(layer, options, rows, _bias_values(bias, out_c), q, always_double=True, wide=wide)
        if packed is None:
            return layer
        conv = dict(g, in_c=1)
        struct = _conv_struct(layer, conv, taps, *packed, wide)
        return dataclasses.replace(layer, kernel="tc_fast_conv_s8", args=[struct, x, y, _conv_scratch(taps, 1)],
                                   sources=("tc_fast_conv_s8.c",), inplace_ok=())
    if g["depth_multiplier"] != 1 or g["filter_h"] > DW_MAX_FILTER_H:
        return layer
    channels = out_c
    input_offset = int(q.fields["input_offset"])
    b = _bias_values(bias, channels)
    w64 = weights.astype(np.int64)
    abs_sum = np.abs(w64).sum(axis=0)
    bounds = np.abs(b) + _input_span(input_offset) * abs_sum
    # The kernel pads its input with the zero point, so every tap counts and the input offset
    # folds into the bias as for convolutions. Partial sums of raw products must fit int32.
    folded = b + input_offset * w64.sum(axis=0)
    dead = abs_sum == 0
    overflow = 2 * (np.abs(folded) + 128 * abs_sum) > INT32_MAX
    if np.any(overflow & ~dead):
        return layer
    stored = np.where(overflow, 0, folded)
    groups = (channels + 3) // 4
    padded = np.zeros((taps, groups * 4), dtype=np.int16)
    padded[:, :channels] = 2 * weights.astype(np.int16)     # doubled, as for convolutions
    # [group][tap][lane], lanes in the order (0, 2, 1, 3) that SXTB16 unpacks four bytes.
    grouped = padded.reshape(taps, groups, 4)[:, :, [0, 2, 1, 3]].transpose(1, 0, 2)
    words = np.ascontiguousarray(grouped).view("<i4").reshape(-1).astype(np.int32)
    multiplier, shift = _requant_fields(q)
    name = layer_symbol(layer.op)
    out = output_stage(name, stored, multiplier, shift, bounds, int(q.fields["output_offset"]),
                       int(q.fields["act_min"]), int(q.fields["act_max"]), True, groups * 4, constant=dead,
                       bias_scale=2, constant_bias=folded)
    if np.any(overflow) and out.fields["mode"] != RQ_FAST:
        return layer
    fields = {key: g[key] for key in (
        "batches", "in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "filter_h", "filter_w",
        "stride_h", "stride_w", "dilation_h", "dilation_w", "pad_top", "pad_left")}
    ring_rows = (g["filter_h"] - 1) * g["dilation_h"] + 1
    ring_w = (g["out_w"] - 1) * g["stride_w"] + (g["filter_w"] - 1) * g["dilation_w"] + 1
    fields.update(input_offset=input_offset, ring_rows=ring_rows, ring_w=ring_w,
                  weights=ConstArray(f"{name}_weights", "int32_t", words,
                                     "int16 weights, [channel group][tap][channels 0, 2, 1, 3]"),
                  out=out)
    struct = CStruct("tc_fast_depthwise_params", fields)
    # The kernel reads its input through the ring of rows in scratch, so it may run in place
    # wherever the portable kernel could (same kernel, no rewrite needed).
    return dataclasses.replace(layer, kernel="tc_fast_depthwise_conv2d_s8",
                               args=[struct, x, y, Scratch(ring_rows * ring_w * channels)],
                               sources=("tc_fast_depthwise_s8.c",))


def fast_depthwise_inplace(layer: Layer) -> Layer | None:
    """Return the tc_fast_depthwise_conv2d_s8 layer marked to run in place, or None if it cannot.

    The kernel copies each input row into its ring before any output row reaches it, so it needs
    no other kernel. It needs only an output no larger than the input. That holds for every
    depthwise layer with depth multiplier 1, whose output rows and columns never outnumber the
    input's.
    """
    x, y = layer.op.inputs[0], layer.op.outputs[0]
    if y.num_elements > x.num_elements:
        return None
    return dataclasses.replace(layer, inplace_ok=(0,))


def specialize_fully_connected(layer: Layer, options: LoweringOptions) -> Layer:
    params, x, w, bias, y = layer.args
    f = params.fields
    q = f["q"]
    if int(q.fields["weight_offset"]) != 0:
        return layer                      # asymmetric weights: portable kernel
    out_features, in_features = f["out_features"], f["in_features"]
    rows = np.asarray(w.data, dtype=np.int8).reshape(out_features, in_features)
    packed = _matrix_layer(layer, options, rows, _bias_values(bias, out_features), q, always_double=False,
                           wide=False, conv=False)
    if packed is None:
        return layer
    words, out = packed
    name = layer_symbol(layer.op)
    struct = CStruct("tc_fast_fc_params", {
        "batches": f["batches"], "in_features": in_features, "out_features": out_features,
        "k4": _round_up(max(in_features, 1), 4),
        "weights": ConstArray(f"{name}_weights", "int32_t", words, "int8 weight rows, zero-padded to whole words"),
        "out": out,
    })
    return dataclasses.replace(layer, kernel="tc_fast_fully_connected_s8", args=[struct, x, y],
                               sources=("tc_fast_fully_connected_s8.c",), inplace_ok=())


def specialize_pool(layer: Layer, options: LoweringOptions) -> Layer:
    kernel = {"tc_avg_pool2d_s8": "tc_fast_avg_pool2d_s8", "tc_max_pool2d_s8": "tc_fast_max_pool2d_s8"}[layer.kernel]
    return dataclasses.replace(layer, kernel=kernel, sources=("tc_fast_pool2d_s8.c",))


def _rows(dims: list[int], strides: list[list[int]]) -> tuple[int, int, list[tuple[int, int]]] | None:
    """Flatten a broadcast loop nest to (outer, inner) rows with one step per input, or None.

    Each input must advance by 0 or 1 per element over the inner dimensions and by a fixed step
    per row over the outer ones.
    """
    kept = [i for i, d in enumerate(dims) if d != 1]
    dims = [dims[i] for i in kept]
    strides = [[s[i] for i in kept] for s in strides]

    def linear(ds: list[int], ss: list[int]) -> int | None:
        """Return the step of a flattened index over these dims, or None if it is not linear."""
        if not ds:
            return 0
        step = ss[-1]
        for j in range(len(ds) - 1):
            if ss[j] != ss[j + 1] * ds[j + 1]:
                return None
        return step

    for split in range(len(dims) + 1):
        inner_dims, outer_dims = dims[split:], dims[:split]
        inner_steps = [linear(inner_dims, s[split:]) for s in strides]
        outer_steps = [linear(outer_dims, s[:split]) for s in strides]
        if all(step in (0, 1) for step in inner_steps) and None not in outer_steps:
            inner = int(np.prod(inner_dims, dtype=np.int64)) if inner_dims else 1
            outer = int(np.prod(outer_dims, dtype=np.int64)) if outer_dims else 1
            return outer, inner, list(zip(outer_steps, inner_steps))
    return None


def specialize_binary(layer: Layer, options: LoweringOptions) -> Layer:
    params, a, b, y = layer.args
    f = params.fields
    if f["flat_size"] > 0:
        outer, inner, steps = 1, f["flat_size"], [(0, 1), (0, 1)]
    else:
        flat = _rows(list(f["out_dims"]), [list(f["in1_strides"]), list(f["in2_strides"])])
        if flat is None:
            return layer
        outer, inner, steps = flat
    name = layer_symbol(layer.op)
    # ADD, SUB and MUL round twice in both references (tc_binary_s8.c).
    fields: dict = {"outer": outer, "inner": inner,
                    "in1_outer": steps[0][0], "in1_inner": steps[0][1],
                    "in2_outer": steps[1][0], "in2_inner": steps[1][1]}
    one = np.zeros(1, dtype=np.int64)
    if layer.kernel == "tc_mul_s8":
        off1, off2 = int(f["input1_offset"]), int(f["input2_offset"])
        bound = _input_span(off1) * _input_span(off2)
        out = output_stage(name, one, np.array([f["output_multiplier"]]), np.array([f["output_shift"]]), bound,
                           int(f["output_offset"]), int(f["act_min"]), int(f["act_max"]), True, 1)
        fields.update(table1="NULL", table2="NULL", input1_offset=off1, input2_offset=off2, out=out)
        kernel = "tc_fast_mul_s8"
    else:
        values = np.arange(ADD_TABLE_SIZE, dtype=np.int64)
        signed = np.where(values > 127, values - 256, values)

        def table(offset: int, multiplier: int, shift: int) -> np.ndarray:
            return np.array([requantize_double(_wrap32((int(v) + offset) << int(f["left_shift"])), multiplier, shift)
                             for v in signed], dtype=np.int64)

        t1 = table(int(f["input1_offset"]), int(f["input1_multiplier"]), int(f["input1_shift"]))
        t2 = table(int(f["input2_offset"]), int(f["input2_multiplier"]), int(f["input2_shift"]))
        if layer.kernel == "tc_sub_s8":
            t2 = -t2
        if np.max(np.abs(t1)) + np.max(np.abs(t2)) > INT32_MAX:
            return layer
        bound = int(np.max(np.abs(t1)) + np.max(np.abs(t2)))
        out = output_stage(name, one, np.array([f["output_multiplier"]]), np.array([f["output_shift"]]), bound,
                           int(f["output_offset"]), int(f["act_min"]), int(f["act_max"]), True, 1)
        fields.update(table1=ConstArray(f"{name}_table1", "int32_t", t1.astype(np.int32),
                                        "input 1 rescaled, indexed by its byte"),
                      table2=ConstArray(f"{name}_table2", "int32_t", t2.astype(np.int32),
                                        "input 2 rescaled (negated for SUB), indexed by its byte"),
                      input1_offset=0, input2_offset=0, out=out)
        kernel = "tc_fast_add_s8"
    struct = CStruct("tc_fast_binary_params", fields)
    return dataclasses.replace(layer, kernel=kernel, args=[struct, a, b, y], sources=("tc_fast_binary_s8.c",))


_SPECIALIZERS = {
    "tc_conv2d_s8": specialize_conv,
    "tc_depthwise_conv2d_s8": specialize_depthwise,
    "tc_fully_connected_s8": specialize_fully_connected,
    "tc_avg_pool2d_s8": specialize_pool,
    "tc_max_pool2d_s8": specialize_pool,
    "tc_add_s8": specialize_binary,
    "tc_sub_s8": specialize_binary,
    "tc_mul_s8": specialize_binary,
}


def specialize_layer(layer: Layer, options: LoweringOptions) -> Layer:
    """Return `layer` with a specialized kernel where one applies, else `layer` unchanged."""
    if options.kernels == "portable" or layer.kernel not in _SPECIALIZERS:
        return layer
    specialized = _SPECIALIZERS[layer.kernel](layer, options)
    if specialized is not layer:
        log.debug("%s: %s instead of %s", layer.op.describe(), specialized.kernel, layer.kernel)
    return specialized
