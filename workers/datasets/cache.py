"""A per-process memo of loaded datasets (a worker loads its dataset once and reuses it)."""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from tuner_service.spec import DatasetSpec

from .base import DATA_ROOT_ENV, Dataset
from .loading import load_dataset
from .registry import source


def _cache_key(spec: DatasetSpec, data_root: Path | None) -> str:
    root = None if data_root is None else str(Path(data_root).expanduser().resolve())
    if source(spec.name).reads_data_root and root is None:
        root = os.environ.get(DATA_ROOT_ENV)
    return json.dumps({"spec": spec.model_dump(mode="json"), "data_root": root}, sort_keys=True)


class DatasetCache:
    """Per-process memo of loaded datasets keyed by the spec's canonical JSON and the data root,
    holding at most ``max_items`` (least recently used dropped first). Thread-safe."""

    def __init__(
        self,
        max_items: int = 2,
        loader: Callable[..., Dataset] | None = None,
    ) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.max_items = max_items
        self._loader = loader
        self._items: OrderedDict[str, Dataset] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, spec: DatasetSpec, data_root: Path | None = None) -> Dataset:
        key = _cache_key(spec, data_root)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
            loader = self._loader or load_dataset
            dataset = loader(spec, data_root=data_root)
            self._items[key] = dataset
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
            return dataset

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
