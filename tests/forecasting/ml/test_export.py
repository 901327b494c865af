from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from forecasting.ml.export import INPUT_NAME, OUTPUT_NAME, export_onnx, validate_onnx
from forecasting.ml.inference import load_session, run_session
from forecasting.ml.model import LSTMForecaster


def _model(seed: int) -> LSTMForecaster:
    torch.manual_seed(seed)
    model = LSTMForecaster(n_features=9, hidden_size=8, num_layers=2, dropout=0.2, horizon=3)
    torch.nn.init.normal_(model.head.weight)  # a non-trivial head: parity must compare real outputs
    return model.eval()


@pytest.fixture(scope="module")
def held_out() -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, size=(20, 12, 9)).astype("float32")


def test_the_untrained_model_predicts_persistence():
    model = LSTMForecaster(9, 8, 2, 0.2, 3).eval()
    assert torch.count_nonzero(model(torch.randn(4, 12, 9))) == 0


def test_the_export_passes_the_checker_parity_and_takes_any_batch(held_out):
    model = _model(1)
    artifact = export_onnx(model, window=12, n_features=9)
    onnx.checker.check_model(onnx.load_model_from_string(artifact))
    assert validate_onnx(artifact, model, held_out, horizon=3) == ""
    session = load_session(artifact)
    assert [i.name for i in session.get_inputs()] == [INPUT_NAME]
    assert [o.name for o in session.get_outputs()] == [OUTPUT_NAME]
    for batch in (1, 7, 20):
        assert run_session(session, held_out[:batch]).shape == (batch, 3)
    with torch.no_grad():
        np.testing.assert_allclose(
            run_session(session, held_out), model(torch.from_numpy(held_out)).numpy(), rtol=1e-3, atol=1e-5
        )


def test_a_corrupted_artifact_is_rejected_with_the_reason(held_out):
    model = _model(1)
    artifact = export_onnx(model, window=12, n_features=9)
    reason = validate_onnx(artifact[: len(artifact) // 2], model, held_out, horizon=3)
    assert reason.startswith("onnx.checker rejected the artifact")


def test_an_artifact_of_other_weights_fails_parity(held_out):
    artifact = export_onnx(_model(1), window=12, n_features=9)
    reason = validate_onnx(artifact, _model(2), held_out, horizon=3)
    assert "parity failed on 20 held-out windows" in reason


def test_an_artifact_of_another_horizon_is_rejected(held_out):
    model = _model(1)
    artifact = export_onnx(model, window=12, n_features=9)
    assert "expected (20, 4)" in validate_onnx(artifact, model, held_out, horizon=4)
