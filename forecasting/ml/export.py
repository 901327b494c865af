"""ONNX export and the checks a version must pass before it may be served."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import torch
from torch import nn

from forecasting.ml.inference import load_session, run_session

INPUT_NAME = "features"
OUTPUT_NAME = "change"
OPSET = 17
PARITY_RTOL = 1e-3
PARITY_ATOL = 1e-5


def export_onnx(model: nn.Module, window: int, n_features: int) -> bytes:
    """The model as ONNX bytes with a dynamic batch axis (legacy TorchScript exporter:
    ~0.15 s here against ~5.5 s for the dynamo one)."""
    model.eval()
    buffer = io.BytesIO()
    example = torch.zeros(1, window, n_features, dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and LSTM batch notes
        torch.onnx.export(
            model,
            (example,),
            buffer,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return buffer.getvalue()


def validate_onnx(onnx_bytes: bytes, model: nn.Module, held_out: np.ndarray, horizon: int) -> str:
    """'' when the artifact passes onnx.checker and matches the torch model on `held_out`
    windows (n, window, features) within rtol 1e-3 / atol 1e-5; otherwise the reason."""
    try:
        onnx.checker.check_model(onnx.load_model_from_string(onnx_bytes), full_check=True)
    except Exception as error:  # any checker or parse failure disqualifies it
        return f"onnx.checker rejected the artifact: {error}"
    if len(held_out) == 0:
        return "no held-out windows to check parity on"
    try:
        session = load_session(onnx_bytes)
        served = run_session(session, held_out)
    except Exception as error:  # onnxruntime errors share no base class
        return f"onnxruntime could not run the artifact: {error}"
    model.eval()
    with torch.no_grad():
        reference = model(torch.from_numpy(np.ascontiguousarray(held_out, dtype="float32"))).numpy()
    if served.shape != (len(held_out), horizon):
        return f"artifact outputs shape {served.shape}, expected {(len(held_out), horizon)}"
    if not np.isfinite(reference).all():
        return "the torch model outputs non-finite values on the held-out windows"
    if not np.allclose(served, reference, rtol=PARITY_RTOL, atol=PARITY_ATOL):
        worst = float(np.max(np.abs(served - reference)))
        return (
            f"torch vs onnxruntime parity failed on {len(held_out)} held-out windows "
            f"(max abs difference {worst:.3g}; rtol {PARITY_RTOL}, atol {PARITY_ATOL})"
        )
    return ""
