"""`medseg predict` on what a user has: a folder, one image, a video file (mp4, avi) or a DICOM cine.

Every test writes its own tiny inputs. A file's frames must give the masks the same frames give as a folder of
numbered PNGs (the windows are cut in the same order), and unusable files are refused in one line, exit code 2.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
from PIL import Image

from medseg_core.checkpoints import save_checkpoint
from medseg_core.cli import main
from medseg_core.config import get_profile
from medseg_core.data.io import write_image
from medseg_core.data.video import read_dicom, read_video
from medseg_core.models import create_model
from medseg_core.tasks import get_task
from medseg_core.training import Trainer
from test_faults import _checkpoint, _oct_images, _predict

FRAMES, HEIGHT, WIDTH = 9, 48, 64


def _svsnet_checkpoint(tmp_path: Path) -> Path:
    """An untrained SVSnet (T = 4, centre windows: frame order matters) of the smoke profile, as the Trainer writes it."""
    profile, task = get_profile("smoke"), get_task("xca")
    torch.manual_seed(0)
    model = create_model("svsnet", **task.model_kwargs(profile, "svsnet", {"base_channels": 2}))
    window = task.preprocess(_moving_vessel(4), image_size=64)["image"][None, None]  # (1, 1, T, 64, 64)
    with torch.no_grad():  # an untrained model's logits are nearly constant: spread them around 0, so masks hold both
        model.head.weight *= 40.0 / float(model.eval()(window).std())
        model.head.bias -= float(model(window).median())
    trainer = Trainer(model, nn.MSELoss(), profile.svsnet, metadata=task.run_metadata(profile, "svsnet"), progress=False)
    return save_checkpoint(tmp_path / "svsnet.pt", trainer.state_dict())


def _moving_vessel(count: int = FRAMES) -> np.ndarray:
    """``(count, H, W)`` uint8 frames: a dark curved vessel that moves right frame by frame, on noise."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    frames = []
    for index in range(count):
        centre = 12 + 4 * index + 6 * np.sin(rows / 9.0)
        vessel = np.exp(-((cols - centre) ** 2) / 8.0)
        frames.append(np.clip(170 - 120 * vessel + rng.normal(0, 6, (HEIGHT, WIDTH)), 0, 255).astype(np.uint8))
    return np.stack(frames)


def _write_video(path: Path, frames: np.ndarray) -> Path:
    """Encode grey ``(N, H, W)`` uint8 frames with FFmpeg's MPEG-4 Part 2 encoder (in MP4 and AVI alike)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=15)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="gray")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _write_dicom(path: Path, frames: np.ndarray, bits_stored: int = 8, photometric: str = "MONOCHROME2",
                 pixels: bool = True) -> Path:
    """A multi-frame X-ray angiography DICOM file of ``(N, H, W)`` frames (uint8, or uint16 with ``bits_stored``)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, XRayAngiographicImageStorage, generate_uid

    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.SOPClassUID = XRayAngiographicImageStorage
    dataset.SOPInstanceUID = generate_uid()
    dataset.Modality = "XA"
    if pixels:
        dataset.set_pixel_data(frames, photometric, bits_stored)
    dataset.save_as(path, enforce_file_format=True)
    return path


def _masks(out: Path) -> dict[str, np.ndarray]:
    return {path.relative_to(out / "masks").with_suffix("").as_posix(): np.asarray(Image.open(path))
            for path in sorted((out / "masks").rglob("*.png"))}


@pytest.fixture()
def model_inputs(monkeypatch) -> list[torch.Tensor]:
    """Every batch of prepared windows the model is given, in order."""
    from medseg_core import inference

    seen, predict_labels = [], inference.predict_labels

    def recording(model, inputs, *args, **kwargs):
        seen.append(inputs.clone())
        return predict_labels(model, inputs, *args, **kwargs)

    monkeypatch.setattr(inference, "predict_labels", recording)
    return seen


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_a_video_file_gives_the_masks_of_its_frames_as_a_numbered_folder(suffix, tmp_path, model_inputs):
    checkpoint = _svsnet_checkpoint(tmp_path)
    video = _write_video(tmp_path / f"run{suffix}", _moving_vessel())
    decoded = read_video(video)
    assert len(decoded) == FRAMES and decoded[0].shape == (HEIGHT, WIDTH)
    assert np.abs(decoded[4].astype(int) - _moving_vessel()[4]).mean() < 8, "the frames come back in their order"
    for index, frame in enumerate(decoded):  # the same frames, as the kit's own video folders hold them
        write_image(tmp_path / "frames" / "run" / f"{index:05d}.png", frame)
    assert _predict(checkpoint, video, tmp_path / "from_file") == 0
    windows_from_file = torch.cat(model_inputs)
    model_inputs.clear()
    assert _predict(checkpoint, tmp_path / "frames" / "run", tmp_path / "from_folder") == 0
    assert windows_from_file.shape == (FRAMES, 1, 4, 64, 64)
    torch.testing.assert_close(windows_from_file, torch.cat(model_inputs), rtol=0, atol=0)  # same windows, same order
    assert not torch.equal(windows_from_file[0, :, 2], windows_from_file[0, :, 3]), "centre windows: frames 0, 0, 0, 1"
    from_file, from_folder = _masks(tmp_path / "from_file"), _masks(tmp_path / "from_folder")
    assert list(from_file) == [f"run/{index:05d}" for index in range(FRAMES)] == list(from_folder)
    for name, mask in from_file.items():
        np.testing.assert_array_equal(mask, from_folder[name], err_msg=name)
    assert list(pd.read_csv(tmp_path / "from_file" / "predictions.csv")["id"]) == list(from_file)


def test_a_multi_frame_dicom_cine_gives_the_masks_of_its_frames(tmp_path, model_inputs):
    checkpoint, frames = _svsnet_checkpoint(tmp_path), _moving_vessel()
    cine = _write_dicom(tmp_path / "cine.dcm", frames)
    for index, frame in enumerate(frames):
        write_image(tmp_path / "frames" / "cine" / f"{index:05d}.png", frame)
    assert _predict(checkpoint, cine, tmp_path / "from_dicom") == 0
    windows_from_dicom = torch.cat(model_inputs)
    model_inputs.clear()
    assert _predict(checkpoint, tmp_path / "frames" / "cine", tmp_path / "from_folder") == 0
    torch.testing.assert_close(windows_from_dicom, torch.cat(model_inputs), rtol=0, atol=0)
    from_dicom, from_folder = _masks(tmp_path / "from_dicom"), _masks(tmp_path / "from_folder")
    assert list(from_dicom) == [f"cine/{index:05d}" for index in range(FRAMES)] == list(from_folder)
    for name, mask in from_dicom.items():
        np.testing.assert_array_equal(mask, from_folder[name], err_msg=name)
    # a PACS export without a suffix is recognised by its DICM marker
    (tmp_path / "IM0001").write_bytes(cine.read_bytes())
    assert _predict(checkpoint, tmp_path / "IM0001", tmp_path / "from_export") == 0
    assert list(_masks(tmp_path / "from_export")) == [f"IM0001/{index:05d}" for index in range(FRAMES)]


def test_dicom_pixels_are_scaled_by_their_stored_bits_and_monochrome1_is_inverted(tmp_path):
    stored = np.array([[[0, 1023], [4095, 2048]], [[4095, 0], [0, 0]]], dtype=np.uint16)  # 12-bit
    frames = read_dicom(_write_dicom(tmp_path / "twelve.dcm", stored, bits_stored=12))
    assert len(frames) == 2 and frames[0].dtype == np.float32
    np.testing.assert_allclose(frames[0], stored[0] / 4095.0, atol=1e-6)
    inverted = read_dicom(_write_dicom(tmp_path / "mono1.dcm", stored, bits_stored=12, photometric="MONOCHROME1"))
    np.testing.assert_allclose(inverted[1], 1.0 - stored[1] / 4095.0, atol=1e-6)
    eight = read_dicom(_write_dicom(tmp_path / "eight.dcm", _moving_vessel(2)))
    assert eight[1].dtype == np.uint8 and np.array_equal(eight[1], _moving_vessel(2)[1])
    assert read_dicom(tmp_path / "mono1.dcm", "RGB")[0].shape == (2, 2, 3)


def test_one_image_is_predicted_on_its_own(tmp_path, recwarn):
    oct_image = _oct_images(tmp_path / "oct", 1) / "001_1_000.png"
    assert _predict(_checkpoint(tmp_path, "oct"), oct_image, tmp_path / "oct_out") == 0
    assert list(_masks(tmp_path / "oct_out")) == ["001_1_000"]
    frame = write_image(tmp_path / "frame.png", _moving_vessel(1)[0])
    with pytest.warns(UserWarning, match="is one frame: each of the checkpoint's windows of 4 frames repeats it"):
        assert _predict(_svsnet_checkpoint(tmp_path), frame, tmp_path / "xca_out") == 0
    assert _masks(tmp_path / "xca_out")["frame"].shape == (HEIGHT, WIDTH)


def _one_line_error(capsys, *fragments: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("medseg: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


def test_unusable_files_are_refused_in_one_line(tmp_path, capsys):
    checkpoint = _checkpoint(tmp_path, "xca")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 and then nothing a decoder can use")
    assert _predict(checkpoint, broken, tmp_path / "o1") == 2
    _one_line_error(capsys, f"cannot read video {broken}")
    report = _write_dicom(tmp_path / "report.dcm", np.zeros((1, 2, 2), np.uint8), pixels=False)
    assert _predict(checkpoint, report, tmp_path / "o2") == 2
    _one_line_error(capsys, f"DICOM file {report} holds no pixel data (X-Ray Angiographic Image Storage)")
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    assert _predict(checkpoint, notes, tmp_path / "o3") == 2
    _one_line_error(capsys, f"--input {notes} is not a file medseg predict reads", ".mp4", ".dcm")
    assert _predict(checkpoint, tmp_path / "missing.mp4", tmp_path / "o4") == 2
    _one_line_error(capsys, "input folder not found")
    grey = _write_video(tmp_path / "grey.mp4", _moving_vessel(3))
    assert _predict(_checkpoint(tmp_path, "oct"), grey, tmp_path / "o5") == 2
    _one_line_error(capsys, "holds greyscale frames", "Use an XCA checkpoint")
    for name in ("o1", "o2", "o3", "o4", "o5"):
        left = sorted(p.name for p in (tmp_path / name).iterdir() if p.name != ".lock") if (tmp_path / name).exists() else []
        assert left == [], f"{name}: nothing written for a refused input"
