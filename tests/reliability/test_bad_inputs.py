"""Bad inputs, each with a clear error and nothing lost (the table in docs/bad-inputs.md).

At the API (422 naming the field, before any worker sees the study): a dataset too large for
memory by its spec, a dataset with one class, a float step too small to make a grid, a deeply
nested body, non-ASCII and very long names. In a worker (one in-process worker runs every
study one after the other, so it must survive each): a truncated npz, an npz with object
arrays, float and string labels, one class, an image folder with a corrupt JPEG: each study
fails saying why; a test split missing a class and a folder of mixed image sizes and modes
just work. Oversize bodies: tests/service/test_request_limits.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from support import TINY_SPACE, make_settings, tiny_spec

from tuner_service.api.app import create_app
from tuner_service.migrate import upgrade
from tuner_service.service import Services
from tuner_service.spec import MAX_DATASET_BYTES, DatasetSpec


@pytest.fixture
def api(sqlite_url: str, tmp_path: Path) -> Iterator[TestClient]:
    upgrade(sqlite_url)
    app = create_app(make_settings(sqlite_url, data_root=tmp_path), run_reaper=False)
    with TestClient(app) as c:
        yield c


def _problem(r: Any, loc: list[Any]) -> str:
    assert r.status_code == 422, r.text[:500]
    hits = [p["msg"] for p in r.json()["detail"] if p["loc"][: len(loc)] == loc]
    assert hits, r.text[:500]
    return str(hits[0])


@pytest.mark.parametrize(
    ("dataset", "words"),
    [
        ({"name": "synthetic", "shape": [4096, 4096, 3], "n_samples": 100_000}, "GiB"),
        ({"name": "synthetic", "shape": [100_000, 100_000, 3], "n_samples": 10}, "GiB"),
        ({"name": "image_folder", "path": "imgs", "image_size": [100_000, 100_000]}, "pixels"),
        ({"name": "image_folder", "path": "imgs", "image_size": [2048, 2048],
          "max_samples": 100_000}, "GiB"),
    ],
)
def test_a_dataset_that_cannot_fit_is_refused_from_its_spec(
    api: TestClient, dataset: dict[str, Any], words: str
) -> None:
    msg = _problem(api.post("/studies", json=tiny_spec("huge", dataset=dataset)),
                   ["body", "dataset"])
    assert words in msg
    assert api.get("/studies").json()["count"] == 0  # nothing queued


def test_the_estimate_lets_reasonable_datasets_through() -> None:
    spec = DatasetSpec.model_validate({"name": "synthetic", "shape": [64, 64, 3],
                                       "n_samples": 50_000})
    assert spec.memory_problem() is None and MAX_DATASET_BYTES > 50_000 * 64 * 64 * 3 * 4


def test_one_class_is_refused(api: TestClient) -> None:
    ds = {"name": "synthetic", "shape": [4], "n_classes": 1}
    assert "2" in _problem(api.post("/studies", json=tiny_spec("one", dataset=ds)),
                           ["body", "dataset", "n_classes"])


def test_a_float_step_too_small_for_a_grid_is_a_422(api: TestClient) -> None:
    space = {**TINY_SPACE, "dropout": {"type": "float", "low": 0.0, "high": 0.5,
                                       "step": 5e-324}}
    msg = _problem(api.post("/studies", json=tiny_spec("step", search_space=space)),
                   ["body", "search_space", "dropout", "step"])
    assert "step" in msg


def test_deeply_nested_json_is_refused_without_a_server_error(api: TestClient) -> None:
    depth = 100_000
    body = ('{"name": "deep", "dataset": {"name": "iris"}, "search_space": '
            + '{"a": ' * depth + "1" + "}" * depth + "}")
    r = api.post("/studies", content=body, headers={"content-type": "application/json"})
    assert r.status_code in (400, 413, 422), r.status_code
    assert len(r.content) < 2000


@pytest.mark.parametrize("name", ["étude-ü", "研究", "x" * 10_000, "a b", ""])
def test_non_ascii_and_very_long_names_are_refused_naming_the_field(
    api: TestClient, name: str
) -> None:
    r = api.post("/studies", json=tiny_spec(name))
    _problem(r, ["body", "name"])
    assert len(r.content) < 2000  # a long name is not echoed back


def test_non_ascii_text_where_text_is_free_is_kept(api: TestClient) -> None:
    r = api.post("/studies", json=tiny_spec("unicode", description="Étude für 研究 🚀"))
    assert r.status_code == 201, r.text
    assert api.get(f"/studies/{r.json()['id']}").json()["spec"]["description"] == \
        "Étude für 研究 🚀"


# --- in a worker ------------------------------------------------------------------------------
def _npz(path: Path, **arrays: Any) -> None:
    np.savez(path, **arrays)


def _images(folder: Path, corrupt: bool) -> None:
    """Two classes of images of different sizes and modes (RGB JPEG, gray PNG, RGBA PNG)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for cls, sizes in (("cat", [(10, 12), (20, 8), (16, 16)]), ("dog", [(9, 9), (30, 14)])):
        d = folder / cls
        d.mkdir(parents=True)
        for i, (w, h) in enumerate(sizes):
            channels = (3, 1, 4)[i % 3]
            pixels = rng.integers(0, 255, size=(h, w, channels), dtype=np.uint8)
            if channels == 3:
                data = tf.io.encode_jpeg(pixels).numpy()
                (d / f"{i}.jpg").write_bytes(data)
            else:
                (d / f"{i}.png").write_bytes(tf.io.encode_png(pixels).numpy())
    if corrupt:
        (folder / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")


def _file_spec(name: str, path: str, kind: str = "npz", **dataset: Any) -> dict[str, Any]:
    return tiny_spec(name, dataset={"name": kind, "path": path, "validation_split": 0.25,
                                    "seed": 0, **dataset},
                     budget={"n_trials": 1, "max_epochs": 1, "max_parallel": 1})


@pytest.mark.slow
def test_a_worker_survives_every_bad_dataset_and_each_study_says_why(
    sqlite_url: str, tmp_path: Path
) -> None:
    from workers.datasets import load_dataset
    from workers.worker import Worker, WorkerOptions

    rng = np.random.default_rng(0)
    x = rng.random((80, 8, 8, 1), dtype=np.float32)
    y = np.arange(80) % 3
    _npz(tmp_path / "good.npz", x_train=x, y_train=y)
    full = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(full[: len(full) // 2])
    (tmp_path / "garbage.npz").write_bytes(b"PK\x03\x04 this is no zip")
    _npz(tmp_path / "objects.npz", x_train=np.array([x[0], "a"], dtype=object),
         y_train=np.array([0, 1]))
    _npz(tmp_path / "float_labels.npz", x_train=x, y_train=y + 0.5)
    _npz(tmp_path / "string_labels.npz", x_train=x, y_train=np.array(["cat", "dog"] * 40))
    _npz(tmp_path / "one_class.npz", x_train=x, y_train=np.zeros(80, dtype=int))
    _npz(tmp_path / "test_missing_class.npz", x_train=x, y_train=y,
         x_test=x[:20], y_test=np.arange(20) % 2)  # class 2 never in the test split
    _images(tmp_path / "broken_images", corrupt=True)
    _images(tmp_path / "mixed_images", corrupt=False)

    # mixed sizes and modes load as one array of the requested size
    mixed = load_dataset(DatasetSpec.model_validate(
        {"name": "image_folder", "path": "mixed_images", "image_size": [12, 12]}),
        data_root=tmp_path)
    assert mixed.x_train.shape[1:] == (12, 12, 3) and mixed.n_classes == 2

    upgrade(sqlite_url)
    services = Services(make_settings(sqlite_url, data_root=tmp_path))
    expected = {
        "truncated": ("truncated.npz", "corrupt or unreadable"),
        "garbage": ("garbage.npz", "corrupt or unreadable"),
        "objects": ("objects.npz", "corrupt or unreadable"),
        "float-labels": ("float_labels.npz", "integer class ids"),
        "string-labels": ("string_labels.npz", "integer class ids"),
        "one-class": ("one_class.npz", "at least 2 classes"),
        "corrupt-jpeg": ("broken_images", "broken.jpg"),
    }
    ids = {}
    for name, (path, _) in expected.items():
        kind = "image_folder" if path.endswith("images") else "npz"
        extra = {"image_size": [12, 12]} if kind == "image_folder" else {}
        ids[name] = services.create_study(_file_spec(name, path, kind, **extra)).id
    ok_id = services.create_study(_file_spec("test-missing-class", "test_missing_class.npz")).id
    worker = Worker(services, WorkerOptions(exit_when_idle=1.0))
    assert worker.run() == 0  # one worker, every study: it never died
    for name, (_, words) in expected.items():
        d = services.study_detail(ids[name])
        assert d["status"] == "failed", (name, d["status"])
        assert words in d["status_reason"], (name, d["status_reason"])
    d = services.study_detail(ok_id)
    assert d["status"] == "completed" and d["evaluation_state"] == "done", d
    best = services.best(ok_id)
    assert 0.0 <= best["test_metrics"]["test_accuracy"] <= 1.0
    services.close()
    json.dumps(d)  # the detail a client sees is plain JSON
