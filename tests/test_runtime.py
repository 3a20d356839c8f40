"""The fast-path decisions of ``medseg_core.runtime``: mixed precision and memory layout per model and device."""
from __future__ import annotations

import torch

from medseg_core.models import create_model
from medseg_core.runtime import autocast_dtype, memory_format, to_memory_format


def _is_channels_last(tensor: torch.Tensor) -> bool:
    layout = {4: torch.channels_last, 5: torch.channels_last_3d}[tensor.ndim]
    return tensor.is_contiguous(memory_format=layout)


def test_layout_per_model_kind():
    svsnet, unet = create_model("svsnet", window_length=2), create_model("unet2d")
    assert memory_format(svsnet) == torch.channels_last_3d
    assert memory_format(unet) == torch.channels_last
    assert memory_format(svsnet, enabled=False) == memory_format(unet, enabled=False) == torch.contiguous_format


def test_svsnet_in_channels_last_converts_5d_and_4d_tensors_and_computes_the_same():
    torch.manual_seed(0)
    model = create_model("svsnet", window_length=2, dropout=0.0).eval()
    window = torch.rand(1, 1, 2, 64, 64)
    with torch.no_grad():
        expected = model(window)
        converted = to_memory_format(model, torch.channels_last_3d)
        assert converted is model
        ranks = {p.ndim for p in model.parameters()}
        assert {4, 5} <= ranks
        assert all(_is_channels_last(p) for p in model.parameters() if p.ndim in (4, 5))
        got = model(to_memory_format(window, torch.channels_last_3d))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    back = to_memory_format(model, torch.contiguous_format)
    assert all(p.is_contiguous() for p in back.parameters())


def test_no_bfloat16_for_3d_convolutions_on_cpu_and_float16_on_cuda():
    svsnet = create_model("svsnet", window_length=2)
    assert autocast_dtype(torch.device("cpu"), svsnet) is None  # oneDNN's bf16 Conv3d backward hangs (torch 2.14.1)
    assert autocast_dtype(torch.device("cuda"), svsnet) == torch.float16
    assert autocast_dtype(torch.device("cuda"), svsnet, enabled=False) is None
