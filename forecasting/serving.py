"""ONNX sessions for serving, cached per asset in each process.

Each process keeps the session of the version it last served for an asset
and swaps it when the active version changes. onnxruntime is the only ML
runtime imported here: web and forecast paths never import torch.
"""

from __future__ import annotations

import threading
from typing import Any

from forecasting.artifacts import ArtifactIntegrityError, artifact_read
from forecasting.ml import inference
from forecasting.models import ModelVersion

_lock = threading.Lock()
# asset id -> (version id, artifact sha256, session)
_sessions: dict[int, tuple[int, str, Any]] = {}


def session_for(version: ModelVersion) -> Any:
    """The onnxruntime session of `version`, loaded once per process (hash verified)."""
    with _lock:
        cached = _sessions.get(version.asset_id)
    if cached is not None and cached[:2] == (version.pk, version.artifact_sha256):
        return cached[2]
    content = artifact_read(name=version.artifact_name, sha256=version.artifact_sha256)
    session = session_load(name=version.artifact_name, content=content)
    with _lock:
        _sessions[version.asset_id] = (version.pk, version.artifact_sha256, session)
    return session


def session_load(*, name: str, content: bytes) -> Any:
    """An onnxruntime session of an artifact's bytes; ArtifactIntegrityError when it cannot load them.

    Bytes that match their hash can still fail here: an onnxruntime upgraded past
    the artifact's opset, or a file that was bad when it was hashed. Like a hash
    mismatch, that is an artifact that cannot serve, and is said as such.
    """
    try:
        return inference.load_session(content)
    except Exception as exc:  # onnxruntime raises its own classes (InvalidProtobuf, Fail, ...)
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        raise ArtifactIntegrityError(
            f"artifact {name!r} cannot be loaded by onnxruntime: {type(exc).__name__}: {first_line}"
        ) from exc


def sessions_cached() -> dict[int, int]:
    """asset id -> version id of the sessions this process holds."""
    with _lock:
        return {asset_id: entry[0] for asset_id, entry in _sessions.items()}


def sessions_clear() -> None:
    with _lock:
        _sessions.clear()
