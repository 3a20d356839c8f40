"""One Trainer for every model, notebook and the CLI.

The Trainer owns the optimisation loop and nothing else: data loaders come in, a history ``DataFrame`` and
checkpoints come out. It follows nnU-Net's hook layout (``train_step``, ``validation_step``, ``on_epoch_end``)
so variants are small subclasses, and it keeps no single-process assumptions: the device comes from
:func:`medseg_core.runtime.get_device` (``LOCAL_RANK`` under ``torchrun``), only the main process writes files,
and samplers with ``set_epoch`` (``DistributedSampler``) are told the epoch.

Many processes (``torchrun``, :func:`medseg_core.runtime.init_distributed`). The model is wrapped in
``DistributedDataParallel``, so gradients are averaged over processes at every step; each loader reads its
process's share (:mod:`medseg_core.data.sampling`). The epoch's train loss and the validation sums (loss,
Dice overlap and total) are summed over processes, so every process logs the same history row and takes the
same best-checkpoint, scheduler and early-stopping decisions (``time_s`` is each process's own). Rank 0 writes
the files and the others wait for it (a barrier) at the end of every epoch; a resume loads ``last.pt`` in
every process. Validation runs the model without DDP, with rank 0's buffers (BatchNorm running statistics),
the weights rank 0 saves.

Exact resume. At the start of epoch ``e`` every random generator (global ones and the loaders' own
``generator``) is re-seeded from ``(seed, e, rank)``, so the shuffling order, augmentation and dropout of an
epoch do not depend on what ran before. Together with the
model, optimiser, scheduler and grad-scaler states in ``last.pt``, a run interrupted after any epoch and
resumed ends with the same weights as an uninterrupted run (tested in ``tests/test_training.py``). ``last.pt``
is written every ``save_every`` epochs (1 by default; the cpu profile's 4 saves SVSnet's 120 MB file, 5 s of a
40 s ablation run, three times in four): an interrupted run then repeats the epochs since that file, with the
same result.

What a checkpoint holds, and reading and writing it, is :mod:`medseg_core.checkpoints`; every checkpoint
carries the run's :class:`~medseg_core.checkpoints.RunMetadata`, so ``medseg predict`` accepts any of them.
Resuming compares the stored model, run metadata and settings with the new ones and refuses a mismatch (only
``epochs`` may change, to extend a run, and the speed settings ``compile``, ``num_threads``, ``keep_freed_memory``
and ``save_every``). Schedulers declare when they step (Lightning's ``interval``: every optimisation step or every
epoch), so the loop never tests a scheduler's name.

Choosing ``best.pt``. An epoch is the best so far when ``config.monitor`` improves, or when it ties the best
value and ``val_loss`` is lower (the tie-break). A monitor that cannot tell epochs apart (validation Dice is
0 in every epoch when the model finds nothing, or on a split without foreground) thus falls back to the
validation loss instead of pinning ``best.pt`` to epoch 1. Only validated epochs compete (every
``config.val_every``-th and the last), and :meth:`Trainer.fit` warns at the end when the
monitor was constant or never improved after the first validated epoch, naming the monitor and what to do.

Starting weights. :func:`initial_weights` loads a kit checkpoint's model weights into a new model (every
tensor must match by name and shape); the Trainer stores the record it returns (``init_from``) in every
checkpoint, so a resume that starts from other weights is refused like any other changed setting.
"""
from __future__ import annotations

import math
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import pandas as pd
import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .checkpoints import (RESUME_MAY_CHANGE, RunMetadata, check_finite_weights, copy_checkpoint, load_checkpoint,
                          save_checkpoint, settings_differences)
from .config import TrainConfig, check_train_config
from .errors import ConfigError, UnknownNameError
from .files import file_digest
from .models import logits_to_labels, model_arguments
from .run_folder import BEST_FILE, LAST_FILE, RunFolder
from .runtime import (all_reduce_sum, autocast_dtype, barrier, broadcast_buffers, get_device, is_main_process,
                      keep_freed_memory, memory_format, rank, seed_everything, to_memory_format, world_size)

__all__ = ["Trainer", "ScheduledLR", "build_optimizer", "build_scheduler", "initial_weights"]

TIE_BREAK = "val_loss"  # history column that decides between epochs whose monitored value ties

Batch = Mapping[str, Any]
EpochCallback = Callable[["Trainer", dict[str, float]], None]


def build_optimizer(parameters: Iterable[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """Optimiser named by ``config.optimizer`` ("adam", "adamw", "sgd", "rmsprop").

    Adam, AdamW and SGD use torch's fused kernels (one kernel for all parameters instead of a loop over them:
    an Adam step of DeepLabV3+ on 2 CPU cores 27 ms -> 6 ms, of SVSnet 45 ms -> 11 ms); RMSprop, which has none,
    its multi-tensor ``foreach`` implementation.
    """
    params = [p for p in parameters if p.requires_grad]
    name = config.optimizer.lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    if name == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                               weight_decay=config.weight_decay, fused=True)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                                   foreach=True)
    raise UnknownNameError(f"unknown optimizer {config.optimizer!r}; valid: adam, adamw, sgd, rmsprop")


def _cloned(value: Any) -> Any:
    """``value`` with every tensor in it (nested dicts and lists) cloned."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, Mapping):
        return {key: _cloned(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cloned(item) for item in value)
    return value


@dataclass
class ScheduledLR:
    """A learning-rate scheduler and when it steps (Lightning's ``interval``): ``"step"`` or ``"epoch"``.

    ``monitor`` names the history column an epoch scheduler is stepped with (``ReduceLROnPlateau``), else None.
    """

    scheduler: torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau
    interval: str = "epoch"
    monitor: str | None = None

    def step(self, interval: str, row: Mapping[str, float] | None = None) -> None:
        """Step the scheduler if ``interval`` is its own (epoch schedulers get the monitored value from ``row``)."""
        if interval != self.interval:
            return
        if self.monitor is not None:
            self.scheduler.step((row or {})[self.monitor])
        else:
            self.scheduler.step()


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> ScheduledLR | None:
    """Scheduler named by ``config.scheduler``, with its interval.

    - ``"cosine"``: cosine annealing over ``config.epochs`` (every epoch).
    - ``"plateau"``: ReduceLROnPlateau on ``config.monitor`` (every validated epoch, see ``config.val_every``, so its
      patience counts validations; the OCT reference implementation's choice, on val Dice).
    - ``"inverse_time"``: ``lr / (1 + lr_decay * iteration)``, every optimisation step. This is what Keras'
      ``SGD(decay=1e-6)`` in the official SVSnet code means; it is *not* weight decay.
    """
    name = config.scheduler.lower()
    if name == "none":
        return None
    if name == "cosine":
        return ScheduledLR(torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.epochs, 1)))
    if name == "plateau":
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=config.monitor_mode,
                                                             patience=config.plateau_patience, factor=0.5)
        return ScheduledLR(plateau, monitor=config.monitor)
    if name == "inverse_time":
        decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda iteration: 1.0 / (1.0 + config.lr_decay * iteration))
        return ScheduledLR(decay, interval="step")
    raise UnknownNameError(f"unknown scheduler {config.scheduler!r}; valid: none, cosine, plateau, inverse_time")


def initial_weights(model: nn.Module, checkpoint: str | Path) -> dict[str, str]:
    """Load the model weights of a kit checkpoint (``best.pt`` / ``last.pt``) into ``model``, in place.

    Every tensor must match by name and shape (a model with other classes, channels or ECA placement is refused
    rather than partly loaded, the ``strict=False`` pitfall of the OCT reference implementation's parent repository).

    Returns:
        ``{"path": ..., "sha256": ...}`` of the checkpoint, what the run records as its ``init_from``.

    Raises:
        ConfigError: the checkpoint is missing, or tensors are missing, unexpected or of another shape (named).
        CheckpointError: the checkpoint is unreadable, or its weights hold NaN/Inf.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise ConfigError(f"init checkpoint {path} not found: pass the {BEST_FILE} or {LAST_FILE} of a finished run")
    stored = load_checkpoint(path)["model"]
    check_finite_weights(stored, path)
    target = model.module.state_dict() if hasattr(model, "module") else model.state_dict()
    differences = [f"{name}: checkpoint {tuple(stored[name].shape)}, model {tuple(tensor.shape)}"
                   for name, tensor in target.items() if name in stored and stored[name].shape != tensor.shape]
    differences += [f"{name}: not in the checkpoint" for name in target if name not in stored]
    differences += [f"{name}: not in the model" for name in stored if name not in target]
    if differences:
        shown = "; ".join(differences[:8]) + (f"; and {len(differences) - 8} more" if len(differences) > 8 else "")
        raise ConfigError(f"cannot initialise from {path}: {len(differences)} tensors differ ({shown}). Train the "
                          "checkpoint with the same model and model arguments (classes, channels, ECA).")
    (model.module if hasattr(model, "module") else model).load_state_dict(stored)
    return {"path": str(path.resolve()), "sha256": file_digest(path)}


def _effective_spec(spec: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A model spec with every constructor argument (:func:`~medseg_core.models.model_arguments`), so ``eca="both"``
    given or implied is one model, and without the arguments that only change how it runs."""
    if not spec:
        return None
    try:
        return {"name": spec["name"], "kwargs": model_arguments(spec["name"], spec["kwargs"])}
    except KeyError:  # a model registered only in the process that wrote the checkpoint
        return dict(spec)


class Trainer:
    """Train a segmentation model with one loss, validate, checkpoint, resume and stop early.

    Args:
        model: any ``nn.Module`` returning logits; ``model.model_spec`` (set by ``create_model``) is stored in
            checkpoints so :func:`medseg_core.checkpoints.load_model` can rebuild it. ``trainer.model`` stays this
            module (its ``state_dict`` is what checkpoints store); ``trainer.forward_model`` is the module compiled
            with ``config.compile`` (it validates), and ``trainer.network`` runs the training steps: the forward
            model, wrapped in DDP under ``torchrun``.
        loss_fn: ``loss_fn(logits, target) -> scalar``.
        config: optimisation settings (:class:`medseg_core.config.TrainConfig`).
        out_dir: the run folder (:class:`~medseg_core.run_folder.RunFolder`: ``last.pt``, ``best.pt``,
            ``history.csv``); ``None`` keeps everything in memory.
        callbacks: called as ``callback(trainer, row)`` after each epoch (e.g. live plots, widgets).
        progress: show ``tqdm`` progress bars.
        metadata: how the inputs were prepared (task, image size, window, class names), stored in every
            checkpoint so that inference prepares them the way training did; tasks make it
            (:meth:`medseg_core.tasks.Task.run_metadata`).
        data_id: what identifies the training data (:func:`medseg_core.files.folder_fingerprint`); stored, and
            a resume on other data is refused. None: not checked.
        init_from: the record of the weights the model started from (:func:`initial_weights`), or None (its own
            random initialisation); stored, and a resume that started from other weights is refused.
        run_config: the run's resolved settings (:func:`medseg_core.run_config.run_record`), or None; written as
            ``out_dir/config.json`` when a fit starts (after a resume was checked, under the run-folder lock) and
            stored in every checkpoint.

    Example:
        >>> task, cfg = get_task("xca"), get_profile("smoke")
        >>> model = create_model("svsnet")
        >>> trainer = Trainer(model, DiceLoss(), cfg.svsnet, "runs/demo", metadata=task.run_metadata(cfg, model))
        >>> history = trainer.fit(loaders["train"], loaders["val"])
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        config: TrainConfig,
        out_dir: str | Path | None = None,
        *,
        metadata: RunMetadata,
        data_id: str | None = None,
        init_from: Mapping[str, str] | None = None,
        run_config: Mapping[str, Any] | None = None,
        callbacks: Iterable[EpochCallback] = (),
        progress: bool = True,
    ) -> None:
        check_train_config(config)  # a monitor it logs, in its direction; a positive clip
        self.config = config
        if config.num_threads is not None:
            torch.set_num_threads(config.num_threads)
        self.device = get_device(config.device)
        if config.keep_freed_memory and self.device.type == "cpu":
            keep_freed_memory()
        self.memory_format = memory_format(model, config.channels_last)
        self.model = to_memory_format(model.to(self.device), self.memory_format)
        self.forward_model = torch.compile(self.model) if config.compile else self.model
        self.network = self.forward_model
        if world_size() > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.network = nn.parallel.DistributedDataParallel(self.forward_model, device_ids=device_ids)
        self.loss_fn = loss_fn
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.folder = RunFolder(self.out_dir) if self.out_dir is not None else None
        self.callbacks = list(callbacks)
        self.progress = progress and is_main_process()
        self.metadata = metadata
        self.data_id = data_id
        self.init_from = dict(init_from) if init_from is not None else None
        self.run_config = dict(run_config) if run_config is not None else None
        self.amp_dtype = autocast_dtype(self.device, model, config.amp)
        self.use_amp = self.amp_dtype is not None
        seed_everything(config.seed)
        self.optimizer = build_optimizer(self.model.parameters(), config)
        self.schedule = build_scheduler(self.optimizer, config)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.epoch = 0  # epochs completed
        self.history: list[dict[str, float]] = []
        self.best_score: float | None = None
        self.best_tie_break: float | None = None  # TIE_BREAK value of the best epoch
        self.epochs_without_improvement = 0
        self._unsaved_best: dict[str, Any] | None = None  # state of a best epoch not yet on disk (save_every > 1)

    # ----------------------------------------------------------------------------------------------- hooks
    def _inputs(self, batch: Batch) -> torch.Tensor:
        """The batch's images on the Trainer's device, in the model's memory format."""
        images = batch["image"].to(self.device, non_blocking=True)
        return to_memory_format(images, self.memory_format)

    def _logits(self, network: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """``network(inputs)``; ``torch.compile`` failing to build the model is a ConfigError naming the way out."""
        try:
            return network(inputs)
        except torch._dynamo.exc.BackendCompilerFailed as error:
            reason = str(error).strip().splitlines()[0]
            raise ConfigError(f"torch.compile could not build the model ({reason}); on CPU it needs a working C++ "
                              "compiler (g++ or clang++, or $CXX). Train without it: compile=false (the default)"
                              ) from error

    def train_step(self, batch: Batch) -> float:
        """One optimisation step on a batch; returns the loss value (this process's)."""
        inputs, target = self._inputs(batch), batch["mask"].to(self.device)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            logits = self._logits(self.network, inputs)
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
        if self.schedule is not None:
            self.schedule.step("step")
        return loss.item()

    @torch.no_grad()
    def validation_step(self, batch: Batch) -> tuple[float, float, float]:
        """Loss and the pooled-Dice sums ``(2 |P ∩ G|, |P| + |G|)`` over the foreground classes of a batch."""
        inputs, target = self._inputs(batch), batch["mask"].to(self.device)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            logits = self._logits(self.forward_model, inputs)
        loss = self.loss_fn(logits.float(), target).item()
        predicted = logits_to_labels(logits) > 0
        truth = (target[:, 0] if target.ndim == predicted.ndim + 1 else target) > 0
        return loss, 2.0 * (predicted & truth).sum().item(), float(predicted.sum().item() + truth.sum().item())

    def on_epoch_end(self, row: dict[str, float], validated: bool = True) -> None:
        """Step epoch-level schedulers, track the best score, write checkpoints and history, run callbacks.

        ``validated``: whether this epoch ran validation (``config.val_every``). Epochs without it never become the
        best, do not step a scheduler that reads the monitor and do not count towards early-stopping patience.
        """
        if self.schedule is not None and (validated or self.schedule.monitor is None):
            self.schedule.step("epoch", row)
        score = row.get(self.config.monitor, math.nan)
        tie_break = row.get(TIE_BREAK, math.nan)
        improved = not math.isnan(score) and (
            self.best_score is None
            or (score < self.best_score if self.config.monitor_mode == "min" else score > self.best_score)
            or (score == self.best_score and not math.isnan(tie_break)
                and (self.best_tie_break is None or tie_break < self.best_tie_break))
        )
        if improved:
            self.best_score = score
            self.best_tie_break = None if math.isnan(tie_break) else tie_break
            self.epochs_without_improvement = 0
        elif validated:
            self.epochs_without_improvement += 1
        row["is_best"] = float(improved)
        self.history.append(row)
        if self.folder is not None and is_main_process():
            self._save_checkpoints(improved)
            self.folder.write_history(self.history_frame())
        barrier()  # the other processes wait for complete files (a resume reads last.pt)
        for callback in self.callbacks:
            callback(self, row)

    def _save_checkpoints(self, improved: bool) -> None:
        """``last.pt`` every ``config.save_every`` epochs and at the end (the last epoch, or early stopping), with
        ``best.pt`` when the best epoch changed since the last save: a link to ``last.pt`` when it is this epoch,
        else from the copy of that epoch's state kept in memory. On disk the two always agree on the best epoch.
        """
        due = (self.epoch % self.config.save_every == 0 or self.epoch >= self.config.epochs or self._should_stop())
        if not due:
            if improved:  # tensors cloned: the live ones change in the next step
                self._unsaved_best = _cloned(self.state_dict())
            return
        save_checkpoint(self.folder.last, self.state_dict())
        if improved:  # the same state: link the file rather than write it twice
            copy_checkpoint(self.folder.last, self.folder.best)
        elif self._unsaved_best is not None:
            save_checkpoint(self.folder.best, self._unsaved_best)
        self._unsaved_best = None

    # ------------------------------------------------------------------------------------------ main loop
    def fit(self, train_loader: DataLoader, val_loader: DataLoader | None = None, resume: bool = True) -> pd.DataFrame:
        """Train until ``config.epochs`` (or early stopping); resume from ``out_dir/last.pt`` when ``resume``, else
        start again: an earlier run's training files are deleted first, under the run-folder lock
        (:meth:`RunFolder.lock <medseg_core.run_folder.RunFolder.lock>`, held for the whole fit), never while another
        process trains there.

        Returns:
            The history: one row per epoch with ``train_loss``, ``val_loss``, ``val_dice``, ``lr``, ``time_s``
            (``val_`` columns empty on the epochs ``config.val_every`` skips).
        """
        if len(train_loader) == 0:
            raise ValueError("the training loader is empty: check the data folder and the batch size")
        with self._run_folder_lock():
            return self._fit(train_loader, val_loader, resume)

    @contextmanager
    def _run_folder_lock(self) -> Iterator[None]:
        """Hold the run folder's lock (main process) so two trainings never write one run folder."""
        if self.folder is None or not is_main_process():
            yield
            return
        with self.folder.lock():
            yield

    def _fit(self, train_loader: DataLoader, val_loader: DataLoader | None, resume: bool) -> pd.DataFrame:
        if val_loader is None and self.config.monitor.startswith("val_"):
            warnings.warn(f"no validation loader: monitor {self.config.monitor!r} is unavailable", stacklevel=2)
        if not resume and self.folder is not None and is_main_process():
            self.folder.clear_training()  # a fresh start, under the lock: nothing of an earlier run mixes with it
        if resume and self.folder is not None and self.folder.last.is_file():
            state = load_checkpoint(self.folder.last, map_location=self.device)
            self.check_resumable(state)
            self.load_state_dict(state)
        if self.run_config is not None and self.folder is not None and is_main_process():
            self.folder.write_config(self.run_config)  # the settings of the run as it goes on from here
        epochs = tqdm(range(self.epoch, self.config.epochs), desc="epochs", disable=not self.progress,
                      initial=self.epoch, total=self.config.epochs)
        for epoch in epochs:
            if self._should_stop():
                break
            row = self._run_epoch(epoch, train_loader, val_loader)
            self.on_epoch_end(row, validated=val_loader is None or self._validates(epoch + 1))
            epochs.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k in ("train_loss", "val_loss", "val_dice")})
        self._warn_if_monitor_stalled()
        return self.history_frame()

    def _warn_if_monitor_stalled(self) -> None:
        """Warn when the monitored value was constant, or never improved after its first epoch, over two or more
        validated epochs."""
        monitor = self.config.monitor
        measured = [row for row in self.history if monitor in row]
        values = [row[monitor] for row in measured]
        if len(values) < 2 or any(math.isnan(v) for v in values):
            return
        best_epochs = [int(row["epoch"]) for row in self.history if row.get("is_best")]
        best = best_epochs[-1] if best_epochs else None
        first = int(measured[0]["epoch"])
        if len(set(values)) == 1:
            epochs = "epochs" if len(values) == len(self.history) else "validated epochs"
            problem = f"was {values[0]:g} in all {len(values)} {epochs}, so it could not choose a checkpoint"
            if monitor != TIE_BREAK:
                problem += f"; {BEST_FILE} is epoch {best}, the lowest {TIE_BREAK} (the tie-break)"
        elif best == first:
            which = f"epoch {first}," if first == 1 else f"epoch {first}, the first validated one,"
            problem = f"never improved after {which} so {BEST_FILE} holds the epoch-{first} weights"
        else:
            return
        if monitor == TIE_BREAK:
            advice = "the model barely changed: check the learning rate, the schedule and the data"
        else:
            advice = ("a validation Dice of 0 or 1 throughout usually means the validation split holds no foreground "
                      "(or the model finds none): put frames with foreground into validation (OCT single pullbacks: "
                      f"oct.val_block_start), or monitor {TIE_BREAK} (deeplab.monitor={TIE_BREAK} "
                      "deeplab.monitor_mode=min)")
        warnings.warn(
            f"monitor {monitor!r} {problem}. {advice[0].upper() + advice[1:]}; {LAST_FILE} holds the final epoch's "
            "weights",
            UserWarning,
            stacklevel=3,
        )

    def _validates(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` (1-based) is validated: every ``config.val_every``-th and the last."""
        return epoch % self.config.val_every == 0 or epoch >= self.config.epochs

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
        loss_sum, steps = all_reduce_sum([sum(losses), len(losses)], self.device)
        row = {"epoch": float(epoch + 1), "train_loss": loss_sum / steps, "lr": self.optimizer.param_groups[0]["lr"]}
        if val_loader is not None and self._validates(epoch + 1):
            row.update(self.validate(val_loader))
        row["time_s"] = time.perf_counter() - start
        self.epoch = epoch + 1
        return row

    @torch.no_grad()
    def validate(self, loader: DataLoader) -> dict[str, float]:
        """Mean validation loss (over batches) and global Dice over ``loader``, summed over all processes."""
        broadcast_buffers(self.model)
        self.model.eval()
        results = [self.validation_step(batch) for batch in loader]
        loss_sum, batches, overlap, total = all_reduce_sum(
            [sum(r[0] for r in results), len(results), sum(r[1] for r in results), sum(r[2] for r in results)],
            self.device)
        if batches == 0:
            raise ValueError("the validation loader is empty: check the data folder and the split")
        return {"val_loss": loss_sum / batches, "val_dice": overlap / total if total > 0 else 1.0}

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
        return {
            "model": self.model.state_dict(),
            "model_spec": getattr(self.model, "model_spec", None),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.scheduler.state_dict() if self.schedule is not None else None,
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "best_score": self.best_score,
            "best_tie_break": self.best_tie_break,
            "epochs_without_improvement": self.epochs_without_improvement,
            "history": self.history,
            "config": asdict(self.config),
            "metadata": self.metadata.to_dict(),
            "data_id": self.data_id,
            "init_from": self.init_from,
            "run_config": self.run_config,
        }

    def check_resumable(self, state: Mapping[str, Any]) -> None:
        """Refuse to resume a run whose model, run metadata or settings differ from this Trainer's.

        Only :data:`~medseg_core.checkpoints.RESUME_MAY_CHANGE` may differ (``epochs`` to extend a finished run,
        and the :data:`~medseg_core.checkpoints.SPEED_SETTINGS`); the data must be the same when both runs name it
        (with fingerprints of one version, see :func:`~medseg_core.files.folder_fingerprint`).
        Raises :class:`~medseg_core.errors.ConfigError` naming each difference and the way out.
        """
        differences = settings_differences(state, self.config, self.metadata, ignore=RESUME_MAY_CHANGE)
        spec = getattr(self.model, "model_spec", None)
        if _effective_spec(state.get("model_spec")) != _effective_spec(spec):
            differences.append(f"model: stored {state.get('model_spec')}, now {spec}")
        stored_data, data = state.get("data_id"), self.data_id
        if None not in (stored_data, data) and (":" in stored_data) == (":" in data) and stored_data != data:
            differences.append(f"data: stored {stored_data}, now {data} (files added, removed or changed)")
        stored_init, init = state.get("init_from"), self.init_from
        if (stored_init or {}).get("sha256") != (init or {}).get("sha256"):
            differences.append(f"initial weights: stored {(stored_init or {}).get('path', 'random initialisation')}, "
                               f"now {(init or {}).get('path', 'random initialisation')}")
        if differences:
            raise ConfigError(
                f"cannot resume {self.folder.last}: it was trained with other settings ("
                + "; ".join(differences) + "). Use another run folder, or start this one again on purpose "
                "(medseg train --restart --overwrite)."
            )

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state written by :meth:`state_dict`."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.schedule is not None and state.get("scheduler") is not None:
            self.schedule.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.best_score = state["best_score"]
        self.best_tie_break = state.get("best_tie_break")
        self.epochs_without_improvement = int(state["epochs_without_improvement"])
        self.history = [dict(row) for row in state["history"]]
