"""Decoded files kept in memory for the whole process, shared by every dataset that reads them.

A grid of runs in one notebook (the ablations, the synthetic-to-real curve) builds a new dataset for every run;
without a shared memo each run decodes and resizes the same frames again (OCT frames are stored at 750², as in
the public dataset: about 6 s per run at 96² on 2 cores, more than a tenth of a short run). :class:`FileMemo` keys
a value by the identity of the files it was computed from (path, inode, size in bytes, modification time in ns) and by
the caller's settings, so a changed file is read again; it forgets the least recently used values beyond a byte
budget. DataLoader worker processes inherit the parent's values and keep their own additions.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = ["FileMemo", "DECODED_FRAMES", "file_identity"]

T = TypeVar("T")


def _nbytes(value: Any) -> int:
    """Bytes held by the tensors and arrays in ``value`` (a tensor, an array, or tuples and lists of them)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (tuple, list)):
        return sum(_nbytes(item) for item in value)
    return 0


def file_identity(path: str | Path) -> tuple[str, int, int, int]:
    """``(absolute path, inode, size, mtime_ns)``: what makes a file the same file for a memo (a file replaced
    atomically gets a new inode, one rewritten in place a new modification time)."""
    path = Path(path).absolute()
    stat = path.stat()
    return str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns


class FileMemo:
    """A least-recently-used memo of values computed from files, bounded by the bytes of their tensors.

    Args:
        max_bytes: budget for the tensors and arrays held (values larger than it are computed, not kept).

    Example:
        >>> memo = FileMemo(max_bytes=2**20)
        >>> image = memo.get([path], ("resized", 128), lambda: decode_and_resize(path, 128))  # doctest: +SKIP
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._values: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, files: Sequence[str | Path], settings: Hashable, compute: Callable[[], T]) -> T:
        """The value of ``compute()`` for these ``files`` (as they are now) and ``settings``, computed once."""
        try:
            key = (tuple(file_identity(path) for path in files), settings)
        except OSError:  # a missing or unreadable file: compute() raises the reader's own error, naming it
            return compute()
        if key in self._values:
            self._values.move_to_end(key)
            self.hits += 1
            return self._values[key][0]
        self.misses += 1
        value = compute()
        size = _nbytes(value)
        if size <= self.max_bytes:
            self._values[key] = (value, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, dropped) = self._values.popitem(last=False)
                self.bytes -= dropped
        return value

    def clear(self) -> None:
        """Forget every value."""
        self._values.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._values)


DECODED_FRAMES = FileMemo(max_bytes=2 * 2**30)
"""The process's memo of decoded, resized frames (2 GiB: 256² OCT frames of 8,000 images)."""
