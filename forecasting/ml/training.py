"""The training loop: seeded mini-batches from the sliding view, early stopping, best weights."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

EVAL_BATCH = 512


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    val_loss: float
    seconds: float


@dataclass
class FitOutcome:
    best_state: dict[str, torch.Tensor]
    best_epoch: int  # 0 = the starting weights were never beaten
    # What a network that always outputs 0 ("no change") scores, by the same loss as the
    # epochs: the reference their losses mean something against. The scaled targets are
    # about 1 in square on the training windows only; validation may be calmer or wilder.
    no_change_train_loss: float
    no_change_val_loss: float
    history: list[EpochStats] = field(default_factory=list)
    diverged_at: int | None = None  # epoch whose loss was not finite


def gather(view: np.ndarray, starts: np.ndarray) -> torch.Tensor:
    """A contiguous float32 batch of the windows starting at rows `starts` of the view."""
    return torch.from_numpy(np.ascontiguousarray(view[starts], dtype="float32"))


def predict(model: nn.Module, view: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Network outputs (n, horizon) in eval mode, batched."""
    model.eval()
    outputs = []
    with torch.no_grad():
        for i in range(0, len(starts), EVAL_BATCH):
            outputs.append(model(gather(view, starts[i : i + EVAL_BATCH])).numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), dtype="float32")


def mse(model: nn.Module, view: np.ndarray, starts: np.ndarray, targets: np.ndarray) -> float:
    return float(np.mean((predict(model, view, starts) - targets) ** 2))


def no_change_loss(targets: np.ndarray) -> float:
    """`mse` of a network whose outputs are all 0: the window's last close, "no change"."""
    return float(np.mean(targets**2)) if targets.size else math.nan


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def fit(
    model: nn.Module,
    view: np.ndarray,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    *,
    learning_rate: float,
    weight_decay: float,
    batch_size: int,
    max_epochs: int,
    patience: int,
    epoch_windows: int,
    rng: np.random.Generator,
    score_start: bool,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> FitOutcome:
    """AdamW on MSE with early stopping on the validation loss; returns the best weights.

    `train` and `validation` are (window start rows in `view`, standardised targets).
    With `score_start`, the starting weights compete too (a warm start never ends worse
    than its parent on validation). Stops at the first non-finite loss.
    """
    train_starts, train_targets = train
    val_starts, val_targets = validation
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    loss_fn = nn.MSELoss()
    # The starting weights are the fallback: kept if no epoch beats them (or every loss diverges).
    outcome = FitOutcome(
        best_state=_snapshot(model),
        best_epoch=0,
        no_change_train_loss=no_change_loss(train_targets),
        no_change_val_loss=no_change_loss(val_targets),
    )
    best_loss = mse(model, view, val_starts, val_targets) if score_start else math.inf
    if not math.isfinite(best_loss):
        best_loss = math.inf
    stale = 0
    for epoch in range(1, max_epochs + 1):
        started = time.perf_counter()
        order = rng.permutation(len(train_starts))
        if epoch_windows:
            order = order[:epoch_windows]
        model.train()
        total, count = 0.0, 0
        for i in range(0, len(order), batch_size):
            chosen = order[i : i + batch_size]
            x = gather(view, train_starts[chosen])
            y = torch.from_numpy(train_targets[chosen])
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(chosen)
            count += len(chosen)
        train_loss = total / max(count, 1)
        val_loss = mse(model, view, val_starts, val_targets)
        stats = EpochStats(epoch, train_loss, val_loss, time.perf_counter() - started)
        outcome.history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            outcome.diverged_at = epoch
            break
        if val_loss < best_loss:
            best_loss, stale = val_loss, 0
            outcome.best_state, outcome.best_epoch = _snapshot(model), epoch
        else:
            stale += 1
            if stale >= patience:
                break
    model.load_state_dict(outcome.best_state)
    model.eval()
    return outcome
