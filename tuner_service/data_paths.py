"""Confine user-supplied dataset paths to the data root. Pure: no TensorFlow, no I/O beyond
resolving the path. The API refuses escaping paths at submit time with it (422), and the
workers check again when they load (their filesystem may differ from the API's)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DataPathError", "resolve_data_path"]


class DataPathError(ValueError):
    """A dataset path is empty or leaves the data root."""


def resolve_data_path(data_root: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """``data_root / path`` with symlinks resolved, refused when it leaves ``data_root``.

    ``..`` components, absolute paths outside the root and symlinks pointing out of it are all
    refused (an absolute path inside the root is accepted). The target need not exist.

    Raises:
        DataPathError: (a ``ValueError``) when the path is empty or escapes the root.
    """
    raw = os.fspath(path)
    if not raw or not raw.strip() or "\x00" in raw:
        raise DataPathError(f"dataset path {raw!r} is empty or invalid")
    root = Path(data_root).expanduser().resolve()
    candidate = (root / Path(raw).expanduser()).resolve()
    if candidate != root and root not in candidate.parents:
        raise DataPathError(
            f"dataset path {raw!r} resolves to {candidate}, outside the data root {root}"
        )
    return candidate
