"""Issue 21, "nothing lost, nothing silent (round 3)": each defect reproduced through the CLI as a user meets it.

Every test fails on the code the issue was filed against and checks that the files a user had are intact, that
the refusal is one line (``medseg: error: ...``, exit code 2) or that the result is right.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medseg_core.checkpoints import load_checkpoint
from medseg_core.cli import main
from medseg_core.data.io import write_image
from medseg_core.data.synthetic_oct import write_oct_dataset
from medseg_core.files import file_digest
from test_faults import _checkpoint, _oct_images, _predict, _xca_video


@pytest.fixture()
def isolated(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MEDSEG_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MEDSEG_RUNS", str(tmp_path / "runs"))
    return tmp_path


def _hashes(*folders: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folders`` (hidden ones too), by path."""
    return {str(path): file_digest(path) for folder in folders for path in sorted(Path(folder).rglob("*"))
            if path.is_file()}


def _one_line_error(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("medseg: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


# ------------------------------------------------------------------------------------- 1. prepare overlap


@pytest.fixture()
def oct_source(tmp_path) -> Path:
    root = tmp_path / "source"
    write_oct_dataset(root, num_patients=2, frames_per_patient=2, seed=1, size=48)
    return root


def test_prepare_refuses_an_output_that_overlaps_its_source(oct_source, tmp_path, capsys):
    prepared = tmp_path / "prepared"
    assert main(["prepare", "--source", str(oct_source), "--output", str(prepared), "--image-size", "32"]) == 0
    capsys.readouterr()
    before = _hashes(prepared, oct_source)
    # re-preparing a derivative at another size, into itself (spelt two ways, so paths must be resolved)
    for output in (prepared, prepared / ".." / "prepared"):
        assert main(["prepare", "--source", str(prepared), "--output", str(output), "--image-size", "16",
                     "--overwrite"]) == 2
        _one_line_error(capsys, "inside", "another --output")
    assert main(["prepare", "--source", str(oct_source), "--output", str(oct_source / "derived")]) == 2
    _one_line_error(capsys, "inside")
    assert main(["prepare", "--source", str(prepared / "img" / ".."), "--output", str(tmp_path)]) == 2
    _one_line_error(capsys, "inside")
    assert _hashes(prepared, oct_source) == before, "nothing deleted, nothing added"
    assert not (oct_source / "derived").exists()


# ------------------------------------------------------------------------------- 2. restart under a lock

_HOLD_LOCK = """
import fcntl, os, sys, time
handle = open(sys.argv[1], "a+")
fcntl.flock(handle, fcntl.LOCK_EX)
handle.write(f"process {os.getpid()} on this machine")
handle.flush()
print("locked", flush=True)
time.sleep(120)
"""


@pytest.fixture()
def held_lock():
    """``held_lock(path)``: another process holds an exclusive ``flock`` on ``path`` until the test ends."""
    processes = []

    def hold(path: Path) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(path)], stdout=subprocess.PIPE, text=True)
        processes.append(process)
        assert process.stdout.readline().strip() == "locked"
        return process

    yield hold
    for process in processes:
        process.kill()
        process.wait()


def test_restart_overwrite_on_a_run_another_process_trains_deletes_nothing(isolated, held_lock, capsys):
    run = isolated / "run"
    run.mkdir()
    for name in ("best.pt", "last.pt", "history.csv"):
        (run / name).write_bytes(f"the other run's {name}".encode())
    holder = held_lock(run / ".lock")
    before = _hashes(run)
    assert main(["train", "--profile", "smoke", "--out", str(run), "--restart", "--overwrite"]) == 2
    _one_line_error(capsys, f"in use by process {holder.pid}")
    assert _hashes(run) == before
    assert not (isolated / "data").exists(), "refused before any data was generated"
    holder.kill()
    holder.wait()
    assert main(["train", "--profile", "smoke", "--out", str(run), "--restart", "--overwrite"]) == 0
    assert load_checkpoint(run / "best.pt")["epoch"] == 1 and len(pd.read_csv(run / "history.csv")) == 1


def test_temporaries_of_a_killed_writer_are_removed_on_the_next_start(tmp_path, held_lock):
    from medseg_core.run_folder import RunFolder

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, alive = int(finished.stdout), held_lock(tmp_path / "other.lock").pid
    run = tmp_path / "run"
    run.mkdir()
    (run / f".last.pt.tmp{dead}").write_bytes(b"half a checkpoint")
    (run / f".history.csv.tmp{dead}").write_text("epoch\n")
    (run / f".best.pt.tmp{alive}").write_bytes(b"being written")
    (run / "best.pt").write_bytes(b"a model")
    with RunFolder(run).lock():
        assert sorted(p.name for p in run.iterdir()) == [f".best.pt.tmp{alive}", ".lock", "best.pt"]


# ----------------------------------------------------------------------- 3. two predicts into one output


def test_a_second_predict_into_the_same_output_loses_nothing_of_the_first(tmp_path, monkeypatch, capsys):
    from medseg_core import inference

    checkpoint, out = _checkpoint(tmp_path, "oct"), tmp_path / "out"
    first, second = _oct_images(tmp_path / "first", 6), _oct_images(tmp_path / "second", 3)
    write_image, others = inference.write_image, []

    def write_and_let_another_predict_start(path, array):
        if not others:  # while the first writes its masks, a second predict into the same --output
            others.append(subprocess.run([sys.executable, "-m", "medseg_core.cli", "predict", "--checkpoint",
                                          str(checkpoint), "--input", str(second), "--output", str(out)],
                                         capture_output=True, text=True))
        return write_image(path, array)

    monkeypatch.setattr(inference, "write_image", write_and_let_another_predict_start)
    assert _predict(checkpoint, first, out) == 0
    other = others[0]
    assert other.returncode == 2 and other.stderr.startswith("medseg: error: ") and "in use by process" in other.stderr
    assert other.stderr.count("\n") == 1, other.stderr
    table = pd.read_csv(out / "predictions.csv")
    masks = sorted(p.stem for p in (out / "masks").iterdir())
    assert masks == sorted(table["id"]) == sorted(p.stem for p in first.iterdir())
    assert not [p for p in out.iterdir() if p.name.startswith(".predict")], "no staging folder left"


# ----------------------------------------------------------------------------- 4. `..` and `.` as --input


def test_predict_on_a_video_given_as_dot_or_dotdot_writes_its_masks_where_it_says(tmp_path, monkeypatch, capsys):
    checkpoint = _checkpoint(tmp_path, "xca")
    video = _xca_video(tmp_path / "video", 4)
    (video / ".work").mkdir()  # a hidden folder: not a video
    monkeypatch.chdir(video / ".work")
    assert _predict(checkpoint, Path(".."), tmp_path / "out") == 0
    assert f"4 masks in {tmp_path / 'out' / 'masks'}," in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out" / "masks" / "video").iterdir()) == sorted(
        p.name for p in video.glob("*.png"))
    monkeypatch.chdir(video)
    assert _predict(checkpoint, Path("."), Path("..") / "out2") == 0
    assert f"4 masks in {tmp_path / 'out2' / 'masks'}," in capsys.readouterr().out
    assert len(list((tmp_path / "out2" / "masks" / "video").iterdir())) == 4
    before = _hashes(tmp_path)
    assert _predict(checkpoint, Path("."), Path("predicted")) == 2  # the output would be read as a video
    _one_line_error(capsys, f"--output {video / 'predicted'} lies inside --input {video}")
    assert _predict(checkpoint, Path("../out/masks/video"), Path("../out"), "--overwrite") == 2  # replaced inputs
    _one_line_error(capsys, f"lies inside {tmp_path / 'out' / 'masks'}, which this prediction replaces")
    assert _hashes(tmp_path) == before and not (video / "predicted").exists()
    oct_frames = _oct_images(tmp_path / "oct", 2)  # OCT reads the folder's images only: an output inside is fine
    assert _predict(_checkpoint(tmp_path, "oct"), oct_frames, oct_frames / "predicted") == 0
    assert len(list((oct_frames / "predicted" / "masks").iterdir())) == 2


# -------------------------------------------------------------------------------- 5. half-written data


def test_train_refuses_a_data_set_the_kit_has_not_finished_writing(isolated, monkeypatch, capsys):
    from medseg_core.config import get_profile
    from medseg_core.data import synthetic_xca as sx

    data, settings = isolated / "xca", sx.generator_settings(get_profile("smoke").xca)
    write_image, written = sx.write_image, []

    def interrupted_in_the_test_video(path, array):
        written.append(path)
        if len(written) > 40:  # 2 train + 1 val videos (12 files each), then 4 files of the test video
            raise KeyboardInterrupt
        return write_image(path, array)

    monkeypatch.setattr(sx, "write_image", interrupted_in_the_test_video)
    with pytest.raises(KeyboardInterrupt):
        sx.write_xca_dataset(data, **settings)
    monkeypatch.undo()
    train = ["train", "--profile", "smoke", "--data", str(data), "--out", str(isolated / "run")]
    assert main(train) == 2
    _one_line_error(capsys, f"{data} is a data set write_xca_dataset has not finished writing", "run it again")
    assert not (isolated / "run").exists() and not (isolated / "data").exists()

    sx.write_xca_dataset(data, **settings)  # redone: complete
    handmade = isolated / "handmade"  # the same files copied by hand (no stamp): the user's own data is accepted
    for path in data.rglob("*.png"):
        (handmade / path.relative_to(data)).parent.mkdir(parents=True, exist_ok=True)
        (handmade / path.relative_to(data)).write_bytes(path.read_bytes())
    assert main(["train", "--profile", "smoke", "--data", str(handmade), "--out", str(isolated / "run2")]) == 0
    capsys.readouterr()
    next((data / "test").rglob("00003.png")).unlink()  # a kit data set damaged after it was written
    assert main(train) == 2
    _one_line_error(capsys, "that lacks 1 of its", "files (e.g. test/", "--overwrite")
    assert not (isolated / "run").exists()


def test_train_refuses_the_output_of_an_interrupted_prepare(oct_source, isolated, capsys):
    third = sorted((oct_source / "img").iterdir())[2]
    third.write_bytes(third.read_bytes()[:100])  # prepare stops on it, two frames written
    prepared = isolated / "prepared"
    assert main(["prepare", "--source", str(oct_source), "--output", str(prepared), "--image-size", "32"]) == 2
    capsys.readouterr()
    assert len(list((prepared / "img").iterdir())) == 2
    assert main(["train", "--task", "oct", "--profile", "smoke", "--data", str(prepared), "--out",
                 str(isolated / "run")]) == 2
    _one_line_error(capsys, "prepare_lipid_dataset has not finished writing")


# ----------------------------------------------------------------- 6 and 8. settings checked by meaning


@pytest.mark.parametrize(("setting", "message"), [
    ("svsnet.monitor_mode=minimum", "svsnet.monitor_mode must be 'min' for monitor 'val_loss' (lower is better)"),
    ("svsnet.monitor=val_dcie", "svsnet.monitor must be one of val_loss, val_dice, train_loss"),
    ("deeplab.monitor=val_loss", "deeplab.monitor_mode must be 'min' for monitor 'val_loss'"),  # smoke: max
    ("svsnet.grad_clip=-1", "svsnet.grad_clip must be a positive gradient norm, or null"),  # defect 8
    ("svsnet.grad_clip=0", "svsnet.grad_clip must be a positive gradient norm, or null"),  # zeroes every gradient
])
def test_training_settings_are_checked_by_their_meaning(setting, message, isolated, capsys):
    assert main(["train", "--profile", "smoke", "--set", setting, "--out", str(isolated / "run")]) == 2
    _one_line_error(capsys, message)
    assert not (isolated / "run").exists() and not (isolated / "data").exists()


def test_meaningful_monitor_settings_are_accepted_and_trainers_check_theirs():
    import torch.nn as nn

    from medseg_core.config import TrainConfig, get_profile
    from medseg_core.errors import ConfigError
    from medseg_core.tasks import get_task
    from medseg_core.training import Trainer

    profile = get_profile("smoke", {"deeplab.monitor": "val_loss", "deeplab.monitor_mode": "min",
                                    "svsnet.grad_clip": None}, none_keeps=False)
    assert profile.deeplab.monitor_mode == "min" and profile.svsnet.grad_clip is None
    metadata = get_task("xca").run_metadata(profile, "unet2d")
    with pytest.raises(ConfigError, match=r"TrainConfig.monitor must be one of val_loss, val_dice, train_loss .*dice"):
        Trainer(nn.Conv2d(1, 1, 1), nn.MSELoss(), TrainConfig(monitor="dice"), metadata=metadata, progress=False)


# ----------------------------------------------------------------------------- 7. frames by their number


def test_predict_orders_frames_by_number_as_training_does_and_refuses_duplicates(tmp_path, monkeypatch, capsys):
    from medseg_core import inference

    checkpoint, video = _checkpoint(tmp_path, "xca"), tmp_path / "video"
    rng = np.random.default_rng(0)
    for number in range(12):  # unpadded names: by name 0, 1, 10, 11, 2, ...
        write_image(video / f"{number}.png", rng.integers(0, 256, (32, 32), dtype=np.uint8))
    predict_video, seen = inference.predict_video, []

    def recording(model, frame_paths, *args, **kwargs):
        seen.append([int(path.stem) for path in frame_paths])
        return predict_video(model, frame_paths, *args, **kwargs)

    monkeypatch.setattr(inference, "predict_video", recording)
    assert _predict(checkpoint, video, tmp_path / "out") == 0
    assert seen == [list(range(12))], "windows are cut in time order"
    write_image(video / "01.png", np.zeros((32, 32), np.uint8))  # frame 1 twice
    assert _predict(checkpoint, video, tmp_path / "out2") == 2
    _one_line_error(capsys, "two files for frame 1:", "keep one of them")


# ------------------------------------------------------------------------- 9. one stem, two OCT inputs


def test_predict_refuses_two_oct_inputs_with_one_name_stem(tmp_path, capsys):
    inputs = _oct_images(tmp_path / "in", 2)
    image = np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    write_image(inputs / "001_1_000.tif", image)  # the same stem as 001_1_000.png: one mask for two images
    assert _predict(_checkpoint(tmp_path, "oct"), inputs, tmp_path / "out") == 2
    _one_line_error(capsys, "holds two files for '001_1_000': 001_1_000.png and 001_1_000.tif")
    assert not (tmp_path / "out" / "masks").exists()


# ------------------------------------------------------------------ 10. threshold and batch size by meaning


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--threshold", "nan", "--threshold must be a probability strictly between 0 and 1; got nan"),
    ("--threshold", "2", "--threshold must be a probability strictly between 0 and 1; got 2.0"),
    ("--threshold", "-1", "--threshold must be a probability strictly between 0 and 1; got -1.0"),
    ("--threshold", "0", "--threshold must be a probability strictly between 0 and 1; got 0.0"),
    ("--batch-size", "-3", "--batch-size must be at least 1; got -3"),
    ("--batch-size", "0", "--batch-size must be at least 1; got 0"),
])
def test_predict_refuses_a_threshold_or_batch_size_without_meaning(option, value, message, tmp_path, capsys):
    inputs = _xca_video(tmp_path / "video", 3)
    assert _predict(_checkpoint(tmp_path, "xca"), inputs, tmp_path / "out", option, value) == 2
    _one_line_error(capsys, message)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------- 11. NaN weights


def test_a_checkpoint_with_non_finite_weights_is_refused_at_load(isolated, capsys):
    import torch

    path = _checkpoint(isolated, "xca")
    state = load_checkpoint(path)
    name = next(key for key, tensor in state["model"].items() if tensor.is_floating_point())
    state["model"][name].view(-1)[0] = float("nan")  # a diverged run
    torch.save(state, path)
    assert _predict(path, _xca_video(isolated / "video", 3), isolated / "out") == 2
    _one_line_error(capsys, f"{path} holds non-finite weights (NaN or Inf in 1 tensor: {name})")
    assert not (isolated / "out").exists()
    assert main(["train", "--profile", "smoke", "--model", "unet2d", "--model-arg", "base_channels=4", "depth=2",
                 "--init-from", str(path), "--out", str(isolated / "run")]) == 2
    _one_line_error(capsys, "holds non-finite weights")


# --------------------------------------------------------------------------------------- 12. CMYK TIFFs


def test_cmyk_tiffs_are_read_as_their_colours(tmp_path):
    import tifffile
    from PIL import Image

    from medseg_core.data.io import read_image

    rng = np.random.default_rng(0)
    cmyk = np.concatenate([rng.integers(0, 40, (24, 24, 3)), rng.integers(220, 250, (24, 24, 1))], -1).astype(np.uint8)
    expected = np.asarray(Image.frombytes("CMYK", (24, 24), cmyk.tobytes()).convert("RGB"), dtype=float)  # Pillow's
    assert 10 < expected.mean() < 30  # dark: mostly black ink
    tifffile.imwrite(tmp_path / "tifffile.tif", cmyk, photometric="separated")
    Image.frombytes("CMYK", (24, 24), cmyk.tobytes()).save(tmp_path / "pillow.tif")
    for name in ("tifffile.tif", "pillow.tif"):
        rgb = read_image(tmp_path / name, "RGB")
        assert rgb.shape == (24, 24, 3) and np.abs(rgb - expected).max() <= 1, name
        grey = read_image(tmp_path / name, "L", exact=True)
        assert abs(grey.mean() * 255 - expected.mean()) < 1, name
    sixteen = cmyk.astype(np.uint16) * 257  # 16-bit inks: the same colours
    tifffile.imwrite(tmp_path / "sixteen.tif", sixteen, photometric="separated")
    assert np.abs(read_image(tmp_path / "sixteen.tif", "RGB") - expected).max() <= 1
    tifffile.imwrite(tmp_path / "white.tif", cmyk[..., 3], photometric="miniswhite")  # 0 is white
    assert np.abs(read_image(tmp_path / "white.tif", "L").astype(int) - (255 - cmyk[..., 3])).max() == 0
    colours = (np.arange(256)[None] * np.array([[257], [0], [128]])).astype(np.uint16)  # index i: red i, blue i/2
    tifffile.imwrite(tmp_path / "palette.tif", cmyk[..., 3], photometric="palette", colormap=colours)
    assert np.abs(read_image(tmp_path / "palette.tif", "RGB")[..., 0].astype(int) - cmyk[..., 3]).max() == 0


# -------------------------------------------------------------------------------------- also: the rest


@pytest.mark.parametrize(("args", "message"), [
    (["foo=1"], "unknown model argument 'foo' for svsnet; valid: window_length, in_channels, num_classes, "),
    (["base_channels=abc"], "model argument base_channels of svsnet must be int (default 8); got 'abc'"),
    (["window_length=0"], "cannot build svsnet with window_length=0: window_length must be >= 1"),
    (["base_channels=-2"], "cannot build svsnet with base_channels=-2: "),
])
def test_model_arguments_are_checked_before_any_work(args, message, isolated, capsys):
    assert main(["train", "--profile", "smoke", "--model-arg", *args, "--out", str(isolated / "run")]) == 2
    _one_line_error(capsys, message)
    assert not (isolated / "run").exists() and not (isolated / "data").exists()


class _RunsACommand:
    """What a malicious checkpoint carries: unpickling it would call os.system."""

    def __reduce__(self):
        import os

        return os.system, ("echo this must never run",)


def test_a_malicious_checkpoint_is_called_what_it_is(tmp_path, capsys):
    import torch

    path = tmp_path / "best.pt"
    torch.save({"model": _RunsACommand(), "metadata": {"task": "oct"}}, path)
    assert _predict(path, _oct_images(tmp_path / "in", 1), tmp_path / "out") == 2
    err = _one_line_error(capsys, f"refused to load {path}: it holds pickled Python objects", "GLOBAL posix.system",
                          "could run code", "Do not retry with weights_only=False")
    assert "truncated" not in err and "this must never run" not in capsys.readouterr().out


def test_the_data_fingerprint_ignores_notes_and_follows_linked_folders(tmp_path):
    from medseg_core.files import folder_fingerprint

    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    write_image(data / "img" / "a.png", np.zeros((8, 8), np.uint8))
    write_image(elsewhere / "mask" / "a.png", np.zeros((8, 8), np.uint8))
    (data / "mask").symlink_to(elsewhere / "mask", target_is_directory=True)
    (data / "loop").symlink_to(data, target_is_directory=True)  # a link cycle is walked once
    first = folder_fingerprint(data)
    (data / "README.md").write_text("where these frames come from")
    (data / "img" / "notes.txt").write_text("frame a is blurred")
    assert folder_fingerprint(data) == first, "notes are not data"
    write_image(elsewhere / "mask" / "a.png", np.random.default_rng(0).integers(0, 256, (8, 8), np.uint8))  # changed
    assert folder_fingerprint(data) != first


def test_a_run_fingerprinted_by_the_first_version_still_resumes(tmp_path):
    import torch.nn as nn

    from medseg_core.config import get_profile
    from medseg_core.errors import ConfigError
    from medseg_core.models import create_model
    from medseg_core.tasks import get_task
    from medseg_core.training import Trainer

    profile, task = get_profile("smoke"), get_task("xca")
    model = create_model("unet2d", **task.model_kwargs(profile, "unet2d", {"base_channels": 4, "depth": 2}))

    def trainer(data_id: str) -> Trainer:
        return Trainer(model, nn.MSELoss(), profile.svsnet, tmp_path, metadata=task.run_metadata(profile, "unet2d"),
                       data_id=data_id, progress=False)

    trainer("v2:bbbb").check_resumable(trainer("4edc8afb75ca81ec").state_dict())  # not comparable: accepted
    with pytest.raises(ConfigError, match="data: stored v2:aaaa, now v2:bbbb"):
        trainer("v2:bbbb").check_resumable(trainer("v2:aaaa").state_dict())


def test_a_run_name_cannot_leave_the_runs_folder(isolated, capsys):
    from medseg_core.config import get_profile
    from medseg_core.errors import ConfigError

    outside = isolated.parent / "escape"
    for name in ("../../escape", "..", "a/b", ""):
        assert main(["train", "--profile", "smoke", "--set", f"name={name}", "--out", str(isolated / "run")]) == 2
        _one_line_error(capsys, "name must be one folder name")
    assert not outside.exists() and not (isolated / "run").exists()
    with pytest.raises(ConfigError, match="outside"):
        get_profile("smoke").run_dir("../../escape")
    assert get_profile("smoke").run_dir("grid/variant_seed0").parts[-3:] == ("smoke", "grid", "variant_seed0")


@pytest.mark.parametrize(("command", "message"), [
    (["prepare", "--source", "{source}", "--output", "{tmp}/p", "--image-size", "0"],
     "--image-size must be at least 1"),
    (["prepare", "--source", "{source}", "--output", "{tmp}/p", "--classes", "bogus"],
     "classes must be distinct names"),
    (["prepare", "--source", "{source}", "--output", "{tmp}/a_file/p"], "cannot write to {tmp}/a_file/p"),
    (["generate", "oct", "--profile", "smoke", "--set", "oct.num_patients=1000"], "need 1..999 patients"),
    (["generate", "xca", "--profile", "smoke", "--set", "paths.data={tmp}/a_file"], "cannot write to {tmp}/a_file/"),
    (["predict", "--checkpoint", "{tmp}", "--input", "{tmp}", "--output", "{tmp}/o"], "is a folder, not a checkpoint"),
    (["predict", "--checkpoint", "{checkpoint}", "--input", "{video}", "--output", "{tmp}/o", "--device", "bogus"],
     "unknown device 'bogus'"),
    (["train", "--profile", "smoke", "--set", "xca.image_size=100", "--out", "{tmp}/r"],
     "xca.image_size 100 does not fit svsnet, whose inputs are a 5D window (B, 1, T, H, W) with T = 4 and H, W "
     "divisible by 64: use a multiple of 64"),
    (["train", "--profile", "smoke", "--set", "xca.train_crop=48", "--out", "{tmp}/r"],
     "xca.train_crop 48 does not fit"),
    (["train", "--task", "oct", "--profile", "smoke", "--set", 'oct.classes=["bogus"]', "--out", "{tmp}/r"],
     "classes must be distinct names"),
])
def test_remaining_user_errors_are_one_line(command, message, oct_source, isolated, capsys):
    (isolated / "a_file").write_text("not a folder")
    values = {"source": oct_source, "tmp": isolated, "checkpoint": _checkpoint(isolated, "xca"),
              "video": _xca_video(isolated / "video", 2)}
    assert main([part.format(**values) for part in command]) == 2
    _one_line_error(capsys, message.format(**values))
    assert not (isolated / "p").exists() and not (isolated / "o").exists()


# ------------------------------------------------------------------------------- all of them, one workspace


def test_all_defects_leave_every_original_file_intact(oct_source, isolated, held_lock, monkeypatch, capsys):
    """The issue's cases run one after the other, as a user would, on one workspace of the user's files: each is
    refused with one line (or, for the CMYK input, answered right) and no original file is changed or lost."""
    import tifffile
    import torch

    from medseg_core.config import get_profile
    from medseg_core.data import synthetic_xca as sx

    tmp = isolated
    xca_checkpoint, oct_checkpoint = _checkpoint(tmp, "xca"), _checkpoint(tmp, "oct")
    video = _xca_video(tmp / "video", 4)
    oct_frames = _oct_images(tmp / "oct_frames", 2)
    assert main(["prepare", "--source", str(oct_source), "--output", str(tmp / "prepared"), "--image-size", "32"]) == 0
    assert _predict(xca_checkpoint, video, tmp / "predicted") == 0  # an earlier prediction
    run = tmp / "run"  # a run another process trains
    run.mkdir()
    for name in ("best.pt", "last.pt", "history.csv"):
        (run / name).write_bytes(f"the other run's {name}".encode())
    held_lock(run / ".lock")
    busy = tmp / "busy"  # a prediction another process writes
    busy.mkdir()
    held_lock(busy / ".lock")
    write_image, written = sx.write_image, []

    def interrupted(path, array):
        written.append(path)
        if len(written) > 30:
            raise KeyboardInterrupt
        return write_image(path, array)

    monkeypatch.setattr(sx, "write_image", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sx.write_xca_dataset(tmp / "half", **sx.generator_settings(get_profile("smoke").xca))
    monkeypatch.undo()
    unpadded = tmp / "unpadded"
    for number in (0, 1, 2, 10):
        write_image(unpadded / f"{number}.png", np.zeros((32, 32), np.uint8))
    write_image(unpadded / "01.png", np.zeros((32, 32), np.uint8))
    stems = _oct_images(tmp / "stems", 1)
    write_image(stems / "001_1_000.tif", np.zeros((40, 40, 3), np.uint8))
    diverged = tmp / "diverged.pt"
    state = load_checkpoint(xca_checkpoint)
    state["model"] = {key: value.float() * float("nan") if value.is_floating_point() else value
                      for key, value in state["model"].items()}
    torch.save(state, diverged)
    torch.save({"model": _RunsACommand()}, tmp / "malicious.pt")
    cmyk = tmp / "cmyk"
    cmyk.mkdir()
    ink = np.zeros((40, 40, 4), np.uint8)
    ink[..., 3] = 238
    tifffile.imwrite(cmyk / "001_1_001.tif", ink, photometric="separated")
    capsys.readouterr()
    before = _hashes(tmp)

    train = ["train", "--profile", "smoke", "--out", str(tmp / "new_run")]
    refused = [  # (argv, working folder or None)
        (["prepare", "--source", str(tmp / "prepared"), "--output", str(tmp / "prepared"), "--image-size", "16",
          "--overwrite"], None),  # 1
        (["prepare", "--source", str(oct_source), "--output", str(oct_source / "derived")], None),
        (["prepare", "--source", str(tmp / "prepared" / "img" / ".."), "--output", str(tmp)], None),
        (["train", "--profile", "smoke", "--out", str(run), "--restart", "--overwrite"], None),  # 2
        (["predict", "--checkpoint", str(xca_checkpoint), "--input", str(video), "--output", str(busy)], None),  # 3
        (["predict", "--checkpoint", str(xca_checkpoint), "--input", ".", "--output", "predicted_here"], video),  # 4
        (["predict", "--checkpoint", str(xca_checkpoint), "--input", "predicted/masks/video", "--output",
          "predicted", "--overwrite"], tmp),
        ([*train, "--data", str(tmp / "half")], None),  # 5
        ([*train, "--set", "svsnet.monitor_mode=minimum"], None),  # 6
        ([*train, "--set", "svsnet.monitor=val_dcie"], None),
        (["predict", "--checkpoint", str(xca_checkpoint), "--input", str(unpadded), "--output", str(tmp / "o7")],
         None),  # 7
        ([*train, "--set", "svsnet.grad_clip=-1"], None),  # 8
        (["predict", "--checkpoint", str(oct_checkpoint), "--input", str(stems), "--output", str(tmp / "o9")],
         None),  # 9
        *[(["predict", "--checkpoint", str(xca_checkpoint), "--input", str(video), "--output", str(tmp / "o10"),
            option, value], None)
          for option, value in (("--threshold", "nan"), ("--threshold", "2"), ("--threshold", "-1"),
                                ("--batch-size", "-3"))],  # 10
        (["predict", "--checkpoint", str(diverged), "--input", str(video), "--output", str(tmp / "o11")], None),  # 11
        ([*train, "--model-arg", "foo=1"], None),
        (["predict", "--checkpoint", str(tmp / "malicious.pt"), "--input", str(oct_frames), "--output",
          str(tmp / "o12")], None),
        (["train", "--profile", "smoke", "--set", "name=../../escape"], None),
    ]
    not_refused = []
    for argv, folder in refused:
        monkeypatch.chdir(folder or tmp)
        try:
            code = main(argv)
        except Exception as error:  # a traceback: recorded, and the run goes on
            code = repr(error)
        err = capsys.readouterr().err
        if code != 2 or not err.startswith("medseg: error: ") or err.count("\n") != 1:
            not_refused.append((argv, code, err[-300:]))
    assert _predict(oct_checkpoint, cmyk, tmp / "o_cmyk") == 0  # 12: read as its colours, not inverted
    after = _hashes(tmp)
    changed = sorted(path for path, digest in before.items() if after.get(path) != digest)
    assert len(before) > 80 and changed == [], f"original files changed or lost: {changed}"
    assert not_refused == [], not_refused
