"""Data loading in its documented search order, splits, and augmentation."""

from __future__ import annotations

import gzip

import pytest
import torch
from conftest import write_cifar, write_fashion_mnist

from calibkd.config import SplitConfig
from calibkd.data import splits as data_module
from calibkd.data.augment import augmented_copy, random_crop_flip
from calibkd.data.splits import (
    DataFormatError,
    DataNotFoundError,
    find_dataset,
    load_raw,
    make_splits,
    read_idx,
)
from calibkd.errors import ConfigError


@pytest.fixture
def no_debian(monkeypatch, tmp_path):
    monkeypatch.setattr(data_module, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "absent")
    monkeypatch.setattr(data_module.shutil, "which", lambda name: None)


def test_idx_roundtrip_gzipped_and_plain(tmp_path):
    for gz in (True, False):
        folder = write_fashion_mnist(tmp_path / f"gz{gz}", n_train=30, n_test=10, gz=gz)
        raw = load_raw("fashion_mnist", folder)
        assert raw.train_images.shape == (30, 1, 28, 28) and raw.train_images.dtype == torch.uint8
        assert raw.test_labels.shape == (10,) and int(raw.train_labels.max()) <= 9


def test_idx_rejects_truncated_file(tmp_path):
    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(bytes([0, 0, 8, 1, 0, 0, 0, 9]) + b"abc")
    with pytest.raises(DataFormatError, match="promises 9 bytes"):
        read_idx(path)


def test_search_order_explicit_root_then_env_then_debian(tmp_path, monkeypatch, no_debian):
    explicit = write_fashion_mnist(tmp_path / "explicit", 20, 10)
    env = write_fashion_mnist(tmp_path / "env", 20, 10)
    monkeypatch.setenv("CALIBKD_DATA", str(env))
    assert find_dataset("fashion_mnist", explicit) == explicit
    assert find_dataset("fashion_mnist") == env
    monkeypatch.delenv("CALIBKD_DATA")
    debian = write_fashion_mnist(tmp_path / "debian", 20, 10)
    monkeypatch.setattr(data_module, "DEBIAN_FASHION_MNIST_DIR", debian)
    assert find_dataset("fashion_mnist") == debian


def test_torchvision_layout_is_found(tmp_path, no_debian):
    root = tmp_path / "tv"
    write_fashion_mnist(root / "FashionMNIST" / "raw", 20, 10)
    assert load_raw("fashion_mnist", root).train_images.shape[0] == 20


def test_download_is_tried_last_and_its_result_used(tmp_path, monkeypatch, no_debian):
    calls = []

    def fake_download(name, root):
        calls.append(name)
        write_fashion_mnist(root / "FashionMNIST" / "raw", 20, 10)

    monkeypatch.setattr(data_module, "_torchvision_download", fake_download)
    assert find_dataset("fashion_mnist", allow_download=True) == tmp_path / "downloads"
    assert calls == ["fashion_mnist"]


def test_missing_dataset_lists_every_fix(no_debian):
    with pytest.raises(DataNotFoundError) as error:
        find_dataset("fashion_mnist", allow_download=False)
    message = str(error.value)
    for fix in ("data_root=", "CALIBKD_DATA", "apt-get install -y dataset-fashion-mnist", "internet"):
        assert fix in message


def test_failed_download_is_reported(no_debian, monkeypatch):
    def offline(name, root):
        raise OSError("network unreachable")

    monkeypatch.setattr(data_module, "_torchvision_download", offline)
    with pytest.raises(DataNotFoundError, match="network unreachable"):
        find_dataset("fashion_mnist", allow_download=True)


def test_data_root_that_does_not_exist(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        find_dataset("fashion_mnist", tmp_path / "nowhere")


@pytest.mark.parametrize("name,classes", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_from_torchvision_on_disk_format(tmp_path, name, classes):
    root = write_cifar(tmp_path / "cifar", name)
    raw = load_raw(name, root)
    assert raw.train_images.shape == (100, 3, 32, 32) and raw.test_images.shape == (40, 3, 32, 32)
    assert int(raw.train_labels.max()) < classes
    splits = make_splits(SplitConfig(dataset=name, val_size=20), root)
    assert splits.sizes() == {"train": 80, "val": 20, "test": 40}
    assert splits.train.images.dtype == torch.float32


def test_cifar_pixels_survive_the_pickle_layout(tmp_path):
    """torchvision stores rows of 3072 bytes: 1024 red, 1024 green, 1024 blue."""
    root = write_cifar(tmp_path / "cifar", "cifar10")
    import pickle
    entry = pickle.loads((root / "cifar-10-batches-py" / "data_batch_1").read_bytes())
    raw = load_raw("cifar10", root)
    assert torch.equal(raw.train_images[0, 1].flatten(), torch.from_numpy(entry[b"data"][0, 1024:2048]))


def test_unknown_dataset_and_oversized_split():
    with pytest.raises(ConfigError, match="allowed datasets"):
        SplitConfig(dataset="mnist")
    with pytest.raises(ConfigError, match="larger than the 60000 training images"):
        SplitConfig(val_size=10_000, train_size=55_000)
    with pytest.raises(ConfigError, match="test_size"):
        SplitConfig(test_size=20_000)


def test_splits_are_seeded_disjoint_and_sized(fmnist_root):
    config = SplitConfig(val_size=100, train_size=300, split_seed=3)
    a, b = make_splits(config, fmnist_root), make_splits(config, fmnist_root)
    assert a.sizes() == {"train": 300, "val": 100, "test": 200}
    assert torch.equal(a.val.images, b.val.images)
    flat = lambda s: {tuple(x.flatten().tolist()) for x in s.images}  # noqa: E731
    assert not flat(a.train) & flat(a.val)
    c = make_splits(SplitConfig(val_size=100, train_size=300, split_seed=4), fmnist_root)
    assert not torch.equal(a.val.images, c.val.images)
    assert "validation 100" in a.describe()


def test_split_larger_than_files_on_disk(fmnist_root):
    with pytest.raises(ValueError, match="larger than the 600 training images"):
        make_splits(SplitConfig(val_size=500, train_size=200), fmnist_root)


def test_augmentation_is_seeded_and_keeps_shape():
    images = torch.randn(64, 3, 32, 32)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a, b = random_crop_flip(images, 4, True, g1), random_crop_flip(images, 4, True, g2)
    assert torch.equal(a, b) and a.shape == images.shape and a.dtype == images.dtype
    assert not torch.equal(a, images)


def test_crop_is_a_shifted_window_and_flip_mirrors():
    image = torch.arange(36.0).view(1, 1, 6, 6)
    seen_shift = False
    for seed in range(20):
        out = random_crop_flip(image, 2, False, torch.Generator().manual_seed(seed))
        padded = torch.nn.functional.pad(image, (2, 2, 2, 2))
        windows = [padded[..., r: r + 6, c: c + 6] for r in range(5) for c in range(5)]
        assert any(torch.equal(out, w) for w in windows)
        seen_shift |= not torch.equal(out, image)
    assert seen_shift
    flips = {torch.equal(random_crop_flip(image, 0, True, torch.Generator().manual_seed(s)), image.flip(3))
             for s in range(20)}
    assert flips == {True, False}


def test_augmented_copy_matches_batched_calls():
    images = torch.randn(10, 1, 8, 8)
    whole = augmented_copy(images, 2, True, seed=5, batch_size=100)
    assert torch.equal(whole, augmented_copy(images, 2, True, seed=5, batch_size=100))
    assert whole.shape == images.shape


def test_cifar100_class_names_and_superclasses_are_the_files_own(tmp_path):
    """calibkd's CIFAR-100 names and superclasses are checked against the
    files: a meta file with other names, or coarse labels grouping the
    classes otherwise, is refused."""
    import pickle as pk

    from calibkd.config import dataset_info
    from calibkd.data.splits import DataFormatError

    root = write_cifar(tmp_path / "cifar", "cifar100", n_train=300, n_test=40)
    assert load_raw("cifar100", root).train_labels.shape == (300,)
    groups = dataset_info("cifar100").class_groups
    assert len(groups) == 20 and sorted(c for g in groups for c in g) == list(range(100))
    folder = root / "cifar-100-python"
    train = pk.loads((folder / "train").read_bytes())
    train[b"coarse_labels"] = [(c + (f == 0)) % 20 for c, f in zip(train[b"coarse_labels"], train[b"fine_labels"])]
    (folder / "train").write_bytes(pk.dumps(train))
    with pytest.raises(DataFormatError, match="coarse labels group the classes differently"):
        load_raw("cifar100", root)
    meta = pk.loads((folder / "meta").read_bytes())
    meta[b"fine_label_names"] = meta[b"fine_label_names"][::-1]
    (folder / "meta").write_bytes(pk.dumps(meta))
    with pytest.raises(DataFormatError, match="fine label names differ"):
        load_raw("cifar100", root)
