"""EmbBERT-Q-style models in QEMU: bit-exact on real text on Cortex-M4 and Cortex-M7, within 256 KB."""

from __future__ import annotations

import shutil

import pytest

from test_transformer import MODELS, SRAM_BUDGET, edge_ids, text_samples
from tinycompile.simulate import simulate_model

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                       reason="needs qemu-system-arm and gcc-arm-none-eabi (scripts/setup.sh installs them)"),
]

SIZES = {"embbert_small": (32, 512), "embbert_full": (256, 8192)}


@pytest.mark.parametrize("board", ["qemu-m4", "qemu-m7"])
@pytest.mark.parametrize("name", sorted(SIZES))
def test_embbert_real_text_in_qemu(name: str, board: str):
    seq, vocab = SIZES[name]
    samples = text_samples(name) + [edge_ids(seq, vocab)]
    result = simulate_model(MODELS / f"{name}.tflite", board=board, samples=0, extra_samples=samples)
    assert result.samples >= 10
    for output in result.outputs:
        assert output.mismatches == 0, f"{output.name}: {output.mismatches} of {output.elements} differ"
    assert result.compiled.arena_size <= SRAM_BUDGET
    assert result.image.data + result.image.bss + result.run.stack_used <= SRAM_BUDGET
