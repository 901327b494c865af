"""Model artifacts in the "artifacts" storage (filesystem or S3-compatible).

An artifact is written and hashed before any row points to it, and checked
against that hash whenever it is read back.
"""

from __future__ import annotations

import hashlib

from django.core.files.base import ContentFile
from django.core.files.storage import storages


class ArtifactIntegrityError(Exception):
    """The stored bytes are missing, do not match the recorded sha256, or cannot be loaded."""


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def artifact_write(*, name: str, content: bytes) -> tuple[str, str]:
    """Store `content` under `name` (never overwriting) and return (stored name, sha256)."""
    storage = storages["artifacts"]
    stored_name = storage.save(name, ContentFile(content))
    return stored_name, sha256_hex(content)


def artifact_read(*, name: str, sha256: str) -> bytes:
    """Read an artifact back, refusing bytes whose hash differs from the recorded one."""
    storage = storages["artifacts"]
    if not name or not storage.exists(name):
        raise ArtifactIntegrityError(f"artifact {name!r} is missing from storage")
    with storage.open(name, "rb") as handle:
        content = handle.read()
    actual = sha256_hex(content)
    if actual != sha256:
        raise ArtifactIntegrityError(f"artifact {name!r} has sha256 {actual[:12]}…, expected {sha256[:12]}…")
    return content


def artifact_delete(*, name: str) -> None:
    storage = storages["artifacts"]
    if name and storage.exists(name):
        storage.delete(name)
