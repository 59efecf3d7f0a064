"""workers.datasets and workers.data_paths: every loader, the registry, splits, confinement, the
cache."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tuner_service.spec import DATASET_NAMES, DatasetSpec
from workers.data_paths import DataPathError, resolve_data_path
from workers.datasets import Dataset, DatasetCache, DatasetError, keras_cache, load_dataset
from workers.datasets.registry import SOURCES, source


def spec(**kw: object) -> DatasetSpec:
    return DatasetSpec(**kw)


def check_arrays(d: Dataset) -> None:
    for x in (d.x_train, d.x_val, d.x_test):
        assert x.dtype == np.float32 and x.shape[1:] == d.input_shape
    for y in (d.y_train, d.y_val, d.y_test):
        assert y.dtype == np.int32 and y.ndim == 1
        if len(y):
            assert y.min() >= 0 and y.max() < d.n_classes
    assert len(d.fingerprint) == 64
    assert not d.x_train.flags.writeable


# --------------------------------------------------------------------------- bundled


def test_digits_shapes_scaling_and_splits() -> None:
    d = load_dataset(spec(name="digits"))
    check_arrays(d)
    assert d.input_shape == (8, 8, 1) and d.n_classes == 10
    assert d.sizes == {"train": 1149, "val": 288, "test": 360}  # 1797 = 20% test, then 20% val
    assert d.x_train.min() == 0.0 and d.x_train.max() == 1.0  # 0..16 scaled by /16
    # stratified: every split has about a tenth of each class
    for y in (d.y_train, d.y_val, d.y_test):
        frac = np.bincount(y, minlength=10) / len(y)
        assert np.all(np.abs(frac - 0.1) < 0.02)


def test_split_determinism_and_seed() -> None:
    a = load_dataset(spec(name="digits", seed=3))
    b = load_dataset(spec(name="digits", seed=3))
    c = load_dataset(spec(name="digits", seed=4))
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != c.fingerprint
    assert not np.array_equal(a.y_val, c.y_val)


@pytest.mark.parametrize(
    ("name", "features", "n_classes", "n"),
    [("breast_cancer", 30, 2, 569), ("iris", 4, 3, 150), ("wine", 13, 3, 178)],
)
def test_tabular_bundled_are_standardised_on_train(name, features, n_classes, n) -> None:
    d = load_dataset(spec(name=name))
    check_arrays(d)
    assert d.input_shape == (features,) and d.n_classes == n_classes
    assert sum(d.sizes.values()) == n
    np.testing.assert_allclose(d.x_train.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(d.x_train.std(axis=0), 1.0, atol=1e-3)
    assert np.abs(d.x_val.mean(axis=0)).max() > 1e-3  # the val part is not standardised on itself


def test_split_fractions_and_no_test_split() -> None:
    d = load_dataset(spec(name="iris", validation_split=0.5, test_split=0.0))
    assert d.sizes == {"train": 75, "val": 75, "test": 0}
    assert d.x_test.shape == (0, 4)


def test_max_samples_caps_training_part_deterministically() -> None:
    a = load_dataset(spec(name="digits", max_samples=100))
    b = load_dataset(spec(name="digits", max_samples=100))
    full = load_dataset(spec(name="digits"))
    assert a.sizes == {"train": 100, "val": 288, "test": 360}
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.x_val, full.x_val)
    assert len(np.unique(a.y_train)) == 10  # stratified subset
    assert a.fingerprint != full.fingerprint
    assert load_dataset(spec(name="iris", max_samples=5000)).sizes["train"] == 96


# --------------------------------------------------------------------------- synthetic


def test_synthetic_images_default_shape_balance_and_learnability() -> None:
    from sklearn.linear_model import LogisticRegression

    d = load_dataset(spec(name="synthetic"))
    check_arrays(d)
    assert d.input_shape == (16, 16, 3) and d.n_classes == 3
    assert sum(d.sizes.values()) == 600
    assert np.all(np.bincount(np.concatenate([d.y_train, d.y_val, d.y_test])) == 200)
    assert d.x_train.min() >= 0.0 and d.x_train.max() <= 1.0
    clf = LogisticRegression(max_iter=300).fit(d.x_train.reshape(len(d.x_train), -1), d.y_train)
    assert clf.score(d.x_val.reshape(len(d.x_val), -1), d.y_val) > 0.9


@pytest.mark.parametrize(
    ("shape", "expected"), [((8,), (8,)), ((12, 10), (12, 10, 1)), ((6, 6, 2), (6, 6, 2))]
)
def test_synthetic_shapes(shape, expected) -> None:
    from sklearn.linear_model import LogisticRegression

    d = load_dataset(spec(name="synthetic", shape=shape, n_classes=4, n_samples=400, seed=7))
    check_arrays(d)
    assert d.input_shape == expected and d.n_classes == 4
    clf = LogisticRegression(max_iter=500).fit(d.x_train.reshape(len(d.x_train), -1), d.y_train)
    assert clf.score(d.x_val.reshape(len(d.x_val), -1), d.y_val) > 0.6  # chance: 0.25


def test_synthetic_seed_changes_data() -> None:
    a = load_dataset(spec(name="synthetic", seed=1))
    b = load_dataset(spec(name="synthetic", seed=1))
    c = load_dataset(spec(name="synthetic", seed=2))
    assert a.fingerprint == b.fingerprint != c.fingerprint


# --------------------------------------------------------------------------- Keras cache


@pytest.fixture
def keras_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "keras_home"
    (home / "datasets").mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home / "datasets"


@pytest.fixture
def offline(monkeypatch) -> list[str]:
    """Any download attempt fails at once (and is recorded)."""
    attempts: list[str] = []

    def fail(fname, origin, subdir, file_hash):
        attempts.append(fname)
        raise OSError("network is unreachable")

    monkeypatch.setattr(keras_cache, "download", fail)
    return attempts


def _images(n: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def test_mnist_from_the_keras_cache(keras_home, offline) -> None:
    x, xt = _images(60, (28, 28), 0), _images(20, (28, 28), 1)
    x[0, 0, 0] = 255
    y, yt = np.arange(60) % 10, np.arange(20) % 10
    np.savez(keras_home / "mnist.npz", x_train=x, y_train=y.astype(np.uint8), x_test=xt,
             y_test=yt.astype(np.uint8))
    d = load_dataset(spec(name="mnist"))
    check_arrays(d)
    assert offline == []
    assert d.input_shape == (28, 28, 1) and d.n_classes == 10
    assert d.sizes == {"train": 48, "val": 12, "test": 20}  # the file's own test split
    assert d.x_train.max() == 1.0
    np.testing.assert_allclose(np.sort(d.x_test.reshape(20, -1), axis=0),
                               np.sort(xt.reshape(20, -1) / 255.0, axis=0), rtol=1e-6)


def test_missing_keras_dataset_says_which_file_to_place_where(keras_home, offline) -> None:
    with pytest.raises(DatasetError) as err:
        load_dataset(spec(name="mnist"))
    msg = str(err.value)
    assert "mnist is not in the Keras cache and could not be downloaded" in msg
    assert f"place mnist.npz at {keras_home / 'mnist.npz'}" in msg
    assert offline == ["mnist.npz"]
    with pytest.raises(DatasetError, match=r"cifar-10-python\.tar\.gz"):
        load_dataset(spec(name="cifar10"))
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte\.gz.*fashion-mnist"):
        load_dataset(spec(name="fashion_mnist"))


def test_download_attempt_uses_a_socket_timeout(keras_home, monkeypatch) -> None:
    import keras

    seen: dict[str, object] = {}

    def fake_get_file(**kwargs):
        seen["timeout"] = socket.getdefaulttimeout()
        seen.update(kwargs)
        raise OSError("offline")

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    monkeypatch.setattr(keras_cache, "DOWNLOAD_TIMEOUT_S", 3.0)
    before = socket.getdefaulttimeout()
    with pytest.raises(DatasetError, match="offline"):
        load_dataset(spec(name="mnist"))
    assert seen["timeout"] == 3.0 and socket.getdefaulttimeout() == before
    assert seen["cache_dir"] == str(keras_home.parent) and seen["fname"] == "mnist.npz"


def test_corrupt_cached_mnist(keras_home, offline) -> None:
    (keras_home / "mnist.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(DatasetError, match="corrupt"):
        load_dataset(spec(name="mnist"))


def _idx(data: np.ndarray, header: int) -> bytes:
    return gzip.compress(b"\0" * header + data.astype(np.uint8).tobytes())


def test_fashion_mnist_from_the_keras_cache(keras_home, offline) -> None:
    folder = keras_home / "fashion-mnist"
    folder.mkdir()
    x, xt = _images(50, (28, 28), 2), _images(10, (28, 28), 3)
    y, yt = np.arange(50) % 10, np.arange(10) % 10
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(_idx(y, 8))
    (folder / "train-images-idx3-ubyte.gz").write_bytes(_idx(x, 16))
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(_idx(yt, 8))
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(_idx(xt, 16))
    d = load_dataset(spec(name="fashion_mnist"))
    check_arrays(d)
    assert d.input_shape == (28, 28, 1) and d.n_classes == 10
    assert d.sizes == {"train": 40, "val": 10, "test": 10}
    np.testing.assert_array_equal(np.sort(d.y_test), np.sort(yt))


def _cifar_batch(n: int, label_key: str, n_classes: int, seed: int) -> tuple[bytes, np.ndarray]:
    # CHW rows like the real files; channel 0 (red) is full, the others empty
    data = np.zeros((n, 3, 32, 32), np.uint8)
    data[:, 0] = 255
    labels = [int(v) for v in np.arange(n) % n_classes]
    payload = {b"data": data.reshape(n, 3072), label_key.encode(): labels}
    return pickle.dumps(payload, protocol=4), data


def test_cifar10_extracted_folder(keras_home, offline) -> None:
    folder = keras_home / "cifar-10-batches-py-target" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(_cifar_batch(10, "labels", 10, i)[0])
    (folder / "test_batch").write_bytes(_cifar_batch(10, "labels", 10, 9)[0])
    d = load_dataset(spec(name="cifar10"))
    check_arrays(d)
    assert d.input_shape == (32, 32, 3) and d.n_classes == 10
    assert d.sizes == {"train": 40, "val": 10, "test": 10}
    assert d.y_test.shape == (10,)
    assert np.all(d.x_train[..., 0] == 1.0) and np.all(d.x_train[..., 1:] == 0.0)  # HWC


def test_cifar10_archive_is_extracted(keras_home, offline) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        for i, name in enumerate(names):
            blob = _cifar_batch(6, "labels", 3, i)[0]
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    (keras_home / "cifar-10-python.tar.gz").write_bytes(buf.getvalue())
    d = load_dataset(spec(name="cifar10"))
    assert d.n_classes == 3 and len(d.y_test) == 6 and offline == []
    assert (keras_home / "cifar-10-batches-py-target" / "cifar-10-batches-py").is_dir()


def test_cifar100_fine_labels(keras_home, offline) -> None:
    folder = keras_home / "cifar-100-python"  # the older (and hand-placed) layout
    folder.mkdir()
    (folder / "train").write_bytes(_cifar_batch(40, "fine_labels", 20, 0)[0])
    (folder / "test").write_bytes(_cifar_batch(20, "fine_labels", 20, 1)[0])
    d = load_dataset(spec(name="cifar100"))
    check_arrays(d)
    assert d.n_classes == 20 and d.sizes["test"] == 20


def test_cifar_pickle_with_code_is_refused(keras_home, offline) -> None:
    folder = keras_home / "cifar-100-python"
    folder.mkdir()
    (folder / "train").write_bytes(pickle.dumps({"data": os.getcwd}))
    (folder / "test").write_bytes(pickle.dumps({"data": os.getcwd}))
    with pytest.raises(DatasetError, match="corrupt"):
        load_dataset(spec(name="cifar100"))


# --------------------------------------------------------------------------- npz


def test_npz_uint8_images_with_test_split_and_label_remap(tmp_path) -> None:
    x = _images(40, (10, 10), 0)
    y = np.array([3, 7, 11, 7] * 10)
    np.savez(tmp_path / "set.npz", x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])
    d = load_dataset(spec(name="npz", path="set.npz"), data_root=tmp_path)
    check_arrays(d)
    assert d.input_shape == (10, 10, 1) and d.n_classes == 3
    assert d.sizes == {"train": 32, "val": 8, "test": 8}
    assert set(np.unique(d.y_train)) == {0, 1, 2}
    assert d.x_train.max() <= 1.0


def test_npz_float_tabular_kept_and_test_carved(tmp_path) -> None:
    x = np.random.default_rng(0).normal(5.0, 2.0, size=(50, 6))
    np.savez(tmp_path / "t.npz", x_train=x, y_train=np.arange(50) % 2)
    d = load_dataset(spec(name="npz", path="t.npz"), data_root=tmp_path)
    assert d.input_shape == (6,) and d.n_classes == 2
    assert d.sizes == {"train": 32, "val": 8, "test": 10}
    all_x = np.concatenate([d.x_train, d.x_val, d.x_test])
    np.testing.assert_allclose(np.sort(all_x, axis=0), np.sort(x, axis=0).astype(np.float32))


def test_npz_data_root_from_environment(tmp_path, monkeypatch) -> None:
    np.savez(tmp_path / "t.npz", x_train=np.ones((20, 3)), y_train=np.arange(20) % 2)
    monkeypatch.setenv("TUNER_DATA_ROOT", str(tmp_path))
    assert load_dataset(spec(name="npz", path="t.npz")).n_classes == 2
    monkeypatch.delenv("TUNER_DATA_ROOT")
    with pytest.raises(DatasetError, match="TUNER_DATA_ROOT"):
        load_dataset(spec(name="npz", path="t.npz"))


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.ones((4, 2)), "y": np.ones(4)}, "lacks x_train, y_train"),
        ({"x_train": np.ones((4, 2)), "y_train": np.ones(5)}, "4 rows but y_train 5"),
        ({"x_train": np.ones((4, 2)), "y_train": np.ones(4), "x_test": np.ones((2, 2))},
         "both x_test and y_test"),
        ({"x_train": np.ones((4, 2)), "y_train": np.array([0.5, 1, 0, 1])}, "integer class ids"),
        ({"x_train": np.ones(4), "y_train": np.ones(4)}, "expected"),
        ({"x_train": np.full((4, 2), np.nan), "y_train": np.arange(4) % 2}, "NaN"),
        ({"x_train": np.ones((4, 2)), "y_train": np.zeros(4)}, "at least 2 classes"),
    ],
)
def test_npz_bad_layouts(tmp_path, arrays, message) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError, match=message):
        load_dataset(spec(name="npz", path="bad.npz"), data_root=tmp_path)


def test_npz_corrupt_missing_and_pickled(tmp_path) -> None:
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(DatasetError, match="corrupt"):
        load_dataset(spec(name="npz", path="corrupt.npz"), data_root=tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(spec(name="npz", path="absent.npz"), data_root=tmp_path)
    obj = np.empty(4, dtype=object)
    np.savez(tmp_path / "obj.npz", x_train=obj, y_train=np.arange(4))
    with pytest.raises(DatasetError):
        load_dataset(spec(name="npz", path="obj.npz"), data_root=tmp_path)


# --------------------------------------------------------------------------- image_folder


def _write_images(folder: Path, classes: dict[str, int], mode: str = "RGB",
                  size: tuple[int, int] = (12, 10)) -> None:
    """Random PNGs written through TensorFlow (the worker image has no Pillow)."""
    rng = np.random.default_rng(0)
    for cls, count in classes.items():
        (folder / cls).mkdir(parents=True)
        for i in range(count):
            shape = (size[1], size[0], 3 if mode == "RGB" else 1)
            arr = rng.integers(0, 256, size=shape, dtype=np.uint8)
            (folder / cls / f"img{i}.png").write_bytes(tf.io.encode_png(arr).numpy())


def test_image_folder_rgb_resized(tmp_path) -> None:
    _write_images(tmp_path / "pics", {"cat": 10, "dog": 10, "eel": 10})
    (tmp_path / "pics" / "cat" / "notes.txt").write_text("ignored")
    d = load_dataset(spec(name="image_folder", path="pics", image_size=(8, 6)),
                     data_root=tmp_path)
    check_arrays(d)
    assert d.input_shape == (8, 6, 3) and d.n_classes == 3
    assert sum(d.sizes.values()) == 30
    assert d.x_train.min() >= 0.0 and d.x_train.max() <= 1.0
    default = load_dataset(spec(name="image_folder", path="pics"), data_root=tmp_path)
    assert default.input_shape == (64, 64, 3)


def test_image_folder_grayscale(tmp_path) -> None:
    _write_images(tmp_path / "g", {"a": 5, "b": 5}, mode="L")
    d = load_dataset(spec(name="image_folder", path="g", image_size=(10, 10), test_split=0.0),
                     data_root=tmp_path)
    assert d.input_shape == (10, 10, 1) and d.n_classes == 2


def test_image_folder_problems(tmp_path) -> None:
    _write_images(tmp_path / "one", {"only": 3})
    with pytest.raises(DatasetError, match="at least 2"):
        load_dataset(spec(name="image_folder", path="one"), data_root=tmp_path)
    _write_images(tmp_path / "empty", {"a": 3})
    (tmp_path / "empty" / "b").mkdir()
    with pytest.raises(DatasetError, match="'b' has no images"):
        load_dataset(spec(name="image_folder", path="empty"), data_root=tmp_path)
    _write_images(tmp_path / "broken", {"a": 3, "b": 3})
    (tmp_path / "broken" / "b" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"cannot read bad\.png"):
        load_dataset(spec(name="image_folder", path="broken"), data_root=tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(spec(name="image_folder", path="nowhere"), data_root=tmp_path)


# --------------------------------------------------------------------------- confinement


def test_resolve_data_path(tmp_path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    assert resolve_data_path(root, "sub/x.npz") == (root / "sub" / "x.npz").resolve()
    assert resolve_data_path(root, str(root / "sub")) == (root / "sub").resolve()
    assert resolve_data_path(root, "sub/../x.npz") == (root / "x.npz").resolve()
    for bad in ("../x.npz", "sub/../../x.npz", str(tmp_path / "outside.npz"), "/etc/passwd", ""):
        with pytest.raises(DataPathError):
            resolve_data_path(root, bad)
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(DataPathError):
        resolve_data_path(root, "link/outside.npz")


def test_loaders_refuse_paths_leaving_the_root(tmp_path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    np.savez(tmp_path / "secret.npz", x_train=np.ones((20, 2)), y_train=np.arange(20) % 2)
    _write_images(tmp_path / "pics", {"a": 2, "b": 2})
    (root / "escape").symlink_to(tmp_path)
    for path in ("../secret.npz", str(tmp_path / "secret.npz"), "escape/secret.npz"):
        with pytest.raises(DatasetError, match="outside the data root"):
            load_dataset(spec(name="npz", path=path), data_root=root)
    with pytest.raises(DatasetError, match="outside the data root"):
        load_dataset(spec(name="image_folder", path="escape/pics"), data_root=root)
    # a symlinked image inside an allowed folder that points outside is refused as well
    _write_images(root / "mixed", {"a": 2, "b": 2})
    (root / "mixed" / "a" / "evil.png").symlink_to(tmp_path / "pics" / "a" / "img0.png")
    with pytest.raises(DatasetError, match="outside the data root"):
        load_dataset(spec(name="image_folder", path="mixed"), data_root=root)


def test_every_dataset_name_has_one_registered_source() -> None:
    assert sorted(SOURCES) == sorted(DATASET_NAMES)
    assert {n for n, s in SOURCES.items() if s.reads_data_root} == {"npz", "image_folder"}
    assert {n for n, s in SOURCES.items() if s.standardise} == {"breast_cancer", "iris", "wine"}
    with pytest.raises(DatasetError, match="unknown dataset 'nope'"):
        source("nope")


def test_light_modules_do_not_import_tensorflow() -> None:
    code = ("import sys, workers.data_paths, workers.datasets; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --------------------------------------------------------------------------- cache


def test_cache_loads_once_and_evicts_least_recently_used(tmp_path) -> None:
    calls: list[str] = []

    def counting(s, *, data_root=None):
        calls.append(s.name + str(s.seed))
        return load_dataset(s, data_root=data_root)

    cache = DatasetCache(max_items=2, loader=counting)
    a, b, c = spec(name="iris", seed=1), spec(name="wine"), spec(name="iris", seed=2)
    first = cache.get(a)
    assert cache.get(spec(name="iris", seed=1)) is first  # equal spec, same object
    assert calls == ["iris1"]
    cache.get(b)
    cache.get(a)  # a is now the most recently used
    cache.get(c)  # evicts b
    assert len(cache) == 2 and calls == ["iris1", "wine0", "iris2"]
    cache.get(a)
    assert calls == ["iris1", "wine0", "iris2"]
    cache.get(b)
    assert calls[-1] == "wine0" and len(cache) == 2
    # the data root is part of the key
    np.savez(tmp_path / "t.npz", x_train=np.ones((20, 2)), y_train=np.arange(20) % 2)
    other = tmp_path / "other"
    other.mkdir()
    np.savez(other / "t.npz", x_train=np.ones((20, 2)), y_train=np.arange(20) % 2)
    n = len(calls)
    cache.get(spec(name="npz", path="t.npz"), tmp_path)
    cache.get(spec(name="npz", path="t.npz"), other)
    assert len(calls) == n + 2


def test_cache_with_injected_loader() -> None:
    loaded: list[DatasetSpec] = []

    def loader(s, *, data_root=None):
        loaded.append(s)
        return load_dataset(s, data_root=data_root)

    cache = DatasetCache(max_items=1, loader=loader)
    cache.get(spec(name="iris"))
    cache.get(spec(name="iris"))
    cache.get(spec(name="wine"))
    cache.get(spec(name="iris"))
    assert [s.name for s in loaded] == ["iris", "wine", "iris"]
    with pytest.raises(ValueError):
        DatasetCache(max_items=0)


# --------------------------------------------------------------------------- learnability


@pytest.mark.slow
def test_small_cnn_learns_digits() -> None:
    from workers.model_builder import build_model
    from workers.runtime import seed_everything

    seed_everything(0)
    d = load_dataset(spec(name="digits"))
    params = {"conv_blocks": 1, "filters": 16, "dense_units": 64, "dropout": 0.2,
              "head": "flatten", "learning_rate": 3e-3}
    model = build_model(params, d.input_shape, d.n_classes)
    history = model.fit(d.x_train, d.y_train, validation_data=(d.x_val, d.y_val), epochs=3,
                        batch_size=32, verbose=0)
    assert max(history.history["val_accuracy"]) > 0.8
