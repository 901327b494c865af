"""The training loop's reference loss: what forecasting "no change" scores."""

from __future__ import annotations

import numpy as np
import pytest

from forecasting.ml.model import LSTMForecaster
from forecasting.ml.training import fit


def test_no_change_scores_what_a_network_of_zeros_scores_by_the_epochs_own_loss():
    rng = np.random.default_rng(0)
    view = rng.normal(size=(200, 8, 3)).astype("float32")
    train = (np.arange(150), rng.normal(0, 1.0, (150, 4)).astype("float32"))
    # Validation targets calmer than training: "no change" does not score 1 there.
    validation = (np.arange(150, 200), rng.normal(0, 0.8, (50, 4)).astype("float32"))
    model = LSTMForecaster(3, 4, 1, 0.0, 4)  # its head starts at zero: every output is 0
    outcome = fit(
        model,
        view,
        train,
        validation,
        learning_rate=0.0,  # so the one epoch keeps the outputs at 0
        weight_decay=0.0,
        batch_size=32,
        max_epochs=1,
        patience=1,
        epoch_windows=0,
        rng=np.random.default_rng(0),
        score_start=False,
    )
    epoch = outcome.history[0]
    assert outcome.no_change_val_loss == pytest.approx(epoch.val_loss, rel=1e-6)
    assert outcome.no_change_train_loss == pytest.approx(epoch.train_loss, rel=1e-5)
    assert outcome.no_change_val_loss == pytest.approx(0.64, abs=0.15)
