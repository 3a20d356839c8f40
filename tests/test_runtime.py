"""The fast-path decisions of ``medseg_core.runtime``: mixed precision and memory layout per model and device, and
the allocator setting."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
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


_PAGE_FAULTS_PER_ALLOCATION = textwrap.dedent("""
    import resource, sys, torch
    from medseg_core.runtime import keep_freed_memory
    kept = keep_freed_memory() if sys.argv[1] == "keep" else False
    faults = []
    for _ in range(10):  # a 64 MiB tensor made and freed, as a train step's activations are
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.empty(2**24).fill_(1.0)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(kept, sum(faults[5:]))  # once the heap has grown to its steady size (a few allocations)
""")


def _page_faults(mode: str) -> tuple[bool, int]:
    result = subprocess.run([sys.executable, "-c", _PAGE_FAULTS_PER_ALLOCATION, mode], capture_output=True,
                            text=True, check=True)
    kept, faults = result.stdout.split()
    return kept == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="keep_freed_memory configures glibc's malloc")
def test_keep_freed_memory_reuses_pages_instead_of_faulting_them_in_again():
    kept, faults_kept = _page_faults("keep")
    released, faults_released = _page_faults("release")
    if not kept:
        pytest.skip("this Linux has no glibc mallopt (e.g. musl)")
    assert not released
    # glibc's default unmaps each 64 MiB block on free: 5 x 16384 faults of 4 KiB pages (fewer with huge pages).
    assert faults_kept < faults_released / 4, (faults_kept, faults_released)


def test_trainer_keeps_freed_memory_on_cpu_unless_told_not_to(monkeypatch):
    from medseg_core import training
    from medseg_core.checkpoints import RunMetadata
    from medseg_core.config import TrainConfig

    calls = []
    monkeypatch.setattr(training, "keep_freed_memory", lambda: calls.append(1) or True)
    metadata = RunMetadata(task="xca", image_size=16)
    for keep in (True, False):
        training.Trainer(create_model("unet2d", base_channels=4, depth=2), torch.nn.BCEWithLogitsLoss(),
                         TrainConfig(device="cpu", keep_freed_memory=keep), metadata=metadata, progress=False)
    assert calls == [1]
