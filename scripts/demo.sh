#!/usr/bin/env bash
# The main job: install what is missing, compile the bundled MLPerf Tiny keyword-spotting model for
# the default simulated board (qemu-m4, a Cortex-M4 with a 256 KB SRAM budget), run it in QEMU on
# its real input plus random ones, and print the prediction, the verification against TFLM, and
# the instruction and memory report. Extra arguments go to `tinycompile simulate`.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup.sh"
cd "$repo"
exec "$repo/.venv/bin/tinycompile" simulate examples/kws/kws_ref_model.tflite \
    --board qemu-m4 \
    --input examples/kws/kws_input0_int8_49x10.bin \
    --labels examples/kws/labels.txt \
    --samples 4 "$@"
