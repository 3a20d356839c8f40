"""Tests for medseg_core.data.xca: window indices, the XCA video reader and the SVSnet window dataset."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg_core.config import XCAConfig
from medseg_core.errors import ConfigError
from medseg_core.data.io import DataError, write_image
from medseg_core.data.transforms import xca_train_transforms
from medseg_core.data.preprocess import scale_by_frame_max
from medseg_core.data.xca import (
    XCAVideo,
    XCAWindowDataset,
    current_frame_position,
    list_videos,
    window_indices,
    xca_dataloaders,
)

HEIGHT, WIDTH = 12, 16


def frame_array(video_seed: int, index: int, size: tuple[int, int] = (HEIGHT, WIDTH)) -> np.ndarray:
    """A unique noise frame per (video, index) whose maximum differs from frame to frame."""
    rng = np.random.default_rng(1000 * video_seed + index)
    return rng.integers(0, 100 + 10 * index, size=size, endpoint=True).astype(np.uint8)


def mask_array(index: int, size: tuple[int, int] = (HEIGHT, WIDTH), empty: bool = False) -> np.ndarray:
    """A mask whose vessel row encodes the frame index (all zero when ``empty``)."""
    mask = np.zeros(size, np.uint8)
    if not empty:
        mask[index % size[0], :] = 1
        mask[:, index % size[1]] = 1
    return mask


def write_video(
    root: Path,
    name: str,
    num_frames: int,
    labelled: list[int],
    video_seed: int = 0,
    size: tuple[int, int] = (HEIGHT, WIDTH),
    empty_masks: tuple[int, ...] = (),
) -> None:
    for index in range(num_frames):
        write_image(root / "JPEGImages" / name / f"{index:05d}.png", frame_array(video_seed, index, size))
    for index in labelled:
        write_image(
            root / "Annotations_Semantic" / name / f"{index:05d}.png",
            mask_array(index, size, empty=index in empty_masks),
        )


@pytest.fixture
def split_root(tmp_path: Path) -> Path:
    """Two videos: 12 frames labelled every 5th (as MOSXAV train), 6 frames all labelled with one empty mask."""
    root = tmp_path / "train"
    write_video(root, "vid_a", 12, [0, 5, 10], video_seed=1)
    write_video(root, "vid_b", 6, list(range(6)), video_seed=2, empty_masks=(3,))
    return root


def expected_window(video_seed: int, indices: list[int]) -> np.ndarray:
    frames = np.stack([frame_array(video_seed, i).astype(np.float64) for i in indices])
    return frames / frames.max(axis=(1, 2), keepdims=True)


# ----------------------------------------------------------------------------------------------- window indices
@pytest.mark.parametrize("window_length", range(1, 8))
@pytest.mark.parametrize("policy", ["centre", "past"])
def test_window_indices_interior_and_ends(window_length: int, policy: str) -> None:
    num_frames = 20
    before = window_length // 2 if policy == "centre" else window_length - 1
    after = math.ceil(window_length / 2) - 1 if policy == "centre" else 0
    assert before + 1 + after == window_length
    assert current_frame_position(window_length, policy) == before
    # Interior: consecutive frames, the current one at position `before`.
    assert window_indices(10, num_frames, window_length, policy) == list(range(10 - before, 10 + after + 1))
    # Start: the first frame is repeated for every missing earlier frame.
    start = window_indices(0, num_frames, window_length, policy)
    assert start == [0] * (before + 1) + list(range(1, after + 1))
    # End: the last frame is repeated for every missing later frame.
    end = window_indices(num_frames - 1, num_frames, window_length, policy)
    assert end == list(range(num_frames - 1 - before, num_frames - 1)) + [num_frames - 1] * (after + 1)


def test_window_indices_official_svsnet_window() -> None:
    assert window_indices(5, 10, 4, "centre") == [3, 4, 5, 6]  # 2 before, the current frame, 1 after
    assert window_indices(5, 10, 4, "past") == [2, 3, 4, 5]
    assert window_indices(0, 1, 4, "centre") == [0, 0, 0, 0]


@pytest.mark.parametrize(
    "args",
    [(0, 10, 0, "centre"), (0, 10, 4, "middle"), (10, 10, 4, "centre"), (-1, 10, 4, "past"), (0, 0, 4, "centre")],
)
def test_window_indices_rejects_bad_arguments(args: tuple) -> None:
    with pytest.raises(ValueError):
        window_indices(*args)


# ----------------------------------------------------------------------------------------------------- dataset
def test_length_is_number_of_mask_files(split_root: Path) -> None:
    data = XCAWindowDataset(split_root)
    assert len(data) == len(list((split_root / "Annotations_Semantic").rglob("*.png"))) == 9
    assert list(data.samples.columns) == ["video", "frame", "id"]
    assert data.samples["id"].tolist()[:3] == ["vid_a/00000", "vid_a/00005", "vid_a/00010"]
    assert data.samples["id"].is_unique


def test_item_shapes_dtypes_and_ranges(split_root: Path) -> None:
    data = XCAWindowDataset(split_root, window_length=4)
    for index in range(len(data)):
        item = data[index]
        assert item["image"].shape == (1, 4, HEIGHT, WIDTH) and item["image"].dtype == torch.float32
        assert item["mask"].shape == (1, HEIGHT, WIDTH) and item["mask"].dtype == torch.float32
        assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
        assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}
        assert item["id"] == data.samples["id"][index]


@pytest.mark.parametrize(
    ("policy", "frame", "indices"),
    [
        ("centre", 5, [3, 4, 5, 6]),
        ("centre", 0, [0, 0, 0, 1]),
        ("centre", 10, [8, 9, 10, 11]),
        ("past", 5, [2, 3, 4, 5]),
        ("past", 0, [0, 0, 0, 0]),
    ],
)
def test_window_holds_the_labelled_frame_and_its_neighbours(
    split_root: Path, policy: str, frame: int, indices: list[int]
) -> None:
    data = XCAWindowDataset(split_root, window_length=4, window_policy=policy, videos=["vid_a"])
    item = data[data.samples["frame"].tolist().index(frame)]
    # Each frame divided by its own max (not by 255): compare with the frames written to disk.
    np.testing.assert_allclose(item["image"][0].numpy(), expected_window(1, indices), atol=1e-6)
    assert item["image"][0, data.current_frame_position].numpy() == pytest.approx(expected_window(1, [frame])[0])
    np.testing.assert_array_equal(item["mask"][0].numpy(), mask_array(frame))


def test_each_frame_is_scaled_by_its_own_max(split_root: Path) -> None:
    item = XCAWindowDataset(split_root, window_length=4, videos=["vid_a"])[1]
    assert torch.allclose(item["image"][0].amax(dim=(-2, -1)), torch.ones(4))


def test_scale_by_frame_max_leaves_black_frames_at_zero() -> None:
    frames = torch.stack([torch.zeros(3, 3), torch.full((3, 3), 4.0)])
    frames[1, 0, 0] = 8.0
    scaled = scale_by_frame_max(frames)
    assert torch.equal(scaled[0], torch.zeros(3, 3)) and torch.isfinite(scaled).all()
    assert scaled[1, 0, 0] == 1.0 and scaled[1, 1, 1] == 0.5


def test_empty_masks_are_kept(split_root: Path) -> None:
    data = XCAWindowDataset(split_root, videos=["vid_b"])
    item = data[data.samples["id"].tolist().index("vid_b/00003")]
    assert item["mask"].sum() == 0


def test_time_axis_false_gives_frames_as_channels(split_root: Path) -> None:
    item = XCAWindowDataset(split_root, window_length=3, time_axis=False)[0]
    assert item["image"].shape == (3, HEIGHT, WIDTH)
    single = XCAWindowDataset(split_root, window_length=1, time_axis=False)
    np.testing.assert_allclose(single[1]["image"][0].numpy(), expected_window(1, [5])[0], atol=1e-6)


def test_resize_to_image_size(split_root: Path) -> None:
    data = XCAWindowDataset(split_root, window_length=2, image_size=(6, 8))
    item = data[1]
    assert item["image"].shape == (1, 2, 6, 8) and item["mask"].shape == (1, 6, 8)
    assert torch.allclose(item["image"][0].amax(dim=(-2, -1)), torch.ones(2))
    assert set(item["mask"].unique().tolist()) == {0.0, 1.0}
    square = XCAWindowDataset(split_root, window_length=2, image_size=8)[0]
    assert square["image"].shape == (1, 2, 8, 8)


def test_augmentation_is_deterministic_under_manual_seed(split_root: Path) -> None:
    data = XCAWindowDataset(split_root, transform=xca_train_transforms((HEIGHT, WIDTH)))
    torch.manual_seed(3)
    first = [data[i] for i in range(3)]
    torch.manual_seed(3)
    second = [data[i] for i in range(3)]
    for a, b in zip(first, second):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
        assert a["image"].shape == (1, 4, HEIGHT, WIDTH)
        assert set(a["mask"].unique().tolist()) <= {0.0, 1.0}
    plain = XCAWindowDataset(split_root)
    assert any(not torch.equal(a["image"], plain[i]["image"]) for i, a in enumerate(first))


def test_rgb_jpeg_frames_are_read_as_gray(tmp_path: Path) -> None:
    root = tmp_path / "split"
    for index in range(3):
        gray = frame_array(0, index)
        write_image(root / "JPEGImages" / "rgb" / f"{index:05d}.jpg", np.stack([gray] * 3, axis=-1))
    write_image(root / "Annotations_Semantic" / "rgb" / "00001.png", mask_array(1))
    item = XCAWindowDataset(root, window_length=3)[0]
    assert item["image"].shape == (1, 3, HEIGHT, WIDTH)
    assert item["id"] == "rgb/00001"


def test_cache_keeps_decoded_frames(split_root: Path) -> None:
    cached = XCAWindowDataset(split_root, videos=["vid_a"], cache=True)
    uncached = XCAWindowDataset(split_root, videos=["vid_a"], cache=False)
    before = cached[0]["image"]
    uncached[0]
    for path in (split_root / "JPEGImages" / "vid_a").glob("0000[01].png"):
        path.unlink()
    assert torch.equal(cached[0]["image"], before)
    with pytest.raises(DataError, match="00000.png"):
        uncached[0]


# -------------------------------------------------------------------------------------------------- bad inputs
def test_zero_255_masks_warn_and_convert(tmp_path: Path) -> None:
    root = tmp_path / "split"
    write_video(root, "v", 4, [])
    write_image(root / "Annotations_Semantic" / "v" / "00002.png", mask_array(2) * 255)
    write_image(root / "Annotations_Semantic" / "v" / "00003.png", mask_array(3) * 255)
    with pytest.warns(UserWarning) as caught:  # once per data set, with a count, when it is built
        data = XCAWindowDataset(root)
    assert [str(w.message) for w in caught if "0/255" in str(w.message)] == [
        f"XCA split {root} (1 videos, 2 labelled frames): 2 of 2 masks are stored as 0/255 (e.g. "
        f"{root / 'Annotations_Semantic' / 'v' / '00002.png'}); converted to class indices 0/1. Save masks with "
        "values 0 and 1 to silence this"
    ]
    with pytest.warns(UserWarning, match="0/255"):
        uncached = XCAWindowDataset(root, cache=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reading items (every epoch) repeats nothing, cached or not
        item, again = data[0], uncached[0]
    np.testing.assert_array_equal(item["mask"][0].numpy(), mask_array(2))
    np.testing.assert_array_equal(again["mask"][0].numpy(), mask_array(2))


def test_mask_size_mismatch_names_both_files(split_root: Path) -> None:
    mask_path = split_root / "Annotations_Semantic" / "vid_a" / "00005.png"
    write_image(mask_path, np.zeros((HEIGHT, WIDTH + 2), np.uint8))
    with pytest.raises(DataError) as error:
        XCAWindowDataset(split_root)
    message = str(error.value)
    assert str(mask_path) in message and "vid_a/00005.png" in message.replace(str(mask_path), "")
    assert f"{HEIGHT}x{WIDTH + 2}" in message and f"{HEIGHT}x{WIDTH}" in message


def test_frame_size_mismatch_names_both_files(split_root: Path) -> None:
    frame_path = split_root / "JPEGImages" / "vid_b" / "00004.png"
    write_image(frame_path, np.zeros((HEIGHT + 1, WIDTH), np.uint8))
    with pytest.raises(DataError, match="00004.png") as error:
        XCAVideo(split_root, "vid_b")
    assert "00000.png" in str(error.value) and f"{HEIGHT + 1}x{WIDTH}" in str(error.value)


def test_garbage_image_raises_data_error_naming_the_file(split_root: Path) -> None:
    bad = split_root / "JPEGImages" / "vid_a" / "00007.png"
    bad.write_bytes(b"this is not a png")
    with pytest.raises(DataError, match="00007.png"):
        XCAWindowDataset(split_root)


def test_truncated_image_raises_data_error_naming_the_file(split_root: Path) -> None:
    bad = split_root / "JPEGImages" / "vid_a" / "00006.png"
    bad.write_bytes(bad.read_bytes()[:60])  # header intact, pixel data cut
    data = XCAWindowDataset(split_root, videos=["vid_a"])  # only headers are read here
    with pytest.raises(DataError, match="00006.png"):
        data[1]  # window 3, 4, 5, 6 of frame 5


def test_missing_root_layout_mentions_the_generator(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="JPEGImages") as error:
        XCAWindowDataset(tmp_path)
    assert "write_xca_dataset" in str(error.value)
    (tmp_path / "JPEGImages").mkdir()
    with pytest.raises(DataError, match="no video folders"):
        list_videos(tmp_path)


def test_missing_or_empty_mask_folder(split_root: Path) -> None:
    write_video(split_root, "unlabelled", 5, [])
    with pytest.raises(DataError, match="Annotations_Semantic.*unlabelled|unlabelled.*Annotations_Semantic"):
        XCAWindowDataset(split_root)
    (split_root / "Annotations_Semantic" / "unlabelled").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        XCAWindowDataset(split_root)
    assert len(XCAWindowDataset(split_root, videos=["vid_a", "vid_b"])) == 9
    assert XCAVideo(split_root, "unlabelled", require_masks=False).labelled_frames == []


def test_empty_frame_folder_and_unknown_video(split_root: Path) -> None:
    (split_root / "JPEGImages" / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        XCAVideo(split_root, "empty")
    with pytest.raises(DataError, match="nope"):
        XCAWindowDataset(split_root, videos=["nope"])


def test_mask_without_frame(split_root: Path) -> None:
    orphan = split_root / "Annotations_Semantic" / "vid_a" / "00099.png"
    write_image(orphan, mask_array(0))
    with pytest.raises(DataError, match="00099.png.*no matching frame"):
        XCAWindowDataset(split_root)


def test_mask_folder_without_frames_folder(split_root: Path) -> None:
    write_image(split_root / "Annotations_Semantic" / "ghost" / "00000.png", mask_array(0))
    with pytest.raises(DataError, match="ghost"):
        XCAWindowDataset(split_root)


def test_short_sequence_warns_once_naming_the_video(tmp_path: Path) -> None:
    root = tmp_path / "split"
    write_video(root, "tiny", 2, [0, 1])
    write_video(root, "long", 8, [4])
    with pytest.warns(UserWarning, match="tiny") as record:
        data = XCAWindowDataset(root, window_length=4)
    assert len([w for w in record if "fewer than window_length" in str(w.message)]) == 1
    assert data[0]["image"].shape == (1, 4, HEIGHT, WIDTH)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        XCAWindowDataset(root, window_length=2)


@pytest.mark.parametrize(
    "kwargs", [{"window_length": 0}, {"window_length": 2.0}, {"window_policy": "future"}, {"image_size": 0}]
)
def test_invalid_arguments_raise_value_error(split_root: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        XCAWindowDataset(split_root, **kwargs)


# ------------------------------------------------------------------------------------------------- dataloaders
def test_xca_dataloaders_builds_each_split(tmp_path: Path) -> None:
    for seed, split in enumerate(["train", "val", "test"]):
        write_video(tmp_path / split, "v", 6, [0, 2, 4], video_seed=seed)
    config = XCAConfig(image_size=8, window_length=2, window_policy="past", augment=True)
    loaders = xca_dataloaders(tmp_path, config, batch_size=2, seed=0)
    assert list(loaders) == ["train", "val", "test"]
    batch = next(iter(loaders["val"]))
    assert batch["image"].shape == (2, 1, 2, 8, 8) and batch["mask"].shape == (2, 1, 8, 8)
    assert batch["id"] == ["v/00000", "v/00002"]
    assert loaders["train"].dataset.transform is not None and loaders["val"].dataset.transform is None
    assert loaders["test"].dataset.window_policy == "past"
    flat = xca_dataloaders(tmp_path, config, batch_size=3, splits=("test",), time_axis=False)
    assert next(iter(flat["test"]))["image"].shape == (3, 2, 8, 8)


def test_train_crop_crops_training_windows_only_and_keeps_frames_and_mask_aligned(tmp_path: Path) -> None:
    for seed, split in enumerate(["train", "val"]):
        write_video(tmp_path / split, "v", 6, [0, 2, 4], video_seed=seed)
    config = XCAConfig(image_size=16, window_length=2, train_crop=8, augment=False)
    loaders = xca_dataloaders(tmp_path, config, batch_size=3, seed=0, splits=("train", "val"))
    whole = XCAWindowDataset(tmp_path / "train", window_length=2, image_size=16)
    torch.manual_seed(0)
    batch = next(iter(loaders["train"]))
    assert batch["image"].shape == (3, 1, 2, 8, 8) and batch["mask"].shape == (3, 1, 8, 8)
    assert next(iter(loaders["val"]))["image"].shape == (3, 1, 2, 16, 16)  # validation sees whole frames
    for image, mask, case in zip(batch["image"], batch["mask"], batch["id"]):
        full = whole[whole.samples.index[whole.samples["id"] == case][0]]
        # the crop is one window of the whole sample: find it, and the mask must come from the same place
        places = [(top, left) for top in range(9) for left in range(9)
                  if torch.equal(full["image"][..., top:top + 8, left:left + 8], image)]
        assert places and any(torch.equal(full["mask"][..., t:t + 8, l:l + 8], mask) for t, l in places)
    with pytest.raises(ConfigError, match="train_crop=32 is larger than the 16 px frames"):
        xca_dataloaders(tmp_path, XCAConfig(image_size=16, train_crop=32), batch_size=1, splits=("train",))


def test_xca_dataloaders_missing_split(tmp_path: Path) -> None:
    write_video(tmp_path / "train", "v", 3, [0])
    with pytest.raises(DataError, match=r"split folders \['test'\] not found"):
        xca_dataloaders(tmp_path, XCAConfig(image_size=8), batch_size=1)
    with pytest.raises(DataError, match="holds 1 video, so no validation video can be set aside.*add a val/"):
        xca_dataloaders(tmp_path, XCAConfig(image_size=8), batch_size=1, splits=("train", "val"))


def test_missing_val_is_carved_from_train_by_video(tmp_path: Path) -> None:
    """Real MOSXAV has train/ and test/ only: validation videos come out of train/, whole, with a warning."""
    names = [f"vid{index}" for index in range(5)]
    for index, name in enumerate(names):
        write_video(tmp_path / "train", name, 6, [0, 5], video_seed=index)
    write_video(tmp_path / "test", "t", 3, [0, 1, 2])
    config = XCAConfig(image_size=(HEIGHT, WIDTH), window_length=2, augment=False)
    with pytest.warns(UserWarning, match="has no val/ folder: validation uses 1 of the 5 videos of train/"):
        loaders = xca_dataloaders(tmp_path, config, batch_size=2, seed=3)
    videos = {split: {video.name for video in loader.dataset.videos} for split, loader in loaders.items()}
    assert len(videos["val"]) == 1 and not videos["val"] & videos["train"]
    assert videos["val"] | videos["train"] == set(names) and videos["test"] == {"t"}
    assert set(loaders["val"].dataset.samples["video"]) == videos["val"]  # every labelled frame of that video
    assert len(loaders["val"].dataset) == 2
    with pytest.warns(UserWarning, match="no val/ folder"):
        again = xca_dataloaders(tmp_path, config, batch_size=2, seed=3)
    assert {video.name for video in again["val"].dataset.videos} == videos["val"]  # deterministic
