"""End to end on the host: real public models, bit-exact against TFLM on real and random inputs."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SHARED_MODELS, shared_model
from inputs import ad_samples, kws_samples, person_samples
from tinycompile.verify import verify_model

SAMPLES = 20


def assert_bit_exact(result) -> None:
    assert result.samples >= SAMPLES
    for output in result.outputs:
        assert output.mismatches == 0, f"{output.name}: {output.mismatches} of {output.elements} differ"


def test_kws_real_input_bit_exact():
    model = shared_model("mlperf_tiny/kws_ref_model.tflite")
    result = verify_model(model, samples=SAMPLES - 1, extra_samples=kws_samples(SHARED_MODELS))
    assert_bit_exact(result)


def test_kws_predicts_real_keyword():
    # The shipped KWS input is the benchmark's first test vector; TFLM puts it in class 5.
    model = shared_model("mlperf_tiny/kws_ref_model.tflite")
    result = verify_model(model, samples=0, extra_samples=kws_samples(SHARED_MODELS))
    assert int(np.argmax(result.generated[0][0])) == int(np.argmax(result.expected[0][0]))
    assert int(np.argmax(result.generated[0][0])) == 5


def test_vww_bit_exact():
    assert_bit_exact(verify_model(shared_model("mlperf_tiny/vww_96_int8.tflite"), samples=SAMPLES))


def test_resnet8_bit_exact():
    assert_bit_exact(verify_model(shared_model("mlperf_tiny/pretrainedResnet_quant.tflite"), samples=SAMPLES))


def test_ad_real_windows_bit_exact():
    model = shared_model("mlperf_tiny/ad01_int8.tflite")
    result = verify_model(model, samples=0, extra_samples=ad_samples(SHARED_MODELS, model, SAMPLES))
    assert_bit_exact(result)


def test_person_detect_real_images_bit_exact():
    model = shared_model("tflm/person_detection/person_detect.tflite")
    result = verify_model(model, samples=SAMPLES - 2, extra_samples=person_samples(SHARED_MODELS))
    assert_bit_exact(result)


def test_person_detect_tells_images_apart():
    model = shared_model("tflm/person_detection/person_detect.tflite")
    result = verify_model(model, samples=0, extra_samples=person_samples(SHARED_MODELS))
    person, no_person = (int(np.argmax(out[0])) for out in result.generated)
    # Output classes are (no person, person).
    assert person == 1
    assert no_person == 0


def test_hello_world_bit_exact():
    assert_bit_exact(verify_model(shared_model("tflm/hello_world/hello_world_int8.tflite"), samples=SAMPLES))


def test_simple_add_two_inputs_bit_exact():
    assert_bit_exact(verify_model(shared_model("tflm/memory_footprint/simple_add_model.tflite"), samples=SAMPLES))


def test_dwconv_matches_shipped_expected_output():
    model = shared_model("tflm/network_tester/network_model_dwconv_int8.tflite")
    data = np.fromfile(SHARED_MODELS / "tflm/network_tester/input_data_int8.bin", dtype=np.int8)
    expected = np.fromfile(SHARED_MODELS / "tflm/network_tester/expected_output_data_int8.bin", dtype=np.int8)
    result = verify_model(model, samples=SAMPLES - 1, extra_samples=[[data.reshape(1, 8, 8, 16)]])
    assert_bit_exact(result)
    generated = result.generated[0][0].reshape(-1)
    assert np.count_nonzero(generated != expected) == 0


@pytest.mark.parametrize("model", ["mlperf_tiny/ad01_int8.tflite", "tflm/hello_world/hello_world_int8.tflite",
                                   "mlperf_tiny/kws_ref_model.tflite"])
def test_litert_rounding_matches_litert(model):
    assert_bit_exact(verify_model(shared_model(model), rounding="litert", samples=SAMPLES))
