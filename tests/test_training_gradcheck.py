"""Gradient check: one generated training step against a NumPy reference of the same int8 graph.

The reference runs the forward pass with the integer arithmetic of the int8 kernels (TFLM's
double-rounding requantization), then differentiates it in float64 with straight-through
rounding: gradients are taken with respect to the integer values, clamps mask them, and each
parameter moves by -lr * gradient / s_w^2 (weights) or / (s_x * s_w)^2 (biases), the QAS
update. The generated C runs one step on the host and exports its float32 master copies; every
updated parameter must move as the reference says, within relative 1e-4.
"""

from __future__ import annotations

import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tinycompile import ir, quant
from tinycompile.codegen.ops.common import output_size, padding_before
from tinycompile.training.codegen import write_training
from tinycompile.training.compiler import compile_training
from tinycompile.training.config import parse_config
from tinycompile.training.host import build_training_runner, run_training_runner, write_dataset

MODELS = Path(__file__).parent / "models" / "training"
GRADCHECK = MODELS / "gradcheck_cnn.tflite"
RELATIVE = 1e-4


# Integer forward pass -------------------------------------------------------------------------


def _rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = a.astype(np.int64) * np.asarray(b, np.int64)
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    total = ab + nudge
    return np.where(total >= 0, total // (1 << 31), -((-total) // (1 << 31)))


def _rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    exponent = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def _requantize(acc: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """TFLM's MultiplyByQuantizedMultiplier (double rounding), per channel along the last axis."""
    shift = np.asarray(shift, np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    return _rounding_divide_by_pot(_rounding_doubling_high_mul(acc << left, multiplier), right)


def _multipliers(op: ir.Operator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, w, y = op.inputs[0], op.inputs[1], op.outputs[0]
    channels = int(y.shape[-1])
    scales = np.asarray(w.quant.scale, np.float64)
    scales = np.full(channels, scales[0]) if scales.size == 1 else scales
    mult = np.zeros(channels, np.int64)
    shift = np.zeros(channels, np.int64)
    for c in range(channels):
        mult[c], shift[c] = quant.quantize_multiplier(float(x.quant.scalar_scale) * float(np.float32(scales[c]))
                                                      / float(y.quant.scalar_scale))
    real = float(x.quant.scalar_scale) * scales / float(y.quant.scalar_scale)
    return mult, shift, real


def _conv_geometry(op: ir.Operator):
    a = op.attrs
    x, w, y = op.inputs[0], op.inputs[1], op.outputs[0]
    kh, kw = (w.shape[1], w.shape[2])
    pad_t = padding_before(a.padding, x.shape[1], kh, a.stride_h, a.dilation_h, y.shape[1])
    pad_l = padding_before(a.padding, x.shape[2], kw, a.stride_w, a.dilation_w, y.shape[2])
    assert output_size(a.padding, x.shape[1], kh, a.stride_h, a.dilation_h) == y.shape[1]
    return kh, kw, pad_t, pad_l


def _taps(op: ir.Operator):
    """Yield (ky, kx, out_y slice, out_x slice, in_y index array, in_x index array) of valid taps."""
    a = op.attrs
    x, y = op.inputs[0], op.outputs[0]
    kh, kw, pad_t, pad_l = _conv_geometry(op)
    for ky in range(kh):
        for kx in range(kw):
            oy = np.arange(y.shape[1])
            ox = np.arange(y.shape[2])
            iy = oy * a.stride_h - pad_t + ky * a.dilation_h
            ix = ox * a.stride_w - pad_l + kx * a.dilation_w
            vy = (iy >= 0) & (iy < x.shape[1])
            vx = (ix >= 0) & (ix < x.shape[2])
            yield ky, kx, oy[vy], ox[vx], iy[vy], ix[vx]


def _clamp_range(op: ir.Operator) -> tuple[int, int]:
    return quant.activation_range(op.attrs.activation, op.outputs[0].quant)


class Reference:
    """Forward and backward pass of the training graph in NumPy."""

    def __init__(self, program, weights: dict[int, np.ndarray], biases: dict[int, np.ndarray]):
        self.tg = program.tg
        self.weights = weights      # id(op) -> int8 weights (current values)
        self.biases = biases        # id(op) -> int32 biases

    def forward(self, x_q: np.ndarray) -> dict[int, np.ndarray]:
        values = {id(self.tg.graph.inputs[0]): x_q.astype(np.int64)}
        for op in self.tg.graph.operators:
            values[id(op.outputs[0])] = self.forward_op(op, values)
        return values

    def forward_op(self, op: ir.Operator, values) -> np.ndarray:
        x_t = op.inputs[0]
        x = values[id(x_t)]
        y_t = op.outputs[0]
        zx = x_t.quant.scalar_zero_point
        zy = y_t.quant.scalar_zero_point
        if op.op_type in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = self.weights[id(op)].astype(np.int64)
            acc = np.zeros(y_t.shape, np.int64)
            for ky, kx, oy, ox, iy, ix in _taps(op):
                patch = x[:, iy][:, :, ix] - zx                   # [N, OY, OX, C]
                if op.op_type == "CONV_2D":
                    acc[:, oy[:, None], ox[None, :], :] += np.einsum("nhwc,oc->nhwo", patch, w[:, ky, kx, :])
                else:
                    m = w.shape[3] // x_t.shape[3]
                    acc[:, oy[:, None], ox[None, :], :] += np.repeat(patch, m, axis=3) * w[0, ky, kx, :]
            acc += self.biases[id(op)]
        elif op.op_type == "FULLY_CONNECTED":
            w = self.weights[id(op)].astype(np.int64)
            acc = (x.reshape(-1, w.shape[1]) - zx) @ w.T + self.biases[id(op)]
        elif op.op_type == "ADD":
            return self.add(op, values)
        elif op.op_type in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            return self.pool(op, x)
        elif op.op_type == "RESHAPE":
            return x.reshape(y_t.shape)
        else:
            raise AssertionError(f"no reference for {op.op_type}")
        mult, shift, _ = _multipliers(op)
        out = _requantize(acc, mult, shift) + zy
        lo, hi = _clamp_range(op)
        return np.clip(out, lo, hi).reshape(y_t.shape)

    def add(self, op: ir.Operator, values) -> np.ndarray:
        a_t, b_t, y_t = op.inputs[0], op.inputs[1], op.outputs[0]
        s1, s2, so = (float(t.quant.scalar_scale) for t in (a_t, b_t, y_t))
        twice = 2 * max(s1, s2)
        m1, sh1 = quant.quantize_multiplier_smaller_than_one(s1 / twice)
        m2, sh2 = quant.quantize_multiplier_smaller_than_one(s2 / twice)
        mo, sho = quant.quantize_multiplier_smaller_than_one(twice / ((1 << 20) * so))
        x1 = (values[id(a_t)] - a_t.quant.scalar_zero_point) << 20
        x2 = (values[id(b_t)] - b_t.quant.scalar_zero_point) << 20
        r1 = _rounding_divide_by_pot(_rounding_doubling_high_mul(x1, m1), -sh1)
        r2 = _rounding_divide_by_pot(_rounding_doubling_high_mul(x2, m2), -sh2)
        out = _rounding_divide_by_pot(_rounding_doubling_high_mul(r1 + r2, mo), -sho) + y_t.quant.scalar_zero_point
        lo, hi = _clamp_range(op)
        return np.clip(out, lo, hi)

    def pool(self, op: ir.Operator, x: np.ndarray) -> np.ndarray:
        a = op.attrs
        y_t = op.outputs[0]
        out = np.zeros(y_t.shape, np.int64)
        for oy in range(y_t.shape[1]):
            for ox in range(y_t.shape[2]):
                win = x[:, oy * a.stride_h: oy * a.stride_h + a.filter_h, ox * a.stride_w: ox * a.stride_w + a.filter_w]
                if op.op_type == "MAX_POOL_2D":
                    out[:, oy, ox] = win.max(axis=(1, 2))
                else:
                    total = win.sum(axis=(1, 2))
                    count = win.shape[1] * win.shape[2]
                    half = count // 2
                    out[:, oy, ox] = np.where(total > 0, (total + half) // count, -((-total + half) // count))
        lo, hi = quant.activation_range(a.activation, y_t.quant)
        return np.clip(out, lo, hi)

    def backward(self, values, label: int):
        """Return (loss, {id(op): weight gradient}, {id(op): bias gradient}) in integer units."""
        logits_t = self.tg.logits
        s = float(logits_t.quant.scalar_scale)
        z = s * values[id(logits_t)].reshape(-1).astype(np.float64)
        p = np.exp(z - z.max())
        p /= p.sum()
        loss = -np.log(p[label])
        grads = {id(logits_t): (s * (p - np.eye(p.size)[label])).reshape(logits_t.shape)}
        gw, gb = {}, {}
        for op in reversed(self.tg.graph.operators):
            y_t = op.outputs[0]
            if id(y_t) not in grads:
                continue
            g = grads[id(y_t)]
            x_t = op.inputs[0]
            x = values[id(x_t)].astype(np.float64)
            y = values[id(y_t)]

            def send(t, value):
                if t.is_constant or t is self.tg.graph.inputs[0]:
                    return
                grads[id(t)] = grads.get(id(t), 0.0) + value

            if op.op_type in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
                lo, hi = _clamp_range(op)
                _, _, real = _multipliers(op)
                g = np.where((y > lo) & (y < hi), g, 0.0) * real
                gb[id(op)] = g.reshape(-1, g.shape[-1]).sum(axis=0)
                w = self.weights[id(op)].astype(np.float64)
                xo = x - x_t.quant.scalar_zero_point
                if op.op_type == "FULLY_CONNECTED":
                    g2 = g.reshape(-1, w.shape[0])
                    gw[id(op)] = g2.T @ xo.reshape(-1, w.shape[1])
                    send(x_t, (g2 @ w).reshape(x_t.shape))
                    continue
                wgrad = np.zeros_like(w)
                xgrad = np.zeros(x_t.shape)
                for ky, kx, oy, ox, iy, ix in _taps(op):
                    gsub = g[:, oy[:, None], ox[None, :], :]
                    patch = xo[:, iy][:, :, ix]
                    if op.op_type == "CONV_2D":
                        wgrad[:, ky, kx, :] += np.einsum("nhwo,nhwc->oc", gsub, patch)
                        xgrad[:, iy[:, None], ix[None, :], :] += np.einsum("nhwo,oc->nhwc", gsub, w[:, ky, kx, :])
                    else:
                        m = w.shape[3] // x_t.shape[3]
                        wgrad[0, ky, kx, :] += (gsub * np.repeat(patch, m, axis=3)).sum(axis=(0, 1, 2))
                        contrib = gsub * w[0, ky, kx, :]
                        xgrad[:, iy[:, None], ix[None, :], :] += contrib.reshape(*contrib.shape[:3], -1, m).sum(axis=4)
                gw[id(op)] = wgrad
                send(x_t, xgrad)
            elif op.op_type == "ADD":
                lo, hi = _clamp_range(op)
                g = np.where((y > lo) & (y < hi), g, 0.0)
                s_y = float(y_t.quant.scalar_scale)
                for t in op.inputs[:2]:
                    send(t, g * float(t.quant.scalar_scale) / s_y)
            elif op.op_type == "RESHAPE":
                send(x_t, g.reshape(x_t.shape))
            elif op.op_type in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
                a = op.attrs
                if a.activation != ir.Activation.NONE:
                    lo, hi = quant.activation_range(a.activation, y_t.quant)
                    g = np.where((y > lo) & (y < hi), g, 0.0)
                xgrad = np.zeros(x_t.shape)
                for oy in range(y_t.shape[1]):
                    for ox in range(y_t.shape[2]):
                        ys, xs = oy * a.stride_h, ox * a.stride_w
                        win = x[0, ys: ys + a.filter_h, xs: xs + a.filter_w]
                        for c in range(x_t.shape[3]):
                            if op.op_type == "MAX_POOL_2D":
                                flat = int(np.argmax(win[:, :, c]))   # first maximum in scan order
                                dy, dx = divmod(flat, win.shape[1])
                                xgrad[0, ys + dy, xs + dx, c] += g[0, oy, ox, c]
                            else:
                                xgrad[0, ys: ys + a.filter_h, xs: xs + a.filter_w, c] += g[0, oy, ox, c] / win[:, :, 0].size
                send(x_t, xgrad)
            else:
                raise AssertionError(f"no reference backward for {op.op_type}")
        return loss, gw, gb


def _qas(op: ir.Operator) -> tuple[np.ndarray, np.ndarray]:
    w = op.inputs[1]
    s_w = np.asarray(w.quant.scale, np.float64)
    s_w = np.full(int(op.outputs[0].shape[-1]), s_w[0]) if s_w.size == 1 else s_w
    s_x = float(op.inputs[0].quant.scalar_scale)
    return 1.0 / s_w ** 2, 1.0 / (s_x * s_w) ** 2


def _master_view(program, layer, grad: np.ndarray, kind: str) -> np.ndarray:
    """Arrange a full weight or bias gradient as the master copy stores it ([rows][selected])."""
    if kind == "bias":
        return grad
    cols = int(layer.weight.shape[-1])
    return grad.reshape(-1, cols)[:, layer.channels]


def _read_masters(path: Path, program) -> list[np.ndarray]:
    raw = path.read_bytes()
    magic, _, size, _ = struct.unpack("<4I", raw[:16])
    assert magic == 0x50435454 and size == len(raw)
    out = []
    offset = 16
    for m in program.schedule.masters:
        out.append(np.frombuffer(raw, np.float32, m.value.count, offset).reshape(m.shape))
        offset += m.value.nbytes
    return out


CONFIG = {
    "bias_update": {"last_k": "all"},
    "weight_update": [{"layer": 0, "ratio": 0.5}, {"layer": 1, "ratio": 0.5}, {"layer": 2, "ratio": 1.0},
                      {"layer": 3, "ratio": 0.25}],
    "learning_rate": 0.1,
}


@pytest.fixture(scope="module")
def gradcheck(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gradcheck")
    program = compile_training(GRADCHECK, parse_config(CONFIG, "gradcheck"))
    out = write_training(program, tmp / "model")
    runner = build_training_runner(out, tmp / "runner")
    rng = np.random.default_rng(3)
    x_shape = program.tg.graph.inputs[0].shape
    x_q = rng.integers(-128, 128, size=(1, *x_shape[1:])).astype(np.int8)
    label = 2
    dataset = tmp / "one.bin"
    write_dataset(dataset, x_q, np.array([label]), x_q, np.array([label]), epochs=1, seed=0)
    run_training_runner(runner, dataset, epochs=0, export_params=tmp / "before.bin", logits=tmp / "logits.bin")
    result = run_training_runner(runner, dataset, epochs=1, export_params=tmp / "after.bin", log_steps=True)
    before = _read_masters(tmp / "before.bin", program)
    after = _read_masters(tmp / "after.bin", program)

    weights = {id(layer.op): layer.weight.data for layer in program.tg.layers}
    biases = {id(layer.op): layer.bias.data.astype(np.int64) for layer in program.tg.layers}
    reference = Reference(program, weights, biases)
    values = reference.forward(x_q.reshape(x_shape))
    loss, gw, gb = reference.backward(values, label)
    logits = np.frombuffer((tmp / "logits.bin").read_bytes(), np.int8)
    return SimpleNamespace(program=program, before=before, after=after, result=result, loss=loss, gw=gw, gb=gb,
                           logits=logits, reference_logits=values[id(program.tg.logits)].reshape(-1))


def test_gradcheck_forward_is_bit_exact(gradcheck):
    np.testing.assert_array_equal(gradcheck.logits, gradcheck.reference_logits)


def test_gradcheck_loss_matches(gradcheck):
    assert len(gradcheck.result.step_losses) == 1
    assert gradcheck.result.step_losses[0] == pytest.approx(gradcheck.loss, rel=1e-5)


def test_gradcheck_every_update_matches(gradcheck):
    program, before, after, gw, gb = gradcheck.program, gradcheck.before, gradcheck.after, gradcheck.gw, gradcheck.gb
    lr = CONFIG["learning_rate"]
    checked = 0
    for m, b0, b1 in zip(program.schedule.masters, before, after):
        op = m.layer.op
        qas_w, qas_b = _qas(op)
        if m.kind == "bias":
            expected = -lr * gb[id(op)] * qas_b
        else:
            grad = _master_view(program, m.layer, gw[id(op)], "weight")
            rows_per_channel = grad.shape[0] // qas_w.size if op.op_type != "DEPTHWISE_CONV_2D" else None
            if rows_per_channel is None:
                scale = qas_w[m.layer.channels][None, :]
            else:
                scale = np.repeat(qas_w, rows_per_channel)[:, None]
            expected = -lr * grad * scale
        got = b1.astype(np.float64) - b0.astype(np.float64)
        where = f"{m.kind} of {m.layer.label}"
        assert np.abs(expected).max() > 0, f"{where}: the reference update is zero, so the check is vacuous"
        scale_ref = np.abs(expected).max()
        assert np.abs(got - expected).max() <= RELATIVE * scale_ref, f"{where}: update differs from the reference"
        large = np.abs(expected) >= 0.01 * scale_ref
        rel = np.abs(got[large] - expected[large]) / np.abs(expected[large])
        assert rel.max() <= RELATIVE, f"{where}: largest relative error {rel.max():.2e}"
        checked += 1
    assert checked == len(program.schedule.masters) == 10


def test_gradcheck_initial_masters_are_parameters(gradcheck):
    program, before = gradcheck.program, gradcheck.before
    for m, b0 in zip(program.schedule.masters, before):
        if m.kind == "bias":
            np.testing.assert_array_equal(b0, m.layer.bias.data.astype(np.float32))
        else:
            cols = int(m.layer.weight.shape[-1])
            full = m.layer.weight.data.reshape(-1, cols)
            np.testing.assert_array_equal(b0, full[:, m.layer.channels].astype(np.float32))
