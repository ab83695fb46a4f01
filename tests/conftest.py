"""Tiny, synthetic datasets written in the real on-disk formats, so unit tests
exercise the real loading code in seconds."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from calibkd.config import SplitConfig, dataset_info
from calibkd.config.datasets import CIFAR100_CLASSES
from calibkd.data.splits import make_splits

# The pytest process trains small models without oneDNN: its JIT kernels crash
# torch 2.14.1's CPU backward now and then (docs/testing.md, "Known issues"; three
# full runs in a row died in the same long-tail test). Notebook kernels, nbval
# and the study run in processes of their own, with oneDNN as users have it.
torch.backends.mkldnn.enabled = False


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> None:
    """Write a uint8 array in LeCun's idx format."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


def fake_images(n: int, classes: int, channels: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is visible (a bright stripe at a class-specific row)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(n, channels, size, size), dtype=np.uint8)
    for i, label in enumerate(labels):
        row = int(label * (size - 2) / max(classes - 1, 1))
        images[i, :, row: row + 2, :] = 250
    return images, labels.astype(np.uint8)


def write_fashion_mnist(folder: Path, n_train: int = 600, n_test: int = 200, gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        images, labels = fake_images(n, 10, 1, 28, seed)
        write_idx(folder / f"{split}-images-idx3-ubyte", images[:, 0], gz)
        write_idx(folder / f"{split}-labels-idx1-ubyte", labels, gz)
    return folder


def write_cifar(root: Path, name: str, n_train: int = 100, n_test: int = 40) -> Path:
    """Pickled batches exactly as torchvision's CIFAR folders hold them."""
    classes = 10 if name == "cifar10" else 100
    folder = root / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    folder.mkdir(parents=True, exist_ok=True)
    label_key = b"labels" if name == "cifar10" else b"fine_labels"
    train_x, train_y = fake_images(n_train, classes, 3, 32, 3)
    test_x, test_y = fake_images(n_test, classes, 3, 32, 4)
    if name == "cifar10":
        chunks = np.array_split(np.arange(n_train), 5)
        batches = {f"data_batch_{i + 1}": idx for i, idx in enumerate(chunks)}
        meta = {b"label_names": [f"c{i}".encode() for i in range(10)]}
        (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    else:
        batches = {"train": np.arange(n_train)}
        names = [n.encode() for n in CIFAR100_CLASSES]
        (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": names,
                                                    b"coarse_label_names": [b"s"] * 20}))
    coarse = {fine: c for c, group in enumerate(dataset_info("cifar100").class_groups) for fine in group}
    for file, idx in batches.items():
        entry = {b"data": train_x[idx].reshape(len(idx), -1), label_key: train_y[idx].astype(int).tolist()}
        if name == "cifar100":
            entry[b"coarse_labels"] = [coarse[int(y)] for y in train_y[idx]]
        (folder / file).write_bytes(pickle.dumps(entry))
    test = {b"data": test_x.reshape(n_test, -1), label_key: test_y.astype(int).tolist()}
    (folder / "test_batch" if name == "cifar10" else folder / "test").write_bytes(pickle.dumps(test))
    return root


@pytest.fixture
def fmnist_root(tmp_path: Path) -> Path:
    return write_fashion_mnist(tmp_path / "fmnist")


@pytest.fixture
def tiny_splits(fmnist_root: Path):
    return make_splits(SplitConfig(val_size=100, train_size=400, test_size=200), fmnist_root)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own model cache and no network downloads."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("CALIBKD_CACHE", str(cache))
    monkeypatch.setenv("CALIBKD_DOWNLOADS", str(tmp_path / "downloads"))
    monkeypatch.setenv("CALIBKD_OFFLINE", "1")
    monkeypatch.delenv("CALIBKD_DATA", raising=False)
    return cache
