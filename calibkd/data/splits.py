"""Datasets as in-memory tensors, with seeded train / validation / test splits.

Fashion-MNIST (the default) is found, in this order: an explicit ``data_root``;
``$CALIBKD_DATA``; Debian's ``dataset-fashion-mnist`` package; torchvision's
download. CIFAR-10/100 are read from torchvision's on-disk format (the pickled
``cifar-10-batches-py`` / ``cifar-100-python`` folders) or downloaded by
torchvision. Validation is carved from the training set and is the only data
used for choices (epochs, hyper-parameters, post-hoc calibration).

Two datasets carry their true label distributions (``Split.true_probs``):
``glyphs`` (183 characters rendered from Debian's fonts, homoglyphs tied;
``calibkd.data.glyphs``), whose train, validation and test splits are disjoint
font lineages, and ``mixture`` (a Gaussian mixture with exact posteriors;
``calibkd.data.mixture``). ``glyphs_natural`` keeps each font's own glyphs, so its
true distributions are unknown (``true_probs`` is None) but its homoglyph
groups are still known (``DataSplits.info.class_groups``).
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from calibkd.config import (
    GLYPH_DATASETS,
    GLYPH_SEEN_FONT_TEST_SIZE,
    DatasetInfo,
    SplitConfig,
    dataset_info,
    glyph_size,
)
from calibkd.data import glyphs
from calibkd.data.mixture import MixtureConfig, sample_mixture
from calibkd.io import params_key
from calibkd.paths import download_dir, generated_dir

DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
CIFAR_FILES = {
    "cifar10": ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels"),
    "cifar100": (["train"], ["test"], b"fine_labels"),
}

#: Per-channel mean and standard deviation of each training set (pixel scale 0-1).
NORMALIZATION = {
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    # measured on the default glyph generation (both variants within 0.001)
    "glyphs": ((0.0832,), (0.2421,)),
    "glyphs_natural": ((0.0832,), (0.2421,)),
    # analytic: centred, with the expected spread of one feature
    "mixture": ((0.0,) * MixtureConfig().dim, (MixtureConfig().feature_std,) * MixtureConfig().dim),
}
#: Datasets made by this package rather than read from disk.
GENERATED_DATASETS = (*GLYPH_DATASETS, "mixture")


class DataNotFoundError(FileNotFoundError):
    """No copy of a dataset could be found or downloaded; the message lists the fixes."""


class DataFormatError(ValueError):
    """Dataset files exist but do not hold what their format promises."""


@dataclass(frozen=True)
class RawDataset:
    """Images as uint8 (N, C, H, W) and labels as int64, straight from disk
    (feature vectors of the mixture: float (N, D, 1, 1), with true posteriors)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str
    train_true: torch.Tensor | None = None
    test_true: torch.Tensor | None = None
    #: for generated data: its parameters and key (enters the model cache key)
    manifest: dict | None = None


# ---------------------------------------------------------------------------
# Fashion-MNIST: idx files (gzipped or not)
# ---------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (LeCun's MNIST format), gzipped or plain."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataFormatError(f"{path} is not an unsigned-byte idx file")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape)) if shape else 0
    if len(data) - header != expected:
        raise DataFormatError(
            f"{path}: header promises {expected} bytes for shape {shape}, file holds {len(data) - header}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _idx_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem, folder / "FashionMNIST" / "raw" / f"{stem}.gz",
                      folder / "FashionMNIST" / "raw" / stem):
        if candidate.is_file():
            return candidate
    return None


def _fashion_mnist_folder_ok(folder: Path) -> bool:
    return all(_idx_file(folder, stem) is not None for stem in FASHION_MNIST_FILES.values())


def debian_fashion_mnist_dir() -> Path | None:
    """The folder of Debian's ``dataset-fashion-mnist`` files, if installed."""
    if _fashion_mnist_folder_ok(DEBIAN_FASHION_MNIST_DIR):
        return DEBIAN_FASHION_MNIST_DIR
    if shutil.which("dpkg"):
        listing = subprocess.run(
            ["dpkg", "-L", DEBIAN_PACKAGE], capture_output=True, text=True, check=False
        ).stdout.split()
        for line in listing:
            if line.endswith("train-images-idx3-ubyte.gz"):
                return Path(line).parent
    return None


def _read_fashion_mnist(folder: Path) -> RawDataset:
    arrays = {key: read_idx(_idx_file(folder, stem)) for key, stem in FASHION_MNIST_FILES.items()}  # type: ignore[arg-type]
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != (images.shape[0],):
            raise DataFormatError(
                f"Fashion-MNIST {split} files in {folder} have shapes {images.shape} and {labels.shape}"
            )
        if labels.max(initial=0) > 9:
            raise DataFormatError(f"Fashion-MNIST {split} labels in {folder} exceed 9")
    return RawDataset(
        torch.from_numpy(arrays["train_images"].copy()).unsqueeze(1),
        torch.from_numpy(arrays["train_labels"].astype(np.int64)),
        torch.from_numpy(arrays["test_images"].copy()).unsqueeze(1),
        torch.from_numpy(arrays["test_labels"].astype(np.int64)),
        source=str(folder),
    )


# ---------------------------------------------------------------------------
# CIFAR: torchvision's pickled batches
# ---------------------------------------------------------------------------


def _read_cifar_batches(folder: Path, names: list[str], label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in names:
        with open(folder / name, "rb") as handle:
            entry = pickle.load(handle, encoding="bytes")
        data = np.asarray(entry[b"data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DataFormatError(f"{folder / name}: data has shape {data.shape}, expected (N, 3072)")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(np.asarray(entry[label_key], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def _check_cifar100_classes(folder: Path) -> None:
    """The class names and superclasses calibkd uses for CIFAR-100
    (``config.datasets.CIFAR100_SUPERCLASSES``) must be the files' own: the
    ``meta`` file's fine label names, and the train file's coarse labels,
    which must group the fine labels exactly as the superclasses do."""
    info = dataset_info("cifar100")
    meta_file = folder / "meta"
    if meta_file.is_file():
        with open(meta_file, "rb") as handle:
            names = pickle.load(handle, encoding="bytes").get(b"fine_label_names")
        if names is not None and tuple(n.decode() for n in names) != info.class_names:
            raise DataFormatError(f"{meta_file}: the fine label names differ from calibkd's CIFAR-100 classes")
    with open(folder / "train", "rb") as handle:
        entry = pickle.load(handle, encoding="bytes")
    if b"coarse_labels" in entry:
        fine, coarse = np.asarray(entry[b"fine_labels"]), np.asarray(entry[b"coarse_labels"])
        groups = {frozenset(np.unique(fine[coarse == c]).tolist()) for c in np.unique(coarse)}
        if groups != {frozenset(g) for g in info.class_groups}:
            raise DataFormatError(f"{folder / 'train'}: the coarse labels group the classes differently "
                                  "from calibkd's CIFAR-100 superclasses")


def _cifar_folder_ok(root: Path, name: str) -> bool:
    folder = root / CIFAR_FOLDERS[name]
    train, test, _ = CIFAR_FILES[name]
    return all((folder / f).is_file() for f in train + test)


def _read_cifar(root: Path, name: str) -> RawDataset:
    folder = root / CIFAR_FOLDERS[name]
    train, test, label_key = CIFAR_FILES[name]
    train_x, train_y = _read_cifar_batches(folder, train, label_key)
    test_x, test_y = _read_cifar_batches(folder, test, label_key)
    classes = dataset_info(name).num_classes
    if name == "cifar100":
        _check_cifar100_classes(folder)
    for split, labels, images in (("train", train_y, train_x), ("test", test_y, test_x)):
        if labels.shape != (images.shape[0],) or labels.min(initial=0) < 0 or labels.max(initial=0) >= classes:
            raise DataFormatError(f"{name} {split} labels in {folder} are not in 0..{classes - 1}")
    return RawDataset(
        torch.from_numpy(train_x), torch.from_numpy(train_y),
        torch.from_numpy(test_x), torch.from_numpy(test_y), source=str(folder),
    )


# ---------------------------------------------------------------------------
# Finding a dataset
# ---------------------------------------------------------------------------


def _missing_message(name: str, tried: list[str]) -> str:
    lines = [f"dataset {name!r} not found. Tried:"] + [f"  - {t}" for t in tried]
    lines.append("Fix it with one of:")
    lines.append("  - pass data_root='/path/to/folder' (a notebook parameter or function argument)")
    lines.append("  - export CALIBKD_DATA=/path/to/folder")
    if name == "fashion_mnist":
        lines.append(f"  - sudo apt-get install -y {DEBIAN_PACKAGE}   (Debian/Ubuntu; files land in {DEBIAN_FASHION_MNIST_DIR})")
        lines.append("  - connect to the internet so torchvision can download it")
        lines.append("  (the folder must hold train-images-idx3-ubyte[.gz] and the three other idx files)")
    else:
        lines.append(f"  - connect to the internet so torchvision can download it into {download_dir()}")
        lines.append(f"  (the folder must hold torchvision's {CIFAR_FOLDERS[name]}/ folder)")
    return "\n".join(lines)


def _has_dataset(root: Path, name: str) -> bool:
    return _fashion_mnist_folder_ok(root) if name == "fashion_mnist" else _cifar_folder_ok(root, name)


def _read(root: Path, name: str) -> RawDataset:
    return _read_fashion_mnist(root) if name == "fashion_mnist" else _read_cifar(root, name)


def _torchvision_download(name: str, root: Path) -> None:
    import torchvision

    classes = {"fashion_mnist": torchvision.datasets.FashionMNIST,
               "cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}
    root.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        classes[name](root=str(root), train=train, download=True)


def find_dataset(name: str, data_root: str | os.PathLike | None = None, allow_download: bool | None = None) -> Path:
    """The folder holding ``name``, searched in the documented order.

    Raises ``DataNotFoundError`` listing what was tried and how to fix it.
    ``allow_download`` defaults to True unless ``$CALIBKD_OFFLINE`` is set.
    """
    dataset_info(name)
    if name in GENERATED_DATASETS:
        raise ValueError(f"{name} is generated by calibkd, not read from a folder: use make_splits")
    tried: list[str] = []
    if data_root:
        root = Path(data_root).expanduser()
        if not root.is_dir():
            raise DataNotFoundError(f"data_root {str(root)!r} does not exist\n" + _missing_message(name, [f"data_root={root}"]))
        if _has_dataset(root, name):
            return root
        raise DataNotFoundError(_missing_message(name, [f"data_root={root} (no {name} files there)"]))
    env_root = os.environ.get("CALIBKD_DATA")
    if env_root:
        root = Path(env_root).expanduser()
        if _has_dataset(root, name):
            return root
        tried.append(f"CALIBKD_DATA={root} (no {name} files there)")
    else:
        tried.append("CALIBKD_DATA (not set)")
    if name == "fashion_mnist":
        debian = debian_fashion_mnist_dir()
        if debian is not None:
            return debian
        tried.append(f"Debian package {DEBIAN_PACKAGE} (not installed)")
    downloads = download_dir()
    if _has_dataset(downloads, name):
        return downloads
    if allow_download is None:
        allow_download = not os.environ.get("CALIBKD_OFFLINE")
    if allow_download:
        try:
            _torchvision_download(name, downloads)
        except Exception as error:  # network errors come in many types
            tried.append(f"torchvision download into {downloads} (failed: {type(error).__name__}: {error})")
        else:
            if _has_dataset(downloads, name):
                return downloads
            tried.append(f"torchvision download into {downloads} (finished without the expected files)")
    else:
        tried.append("torchvision download (disabled: offline)")
    raise DataNotFoundError(_missing_message(name, tried))


def load_raw(name: str, data_root: str | os.PathLike | None = None, allow_download: bool | None = None) -> RawDataset:
    """Read a dataset from wherever ``find_dataset`` locates it (the mixture is
    sampled; glyphs have three font-disjoint parts: use ``make_splits``)."""
    if name == "mixture":
        return mixture_raw()
    if name in GLYPH_DATASETS:
        raise ValueError(f"{name} has separate train, validation and test fonts: use make_splits "
                         "(or calibkd.data.glyphs.load_glyphs for the raw images)")
    return _read(find_dataset(name, data_root, allow_download), name)


def mixture_raw() -> RawDataset:
    """The ``mixture`` dataset: the default ``MixtureConfig`` sampled, with exact posteriors."""

    config = MixtureConfig()
    sample = sample_mixture(config)
    record = {"dataset": "mixture", **config.__dict__}
    return RawDataset(sample.train_x, sample.train_y, sample.test_x, sample.test_y,
                      source="calibkd.data.mixture.MixtureConfig() (sampled, seed 0)",
                      train_true=sample.train_posterior, test_true=sample.test_posterior,
                      manifest={"params": record, "key": params_key(record)})


# ---------------------------------------------------------------------------
# Splits in memory
# ---------------------------------------------------------------------------


@dataclass
class Split:
    """Normalised float images (N, C, H, W) and int64 labels on one device;
    ``true_probs`` (N, K) is each example's true label distribution where the
    dataset knows it (tied glyphs, the mixture), else None."""

    images: torch.Tensor
    labels: torch.Tensor
    true_probs: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def select(self, index: torch.Tensor) -> "Split":
        """The examples at ``index``, true distributions included."""
        index = index.to(self.labels.device)
        true = None if self.true_probs is None else self.true_probs[index]
        return Split(self.images[index], self.labels[index], true)

    def subset(self, size: int, seed: int) -> "Split":
        """A seeded random subset of ``size`` examples (all of them if larger)."""
        if size >= len(self):
            return self
        generator = torch.Generator().manual_seed(seed)
        return self.select(torch.randperm(len(self), generator=generator)[:size])

    def to(self, device: torch.device | str) -> "Split":
        true = None if self.true_probs is None else self.true_probs.to(device)
        return Split(self.images.to(device), self.labels.to(device), true)


@dataclass
class DataSplits:
    """Train, validation and test splits of one dataset, plus where they came from."""

    info: DatasetInfo
    config: SplitConfig
    train: Split
    val: Split
    test: Split
    source: str
    #: what generated the data (glyphs: faces, lineages per split, groups), if generated
    manifest: dict | None = None
    #: held-out examples drawn like ``train`` (glyphs: new images of the training
    #: fonts), where ``test`` is itself shifted (held-out fonts); else None
    iid_test: Split | None = None

    @property
    def known_posterior(self) -> bool:
        """True when every split carries its true label distributions."""
        return all(s.true_probs is not None for s in (self.train, self.val, self.test))

    def generated_identity(self) -> str | dict | None:
        """What identifies generated data (glyphs, mixture) in a model's cache
        key: its content hash (or generation key), with the number of training
        images held out as ``iid_test`` where some are; None for data that is
        not generated."""
        if self.manifest is None:
            return None
        content = self.manifest.get("content_sha256") or self.manifest["key"]
        held_out = self.manifest.get("seen_font_test_images")
        return content if held_out is None else {"content": content, "seen_font_test_images": held_out}

    def sizes(self) -> dict[str, int]:
        sizes = {"train": len(self.train), "val": len(self.val), "test": len(self.test)}
        if self.iid_test is not None:
            sizes["iid_test"] = len(self.iid_test)
        return sizes

    def describe(self) -> str:
        s = self.sizes()
        if self.info.name in GLYPH_DATASETS:
            lineages = self.manifest["lineages"] if self.manifest else {}
            faces = self.manifest["faces_per_split"] if self.manifest else {}
            return (f"{self.info.name} from {self.source}: train {s['train']:,}, validation {s['val']:,}, "
                    f"test {s['test']:,} images, from {faces.get('train')} / {faces.get('val')} / "
                    f"{faces.get('test')} faces of {len(lineages.get('train', []))} / "
                    f"{len(lineages.get('val', []))} / {len(lineages.get('test', []))} disjoint font lineages; "
                    f"{len(self.info.class_groups)} homoglyph groups; "
                    f"{s.get('iid_test', 0):,} new images of the training fonts held out as the in-distribution test")
        return (f"{self.info.name} from {self.source}: train {s['train']:,}, "
                f"validation {s['val']:,} (carved from the training set, seed {self.config.split_seed}), "
                f"test {s['test']:,}")


def normalize(images: torch.Tensor, dataset: str) -> torch.Tensor:
    """Images (uint8 0-255, or float in pixel scale 0-1) -> float32 standardised
    with the dataset's channel statistics."""
    mean, std = NORMALIZATION[dataset]
    mean_t = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    pixels = images.float().div(255.0) if images.dtype == torch.uint8 else images.float()
    return (pixels - mean_t) / std_t


def denormalize(images: torch.Tensor, dataset: str) -> torch.Tensor:
    """Inverse of ``normalize``, back to pixel scale 0-1 (for plotting)."""
    mean, std = NORMALIZATION[dataset]
    mean_t = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    return images * std_t + mean_t


def make_splits(
    config: SplitConfig,
    data_root: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
    raw: RawDataset | None = None,
) -> DataSplits:
    """Load a dataset and split it: a seeded permutation of the training set
    gives validation first, then training (optionally a subset); the test set
    is kept whole unless ``config.test_size`` asks for a seeded subset."""
    info = dataset_info(config.dataset)
    if config.dataset in GLYPH_DATASETS:
        return _glyph_splits(config, data_root, device, raw)
    raw = raw if raw is not None else load_raw(config.dataset, data_root)
    available = raw.train_labels.shape[0]
    needed = config.val_size + (config.train_size or 1)
    if needed > available:
        raise ValueError(
            f"val_size={config.val_size} + train_size={config.train_size} is larger than the "
            f"{available} training images found in {raw.source}"
        )
    generator = torch.Generator().manual_seed(config.split_seed)
    order = torch.randperm(available, generator=generator)
    val_index = order[: config.val_size]
    train_index = order[config.val_size:]
    if config.train_size is not None:
        train_index = train_index[: config.train_size]
    test_index = torch.arange(raw.test_labels.shape[0])
    if config.test_size is not None and config.test_size < len(test_index):
        test_index = torch.randperm(len(test_index), generator=generator)[: config.test_size]

    def split(images: torch.Tensor, labels: torch.Tensor, true: torch.Tensor | None, index: torch.Tensor) -> Split:
        kept = None if true is None else true[index].clone()
        return Split(normalize(images[index], config.dataset), labels[index].clone(), kept).to(device)

    return DataSplits(
        info=info, config=config,
        train=split(raw.train_images, raw.train_labels, raw.train_true, train_index),
        val=split(raw.train_images, raw.train_labels, raw.train_true, val_index),
        test=split(raw.test_images, raw.test_labels, raw.test_true, test_index),
        source=raw.source, manifest=raw.manifest,
    )


def group_label_distribution(labels: torch.Tensor, groups: Sequence[Sequence[int]], num_classes: int) -> torch.Tensor:
    """(N, K) float32: uniform over the group of each label (one-hot for a
    label in no group): the true posterior of the tied glyphs."""
    table = torch.eye(num_classes)
    for group in groups:
        block = torch.zeros(num_classes)
        block[list(group)] = 1.0 / len(group)
        table[list(group)] = block
    return table[labels.long().cpu()]


def _glyph_splits(config: SplitConfig, data_root: str | os.PathLike | None, device: torch.device | str,
                  raw: object | None = None) -> DataSplits:
    """Glyph splits: train, validation and test images come from disjoint font
    lineages; each is optionally cut to a seeded subset of the requested size.
    A seeded draw of the training fonts' images (``GLYPH_SEEN_FONT_TEST_SIZE``,
    at most a tenth of them) is held out of training as ``iid_test``: new
    images of seen fonts, against which the held-out fonts of ``test`` are a
    distribution shift."""

    variant = GLYPH_DATASETS[config.dataset]
    if raw is None:
        glyph_config = glyphs.glyph_config(glyph_size(), variant)
        folder = Path(data_root).expanduser() if data_root else generated_dir()
        try:
            raw = glyphs.load_glyphs(glyph_config, folder)
        except glyphs.FontsMissingError as error:
            raise DataNotFoundError(
                f"dataset {config.dataset!r}: no cached generation in {folder}, and it cannot be generated:\n"
                f"{error}\nThen generate it with: python -m calibkd.data.glyphs") from None
    if not isinstance(raw, glyphs.GlyphData):
        raise TypeError(f"raw must be a calibkd.data.glyphs.GlyphData for {config.dataset}, got {type(raw).__name__}")
    if raw.manifest["params"]["variant"] != variant:
        raise ValueError(f"{config.dataset} needs the {variant!r} glyph variant, the data given is "
                         f"{raw.manifest['params']['variant']!r}")
    num_classes = len(raw.manifest["classes"])
    groups = tuple(tuple(g) for g in raw.manifest["groups"])
    info = replace(dataset_info(config.dataset), class_groups=groups, num_classes=num_classes,
                   class_names=tuple(raw.manifest["class_names"]))
    generator = torch.Generator().manual_seed(config.split_seed)
    wanted = {"train": config.train_size, "val": config.val_size, "test": config.test_size}
    parts: dict[str, Split] = {}

    def part(images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor) -> Split:
        true = group_label_distribution(labels[index], groups, num_classes) if variant == "tied" else None
        return Split(normalize(images[index], config.dataset), labels[index].clone(), true).to(device)

    for name in glyphs.SPLITS:
        images, labels = raw.part(name)
        index = torch.arange(len(labels))
        if name == "train":
            held = min(GLYPH_SEEN_FONT_TEST_SIZE, len(labels) // 10)
            order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(config.split_seed + 1))
            parts["iid_test"] = part(images, labels, order[:held].sort().values)
            index = order[held:].sort().values
        size = wanted[name]
        if name == "val" and size > len(index):
            raise ValueError(f"val_size={size} is larger than the {len(index)} validation images "
                             f"(validation fonts) in {raw.source}")
        if size is not None and size < len(index):
            index = index[torch.randperm(len(index), generator=generator)[:size]]
        parts[name] = part(images, labels, index)
    manifest = {**raw.manifest, "seen_font_test_images": len(parts["iid_test"])}
    return DataSplits(info=info, config=config, train=parts["train"], val=parts["val"], test=parts["test"],
                      source=raw.source, manifest=manifest, iid_test=parts["iid_test"])


def iterate_batches(
    split: Split, batch_size: int, shuffle: bool, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (images, labels) batches; shuffled with ``generator`` when asked."""
    n = len(split)
    if shuffle:
        order = torch.randperm(n, generator=generator).to(split.labels.device)
        for start in range(0, n, batch_size):
            index = order[start: start + batch_size]
            yield split.images[index], split.labels[index]
    else:
        for start in range(0, n, batch_size):
            yield split.images[start: start + batch_size], split.labels[start: start + batch_size]
