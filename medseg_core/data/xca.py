"""X-ray coronary angiography (XCA) videos on disk and the SVSnet sliding-window dataset.

This module owns reading XCA sequences in the MOSXAV / DAVIS layout and turning them into training samples for
SVSnet (Hao et al., "Sequential vessel segmentation via deep channel attention network", Neural Networks 2020,
arXiv 2102.05229). A *split folder* (``data/.../train``, or a real MOSXAV split) holds::

    JPEGImages/<video>/00000.png            frames (.png or .jpg; grayscale, or RGB converted to gray)
    Annotations_Semantic/<video>/00000.png  binary vessel masks (vessel = 1; 0/255 is converted with a warning)

Frame files are named by their frame number. Only some frames need a mask (MOSXAV labels every 5th training
frame and every test frame); each labelled frame gives one sample. Frames of a video are ordered by number.

Windows. The sample of a labelled frame ``t`` is a window of ``T`` consecutive frames around it
(:func:`window_indices`):

- ``"centre"`` (SVSnet's official code): ``floor(T/2)`` frames before ``t``, then ``t``, then ``ceil(T/2) - 1``
  after; for ``T = 4`` that is ``t-2, t-1, t, t+1``.
- ``"past"`` (causal, for online use): ``T - 1`` frames before ``t``, then ``t``.

Near the ends of a video the indices are clamped to the first/last frame (replicate padding), so every labelled
frame gives a window of full length. The labelled frame sits at :func:`current_frame_position` in the window.

Preprocessing follows the official code: each frame is divided by its own maximum (an all-black frame stays 0).
Masks with no vessel pixels are valid annotations and are kept.

Generating data: :func:`medseg_core.data.synthetic_xca.write_xca_dataset` writes ``root/{train,val,test}`` in this
layout. Single-frame (2D) training on the same layout is ``XCAWindowDataset(root, window_length=1,
time_axis=False)``. Augmentation lives in :mod:`medseg_core.data.transforms`; file decoding in
:mod:`medseg_core.data.io`.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision.transforms import v2

from medseg_core.config import XCAConfig
from medseg_core.errors import ConfigError
from medseg_core.data.cache import check_complete
from medseg_core.data.io import (DataError, MaskSummary, image_size, list_images, read_image, read_label_mask,
                                 warn_aspect_change)
from medseg_core.data.preprocess import SampleTransform, preprocess_xca, size_pair
from medseg_core.data.sampling import loader_sampling
from medseg_core.data.transforms import xca_display_transforms, xca_train_transforms

__all__ = [
    "FRAMES_DIR",
    "MASKS_DIR",
    "SPLITS",
    "WINDOW_POLICIES",
    "XCAVideo",
    "XCAWindowDataset",
    "carve_runs",
    "current_frame_position",
    "every_kth_sample",
    "frames_by_number",
    "list_videos",
    "split_loader",
    "window_indices",
    "xca_dataloaders",
]

FRAMES_DIR = "JPEGImages"
MASKS_DIR = "Annotations_Semantic"
SPLITS = ("train", "val", "test")
WINDOW_POLICIES = ("centre", "past")

_LAYOUT_HELP = (
    f"expected a split folder holding {FRAMES_DIR}/<video>/00000.png (or .jpg) and "
    f"{MASKS_DIR}/<video>/00000.png (vessel = 1, background = 0), the MOSXAV/DAVIS layout; "
    "to generate synthetic data run medseg_core.data.synthetic_xca.write_xca_dataset(root)"
)


def _check_window_args(window_length: int, policy: str) -> None:
    if isinstance(window_length, bool) or not isinstance(window_length, int) or window_length < 1:
        raise ValueError(f"window_length must be an integer >= 1 (SVSnet uses 4), got {window_length!r}")
    if policy not in WINDOW_POLICIES:
        raise ValueError(f"unknown window policy {policy!r}; valid policies: {', '.join(WINDOW_POLICIES)}")


def current_frame_position(window_length: int, policy: str = "centre") -> int:
    """Position of the labelled (current) frame inside a window: ``floor(T/2)`` for "centre", ``T-1`` for "past"."""
    _check_window_args(window_length, policy)
    return window_length // 2 if policy == "centre" else window_length - 1


def window_indices(center: int, num_frames: int, window_length: int, policy: str = "centre") -> list[int]:
    """Frame indices of the window around frame ``center``, with replicate padding at the ends.

    "centre" takes ``floor(T/2)`` frames before ``center`` and ``ceil(T/2) - 1`` after (T = 4: 2 before, 1
    after, as in SVSnet's official code); "past" takes ``T - 1`` before. Indices outside the video are clamped
    to ``[0, num_frames - 1]``, i.e. the first/last frame is repeated.

    Args:
        center: index of the current (labelled) frame, ``0 <= center < num_frames``.
        num_frames: number of frames in the video.
        window_length: T, the number of frames in the window.
        policy: "centre" or "past".

    Returns:
        ``T`` indices in time order; ``center`` is at :func:`current_frame_position`.

    Example:
        >>> window_indices(0, 10, 4)
        [0, 0, 0, 1]
    """
    before = current_frame_position(window_length, policy)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if not 0 <= center < num_frames:
        raise ValueError(f"center must be in [0, {num_frames - 1}] for a video of {num_frames} frames, got {center}")
    offsets = np.arange(window_length) - before
    return np.clip(center + offsets, 0, num_frames - 1).tolist()


def _frame_number(path: Path) -> int:
    if not path.stem.isdigit():
        raise DataError(f"cannot read a frame number from {path}: files must be named by frame, e.g. 00000.png")
    return int(path.stem)


def frames_by_number(paths: list[Path]) -> dict[int, Path]:
    """Frame number -> path, in number order (``9.png`` before ``10.png``): the one order of a video's frames and
    masks, in training and in ``medseg predict``.

    Raises:
        DataError: a name is not a frame number, or two files have the same number (``1.png``, ``01.png``).
    """
    numbered: dict[int, Path] = {}
    for path in paths:
        number = _frame_number(path)
        if number in numbered:
            raise DataError(f"two files for frame {number}: {numbered[number]} and {path}; keep one of them")
        numbered[number] = path
    return dict(sorted(numbered.items()))


class XCAVideo:
    """One XCA video of a split folder: frame and mask files, read lazily and cached on demand.

    Frames are indexed by position ``0 .. num_frames - 1`` in frame-number order. Construction reads only file
    headers, to check that all frames have one size and every mask matches its frame.

    Args:
        root: split folder holding ``JPEGImages/`` and ``Annotations_Semantic/``.
        name: video folder name.
        require_masks: raise if the video has no mask folder or an empty one; ``False`` allows unlabelled videos
            (for inference).
        cache: keep decoded frames and masks in memory after the first read.
        summary: where mask facts are counted (for one warning per data set); default: the video's own.

    Raises:
        DataError: a folder is missing or empty, a file name is not a frame number, sizes disagree, a mask has
            no frame; the message names the files.
    """

    def __init__(self, root: str | Path, name: str, require_masks: bool = True, cache: bool = True,
                 summary: MaskSummary | None = None) -> None:
        self.root = Path(root)
        self.name = name
        self.cache = cache
        self.summary = MaskSummary() if summary is None else summary
        frames_dir = self.root / FRAMES_DIR / name
        masks_dir = self.root / MASKS_DIR / name
        if not frames_dir.is_dir():
            raise DataError(f"frames folder not found: {frames_dir}; {_LAYOUT_HELP}")
        frames = frames_by_number(list_images(frames_dir))
        self.frame_numbers: list[int] = list(frames)
        self.frame_paths: list[Path] = list(frames.values())
        self.size: tuple[int, int] = self._check_frame_sizes()
        self.mask_paths: dict[int, Path] = self._find_masks(masks_dir, require_masks)
        missing = sorted(set(range(self.frame_numbers[0], self.frame_numbers[-1] + 1)) - set(self.frame_numbers))
        if missing:
            warnings.warn(
                f"video {name}: frame numbers are not consecutive (missing {missing[:5]}); windows use the "
                "neighbouring frames on disk",
                UserWarning,
                stacklevel=2,
            )
        self._frame_cache: dict[int, np.ndarray] = {}
        self._mask_cache: dict[int, np.ndarray] = {}

    def _check_frame_sizes(self) -> tuple[int, int]:
        first = self.frame_paths[0]
        size = image_size(first)
        for path in self.frame_paths[1:]:
            other = image_size(path)
            if other != size:
                raise DataError(
                    f"video {self.name}: frame {path} is {other[0]}x{other[1]} (HxW) but {first} is "
                    f"{size[0]}x{size[1]}; all frames of a video must have one size"
                )
        return size

    def _find_masks(self, masks_dir: Path, require_masks: bool) -> dict[int, Path]:
        if not masks_dir.is_dir():
            if not require_masks:
                return {}
            raise DataError(
                f"no mask folder for video {self.name}: {masks_dir} is missing; add its masks or leave the video out "
                f"(videos=...); {_LAYOUT_HELP}"
            )
        try:
            mask_files = list_images(masks_dir)
        except DataError:
            if not require_masks:
                return {}
            raise DataError(f"mask folder {masks_dir} of video {self.name} holds no images; {_LAYOUT_HELP}") from None
        position_of = {number: position for position, number in enumerate(self.frame_numbers)}
        mask_paths: dict[int, Path] = {}
        for number, path in frames_by_number(mask_files).items():
            if number not in position_of:
                raise DataError(
                    f"mask {path} has no matching frame {number:05d} in {self.root / FRAMES_DIR / self.name}"
                )
            position = position_of[number]
            mask_size = image_size(path)
            if mask_size != self.size:
                raise DataError(
                    f"mask {path} is {mask_size[0]}x{mask_size[1]} (HxW) but its frame {self.frame_paths[position]} "
                    f"is {self.size[0]}x{self.size[1]}; masks must have the size of their frame"
                )
            mask_paths[position] = path
        return mask_paths

    def __len__(self) -> int:
        return len(self.frame_paths)

    @property
    def num_frames(self) -> int:
        """Number of frames in the video."""
        return len(self.frame_paths)

    @property
    def labelled_frames(self) -> list[int]:
        """Positions of the frames that have a mask, in time order."""
        return sorted(self.mask_paths)

    def frame_id(self, position: int) -> str:
        """Sample id ``"<video>/<frame number:05d>"`` of the frame at ``position``."""
        return f"{self.name}/{self.frame_numbers[position]:05d}"

    def read_frame(self, position: int) -> np.ndarray:
        """Frame at ``position`` as ``(H, W)``: uint8 for 8-bit files, float32 in [0, 1] for other bit depths.

        RGB files are converted to gray; see :func:`medseg_core.data.io.read_image` (``exact=True``).
        """
        if position in self._frame_cache:
            return self._frame_cache[position]
        frame = read_image(self.frame_paths[position], "L", exact=True)
        if self.cache:
            self._frame_cache[position] = frame
        return frame

    def read_mask(self, position: int) -> np.ndarray:
        """Mask of the frame at ``position`` as ``(H, W)`` uint8 in {0, 1}; KeyError if that frame has none."""
        if position not in self.mask_paths:
            raise KeyError(f"frame {self.frame_id(position)} has no mask; labelled positions: {self.labelled_frames}")
        if position in self._mask_cache:
            return self._mask_cache[position]
        mask = read_label_mask(self.mask_paths[position], num_classes=2, summary=self.summary)
        if self.cache:
            self._mask_cache[position] = mask
        return mask

    def read_window(self, position: int, window_length: int, policy: str = "centre") -> np.ndarray:
        """Frames of the window around ``position`` (see :func:`window_indices`) as ``(T, H, W)`` (see read_frame)."""
        indices = window_indices(position, self.num_frames, window_length, policy)
        return np.stack([self.read_frame(index) for index in indices])

    def __repr__(self) -> str:
        return (
            f"XCAVideo(name={self.name!r}, frames={self.num_frames}, labelled={len(self.mask_paths)}, "
            f"size={self.size[0]}x{self.size[1]})"
        )


def list_videos(root: str | Path) -> list[str]:
    """Sorted video names of a split folder (sub-folders of ``JPEGImages``).

    Raises:
        DataError: the folder, its ``JPEGImages`` or any video is missing, or a mask folder has no frames; the
            message describes the expected layout and how to generate synthetic data.
    """
    root = Path(root)
    frames_root = root / FRAMES_DIR
    if not frames_root.is_dir():
        raise DataError(f"no {FRAMES_DIR} folder in {root}; {_LAYOUT_HELP}")
    names = sorted(p.name for p in frames_root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise DataError(f"no video folders in {frames_root}; {_LAYOUT_HELP}")
    masks_root = root / MASKS_DIR
    if masks_root.is_dir():
        orphans = sorted(
            p.name for p in masks_root.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in names
        )
        if orphans:
            raise DataError(f"mask folders {orphans} in {masks_root} have no frames folder in {frames_root}")
    return names


class XCAWindowDataset(Dataset):
    """SVSnet samples: one window of frames per labelled frame of every video in a split folder.

    Item: ``{"image": (1, T, H, W) float32 in [0, 1], "mask": (1, H, W) float32 in {0, 1}, "id": "<video>/00005",
    "current": position of the labelled frame along T}`` (``image`` is ``(T, H, W)`` with ``time_axis=False``:
    frames as channels for 2D networks). Frames are prepared by :func:`medseg_core.data.preprocess.preprocess_xca`
    (resize, each frame divided by its own maximum, then augmentation), the function inference calls too.

    Args:
        root: split folder in the MOSXAV/DAVIS layout (see the module docstring).
        window_length: T, frames per window (SVSnet: 4; 1 gives single frames).
        window_policy: "centre" or "past" (see :func:`window_indices`).
        transform: joint v2 transform called on ``{"image": tv_tensors.Image (T, H, W) float in [0, 1], "mask":
            tv_tensors.Mask (1, H, W)}``, e.g. :func:`medseg_core.data.transforms.xca_train_transforms`.
        time_axis: return ``(1, T, H, W)`` (True, for SVSnet) or ``(T, H, W)`` (False).
        image_size: resize frames (antialiased bilinear) and masks (nearest) to this int or ``(H, W)``;
            None keeps the stored size.
        videos: names of the videos to use (default: all in ``root``).
        cache: keep decoded frames in memory (each DataLoader worker holds its own copy).

    Building the dataset reads every mask once and warns once if none has a vessel pixel, if masks are stored as
    0/255, or if ``image_size`` changes the videos' aspect ratio. Frames of any bit depth are read faithfully
    (:meth:`XCAVideo.read_frame`) and then divided by their maximum.

    Attributes:
        videos: the :class:`XCAVideo` objects.
        samples: pandas DataFrame with one row per item: ``video``, ``frame`` (frame number), ``id``.
        current_frame_position: index of the labelled frame along T.

    A video shorter than ``window_length`` gives windows that repeat its first/last frame; this is warned once
    per video. Padding at the ends of longer videos is normal and not warned.

    Example:
        >>> data = XCAWindowDataset("data/synthetic/xca_smoke/train", window_length=4)
        >>> data[0]["image"].shape  # (1, 4, 64, 64)
    """

    def __init__(
        self,
        root: str | Path,
        window_length: int = 4,
        window_policy: str = "centre",
        transform: SampleTransform | None = None,
        time_axis: bool = True,
        image_size: int | tuple[int, int] | None = None,
        videos: Sequence[str] | None = None,
        cache: bool = True,
    ) -> None:
        _check_window_args(window_length, window_policy)
        self.root = Path(root)
        self.window_length = window_length
        self.window_policy = window_policy
        self.transform = transform
        self.time_axis = time_axis
        self.image_size = size_pair(image_size)
        self.current_frame_position = current_frame_position(window_length, window_policy)
        available = list_videos(self.root)
        if videos is None:
            names = available
        else:
            unknown = sorted(set(videos) - set(available))
            if unknown:
                raise DataError(f"videos {unknown} not found in {self.root / FRAMES_DIR}; available: {available}")
            names = list(videos)
        self.summary = MaskSummary()
        self.videos = [XCAVideo(self.root, name, require_masks=True, cache=cache, summary=self.summary)
                       for name in names]
        for video in self.videos:
            if video.num_frames < window_length:
                warnings.warn(
                    f"video {video.name} has {video.num_frames} frames, fewer than window_length={window_length}: "
                    "its windows repeat the first/last frame (replicate padding)",
                    UserWarning,
                    stacklevel=2,
                )
        self._index = [(v, position) for v, video in enumerate(self.videos) for position in video.labelled_frames]
        for video_index, position in self._index:  # every mask once: one warning per data set, not per file
            self.videos[video_index].read_mask(position)
        label = f"XCA split {self.root} ({len(self.videos)} videos, {len(self._index)} labelled frames)"
        self.summary.warn(label)
        if self.image_size is not None:
            warn_aspect_change({video.name: video.size for video in self.videos}, self.image_size, label, "videos",
                               "pass image_size=(H, W) with their aspect ratio, or crop them")
        self.samples = pd.DataFrame(
            {
                "video": [self.videos[v].name for v, _ in self._index],
                "frame": [self.videos[v].frame_numbers[position] for v, position in self._index],
                "id": [self.videos[v].frame_id(position) for v, position in self._index],
            }
        )

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, index: int) -> dict[str, Any]:
        video_index, position = self._index[index]
        video = self.videos[video_index]
        frames = video.read_window(position, self.window_length, self.window_policy)
        sample = preprocess_xca(frames, video.read_mask(position), image_size=self.image_size, transform=self.transform)
        return {
            "image": sample["image"].unsqueeze(0) if self.time_axis else sample["image"],
            "mask": sample["mask"],
            "id": video.frame_id(position),
            "current": self.current_frame_position,
        }

    def __repr__(self) -> str:
        return (
            f"XCAWindowDataset(root={str(self.root)!r}, videos={len(self.videos)}, samples={len(self)}, "
            f"window_length={self.window_length}, window_policy={self.window_policy!r}, time_axis={self.time_axis})"
        )


def xca_dataloaders(
    root: str | Path,
    xca_config: XCAConfig,
    batch_size: int,
    num_workers: int = 0,
    seed: int = 0,
    splits: Sequence[str] = SPLITS,
    time_axis: bool = True,
    augment_strength: str = "paper",
    val_fraction: float = 0.2,
) -> dict[str, DataLoader]:
    """DataLoaders for the split folders ``root/<split>``: "train" shuffled and augmented, the others neither.

    Reads ``window_length``, ``window_policy``, ``image_size``, ``augment``, ``train_crop`` (training windows
    cropped at random, validation and test whole) and ``train_frames`` (every k-th labelled training frame,
    :func:`every_kth_sample`) from ``xca_config``. Shuffling
    uses a ``torch.Generator`` seeded with ``seed``; DataLoader workers get seeds derived from it, so augmentation
    repeats in worker processes. With ``num_workers=0`` augmentation draws from torch's global generator: seed it
    with :func:`medseg_core.runtime.seed_everything`. Under ``torchrun`` the "train" and "val" loaders read this
    process's share (:func:`~medseg_core.data.sampling.loader_sampling`; ``batch_size`` is per process).

    Real MOSXAV has ``train/`` and ``test/`` only: when "val" is asked for and ``root/val`` is absent,
    ``val_fraction`` of the videos of ``train/`` (at least one, and at least one left) become the validation set,
    by video (frames of one video are near duplicates), chosen by a permutation seeded with ``seed``; a warning
    names them. Add a ``val/`` folder to choose them yourself.

    Args:
        root: folder holding one split folder per name in ``splits`` (as written by ``write_xca_dataset``).
        xca_config: the profile's :class:`~medseg_core.config.XCAConfig`.
        batch_size: samples per batch.
        num_workers: DataLoader worker processes.
        seed: seed of the shuffling generator and of the validation videos carved from ``train/``.
        splits: split folders to load; each must exist, except "val" (see above).
        time_axis: image batches ``(B, 1, T, H, W)`` (True, SVSnet) or ``(B, T, H, W)`` (False, 2D networks).
        augment_strength: "paper" or "light", see :func:`~medseg_core.data.transforms.xca_train_transforms`.
        val_fraction: share of the training videos used for validation when ``root/val`` is absent.

    Returns:
        ``{split: DataLoader}`` in the order of ``splits``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    root = Path(root)
    check_complete(root)  # a data set the kit has not finished writing is refused, not read in part
    carve = "val" in splits and not (root / "val").is_dir() and (root / "train").is_dir()
    missing = [split for split in splits if not (root / split).is_dir() and not (split == "val" and carve)]
    if missing:
        present = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise DataError(
            f"split folders {missing} not found in {root} (present: {present}); a missing val/ is carved from "
            f"train/, every other split needs its folder. Each split: {_LAYOUT_HELP}"
        )
    chosen = dict(zip(("train", "val"), _carve_validation(root, val_fraction, seed))) if carve else {}
    loaders: dict[str, DataLoader] = {}
    for split in splits:
        is_train = split == "train"
        transform = _train_transform(xca_config, augment_strength) if is_train else None
        dataset = XCAWindowDataset(
            root / ("train" if split in chosen else split),
            window_length=xca_config.window_length,
            window_policy=xca_config.window_policy,
            transform=transform,
            time_axis=time_axis,
            image_size=xca_config.image_size,
            videos=chosen.get(split),
        )
        if is_train and xca_config.train_frames is not None:
            dataset = every_kth_sample(dataset, xca_config.train_frames)
        loaders[split] = split_loader(dataset, split, batch_size, num_workers, seed)
    return loaders


def every_kth_sample(dataset: Dataset, count: int) -> Dataset:
    """``count`` samples evenly spaced over ``dataset`` (every k-th labelled frame, in video and frame order): what
    labelling every k-th frame gives, the same for every seed; the whole ``dataset`` when ``count`` is at least its
    size. Unlabelled neighbours still fill the windows (only the labelled frames are thinned)."""
    if count >= len(dataset):
        return dataset
    return Subset(dataset, np.linspace(0, len(dataset) - 1, count).round().astype(int).tolist())


def split_loader(dataset: Dataset, split: str, batch_size: int, num_workers: int = 0, seed: int = 0) -> DataLoader:
    """The DataLoader of one split of XCA windows (the kit's layout or :mod:`medseg_core.data.public`'s): "train"
    shuffled with a generator seeded by ``seed``, the others in order; "train" and "val" read this process's share
    under ``torchrun``, "test" is read whole (evaluation is not sharded)."""
    is_train = split == "train"
    sampling = loader_sampling(dataset, train=is_train, seed=seed) if split in ("train", "val") else {"shuffle": False}
    return DataLoader(
        dataset,
        batch_size=batch_size,
        **sampling,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0,
    )


def _train_transform(xca_config: XCAConfig, augment_strength: str) -> v2.Transform | None:
    """The training split's transform: the display's variation (``xca.display_augment``), augmentation
    (``xca.augment``), then the random crop (``xca.train_crop``)."""
    steps: list[v2.Transform] = []
    if xca_config.display_augment:
        steps.append(xca_display_transforms())
    if xca_config.augment:
        steps.append(xca_train_transforms(xca_config.image_size, augment_strength))
    crop = xca_config.train_crop
    if crop is not None:
        if crop > min(size_pair(xca_config.image_size)):
            raise ConfigError(f"xca.train_crop={crop} is larger than the {xca_config.image_size} px frames "
                              "(xca.image_size); use a crop at most the frame size, or None for whole frames")
        steps.append(v2.RandomCrop(crop))
    return v2.Compose(steps) if steps else None


def _carve_validation(root: Path, val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(training videos, validation videos) of ``root/train``, split by video, with a warning naming them."""
    names = list_videos(root / "train")
    if len(names) < 2:
        raise DataError(
            f"{root} has no val/ folder and {root / 'train'} holds {len(names)} video, so no validation video can "
            "be set aside (splits are by video); add a val/ split folder"
        )
    kept, val = carve_runs(names, val_fraction, seed)
    count = len(val)
    warnings.warn(
        f"{root} has no val/ folder: validation uses {count} of the {len(names)} videos of train/ "
        f"({', '.join(val)}), chosen by video with seed {seed}, and training the other {len(names) - count}; "
        "add a val/ folder to choose them yourself",
        UserWarning,
        stacklevel=3,
    )
    return kept, val


def carve_runs(names: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """``(kept, carved)``: ``fraction`` of the runs ``names`` (rounded; at least one, and at least one kept), drawn
    by a permutation seeded with ``seed``; both lists keep the order of ``names``. Splits are by run because the
    frames of one run are near duplicates.

    Raises:
        ValueError: fewer than two names.
    """
    if len(names) < 2:
        raise ValueError(f"cannot set runs aside from {len(names)} run(s): at least two are needed")
    count = min(len(names) - 1, max(1, int(round(fraction * len(names)))))
    picked = set(np.random.default_rng(seed).permutation(len(names))[:count].tolist())
    return ([name for index, name in enumerate(names) if index not in picked],
            [name for index, name in enumerate(names) if index in picked])
