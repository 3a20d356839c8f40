"""The process-wide memo of decoded files: computed once per file state and settings, bounded, and shared by datasets."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg_core.data import oct as oct_data
from medseg_core.data.memo import DECODED_FRAMES, FileMemo
from medseg_core.data.oct import OCTDataset, find_oct_pairs
from medseg_core.data.synthetic_oct import write_oct_dataset


def test_a_value_is_computed_once_per_file_state_and_settings(tmp_path):
    path = tmp_path / "frame.bin"
    path.write_bytes(b"one")
    memo, calls = FileMemo(max_bytes=1000), []

    def compute() -> np.ndarray:
        calls.append(path.read_bytes())
        return np.zeros(10, dtype=np.uint8)

    memo.get([path], "a", compute), memo.get([path], "a", compute)
    assert len(calls) == 1 and (memo.hits, memo.misses) == (1, 1)
    memo.get([path], "b", compute)  # other settings
    path.write_bytes(b"three")  # the file changed: read again
    memo.get([path], "a", compute)
    assert calls == [b"one", b"one", b"three"]


def test_least_recently_used_values_are_dropped_beyond_the_budget(tmp_path):
    paths = [tmp_path / f"{index}.bin" for index in range(3)]
    for path in paths:
        path.write_bytes(b"x")
    memo = FileMemo(max_bytes=250)
    for path in paths:
        memo.get([path], None, lambda: torch.zeros(100, dtype=torch.uint8))
    assert len(memo) == 2 and memo.bytes == 200
    memo.get([paths[0]], None, lambda: torch.ones(1000, dtype=torch.uint8))  # larger than the budget: not kept
    assert len(memo) == 2 and memo.misses == 4
    memo.get([paths[2]], None, lambda: torch.ones(1))  # still kept
    assert memo.hits == 1


def test_a_second_dataset_of_the_same_files_decodes_nothing(tmp_path, monkeypatch):
    write_oct_dataset(tmp_path, num_patients=2, frames_per_patient=2, seed=5, size=48)
    pairs = find_oct_pairs(tmp_path)
    DECODED_FRAMES.clear()
    first = OCTDataset(pairs, image_size=32)
    items = [first[index] for index in range(len(first))]
    reads = []
    for name in ("read_oct_mask", "_load_pair"):
        original = getattr(oct_data, name)
        monkeypatch.setattr(oct_data, name, lambda *args, _original=original, _name=name, **kwargs: (
            reads.append(_name), _original(*args, **kwargs))[1])
    second = OCTDataset(pairs, image_size=32)  # the next run of a grid
    assert second.has_foreground == first.has_foreground
    for index, item in enumerate(items):
        assert torch.equal(second[index]["image"], item["image"]) and torch.equal(second[index]["mask"], item["mask"])
    assert reads == []
    OCTDataset(pairs, image_size=24)[0]  # another size is another frame (_load_pair reads its mask too)
    assert reads == ["_load_pair", "read_oct_mask"]
    mask = Path(pairs["mask_path"][0])
    os.utime(mask, ns=(mask.stat().st_atime_ns, mask.stat().st_mtime_ns + 10**9))  # touched: read again
    OCTDataset(pairs, image_size=32)
    assert reads == ["_load_pair", "read_oct_mask", "read_oct_mask"]


def test_a_missing_file_gives_the_readers_own_error_and_is_not_kept(tmp_path):
    memo = FileMemo(max_bytes=1000)

    def read() -> np.ndarray:
        raise FileNotFoundError(f"image not found: {tmp_path / 'gone.png'}")

    with pytest.raises(FileNotFoundError, match="image not found"):
        memo.get([tmp_path / "gone.png"], None, read)
    assert len(memo) == 0 and memo.misses == 0
