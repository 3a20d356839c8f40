"""File utilities every writer of the kit shares: atomic replacement, digests, folder locks and folder checks.

Checkpoints, run histories, grid results, manifests, downloads and prepared datasets are all written through
:func:`atomic_output`, so an interrupted write leaves the previous file (or nothing), never half of one, and the
temporary file of a killed writer is removed on the next start (:func:`remove_stale_temporaries`); file
identities (download checks, dataset stamps) all use :func:`file_digest`, data identities :func:`folder_fingerprint`.
A folder one process writes (a run, a prediction) is held with :func:`folder_lock` before any of its files is
touched, and a writer that reads one folder and writes another checks them apart first (:func:`separate_folders`).
"""
from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from .errors import ConfigError

try:
    import fcntl
except ImportError:  # Windows: folders are not locked
    fcntl = None

__all__ = ["atomic_output", "write_csv_atomic", "file_digest", "folder_fingerprint", "ensure_writable",
           "separate_folders", "folder_lock", "remove_stale_temporaries"]

_CHUNK_BYTES = 1 << 20
_LOCK_FILE = ".lock"
_FINGERPRINT_VERSION = "v2"
_NOTE_SUFFIXES = (".md", ".txt", ".rst", ".pdf", ".html", ".htm")  # documentation beside data, not data
_NOTE_STEMS = ("README", "LICENSE", "LICENCE", "COPYING", "NOTICE", "CITATION", "AUTHORS")
_TEMPORARY_NAME = re.compile(r"^\.(?:.+\.tmp|medseg-write-test)(\d+)$")  # atomic_output and ensure_writable names


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` (``os.replace``), on error it is removed.

    Readers see the old file or the new one, never half of one. Example::

        with atomic_output(run_dir / "last.pt") as temporary:
            torch.save(state, temporary)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")  # a kill leaves it: remove_stale_temporaries
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_csv_atomic(table: pd.DataFrame, path: str | Path, index: bool = False,
                     float_format: str | None = None) -> Path:
    """Write ``table`` as CSV through :func:`atomic_output` (``float_format`` e.g. ``"%.6g"``; None: full precision)."""
    with atomic_output(path) as temporary:
        table.to_csv(temporary, index=index, float_format=float_format)
    return Path(path)


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (``"sha256"``, ``"md5"``, any :func:`hashlib.new` name), read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_fingerprint(root: str | Path) -> str:
    """Short digest of a folder's data files, by relative name and size: which data a run was trained on.

    Reads no file contents (a stat per file), so it is cheap for large datasets; a renamed, added, removed or
    resized data file changes it. Linked folders are followed (each real folder once), hidden files and folders
    and notes beside the data (``README``, licences, ``.md``/``.txt``/... files) are left out. Prefixed with its
    version (``v2:``); ids of the first version (no prefix, which counted notes and skipped links) are not
    compared with these.
    """
    root = Path(root)
    digest = hashlib.sha256()
    for relative, size in sorted(_data_files(root)):
        digest.update(f"{relative}\t{size}\n".encode())
    return f"{_FINGERPRINT_VERSION}:{digest.hexdigest()[:16]}"


def _data_files(root: Path) -> Iterator[tuple[str, int]]:
    """``(relative POSIX path, size)`` of the data files under ``root`` (see :func:`folder_fingerprint`)."""
    seen: set[str] = set()
    for folder, subfolders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree, or a second link to one folder
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        for name in names:
            path = Path(folder) / name
            if name.startswith(".") or _is_note(name) or not path.is_file():
                continue
            yield path.relative_to(root).as_posix(), path.stat().st_size


def _is_note(name: str) -> bool:
    path = Path(name)
    return path.suffix.lower() in _NOTE_SUFFIXES or path.stem.upper() in _NOTE_STEMS


def ensure_writable(folder: str | Path) -> Path:
    """Create ``folder`` if needed and check a file can be written there, before any long work starts.

    Raises:
        ConfigError: the folder cannot be created or written (the message gives the system's reason).
    """
    folder = Path(folder)
    probe = folder / f".medseg-write-test{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"cannot write to {folder}: {error.strerror or error}") from error
    return folder


def separate_folders(source: str | Path, output: str | Path, *, source_flag: str = "--source",
                     output_flag: str = "--output") -> tuple[Path, Path]:
    """``source`` and ``output`` as absolute paths (``..`` and symbolic links resolved), checked to be apart.

    A writer that reads one folder and writes another must never get one folder twice, or one inside the other:
    replacing its output would delete what it reads (or read what it writes). The flags name the two in the message.

    Raises:
        ConfigError: the folders are one, or one lies inside the other.
    """
    source, output = Path(source).resolve(), Path(output).resolve()
    if source == output or source in output.parents or output in source.parents:
        raise ConfigError(f"{output_flag} {output} and {source_flag} {source} overlap (one folder, or one inside the "
                          "other): writing the output could delete or replace what is read. Choose another "
                          f"{output_flag} outside {source}")
    return source, output


@contextmanager
def folder_lock(folder: str | Path, *, advice: str) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (POSIX ``flock`` on ``folder/.lock``, folder created) for the block.

    Another holder, in this process or another, is refused at once, by name (the lock file records ``process N on
    HOST``), with ``advice``. Not locked where ``fcntl`` is missing (Windows).

    Raises:
        ConfigError: the folder cannot be created or written, or someone else holds its lock.
    """
    if fcntl is None:
        yield
        return
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / _LOCK_FILE, "a+")
    except OSError as error:
        raise ConfigError(f"cannot write to {folder}: {error.strerror or error}") from error
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ConfigError(f"{folder} is in use by {holder}: {advice}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files that writers killed mid-write left in ``folder`` (not its sub-folders).

    Only the kit's own names (:func:`atomic_output`'s ``.NAME.tmpPID``, :func:`ensure_writable`'s probe) whose
    process ``PID`` no longer runs on this machine are removed, so a live writer's file is never touched. Returns
    the removed paths.
    """
    removed = []
    for path in Path(folder).iterdir():
        match = _TEMPORARY_NAME.match(path.name)
        if match and path.is_file() and not _process_runs(int(match[1])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
