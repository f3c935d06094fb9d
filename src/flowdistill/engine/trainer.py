"""The one training loop: every forecaster (student, baselines, LLM teacher) is fitted here.

Deterministic on CPU for a given seed: batches of an epoch are drawn from a generator seeded by
(seed, epoch), and the RNG state is saved with each end-of-epoch checkpoint, so a run killed mid-epoch
resumes from its last checkpoint and ends with the same weights as an uninterrupted run.
Multi-device training uses torch DDP: launch with ``torchrun --nproc-per-node K flowdistill ...``.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from flowdistill.data.errors import DataError
from flowdistill.data.windows import WindowAligned, WindowDataset, Windows
from flowdistill.engine.allocator import retain_freed_memory
from flowdistill.engine.progress import log_line, progress_bar
from flowdistill.metrics import evaluate as evaluate_metrics
from flowdistill.metrics import masked_mae
from flowdistill.models.base import ForecastOutput, as_output, count_parameters


@dataclass
class TrainConfig:
    """The paper's optimiser settings (§4.1.4) as defaults, plus early stopping and limits."""

    lr: float = 0.0055
    lr_decay: float = 0.6
    lr_decay_every: int = 10  # epochs between decays
    weight_decay: float = 0.0
    optimizer: str = "adam"  # adam | adamw
    batch_size: int = 80
    eval_batch_size: int = 256
    max_epochs: int = 100
    patience: int = 15
    grad_clip: float = 5.0
    seed: int = 0
    device: str = "cpu"
    limit_train_batches: int = 0  # 0: all; >0: at most this many per epoch (big models on CPU)
    limit_val_batches: int = 0
    grad_accumulation: int = 1
    progress: bool = True
    mask_threshold: float | None = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        """Refuse settings that cannot train (before any data is touched)."""
        for name, least in (("max_epochs", 1), ("patience", 1), ("batch_size", 1),
                            ("eval_batch_size", 1), ("grad_accumulation", 1)):
            if getattr(self, name) < least:
                flag = {"max_epochs": "--epochs"}.get(name, "--" + name.replace("_", "-"))
                raise DataError(flag, f"must be at least {least}, got {getattr(self, name)}")
        for name in ("limit_train_batches", "limit_val_batches"):
            if getattr(self, name) < 0:
                raise DataError(name, f"must be 0 (all) or positive, got {getattr(self, name)}")
        if not self.lr > 0:
            raise DataError("--lr", f"must be positive, got {self.lr}")
        check_device(self.device)


def check_device(device: str) -> None:
    """A device torch can use here, or a DataError that says which one to use instead."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise DataError("--device", f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DataError("--device", f"{device!r} asked for, but torch sees no GPU on this "
                            "machine; use --device cpu") from None
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DataError("--device", f"{device!r} asked for, but there are only "
                            f"{torch.cuda.device_count()} GPU(s): use cuda:0 … "
                            f"cuda:{torch.cuda.device_count() - 1}")
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise DataError("--device", "'mps' is not available here; use --device cpu")
    elif dev.type != "cpu":
        raise DataError("--device", f"unsupported device {device!r}; use cpu, cuda or cuda:N")


class RunInterrupted(BaseException):
    """Ctrl-C during training. Not a KeyboardInterrupt, so no framework swallows it: the CLI
    reports where the last intact checkpoint is and exits with status 130."""

    def __init__(self, checkpoint: Path | None, epochs_done: int) -> None:
        super().__init__("interrupted")
        self.checkpoint = checkpoint
        self.epochs_done = epochs_done


Objective = Callable[[ForecastOutput, dict[str, torch.Tensor], Any], tuple[torch.Tensor, dict]]


class SupervisedObjective:
    """Masked MAE on the original scale (the paper's L_reg)."""

    def __init__(self, mask_threshold: float | None = 0.0) -> None:
        self.mask_threshold = mask_threshold

    def __call__(self, out: ForecastOutput, batch: dict[str, torch.Tensor], scaler: Any):
        pred = scaler.inverse(out.pred)
        loss = masked_mae(pred, batch["y"], self.mask_threshold)
        return loss, {"mae": float(loss.detach())}


@dataclass
class FitResult:
    best_epoch: int = -1
    best_val_mae: float = math.inf
    epochs_run: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def seconds_per_epoch(self) -> float:
        return self.seconds / max(self.epochs_run, 1)

    @property
    def best_epoch_number(self) -> int | None:
        """The best epoch counted from 1, as printed and in metrics.json; None when nothing was
        trained (models with no weights, e.g. the historical average)."""
        return self.best_epoch + 1 if self.epochs_run > 0 else None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def maybe_init_distributed(device: str) -> None:
    """Join the process group when started by torchrun (WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        torch.distributed.init_process_group(backend=backend)


class Trainer:
    """fit / predict / evaluate for any model whose forward follows `models.base`."""

    def __init__(self, cfg: TrainConfig | None = None) -> None:
        self.cfg = cfg or TrainConfig()
        retain_freed_memory()  # every step reuses its buffers instead of faulting in new pages

    # ------------------------------------------------------------------ helpers
    @property
    def device(self) -> torch.device:
        return torch.device(self.cfg.device)

    def _forward(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ForecastOutput:
        target = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        wants_index = getattr(target, "_fd_wants_index", None)
        if wants_index is None:
            wants_index = "index" in inspect.signature(target.forward).parameters
            target._fd_wants_index = wants_index
        if wants_index:
            return as_output(model(batch["x"], batch["tod"], batch["dow"], index=batch["index"]))
        return as_output(model(batch["x"], batch["tod"], batch["dow"]))

    def _batch(self, data: WindowDataset, ids: np.ndarray) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device) for k, v in data.get_batch(ids).items()}

    def _make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        params = [p for p in model.parameters() if p.requires_grad]
        opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[self.cfg.optimizer]
        return opt_cls(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        model: nn.Module,
        windows: Windows,
        objective: Objective | None = None,
        out_dir: str | os.PathLike[str] | None = None,
        extras: dict[str, WindowAligned] | None = None,
        resume: bool = True,
        on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    ) -> FitResult:
        """Train on the training windows, early-stop on validation MAE, keep the best weights."""
        cfg = self.cfg
        cfg.validate()
        seed_everything(cfg.seed)
        maybe_init_distributed(cfg.device)
        rank, world = _dist_info()
        model.to(self.device)
        objective = objective or SupervisedObjective(cfg.mask_threshold)
        train = windows.torch_dataset("train", extras)
        result = FitResult()
        t0 = time.perf_counter()

        if hasattr(model, "fit_statistics"):
            b = windows.bounds
            model.fit_statistics(
                windows.scaled[: b.train_end], windows.tod[: b.train_end], windows.dow[: b.train_end]
            )
        if count_parameters(model) == 0:  # nothing to learn by gradient (HA, last value)
            val_mae = self.evaluate(model, windows, "val")["mae"]
            result.best_epoch, result.best_val_mae = 0, val_mae
            result.seconds = time.perf_counter() - t0
            return result

        opt = self._make_optimizer(model)
        sched = torch.optim.lr_scheduler.StepLR(opt, max(cfg.lr_decay_every, 1), cfg.lr_decay)
        ckpt_dir = Path(out_dir) / "checkpoints" if out_dir is not None else None
        start_epoch, bad_epochs = 0, 0
        best_state = trainable_state(model)
        if ckpt_dir is not None and resume and (ckpt_dir / "last.pt").exists():
            state = torch.load(ckpt_dir / "last.pt", map_location=self.device, weights_only=False)
            model.load_state_dict(state["model"], strict=False)
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            start_epoch, bad_epochs = state["epoch"] + 1, state["bad_epochs"]
            result.best_epoch, result.best_val_mae = state["best_epoch"], state["best_val_mae"]
            result.history = state["history"]
            result.seconds = state.get("seconds", 0.0)
            best_state = state["best_model"]
            torch.set_rng_state(state["torch_rng"])
            if bad_epochs >= cfg.patience:
                start_epoch = cfg.max_epochs  # already finished
        net: nn.Module = model
        if world > 1:
            net = nn.parallel.DistributedDataParallel(model)

        ids_all = train.ids
        saved_epochs = start_epoch
        try:
            for epoch in range(start_epoch, cfg.max_epochs):
                e0 = time.perf_counter()
                if hasattr(objective, "start_epoch"):  # an objective that changes with the run
                    objective.start_epoch(result.history)
                net.train()
                gen = np.random.default_rng([cfg.seed, epoch])
                order = gen.permutation(ids_all)[rank::world]
                batches = [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
                if cfg.limit_train_batches:
                    batches = batches[: cfg.limit_train_batches]
                losses: list[float] = []
                parts: dict[str, list[float]] = {}
                bar = progress_bar(
                    total=sum(len(b) for b in batches),
                    desc=f"epoch {epoch + 1}/{cfg.max_epochs}",
                    enabled=cfg.progress and rank == 0,
                    unit="window",
                )
                opt.zero_grad(set_to_none=True)
                for step, ids in enumerate(batches):
                    batch = self._batch(train, ids)
                    loss, logs = objective(self._forward(net, batch), batch, windows.scaler)
                    (loss / cfg.grad_accumulation).backward()
                    if (step + 1) % cfg.grad_accumulation == 0 or step + 1 == len(batches):
                        if cfg.grad_clip:
                            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                        opt.step()
                        opt.zero_grad(set_to_none=True)
                    losses.append(float(loss.detach()))
                    for k, v in logs.items():
                        parts.setdefault(k, []).append(v)
                    bar.update(len(ids))
                    bar.set_postfix(loss=f"{np.mean(losses):.3f}")
                bar.close()
                sched.step()
                val_mae = self.evaluate(model, windows, "val", limit_batches=cfg.limit_val_batches)["mae"]
                improved = val_mae < result.best_val_mae
                if improved:
                    result.best_val_mae, result.best_epoch, bad_epochs = val_mae, epoch, 0
                    best_state = trainable_state(model)
                else:
                    bad_epochs += 1
                row = {
                    "epoch": epoch + 1,  # counted from 1, as printed
                    "train_loss": float(np.mean(losses)) if losses else float("nan"),
                    "val_mae": val_mae,
                    "lr": opt.param_groups[0]["lr"],
                    "seconds": time.perf_counter() - e0,
                    **{k: float(np.mean(v)) for k, v in parts.items()},
                }
                result.history.append(row)
                result.seconds += row["seconds"]
                if on_epoch_end is not None:
                    on_epoch_end(row)
                if cfg.progress and rank == 0:
                    log_line(
                        f"epoch {epoch + 1}: loss {row['train_loss']:.4f}  val MAE {val_mae:.3f}"
                        + ("  *" if improved else "")
                    )
                if ckpt_dir is not None and rank == 0:
                    self._save_checkpoint(
                        ckpt_dir, model, opt, sched, epoch, bad_epochs, result, best_state
                    )
                    saved_epochs = epoch + 1
                if bad_epochs >= cfg.patience:
                    result.stopped_early = True
                    break
        except KeyboardInterrupt:
            if ckpt_dir is not None:
                _tmp(ckpt_dir / "last.pt").unlink(missing_ok=True)  # the renamed-in one is intact
            last = ckpt_dir / "last.pt" if ckpt_dir is not None else None
            if last is None or not last.exists():
                raise RunInterrupted(None, 0) from None
            try:  # the interrupt may have come after the rename but before we noted it
                saved_epochs = int(torch.load(last, map_location="cpu", weights_only=False)["epoch"]) + 1
            except Exception:
                pass
            raise RunInterrupted(last, saved_epochs) from None
        result.epochs_run = len(result.history)
        model.load_state_dict(best_state, strict=False)
        if ckpt_dir is not None and rank == 0:
            atomic_torch_save(best_state, ckpt_dir / "best.pt")
        return result

    def _save_checkpoint(self, ckpt_dir, model, opt, sched, epoch, bad_epochs, result, best_state):
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "model": trainable_state(model),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "epoch": epoch,
            "bad_epochs": bad_epochs,
            "best_epoch": result.best_epoch,
            "best_val_mae": result.best_val_mae,
            "history": result.history,
            "seconds": result.seconds,
            "best_model": best_state,
            "torch_rng": torch.get_rng_state(),
            "config": self.cfg.to_dict(),
        }
        atomic_torch_save(state, ckpt_dir / "last.pt")

    # ------------------------------------------------------------------ predict / evaluate
    @torch.no_grad()
    def predict(
        self,
        model: nn.Module,
        windows: Windows,
        ids: np.ndarray,
        limit_batches: int = 0,
        progress: bool = False,
    ) -> np.ndarray:
        """Forecasts on the original scale, (len(ids), H, N, C), in the order of ``ids``."""
        model.to(self.device)
        model.eval()
        data = WindowDataset(windows, np.asarray(ids), {})
        bs = self.cfg.eval_batch_size
        chunks = [data.ids[i : i + bs] for i in range(0, len(data.ids), bs)]
        if limit_batches:
            chunks = chunks[:limit_batches]
        outs = []
        bar = progress_bar(total=len(chunks), desc="predict", enabled=progress, unit="batch")
        for chunk in chunks:
            batch = self._batch(data, chunk)
            pred = windows.scaler.inverse(self._forward(model, batch).pred)
            outs.append(pred.float().cpu().numpy())
            bar.update(1)
        bar.close()
        return np.concatenate(outs, axis=0)

    def evaluate(
        self, model: nn.Module, windows: Windows, split: str = "test", limit_batches: int = 0
    ) -> dict[str, Any]:
        ids = windows.ids(split)
        pred = self.predict(model, windows, ids, limit_batches=limit_batches)
        truth = windows.targets(ids[: len(pred)])
        return evaluate_metrics(
            pred, truth, self.cfg.mask_threshold, tuple(windows.dataset.channels)
        )


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict minus frozen parameters (an LLM backbone's weights are rebuilt, not saved)."""
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k not in frozen}


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """torch.save under a temporary name in the same folder, then renamed: never half a file."""
    path = Path(path)
    tmp = _tmp(path)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """JSON written atomically (temporary name, then rename)."""
    from flowdistill.data.dataset import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")
