"""Checksummed downloads for users, with errors that say how to fetch the files by hand when the network fails.

Owns fetching files (the public OCT dataset on Zenodo, or any single URL); reading them is
:mod:`medseg_core.data.oct`. Only the standard library is used (``urllib``), so no extra dependency is needed.
A file is streamed into a temporary file next to its destination, its checksum verified, and only then renamed
into place, so an interrupted or corrupted download never leaves a file that looks complete.

The OCT dataset of Danilov et al. ("OCT Dataset for Segmentation of Atherosclerotic Plaque Morphological Features",
DOI 10.5281/zenodo.14478210, CC BY 4.0) is record :data:`ZENODO_OCT_RECORD`; its file list and md5 checksums come
from the Zenodo REST API.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence
from http.client import HTTPException
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from ..files import atomic_output, file_digest

__all__ = [
    "ZENODO_OCT_RECORD",
    "ZENODO_API",
    "DownloadError",
    "ChecksumError",
    "ZenodoFile",
    "download_file",
    "zenodo_record_files",
    "download_zenodo_record",
    "PublicDataset",
    "PUBLIC_DATASETS",
    "NOT_DOWNLOADABLE",
    "public_dataset",
    "download_public_dataset",
]

ZENODO_OCT_RECORD = "14478210"
ZENODO_API = "https://zenodo.org/api/records/{record_id}"
_USER_AGENT = "medseg-kit (https://zenodo.org; urllib)"
_CHUNK_BYTES = 1 << 20


class DownloadError(RuntimeError):
    """A download failed; the message names the URL, the reason, and where to put a manually downloaded file."""


class ChecksumError(DownloadError):
    """A downloaded file does not match its published checksum (the partial file has been removed)."""


@dataclass(frozen=True)
class ZenodoFile:
    """One file of a Zenodo record: its name, size in bytes, md5 checksum and download URL."""

    key: str
    size: int
    md5: str
    url: str


def _manual_hint(url: str, dest: Path) -> str:
    return f"download {url} by hand (e.g. in a browser) and save it as {dest.resolve()}"


@contextmanager
def _open_url(url: str, timeout: float, action: str, remedy: str, accept: str | None = None) -> Iterator[Any]:
    """``urlopen`` whose network failures become one :class:`DownloadError` saying what failed and what to do."""
    headers = {"User-Agent": _USER_AGENT, **({"Accept": accept} if accept else {})}
    try:
        with urlopen(Request(url, headers=headers), timeout=timeout) as response:
            yield response
    except HTTPError as error:
        raise DownloadError(f"{action} failed: HTTP {error.code} {error.reason}. {remedy}") from error
    except (URLError, TimeoutError, ConnectionError, HTTPException) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(f"{action} failed: {reason} (offline, or the host is unreachable?). {remedy}") from error


def download_file(
    url: str,
    dest: str | Path,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest``, verifying ``md5`` or ``sha256`` if given; returns ``dest``.

    An existing ``dest`` with the right checksum is kept without downloading again. The data is streamed to a
    temporary file in ``dest``'s folder and atomically renamed once complete and verified.

    Raises:
        DownloadError: the URL cannot be reached or answers with an HTTP error (message: URL, reason, manual steps).
        ChecksumError: the downloaded bytes do not match the checksum; nothing is left at ``dest``.
        ValueError: both ``md5`` and ``sha256`` are given.
    """
    if md5 and sha256:
        raise ValueError("pass md5= or sha256=, not both")
    algorithm, expected = ("md5", md5.lower()) if md5 else ("sha256", sha256.lower()) if sha256 else (None, None)
    dest = Path(dest)
    if dest.is_file() and algorithm and file_digest(dest, algorithm) == expected:
        return dest
    digest = hashlib.new(algorithm or "sha256")
    with atomic_output(dest) as temp_path, open(temp_path, "wb") as output:
        with _open_url(url, timeout, f"download of {url}", f"To continue, {_manual_hint(url, dest)}.") as response:
            for block in iter(lambda: response.read(_CHUNK_BYTES), b""):
                output.write(block)
                digest.update(block)
        output.flush()
        if algorithm and digest.hexdigest() != expected:
            raise ChecksumError(
                f"{url} does not match its {algorithm} checksum (expected {expected}, got {digest.hexdigest()}); "
                f"the partial file was removed. Retry, or {_manual_hint(url, dest)} and check its {algorithm}."
            )
    return dest


def zenodo_record_files(record_id: str = ZENODO_OCT_RECORD, *, timeout: float = 60.0) -> list[ZenodoFile]:
    """Files of a Zenodo record (name, size, md5, URL), read from ``https://zenodo.org/api/records/<id>``.

    Raises:
        DownloadError: the API cannot be reached or answers with something that is not a record.
    """
    url = ZENODO_API.format(record_id=record_id)
    page = f"https://zenodo.org/records/{record_id}"
    try:
        with _open_url(url, timeout, f"reading the Zenodo record {url}", f"Open {page} and download the files by hand.",
                       accept="application/json") as response:
            record = json.loads(response.read().decode("utf-8"))
    except ValueError as error:
        raise DownloadError(
            f"{url} did not return JSON ({error}); open {page} and download the files by hand"
        ) from error
    try:
        return [
            ZenodoFile(key=entry["key"], size=int(entry["size"]), md5=entry["checksum"].removeprefix("md5:"),
                       url=entry["links"]["self"])
            for entry in record["files"]
        ]
    except (KeyError, TypeError) as error:
        raise DownloadError(f"{url} returned a record without the expected files list ({error!r}); "
                            f"open {page} and download the files by hand") from error


def download_zenodo_record(
    record_id: str = ZENODO_OCT_RECORD,
    dest: str | Path = ".",
    filenames: Sequence[str] | None = None,
    *,
    timeout: float = 60.0,
) -> list[Path]:
    """Download (and md5-verify) the files of a Zenodo record into ``dest``; files already there and valid are kept.

    Archives are not unpacked (use ``shutil.unpack_archive``); for the OCT dataset, unpack so that ``dest`` holds
    ``fold_k/{train,test}/{img,mask}`` and point :func:`medseg_core.data.oct.find_oct_pairs` at it.

    Args:
        record_id: Zenodo record, :data:`ZENODO_OCT_RECORD` by default.
        dest: destination folder.
        filenames: only these files of the record (default: all).

    Raises:
        DownloadError: network or HTTP failure (with manual steps), or a checksum mismatch (:class:`ChecksumError`).
        ValueError: ``filenames`` names files the record does not have (the message lists those it has).
    """
    dest = Path(dest)
    try:
        files = zenodo_record_files(record_id, timeout=timeout)
    except DownloadError as error:
        raise DownloadError(f"{error} Put the downloaded files in {dest.resolve()}.") from error
    if filenames is not None:
        available = {f.key for f in files}
        unknown = sorted(set(filenames) - available)
        if unknown:
            raise ValueError(f"record {record_id} has no files {unknown}; it has {sorted(available)}")
        files = [f for f in files if f.key in set(filenames)]
    return [download_file(f.url, dest / f.key, md5=f.md5, timeout=timeout) for f in files]


@dataclass(frozen=True)
class PublicDataset:
    """A public data set ``medseg download NAME`` fetches: its archive, checksum, licence and what to do next.

    Only data sets whose licence allows redistribution-free download by anyone are listed here; the others are in
    :data:`NOT_DOWNLOADABLE` with the reason.
    """

    name: str
    url: str
    filename: str
    sha256: str
    licence: str
    citation: str
    next_step: str


PUBLIC_DATASETS: dict[str, PublicDataset] = {
    "arcade": PublicDataset(
        name="arcade",
        url="https://zenodo.org/records/10390295/files/arcade.zip",
        filename="arcade.zip",
        sha256="a396cdea7c92c55dc97bbf3dd8e3df517d76872b289a8bcb45513bdb3350837f",  # as pinned by torch_em's reader
        licence="CC0 1.0 (Zenodo record 10390295; the record page is authoritative)",
        citation="Popov et al., Dataset for Automatic Region-based Coronary Artery Disease Diagnostics Using X-Ray "
                 "Angiography Images, Sci Data 11:20 (2024)",
        next_step="medseg evaluate --checkpoint CK --data {dest}/arcade --format arcade-syntax --output OUT",
    ),
}
NOT_DOWNLOADABLE: dict[str, str] = {
    "dca1": "its authors' page states no licence; download DB_Angiograms_134.zip from "
            "personal.cimat.mx:8181/~ivan.cruz/DB_Angiograms.html yourself",
    "xcad": "shared on Dropbox/Baidu without a licence (github.com/AISIGSJTU/SSVS); download it yourself",
    "chuac": "a figshare share without a stated licence; download it yourself",
    "mosxav": "CC BY-NC-SA 4.0, but the kit pins no archive of it; get it from its authors and read it as it is "
              "(JPEGImages/ + Annotations_Semantic/)",
}


def public_dataset(name: str) -> PublicDataset:
    """The :class:`PublicDataset` named ``name``.

    Raises:
        UnknownNameError: (a KeyError) not downloadable; the message says why, or lists the downloadable names.
    """
    from ..errors import UnknownNameError

    if name in PUBLIC_DATASETS:
        return PUBLIC_DATASETS[name]
    if name in NOT_DOWNLOADABLE:
        raise UnknownNameError(f"{name} cannot be downloaded by the kit: {NOT_DOWNLOADABLE[name]}")
    raise UnknownNameError(f"unknown data set {name!r}; downloadable: {', '.join(PUBLIC_DATASETS)} (not downloadable: "
                           f"{', '.join(NOT_DOWNLOADABLE)})")


def download_public_dataset(name: str, dest: str | Path = ".", *, timeout: float = 60.0,
                            unpack: bool = True) -> Path:
    """Download a :data:`PUBLIC_DATASETS` archive into ``dest`` (sha256-verified), then unpack it there.

    Returns the archive (``unpack=False``) or ``dest``. A valid archive already in ``dest`` is not fetched again.

    Raises:
        UnknownNameError: ``name`` is not downloadable (see :func:`public_dataset`).
        DownloadError: offline, HTTP error or checksum mismatch; the one-line message says how to fetch it by hand.
    """
    entry = public_dataset(name)
    dest = Path(dest)
    archive = download_file(entry.url, dest / entry.filename, sha256=entry.sha256, timeout=timeout)
    if not unpack:
        return archive
    shutil.unpack_archive(archive, dest)
    return dest
