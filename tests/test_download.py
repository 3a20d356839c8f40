"""Tests of the checksummed download helpers, offline: local ``file://`` URLs and a patched ``urlopen``."""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from urllib.error import HTTPError, URLError

import pytest

from medseg_core.data import download
from medseg_core.data.download import (
    ZENODO_OCT_RECORD,
    ChecksumError,
    DownloadError,
    download_file,
    download_zenodo_record,
    zenodo_record_files,
)

PAYLOAD = b"lipid core " * 1000


@pytest.fixture()
def source(tmp_path) -> Path:
    path = tmp_path / "remote" / "frames.zip"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path


def test_download_verifies_md5_and_sha256(source, tmp_path):
    dest = tmp_path / "out" / "frames.zip"
    assert download_file(source.as_uri(), dest, md5=hashlib.md5(PAYLOAD).hexdigest()) == dest
    assert dest.read_bytes() == PAYLOAD
    dest.unlink()
    download_file(source.as_uri(), dest, sha256=hashlib.sha256(PAYLOAD).hexdigest())
    assert dest.read_bytes() == PAYLOAD
    assert [p.name for p in dest.parent.iterdir()] == ["frames.zip"], "no temporary files may remain"


def test_existing_valid_file_is_not_downloaded_again(source, tmp_path, monkeypatch):
    dest = tmp_path / "frames.zip"
    dest.write_bytes(PAYLOAD)

    def fail(*args, **kwargs):
        raise AssertionError("urlopen must not be called for a valid existing file")

    monkeypatch.setattr(download, "urlopen", fail)
    assert download_file(source.as_uri(), dest, md5=hashlib.md5(PAYLOAD).hexdigest()) == dest


def test_checksum_mismatch_removes_the_partial_file(source, tmp_path):
    dest = tmp_path / "out" / "frames.zip"
    with pytest.raises(ChecksumError, match="md5") as error:
        download_file(source.as_uri(), dest, md5="0" * 32)
    assert isinstance(error.value, DownloadError) and isinstance(error.value, RuntimeError)
    assert source.as_uri() in str(error.value)
    assert list(dest.parent.iterdir()) == []


def test_offline_error_names_url_reason_and_manual_steps(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(download, "urlopen", offline)
    url = "https://zenodo.org/api/records/1/files/a.zip/content"
    dest = tmp_path / "data" / "a.zip"
    with pytest.raises(DownloadError) as error:
        download_file(url, dest)
    message = str(error.value)
    assert url in message and "name resolution" in message
    assert "by hand" in message and str(dest.resolve()) in message
    assert list(dest.parent.iterdir()) == []

    with pytest.raises(DownloadError, match=f"zenodo.org/records/{ZENODO_OCT_RECORD}") as record_error:
        download_zenodo_record(dest=tmp_path / "data")
    assert str((tmp_path / "data").resolve()) in str(record_error.value)


def test_http_error_is_a_download_error(tmp_path, monkeypatch):
    def not_found(request, timeout):
        raise HTTPError(request.full_url, 404, "NOT FOUND", {}, None)

    monkeypatch.setattr(download, "urlopen", not_found)
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file("https://example.org/missing.zip", tmp_path / "missing.zip")


def test_both_checksums_rejected(source, tmp_path):
    with pytest.raises(ValueError, match="not both"):
        download_file(source.as_uri(), tmp_path / "x", md5="a", sha256="b")


def fake_zenodo(monkeypatch, files: dict[str, tuple[Path, str]]) -> None:
    """Serve a Zenodo record JSON for the API URL; other URLs go to the real ``urlopen`` (``file://`` only)."""
    real_urlopen = download.urlopen
    record = {
        "id": int(ZENODO_OCT_RECORD),
        "files": [
            {"key": key, "size": path.stat().st_size, "checksum": f"md5:{md5}", "links": {"self": path.as_uri()}}
            for key, (path, md5) in files.items()
        ],
    }

    def urlopen(request, timeout):
        if request.full_url == download.ZENODO_API.format(record_id=ZENODO_OCT_RECORD):
            return io.BytesIO(json.dumps(record).encode())
        assert request.full_url.startswith("file://"), request.full_url
        return real_urlopen(request, timeout=timeout)

    monkeypatch.setattr(download, "urlopen", urlopen)


def test_zenodo_record_download_reads_the_file_list_and_verifies(source, tmp_path, monkeypatch):
    other = source.with_name("README.md")
    other.write_bytes(b"readme")
    fake_zenodo(monkeypatch, {"frames.zip": (source, hashlib.md5(PAYLOAD).hexdigest()),
                              "README.md": (other, hashlib.md5(b"readme").hexdigest())})
    files = zenodo_record_files()
    assert [(f.key, f.size) for f in files] == [("frames.zip", len(PAYLOAD)), ("README.md", 6)]
    paths = download_zenodo_record(ZENODO_OCT_RECORD, tmp_path / "oct", filenames=["README.md"])
    assert paths == [tmp_path / "oct" / "README.md"] and paths[0].read_bytes() == b"readme"
    with pytest.raises(ValueError, match="frames.zip"):
        download_zenodo_record(ZENODO_OCT_RECORD, tmp_path / "oct", filenames=["nope.zip"])


def test_zenodo_record_with_wrong_checksum_fails(source, tmp_path, monkeypatch):
    fake_zenodo(monkeypatch, {"frames.zip": (source, "f" * 32)})
    with pytest.raises(ChecksumError):
        download_zenodo_record(ZENODO_OCT_RECORD, tmp_path / "oct")
    assert not (tmp_path / "oct" / "frames.zip").exists()
