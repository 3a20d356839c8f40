"""One Trainer for every model, notebook and the CLI.

The Trainer owns the optimisation loop and nothing else: data loaders come in, a history ``DataFrame`` and
checkpoints come out. It follows nnU-Net's hook layout (``train_step``, ``validation_step``, ``on_epoch_end``)
so variants are small subclasses, and it keeps no single-process assumptions: the device comes from
:func:`medseg_core.runtime.get_device` (``LOCAL_RANK`` under ``torchrun``), only the main process writes files,
and samplers with ``set_epoch`` (``DistributedSampler``) are told the epoch.

Exact resume. At the start of epoch ``e`` every random generator (global ones and the loaders' own
``generator``) is re-seeded from ``(seed, e, rank)``, so the shuffling order, augmentation and dropout of an
epoch do not depend on what ran before. Together with the
model, optimiser, scheduler and grad-scaler states in ``last.pt``, a run interrupted after any epoch and
resumed ends with the same weights as an uninterrupted run (tested in ``tests/test_training.py``).

Checkpoints are written atomically (temporary file + ``os.replace``), contain only tensors and plain Python
values, and load with ``torch.load(..., weights_only=True)``.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import pandas as pd
import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .config import TrainConfig
from .files import atomic_output, write_csv_atomic
from .models import create_model
from .runtime import get_device, is_main_process, rank, seed_everything

__all__ = [
    "Trainer",
    "build_optimizer",
    "build_scheduler",
    "save_checkpoint",
    "load_checkpoint",
    "load_model",
    "hard_dice",
]

Batch = Mapping[str, Any]
EpochCallback = Callable[["Trainer", dict[str, float]], None]


def build_optimizer(parameters: Iterable[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """Optimiser named by ``config.optimizer`` ("adam", "adamw", "sgd", "rmsprop")."""
    params = [p for p in parameters if p.requires_grad]
    name = config.optimizer.lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov, weight_decay=config.weight_decay
        )
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    raise KeyError(f"unknown optimizer {config.optimizer!r}; valid: adam, adamw, sgd, rmsprop")


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    """Scheduler named by ``config.scheduler``.

    - ``"cosine"``: cosine annealing over ``config.epochs`` (stepped once per epoch).
    - ``"plateau"``: ReduceLROnPlateau on ``config.monitor`` (the OCT seed's choice, on validation Dice).
    - ``"inverse_time"``: ``lr / (1 + lr_decay * iteration)``, stepped every iteration. This is what Keras'
      ``SGD(decay=1e-6)`` in the official SVSnet code means; it is *not* weight decay.
    """
    name = config.scheduler.lower()
    if name == "none":
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.epochs, 1))
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=config.monitor_mode, patience=config.plateau_patience, factor=0.5
        )
    if name == "inverse_time":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda iteration: 1.0 / (1.0 + config.lr_decay * iteration))
    raise KeyError(f"unknown scheduler {config.scheduler!r}; valid: none, cosine, plateau, inverse_time")


@torch.no_grad()
def hard_dice(logits: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> tuple[float, float]:
    """Intersection and size sums of thresholded/argmax predictions over the foreground, for a global Dice.

    Args:
        logits: ``(B, 1, H, W)`` (binary, sigmoid > threshold) or ``(B, K, H, W)`` (argmax, classes 1..K-1).
        target: ``(B, 1, H, W)`` in {0, 1} or ``(B, H, W)`` class indices.

    Returns:
        ``(2 * |P ∩ G|, |P| + |G|)`` summed over the batch; Dice = first / second.
    """
    if logits.shape[1] == 1:
        prediction = torch.sigmoid(logits.float()) > threshold
        truth = target > 0.5
    else:
        prediction = logits.argmax(dim=1) > 0
        truth = target > 0
    intersection = (prediction & truth).sum().item()
    return 2.0 * intersection, float(prediction.sum().item() + truth.sum().item())


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically: a crash mid-write leaves the previous file intact."""
    with atomic_output(path) as temporary:
        torch.save(state, temporary)
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (no arbitrary code runs on load)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise RuntimeError(f"cannot read checkpoint {path}: {error}") from error


def load_model(checkpoint: str | Path | Mapping[str, Any], device: str | torch.device | None = "auto") -> nn.Module:
    """Rebuild a registered model from a Trainer checkpoint (a path or an already loaded state), in eval mode."""
    state = checkpoint if isinstance(checkpoint, Mapping) else load_checkpoint(checkpoint)
    spec = state.get("model_spec")
    if not spec:
        raise ValueError("the checkpoint has no model_spec; build the model yourself and load state['model']")
    kwargs = {k: v for k, v in spec["kwargs"].items() if k != "pretrained"}
    model = create_model(spec["name"], **kwargs)
    model.load_state_dict(state["model"])
    return model.to(get_device(device)).eval()


class Trainer:
    """Train a segmentation model with one loss, validate, checkpoint, resume and stop early.

    Args:
        model: any ``nn.Module`` returning logits; ``model.model_spec`` (set by ``create_model``) is stored in
            checkpoints so :func:`load_model` can rebuild it.
        loss_fn: ``loss_fn(logits, target) -> scalar``.
        config: optimisation settings (:class:`medseg_core.config.TrainConfig`).
        out_dir: where ``last.pt``, ``best.pt`` and ``history.csv`` go; ``None`` keeps everything in memory.
        callbacks: called as ``callback(trainer, row)`` after each epoch (e.g. live plots, widgets).
        progress: show ``tqdm`` progress bars.
        metadata: plain values stored in every checkpoint (task, image size, window length, class names) so
            that inference can prepare inputs the way training did.

    Example:
        >>> trainer = Trainer(create_model("svsnet"), DiceLoss(), get_profile("smoke").svsnet, "runs/demo")
        >>> history = trainer.fit(loaders["train"], loaders["val"])
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        config: TrainConfig,
        out_dir: str | Path | None = None,
        *,
        callbacks: Iterable[EpochCallback] = (),
        progress: bool = True,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.device = get_device(config.device)
        self.model = model.to(self.device)
        self.loss_fn = loss_fn
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.callbacks = list(callbacks)
        self.progress = progress and is_main_process()
        self.metadata = dict(metadata or {})
        self.use_amp = config.amp and self.device.type == "cuda"
        seed_everything(config.seed)
        self.optimizer = build_optimizer(self.model.parameters(), config)
        self.scheduler = build_scheduler(self.optimizer, config)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.use_amp)
        self.epoch = 0  # epochs completed
        self.history: list[dict[str, float]] = []
        self.best_score: float | None = None
        self.epochs_without_improvement = 0

    # ----------------------------------------------------------------------------------------------- hooks
    def train_step(self, batch: Batch) -> float:
        """One optimisation step on a batch; returns the loss value."""
        inputs, target = batch["image"].to(self.device), batch["mask"].to(self.device)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, enabled=self.use_amp):
            logits = self.model(inputs)
            loss = self.loss_fn(logits.float(), target)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"loss is {loss.item()} at epoch {self.epoch + 1}: lower the learning rate (now "
                f"{self.optimizer.param_groups[0]['lr']:g}), enable gradient clipping, or check the inputs for NaN. "
                f"The last good checkpoint is kept in {self.out_dir}."
            )
        self.scaler.scale(loss).backward()
        if self.config.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.config.scheduler == "inverse_time":
            self.scheduler.step()
        return loss.item()

    @torch.no_grad()
    def validation_step(self, batch: Batch) -> tuple[float, float, float]:
        """Loss and the Dice sums of :func:`hard_dice` on a batch."""
        inputs, target = batch["image"].to(self.device), batch["mask"].to(self.device)
        with torch.autocast(self.device.type, enabled=self.use_amp):
            logits = self.model(inputs)
        loss = self.loss_fn(logits.float(), target).item()
        overlap, total = hard_dice(logits, target)
        return loss, overlap, total

    def on_epoch_end(self, row: dict[str, float]) -> None:
        """Step epoch-level schedulers, track the best score, write checkpoints and history, run callbacks."""
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(row[self.config.monitor])
        elif self.scheduler is not None and self.config.scheduler != "inverse_time":
            self.scheduler.step()
        score = row.get(self.config.monitor, math.nan)
        improved = not math.isnan(score) and (
            self.best_score is None
            or (score < self.best_score if self.config.monitor_mode == "min" else score > self.best_score)
        )
        if improved:
            self.best_score = score
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
        row["is_best"] = float(improved)
        self.history.append(row)
        if self.out_dir is not None and is_main_process():
            state = self.state_dict()
            save_checkpoint(self.out_dir / "last.pt", state)
            if improved:
                save_checkpoint(self.out_dir / "best.pt", state)
            write_csv_atomic(self.history_frame(), self.out_dir / "history.csv")
        for callback in self.callbacks:
            callback(self, row)

    # ------------------------------------------------------------------------------------------ main loop
    def fit(self, train_loader: DataLoader, val_loader: DataLoader | None = None, resume: bool = True) -> pd.DataFrame:
        """Train until ``config.epochs`` (or early stopping); resume from ``out_dir/last.pt`` when ``resume``.

        Returns:
            The history: one row per epoch with ``train_loss``, ``val_loss``, ``val_dice``, ``lr``, ``time_s``.
        """
        if len(train_loader) == 0:
            raise ValueError("the training loader is empty: check the data folder and the batch size")
        if val_loader is None and self.config.monitor.startswith("val_"):
            warnings.warn(f"no validation loader: monitor {self.config.monitor!r} is unavailable", stacklevel=2)
        if resume and self.out_dir is not None and (self.out_dir / "last.pt").is_file():
            self.load_state_dict(load_checkpoint(self.out_dir / "last.pt", map_location=self.device))
        epochs = tqdm(range(self.epoch, self.config.epochs), desc="epochs", disable=not self.progress,
                      initial=self.epoch, total=self.config.epochs)
        for epoch in epochs:
            if self._should_stop():
                break
            row = self._run_epoch(epoch, train_loader, val_loader)
            self.on_epoch_end(row)
            epochs.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k in ("train_loss", "val_loss", "val_dice")})
        return self.history_frame()

    def _should_stop(self) -> bool:
        patience = self.config.early_stopping_patience
        return patience is not None and self.epochs_without_improvement >= patience

    def _run_epoch(self, epoch: int, train_loader: DataLoader, val_loader: DataLoader | None) -> dict[str, float]:
        epoch_seed = self.config.seed * 100_003 + epoch * 1_009 + rank()
        seed_everything(epoch_seed)
        for loader in (train_loader, val_loader):
            if loader is None:
                continue
            if getattr(loader, "generator", None) is not None:  # shuffling and worker seeds of this epoch
                loader.generator.manual_seed(epoch_seed)
            if hasattr(loader.sampler, "set_epoch"):
                loader.sampler.set_epoch(epoch)
        start = time.perf_counter()
        self.model.train()
        losses = [self.train_step(batch) for batch in tqdm(train_loader, desc=f"epoch {epoch + 1}", leave=False,
                                                           disable=not self.progress)]
        row = {"epoch": float(epoch + 1), "train_loss": sum(losses) / len(losses),
               "lr": self.optimizer.param_groups[0]["lr"]}
        if val_loader is not None:
            row.update(self.validate(val_loader))
        row["time_s"] = time.perf_counter() - start
        self.epoch = epoch + 1
        return row

    @torch.no_grad()
    def validate(self, loader: DataLoader) -> dict[str, float]:
        """Mean validation loss and global Dice over ``loader``."""
        self.model.eval()
        results = [self.validation_step(batch) for batch in loader]
        if not results:
            raise ValueError("the validation loader is empty: check the data folder and the split")
        overlap = sum(r[1] for r in results)
        total = sum(r[2] for r in results)
        return {"val_loss": sum(r[0] for r in results) / len(results),
                "val_dice": overlap / total if total > 0 else 1.0}

    # ------------------------------------------------------------------------------------------- state
    def history_frame(self) -> pd.DataFrame:
        """History as a DataFrame (one row per completed epoch)."""
        frame = pd.DataFrame(self.history)
        if not frame.empty:
            frame["epoch"] = frame["epoch"].astype(int)
            frame["is_best"] = frame["is_best"].astype(bool)
        return frame

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly; plain values and tensors only (``weights_only`` safe)."""
        model = self.model.module if hasattr(self.model, "module") else self.model
        return {
            "model": model.state_dict(),
            "model_spec": getattr(model, "model_spec", None),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "best_score": self.best_score,
            "epochs_without_improvement": self.epochs_without_improvement,
            "history": self.history,
            "config": asdict(self.config),
            "metadata": self.metadata,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state written by :meth:`state_dict`."""
        model = self.model.module if hasattr(self.model, "module") else self.model
        model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.best_score = state["best_score"]
        self.epochs_without_improvement = int(state["epochs_without_improvement"])
        self.history = [dict(row) for row in state["history"]]
