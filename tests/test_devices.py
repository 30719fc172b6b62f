"""course_utils.devices: which device trains, and at which precision."""

from pathlib import Path

import pytest
import torch

from course_utils import devices
from course_utils.devices import choose_precision


def test_without_a_gpu_the_cpu_is_chosen_and_the_choice_says_why(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert devices.pick_device().type == "cpu"
    assert "because no CUDA or MPS GPU was found" in capsys.readouterr().out


def test_a_cuda_gpu_is_chosen_first_when_there_is_one(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(devices, "describe_device", lambda device: "cuda (a GPU)")  # no GPU here to describe
    assert devices.pick_device().type == "cuda"
    assert "Using cuda (a GPU) because a CUDA GPU is available." in capsys.readouterr().out


@pytest.mark.parametrize("capability, expected", [((9, 0), "bf16"), ((8, 0), "bf16"), ((7, 5), "fp16"),
                                                  ((7, 0), "fp16"), ((6, 1), "fp16")])
def test_precision_follows_the_gpus_compute_capability(monkeypatch, capability, expected):
    # No GPU here: fake the one question the chooser asks of it (H100 9.0, A100 8.0, T4 7.5, V100 7.0).
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert choose_precision(torch.device("cuda", 0)) == expected
    assert choose_precision(torch.device("cuda", 0), amp=True) == expected
    assert choose_precision(torch.device("cuda", 0), amp=False) == "fp32"

def test_precision_on_a_cpu_is_fp32_unless_asked():
    assert choose_precision("cpu") == "fp32" and choose_precision("mps") == "fp32"
    assert choose_precision("cpu", amp=True) == "bf16"
    assert choose_precision("cpu", amp="fp16") == "fp16"
    with pytest.raises(ValueError, match="not a precision"):
        choose_precision("cpu", amp="half")


@pytest.mark.parametrize("amx, expected", [(True, "bf16"), (False, "fp32")])
def test_native_precision_on_a_cpu_is_bf16_only_with_bf16_matrix_units(monkeypatch, amx, expected):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert choose_precision("cpu", amp="native") == expected
    assert choose_precision("cpu") == "fp32"  # the automatic choice keeps every CPU lesson in fp32
    assert choose_precision("mps", amp="native") == "fp32"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    assert choose_precision(torch.device("cuda", 0), amp="native") == "fp16"  # on a GPU: as automatic
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")  # a torch without the (private) test: fp32
    assert choose_precision("cpu", amp="native") == "fp32"


def test_the_bf16_matrix_units_are_what_the_kernel_reports_for_this_cpu():
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo to compare with (not Linux)")
    assert devices.cpu_has_bf16_matrix_units() == (" amx_bf16" in cpuinfo.read_text())
