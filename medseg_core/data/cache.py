"""One stamp for "this dataset folder was written completely by us": synthetic XCA, synthetic OCT, prepared OCT.

Every writer of a dataset folder goes through :class:`DatasetWriter`, which gives three guarantees:

* **Complete or visibly partial.** Each output file is *claimed* (its relative path appended to the journal
  ``.medseg_dataset.partial``) before it is written; the stamp ``medseg_dataset.json`` is written last,
  atomically, listing the writer, its version, its settings, a digest of those, and every file with its size
  and SHA-256. A folder with a journal and no stamp is a partial output of ours (an interrupted or failed run):
  the next run deletes exactly the journal's files and writes again.
* **Reused, never silently replaced.** A stamp with the same writer, version and settings whose files all still
  have their recorded sizes (and digests, with ``verify_digests``) is reused: nothing is written. A stamp with
  other settings, or a file missing or changed, raises :class:`~medseg_core.data.io.DataError` unless
  ``overwrite=True``; then only the files the stamp lists are deleted.
* **Nothing foreign is deleted or overwritten.** Without a stamp or journal, any of the writer's top-level
  outputs already in the folder raises (it may be real data); a claimed file that exists and is not ours raises.
  Folders are removed only when deleting our files left them empty.

Writers of the same folder take an exclusive lock (``.medseg_dataset.lock``, POSIX ``flock``), so a second run
waits and then reuses the first one's dataset instead of rewriting it under its feet.

Readers check the same marks (:func:`check_complete`, called by the XCA and OCT loaders and by ``medseg train
--data``): a folder with the journal and no stamp is one the kit has not finished writing (interrupted, or being
written now) and is refused, as is a stamped one that lacks some of its files (edited files are the user's business:
they are read as they are). The journal is written before the first file, so no folder the kit began to write lacks
both marks. A folder with neither was not written by the kit (the user's own data, or a copy of a kit data set) and
is read as it is.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from ..errors import ConfigError
from ..files import atomic_output, file_digest
from .io import DataError

try:  # POSIX; elsewhere writers of one folder are not serialised
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["STAMP_FILE", "JOURNAL_FILE", "LOCK_FILE", "settings_digest", "read_stamp", "check_complete",
           "DatasetWriter"]

STAMP_FILE = "medseg_dataset.json"
JOURNAL_FILE = ".medseg_dataset.partial"
LOCK_FILE = ".medseg_dataset.lock"
_STAMP_FORMAT = 1
_LEGACY_STAMPS = ("generator.json", "prepare.json")  # the stamps before this module, recognised only to say so


def settings_digest(writer: str, version: str | int, settings: Mapping[str, Any]) -> str:
    """First 8 hex digits of the SHA-256 of ``writer``, ``version`` and ``settings`` as canonical JSON.

    Names the folder of a synthetic dataset (``Profile.data_dir``), so other settings get another folder.
    """
    text = json.dumps({"writer": writer, "version": str(version), "settings": dict(settings)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def read_stamp(root: str | Path) -> dict[str, Any] | None:
    """The stamp of ``root`` as a dict (``writer, version, settings, digest, files``), or None if it has none."""
    path = Path(root) / STAMP_FILE
    if not path.is_file():
        return None
    try:
        stamp = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read the dataset stamp {path}: {error}; delete {Path(root)} and regenerate") from error
    if not isinstance(stamp, dict) or stamp.get("format") != _STAMP_FORMAT or "files" not in stamp:
        raise DataError(f"{path} is not a dataset stamp of this kit (format {_STAMP_FORMAT}); delete it or the folder")
    return stamp


def check_complete(root: str | Path) -> None:
    """Refuse a dataset folder the kit began to write and did not finish, or one that lost some of its files.

    Reads only the marks and a stat per file. Folders without the kit's marks are accepted (see the module
    docstring).

    Raises:
        DataError: a journal without a stamp (an interrupted or running ``medseg generate`` / ``medseg prepare``),
            or files the stamp lists are missing; the message names the writer and the fix.
    """
    root = Path(root)
    stamp = read_stamp(root)
    if stamp is None:
        journal = root / JOURNAL_FILE
        if journal.is_file():
            writer = _journal_writer(journal)
            raise DataError(f"{root} is a data set {writer} has not finished writing ({JOURNAL_FILE} without "
                            f"{STAMP_FILE}: interrupted, or still running); run it again (medseg generate or medseg "
                            "prepare redoes its partial output) and use the folder once it has finished")
        return
    missing = [relative for relative in stamp["files"] if not (root / relative).is_file()]
    if missing:
        writer = str(stamp.get("writer")).rsplit(".", 1)[-1]
        raise DataError(f"{root} is a data set written by {writer} that lacks {len(missing)} of its "
                        f"{len(stamp['files'])} files (e.g. {missing[0]}); write it again (medseg generate --overwrite "
                        "or medseg prepare --overwrite replaces only its own files) or restore them")


class DatasetWriter:
    """Context manager that writes one dataset folder under the guarantees of this module.

    Example::

        with DatasetWriter(root, writer="medseg_core.data.oct.prepare_lipid_dataset", version=1,
                           settings=settings, outputs=("img", "mask", "manifest.csv")) as output:
            if output.reuse(overwrite):
                return read_manifest(root)
            write_png(output.claim("img/001_1_001.png"), image)
            ...
            output.finish()

    Args:
        root: dataset folder (created if missing).
        writer: dotted name of the writing function, recorded and shown in errors.
        version: the writer's output version; bump it when the written files change.
        settings: JSON-serialisable parameters that determine the files.
        outputs: top-level names the writer creates, checked for foreign data before writing.
        verify_digests: on reuse, compare every file's SHA-256 as well as its size (reads all files).
    """

    def __init__(self, root: str | Path, *, writer: str, version: str | int, settings: Mapping[str, Any],
                 outputs: Sequence[str], verify_digests: bool = False) -> None:
        self.root = Path(root)
        self.writer = writer
        self._name = writer.rsplit(".", 1)[-1]  # the function, for messages
        self.version = str(version)
        self.settings = json.loads(json.dumps(dict(settings)))  # as it reads back from the stamp
        self.digest = settings_digest(writer, self.version, self.settings)
        self.outputs = tuple(outputs)
        self.verify_digests = verify_digests
        self._claimed: list[str] = []
        self._journal: IO[str] | None = None
        self._lock: IO[bytes] | None = None

    def __enter__(self) -> "DatasetWriter":
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.root / LOCK_FILE, "ab")
        except OSError as error:
            raise ConfigError(f"cannot write to {self.root}: {error.strerror or error}") from error
        if fcntl is not None:
            fcntl.flock(self._lock, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    # -- deciding -------------------------------------------------------------------------------------------
    def reuse(self, overwrite: bool = False) -> bool:
        """True if ``root`` holds this dataset complete and intact (nothing to write); else clear our old files.

        Raises:
            DataError: a complete dataset with other settings, or with a missing/changed file, and ``overwrite``
                is False; or foreign data where the writer's outputs go.
        """
        stamp = read_stamp(self.root)
        journal = self.root / JOURNAL_FILE
        if stamp is not None and not overwrite:
            problem = self._mismatch(stamp) or self._damage(stamp)
            if problem is None:
                journal.unlink(missing_ok=True)  # left over from a run stopped after writing the stamp
                return True
            raise DataError(
                f"{self.root} holds a dataset written by {stamp.get('writer')} that {problem}; it is not replaced "
                f"without overwrite=True. Choose another folder, delete {self.root}, or pass overwrite=True "
                "(which deletes only the files its stamp lists)"
            )
        if stamp is None and not journal.is_file():
            foreign = sorted(name for name in self.outputs if (self.root / name).exists())
            legacy = [name for name in _LEGACY_STAMPS if (self.root / name).is_file()]
            if foreign and legacy:
                raise DataError(
                    f"{self.root} was written by an earlier version of the kit ({legacy[0]}, no {STAMP_FILE}); "
                    f"delete {self.root} and run again"
                )
            if foreign:
                raise DataError(
                    f"{self.root} already holds {', '.join(foreign)} not written by {self._name} (no {STAMP_FILE}); "
                    "choose an empty folder (or move those away), so that data is never overwritten"
                )
        self._clear(stamp)
        return False

    def _mismatch(self, stamp: Mapping[str, Any]) -> str | None:
        recorded = {"writer": stamp.get("writer"), "version": stamp.get("version"), **stamp.get("settings", {})}
        wanted = {"writer": self.writer, "version": self.version, **self.settings}
        changed = {key: (recorded.get(key), wanted.get(key)) for key in sorted(set(recorded) | set(wanted))
                   if recorded.get(key) != wanted.get(key)}
        if not changed:
            return None
        shown = ", ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in list(changed.items())[:6])
        return f"has other settings (recorded -> requested: {shown})"

    def _damage(self, stamp: Mapping[str, Any]) -> str | None:
        for relative, record in stamp["files"].items():
            path = self.root / relative
            if not path.is_file():
                return f"lacks {relative}"
            if path.stat().st_size != record["size"] or (
                    self.verify_digests and file_digest(path) != record["sha256"]):
                return f"has {relative} changed since it was written"
        return None

    def _clear(self, stamp: Mapping[str, Any] | None) -> None:
        """Delete our files (the stamp's and the journal's), crash-safely: the journal covers them until gone."""
        journal = self.root / JOURNAL_FILE
        owned = _journal_files(journal)
        if stamp is not None:
            owned += list(stamp["files"])
            with open(journal, "a") as handle:  # so an interruption below still knows these are ours
                handle.writelines(f"{relative}\n" for relative in stamp["files"])
            (self.root / STAMP_FILE).unlink()
        folders: set[Path] = set()
        for relative in dict.fromkeys(owned):
            path = self.root / relative
            path.unlink(missing_ok=True)
            folders.update(parent for parent in path.parents if self.root in parent.parents)
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        self._journal = open(journal, "w")
        self._journal.write(json.dumps({"writer": self.writer, "digest": self.digest}) + "\n")
        self._journal.flush()

    # -- writing --------------------------------------------------------------------------------------------
    def claim(self, relative: str) -> Path:
        """Record ``relative`` (a POSIX path under ``root``) as ours and return its absolute path, parents made.

        Raises:
            DataError: the file exists although it is not ours (someone else's file in our folders).
        """
        if self._journal is None:
            raise RuntimeError("call reuse() (and get False) before claim()")
        path = self.root / relative
        if path.exists():
            raise DataError(
                f"{path} exists but was not written by {self._name}; move it away (it is never overwritten) "
                "and run again"
            )
        self._journal.write(f"{relative}\n")
        self._journal.flush()
        self._claimed.append(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def finish(self) -> dict[str, Any]:
        """Write the stamp (atomically, last) for every claimed file, remove the journal, and return the stamp."""
        if self._journal is None:
            raise RuntimeError("finish() without reuse() returning False")
        files = {relative: {"size": (self.root / relative).stat().st_size,
                            "sha256": file_digest(self.root / relative)} for relative in self._claimed}
        stamp = {"format": _STAMP_FORMAT, "writer": self.writer, "version": self.version,
                 "settings": self.settings, "digest": self.digest, "files": files}
        with atomic_output(self.root / STAMP_FILE) as temporary:
            temporary.write_text(json.dumps(stamp, indent=1) + "\n")
        self._journal.close()
        self._journal = None
        (self.root / JOURNAL_FILE).unlink()
        return stamp


def _journal_writer(journal: Path) -> str:
    """The writing function a journal's header names (e.g. ``write_xca_dataset``), or "the kit"."""
    for line in journal.read_text().splitlines():
        if line.startswith("{"):
            try:
                return str(json.loads(line)["writer"]).rsplit(".", 1)[-1]
            except (ValueError, KeyError):
                break
    return "the kit"


def _journal_files(journal: Path) -> list[str]:
    """Relative paths listed in a journal (header lines are JSON objects), or [] without one."""
    if not journal.is_file():
        return []
    return [line for line in journal.read_text().splitlines() if line and not line.startswith("{")]

