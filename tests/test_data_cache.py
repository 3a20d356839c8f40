"""One dataset stamp for every writer (issue 11 items 3 and 5, issue 8): folders named by settings, partial output
redone, complete output never replaced silently, foreign files never deleted, concurrent writers serialised."""
from __future__ import annotations

from medseg_core.tasks import get_task

import multiprocessing
import shutil
from pathlib import Path

import pandas as pd
import pytest

from medseg_core.config import get_profile
from medseg_core.data import synthetic_xca as sx
from medseg_core.data.cache import JOURNAL_FILE, STAMP_FILE, read_stamp
from medseg_core.data.io import DataError
from medseg_core.data.oct import find_oct_pairs, prepare_lipid_dataset
from medseg_core.data.synthetic_oct import ensure_oct_dataset, write_oct_dataset

XCA_ARGS = dict(image_size=64, num_train_videos=1, num_val_videos=1, num_test_videos=1, frames_per_video=4,
                label_every=2, seed=3)


def test_data_dir_depends_on_the_generator_settings_only(tmp_path: Path) -> None:
    smoke = get_profile("smoke", {"paths.data": str(tmp_path)})
    folder = get_task("xca").data_dir(smoke)
    assert folder.parent == tmp_path / "synthetic" and folder.name == f"xca_smoke-{sx.dataset_digest(smoke.xca)}"
    assert get_task("xca").data_dir(smoke.override({"xca.seed": 1})) != folder  # `generate --set xca.seed=1`
    assert get_task("xca").data_dir(smoke.override({"xca.num_train_videos": 3})) != folder
    assert get_task("xca").data_dir(smoke.override({"xca.window_length": 2, "xca.augment": False})) == folder  # loader only
    assert get_task("oct").data_dir(smoke.override({"oct.image_size": 32})) == get_task("oct").data_dir(smoke)
    assert get_task("oct").data_dir(smoke.override({"oct.num_patients": 5})) != get_task("oct").data_dir(smoke)
    with pytest.raises(KeyError, match="valid tasks"):
        get_task("mri")


def test_an_override_writes_its_own_folder_and_leaves_the_others(tmp_path: Path) -> None:
    smoke = get_profile("smoke", {"paths.data": str(tmp_path), "oct.frames_per_patient": 1, "oct.num_patients": 2})
    first = ensure_oct_dataset(smoke.oct, get_task("oct").data_dir(smoke))
    assert read_stamp(first)["digest"] == first.name.rsplit("-", 1)[1]
    before = {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()}
    other = smoke.override({"oct.seed": 7})
    second = ensure_oct_dataset(other.oct, get_task("oct").data_dir(other))
    assert second != first and read_stamp(second)["settings"]["seed"] == 7
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()} == before
    with pytest.raises(DataError, match=r"other settings \(recorded -> requested: seed: 7 -> 0\)"):
        ensure_oct_dataset(smoke.oct, second)  # a complete dataset is never replaced without overwrite=True


def test_an_interrupted_write_is_redone_and_keeps_foreign_files(tmp_path: Path, monkeypatch) -> None:
    real_simulate = sx.simulate_sequence
    calls = []

    def failing_second_video(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt  # a run stopped part-way
        return real_simulate(*args, **kwargs)

    monkeypatch.setattr(sx, "simulate_sequence", failing_second_video)
    with pytest.raises(KeyboardInterrupt):
        sx.write_xca_dataset(tmp_path, **XCA_ARGS)
    assert (tmp_path / JOURNAL_FILE).is_file() and not (tmp_path / STAMP_FILE).exists()
    user_file = tmp_path / "train" / "JPEGImages" / "syn0000" / "README.txt"
    user_file.write_text("mine")
    monkeypatch.setattr(sx, "simulate_sequence", real_simulate)
    manifest = sx.write_xca_dataset(tmp_path, **XCA_ARGS)
    assert len(manifest) == 12 and all((tmp_path / p).is_file() for p in manifest["image_path"])
    assert user_file.read_text() == "mine"
    assert (tmp_path / STAMP_FILE).is_file() and not (tmp_path / JOURNAL_FILE).exists()


def test_a_foreign_file_where_the_writer_writes_is_never_overwritten(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sx, "simulate_sequence", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        sx.write_xca_dataset(tmp_path, **XCA_ARGS)  # leaves a journal: the folder is ours
    monkeypatch.undo()
    theirs = tmp_path / "train" / "JPEGImages" / "syn0000" / "00000.png"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"someone else's frame")
    with pytest.raises(DataError, match="00000.png exists but was not written by write_xca_dataset; move it away"):
        sx.write_xca_dataset(tmp_path, **XCA_ARGS)
    assert theirs.read_bytes() == b"someone else's frame"


def _write_in_process(root: str) -> int:
    return len(sx.write_xca_dataset(root, **XCA_ARGS))


def test_concurrent_writers_of_one_folder_do_not_collide(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    with context.Pool(2) as pool:
        lengths = pool.map(_write_in_process, [str(tmp_path)] * 2)
    assert lengths == [12, 12]
    stamp = read_stamp(tmp_path)
    assert len(stamp["files"]) == 12 + 2 + 2 + 4 + 1  # frames, masks (train/val every 2nd frame, test all), manifest
    sx.write_xca_dataset(tmp_path, **XCA_ARGS)  # intact: reused


# ------------------------------------------------------------------------------------------------ prepare


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "source"
    write_oct_dataset(root, num_patients=2, frames_per_patient=3, seed=1, size=64)
    return root


def test_prepare_finishes_after_a_bad_source_frame_is_fixed(source: Path, tmp_path: Path) -> None:
    pairs = find_oct_pairs(source)
    bad = Path(pairs["image_path"][4])
    good_bytes = bad.read_bytes()
    bad.write_bytes(good_bytes[: len(good_bytes) // 3])  # truncated frame
    dst = tmp_path / "prepared"
    with pytest.raises(DataError, match=rf"{bad.name}.*once the source is fixed, run it again: it redoes"):
        prepare_lipid_dataset(source, dst, image_size=16)
    assert len(list((dst / "img").glob("*.png"))) == 4 and not (dst / "manifest.csv").exists()
    (dst / "img" / "notes.txt").write_text("mine")
    bad.write_bytes(good_bytes)
    manifest = prepare_lipid_dataset(source, dst, image_size=16)
    assert len(manifest) == 6 and len(find_oct_pairs(dst)) == 6
    assert (dst / "img" / "notes.txt").read_text() == "mine"
    again = prepare_lipid_dataset(source, dst, image_size=16)
    pd.testing.assert_frame_equal(again, manifest)


def test_prepare_notices_a_changed_source(source: Path, tmp_path: Path) -> None:
    dst = tmp_path / "prepared"
    prepare_lipid_dataset(source, dst, image_size=16)
    victim = Path(find_oct_pairs(source)["image_path"][0])
    shutil.copyfile(Path(find_oct_pairs(source)["image_path"][1]), victim)  # another frame's pixels
    with pytest.raises(DataError, match="source_files"):
        prepare_lipid_dataset(source, dst, image_size=16)
    assert len(prepare_lipid_dataset(source, dst, image_size=16, overwrite=True)) == 6


def test_a_folder_of_an_earlier_kit_version_is_named_as_such(source: Path, tmp_path: Path) -> None:
    dst = tmp_path / "old"
    (dst / "img").mkdir(parents=True)
    (dst / "prepare.json").write_text("{}")
    with pytest.raises(DataError, match=r"written by an earlier version of the kit \(prepare.json.*delete"):
        prepare_lipid_dataset(source, dst, image_size=16)
