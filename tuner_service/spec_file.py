"""Reading a study spec from a file (JSON, or YAML by its suffix): for the CLI and the client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """The spec object in ``path`` (``.yaml``/``.yml`` as YAML, anything else as JSON).

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not valid JSON/YAML, or it holds something other than an object.
    """
    path = Path(path)
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a study spec is an object")
    return data
