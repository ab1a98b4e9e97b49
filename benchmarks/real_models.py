"""The real public models that the benchmark scripts measure, relative to ../shared/models."""

from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "models"
MODELS = [
    "mlperf_tiny/kws_ref_model.tflite",
    "mlperf_tiny/vww_96_int8.tflite",
    "mlperf_tiny/pretrainedResnet_quant.tflite",
    "mlperf_tiny/ad01_int8.tflite",
    "tflm/person_detection/person_detect.tflite",
    "tflm/hello_world/hello_world_int8.tflite",
    "tflm/memory_footprint/simple_add_model.tflite",
    "tflm/network_tester/network_model_dwconv_int8.tflite",
]
