"""The network: the report's LSTM with a multi-step head that starts at persistence."""

from __future__ import annotations

import torch
from torch import nn


class LSTMForecaster(nn.Module):
    """LSTM over (batch, window, features) -> (batch, horizon) standardised relative changes.

    The head starts at zero, so an untrained model predicts "no change" (persistence) and
    training only moves it away from there as far as the data supports.
    """

    def __init__(self, n_features: int, hidden_size: int, num_layers: int, dropout: float, horizon: int):
        super().__init__()
        self.lstm = nn.LSTM(
            input_size=n_features,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.head = nn.Linear(hidden_size, horizon)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output, _ = self.lstm(x)
        return self.head(output[:, -1, :])
