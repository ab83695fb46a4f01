"""Static facts about the datasets (sizes are needed to validate splits
before anything is loaded) and the glyph dataset's settings."""

from __future__ import annotations

import os
from dataclasses import dataclass

from calibkd.config.charsets import GLYPH_CLASS_NAMES
from calibkd.errors import ConfigError


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset: shape, classes, split sizes, augmentation."""

    name: str
    channels: int
    image_size: int
    num_classes: int
    train_size: int
    test_size: int
    class_names: tuple[str, ...]
    crop_padding: int
    horizontal_flip: bool
    #: groups of classes known to resemble each other (for dark-knowledge checks)
    class_groups: tuple[tuple[int, ...], ...] = ()


FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

#: CIFAR-100's 20 superclasses and their five classes each (Krizhevsky 2009);
#: the fine labels index the 100 class names in alphabetical order, as the
#: dataset's ``meta`` file lists them.
CIFAR100_SUPERCLASSES = {
    "aquatic mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit and vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household electrical devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large man-made outdoor things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large natural outdoor scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large omnivores and herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium-sized mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles 1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles 2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}
CIFAR100_CLASSES = tuple(sorted(name for names in CIFAR100_SUPERCLASSES.values() for name in names))

DATASETS: dict[str, DatasetInfo] = {
    "fashion_mnist": DatasetInfo(
        name="fashion_mnist", channels=1, image_size=28, num_classes=10,
        train_size=60_000, test_size=10_000, class_names=FASHION_MNIST_CLASSES,
        crop_padding=2, horizontal_flip=True,
        # upper-body garments; footwear (brief section 5)
        class_groups=((0, 2, 4, 6), (5, 7, 9)),
    ),
    "cifar10": DatasetInfo(
        name="cifar10", channels=3, image_size=32, num_classes=10,
        train_size=50_000, test_size=10_000, class_names=CIFAR10_CLASSES,
        crop_padding=4, horizontal_flip=True,
        # vehicles; animals
        class_groups=((0, 1, 8, 9), (2, 3, 4, 5, 6, 7)),
    ),
    "cifar100": DatasetInfo(
        name="cifar100", channels=3, image_size=32, num_classes=100,
        train_size=50_000, test_size=10_000, class_names=CIFAR100_CLASSES,
        crop_padding=4, horizontal_flip=True,
        # the 20 superclasses
        class_groups=tuple(tuple(CIFAR100_CLASSES.index(n) for n in names)
                           for names in CIFAR100_SUPERCLASSES.values()),
    ),
    # Glyphs (calibkd.data.glyphs): 183 characters from held-out font lineages. Sizes
    # are those of the default generation on Debian 12 (train: training fonts,
    # test: test fonts; validation comes from its own fonts). Groups come from
    # the generated data (homoglyphs), so DataSplits.info carries them.
    # Never flipped: a mirrored letter is another letter, or none.
    "glyphs": DatasetInfo(
        name="glyphs", channels=1, image_size=32, num_classes=183,
        train_size=60_024, test_size=17_568, class_names=GLYPH_CLASS_NAMES,
        crop_padding=2, horizontal_flip=False,
    ),
    "glyphs_natural": DatasetInfo(
        name="glyphs_natural", channels=1, image_size=32, num_classes=183,
        train_size=60_024, test_size=17_568, class_names=GLYPH_CLASS_NAMES,
        crop_padding=2, horizontal_flip=False,
    ),
    # Known-posterior Gaussian mixture (calibkd.data.mixture): feature vectors stored
    # as (N, 16, 1, 1); 100 classes in 10 superclasses (the class groups).
    "mixture": DatasetInfo(
        name="mixture", channels=16, image_size=1, num_classes=100,
        train_size=50_000, test_size=10_000, class_names=tuple(f"s{k // 10}c{k % 10}" for k in range(100)),
        crop_padding=0, horizontal_flip=False,
        class_groups=tuple(tuple(range(10 * s, 10 * s + 10)) for s in range(10)),
    ),
}

#: The glyph variant each glyph dataset name selects (``calibkd.data.glyphs.VARIANTS``).
GLYPH_DATASETS = {"glyphs": "tied", "glyphs_natural": "natural"}
#: The glyph generation size every profile trains on: one cached dataset
#: (``calibkd.data.glyphs.GLYPH_SIZES``); the ``smoke`` glyph size is for unit tests.
GLYPH_SIZE = "default"


#: Images of the *training* fonts held out from training (a seeded draw, at
#: most a tenth of the training fonts' images): the in-distribution test set
#: next to the held-out-font test split, so that held-out typefaces can be
#: reported as a natural distribution shift beside the corruption suite.
GLYPH_SEEN_FONT_TEST_SIZE = 5_000


def glyph_size() -> str:
    """The glyph generation size in use: ``$CALIBKD_GLYPH_SIZE`` (tests set
    ``smoke``: four font packages, seconds to generate), else ``GLYPH_SIZE``."""
    return os.environ.get("CALIBKD_GLYPH_SIZE") or GLYPH_SIZE


def dataset_info(name: str) -> DatasetInfo:
    """Look up a dataset, failing with the list of known names."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; allowed datasets: {sorted(DATASETS)}")
    return DATASETS[name]
