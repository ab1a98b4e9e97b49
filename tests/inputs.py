"""Real inputs of the public models, turned into samples in each model's input type."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from tinycompile.compiler import load_model
from tinycompile.verify import random_samples


def read_bmp_gray(path: Path) -> np.ndarray:
    """Read an uncompressed 8-bit palette BMP as a (height, width) array of gray levels."""
    data = path.read_bytes()
    if data[:2] != b"BM":
        raise ValueError(f"{path} is not a BMP file")
    pixel_offset = struct.unpack_from("<I", data, 10)[0]
    header_size = struct.unpack_from("<I", data, 14)[0]
    width, height = struct.unpack_from("<ii", data, 18)
    bits = struct.unpack_from("<H", data, 28)[0]
    if bits != 8:
        raise ValueError(f"{path} has {bits} bits per pixel; expected 8")
    palette = np.frombuffer(data, np.uint8, count=256 * 4, offset=14 + header_size).reshape(256, 4)
    row_bytes = (width + 3) // 4 * 4
    rows = np.frombuffer(data, np.uint8, count=row_bytes * abs(height), offset=pixel_offset)
    indices = rows.reshape(abs(height), row_bytes)[:, :width]
    if height > 0:
        indices = indices[::-1]
    return palette[indices, 0]


def person_samples(shared: Path) -> list[list[np.ndarray]]:
    """Return the two test images as model inputs: the gray bytes reinterpreted as int8.

    Read this way, TFLM scores person.bmp as a person (-113, 113) and no_person.bmp as not
    (57, -57); subtracting 128 instead leaves both images in the no-person class.
    """
    samples = []
    for name in ("person.bmp", "no_person.bmp"):
        gray = read_bmp_gray(shared / "tflm" / "person_detection" / name)
        samples.append([gray.astype(np.uint8).view(np.int8).reshape(1, 96, 96, 1)])
    return samples


def kws_samples(shared: Path) -> list[list[np.ndarray]]:
    raw = np.fromfile(shared / "mlperf_tiny" / "inputs" / "kws_input0_int8_49x10.bin", dtype=np.int8)
    return [[raw.reshape(1, 49, 10, 1)]]


def ad_samples(shared: Path, model: Path, count: int) -> list[list[np.ndarray]]:
    """Slide 5-frame windows over the real spectrogram and quantize them with the model's input parameters."""
    spectrogram = np.fromfile(shared / "mlperf_tiny" / "inputs" / "ad01_normal_id_01_hist_librosa_f32_200x128.bin",
                              dtype="<f4").reshape(200, 128)
    graph = load_model(model)
    q = graph.inputs[0].quant
    scale, zp = q.scalar_scale, q.scalar_zero_point
    samples = []
    for start in range(0, 196, max(1, 196 // count))[:count]:
        window = spectrogram[start:start + 5].reshape(1, 640)
        quantized = np.clip(np.round(window / scale) + zp, -128, 127).astype(np.int8)
        samples.append([quantized])
    return samples


def pad_with_random(model: Path, samples: list[list[np.ndarray]], total: int, seed: int = 0):
    graph = load_model(model)
    return samples + random_samples(graph, max(0, total - len(samples)), seed)
