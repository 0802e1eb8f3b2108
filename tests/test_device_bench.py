"""benchmarks/device_bench.py and device.sh (the accelerator pass) on the CPU, at smoke size."""

import subprocess

import keras
import pytest

from benchmarks import device_bench


@pytest.mark.parametrize("model,precision", [("dvbpr", "xla"), ("gan", "mixed")])
def test_measures_a_positive_rate_on_whatever_device(model, precision):
  try:
    result = device_bench.measure(model, "smoke", precision, steps=1, num_items=32,
                                  num_users=16, repeats=1)
  finally:
    keras.mixed_precision.set_global_policy("float32")
  assert result["rate"] > 0 and result["device"] and result["batch"] > 0
  assert result["unit"] == ("pairs/s" if model == "dvbpr" else "images/s")


def test_unknown_precision_is_refused():
  with pytest.raises(ValueError, match="precision must be one of"):
    device_bench.measure("dvbpr", "smoke", "bfloat8", steps=1)


def test_the_script_parses():
  subprocess.run(["bash", "-n", "benchmarks/device.sh"], check=True)
