"""The glyph dataset: classes, lineages, determinism, splits, tied homoglyphs, cache, bad input.

Rendering tests use the ``smoke`` glyph size (four small Debian font packages,
installed by ``make data``); without them they are skipped, except as root,
where ``make data`` should have installed them, so they fail.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from calibkd.config import (
    GLYPH_SEEN_FONT_TEST_SIZE,
    SplitConfig,
    dataset_info,
    get_profile,
)
from calibkd.config.charsets import (
    CYRILLIC,
    GLYPH_CLASS_NAMES,
    GLYPH_CLASSES,
    GREEK,
    LATIN,
)
from calibkd.data import fetch as fetch_data
from calibkd.data import glyphs
from calibkd.data.splits import (
    DataNotFoundError,
    denormalize,
    group_label_distribution,
    make_splits,
)
from calibkd.errors import ConfigError
from calibkd.nn.models import build_model

SMOKE = glyphs.glyph_config("smoke", "tied")


def _fonts_or_skip() -> None:
    missing = glyphs.missing_packages(SMOKE.packages)
    if missing:
        message = f"smoke font packages missing: {missing}; install with: {glyphs.install_command(missing, True)}"
        if os.geteuid() == 0:
            pytest.fail(message + " (running as root: `make data` installs them)")
        pytest.skip(message)


@pytest.fixture(scope="module")
def glyph_root(tmp_path_factory):
    _fonts_or_skip()
    return tmp_path_factory.mktemp("glyphs")


@pytest.fixture(scope="module")
def tied(glyph_root):
    return glyphs.load_glyphs(SMOKE, glyph_root)


@pytest.fixture(scope="module")
def natural(glyph_root):
    return glyphs.load_glyphs(glyphs.glyph_config("smoke", "natural"), glyph_root)


# ---------------------------------------------------------------------------
# without fonts
# ---------------------------------------------------------------------------


def test_the_183_classes():
    assert len(GLYPH_CLASSES) == len(set(GLYPH_CLASSES)) == 183
    assert (len(LATIN), len(GREEK), len(CYRILLIC)) == (62, 49, 72)
    assert "ς" in GREEK and "Ё" in CYRILLIC and "ё" in CYRILLIC and "Ѕ" in CYRILLIC and "ј" in CYRILLIC
    assert GLYPH_CLASS_NAMES[0] == "A_lat" and "А_cy" in GLYPH_CLASS_NAMES and "Α_gr" in GLYPH_CLASS_NAMES
    assert dataset_info("glyphs").num_classes == 183 and dataset_info("glyphs").class_names == GLYPH_CLASS_NAMES


@pytest.mark.parametrize("family,lineage", [
    ("Arimo", "liberation"), ("Tinos", "liberation"), ("Liberation Sans Narrow", "liberation"),
    ("FreeSans", "nimbus"), ("Nimbus Roman", "nimbus"), ("Hack", "dejavu"), ("DejaVu Serif", "dejavu"),
    ("Open Sans Condensed", "noto-open-sans"), ("Noto Serif Display", "noto-open-sans"), ("Carlito", "lato"),
    ("Go Mono", "go"), ("CMU Serif", "cmu"),
])
def test_clones_share_a_lineage(family, lineage):
    assert glyphs.lineage_of(family) == lineage


def test_glyphs_are_never_flipped_and_models_fit():
    for name in ("glyphs", "glyphs_natural"):
        assert dataset_info(name).horizontal_flip is False
    for profile in ("smoke", "default"):
        p = get_profile(profile, "glyphs")
        x = torch.zeros(2, 1, 32, 32)
        for model in (p.teacher_recipes["default"].model, p.student.model):
            net = build_model(model.arch, 1, 183, **model.arguments).eval()
            assert net(x).shape == (2, 183)


def test_bad_configuration_is_refused_before_work():
    with pytest.raises(glyphs.GlyphError, match="unknown glyph variant 'bold'"):
        glyphs.glyph_config("smoke", "bold")
    with pytest.raises(glyphs.GlyphError, match="unknown glyph size"):
        glyphs.glyph_config("huge")
    with pytest.raises(glyphs.GlyphError, match="more than one split"):
        glyphs.glyph_config("smoke", pinned=(("go", "val"), ("go", "test")))
    with pytest.raises(ConfigError, match="unknown dataset 'glyphs_bold'"):
        SplitConfig(dataset="glyphs_bold")


def test_a_lineage_in_two_splits_is_refused():
    face = glyphs.Face("/x.ttf", 0, "Arimo", "Regular", "fonts-croscore", "liberation", "")
    other = glyphs.Face("/y.ttf", 0, "Liberation Sans", "Bold", "fonts-liberation", "liberation", "")
    third = glyphs.Face("/z.ttf", 0, "Go", "Regular", "fonts-go", "go", "")
    with pytest.raises(glyphs.GlyphError, match="liberation"):
        glyphs.check_lineage_split([face, other, third], ["train", "test", "val"])
    with pytest.raises(glyphs.GlyphError, match="no fonts"):
        glyphs.check_lineage_split([face, other, third], ["train", "train", "test"])


def test_missing_font_packages_name_the_install_command(monkeypatch):
    with pytest.raises(glyphs.FontsMissingError, match="python -m calibkd.data.fetch glyphs"):
        glyphs.find_faces(("fonts-calibkd-does-not-exist",), GLYPH_CLASSES)
    monkeypatch.setattr(fetch_data, "_apt_install", lambda *packages: False)
    monkeypatch.setattr(glyphs, "missing_packages", lambda packages: list(packages))
    with pytest.raises(glyphs.FontsMissingError, match="calibkd.data.fetch glyphs --size smoke"):
        fetch_data.ensure_fonts("smoke")
    assert fetch_data.main(["glyphs", "--size", "smoke"]) == 1


def test_missing_fonts_surface_as_data_not_found(monkeypatch, tmp_path):
    monkeypatch.setattr(glyphs, "missing_packages", lambda packages: list(packages))
    with pytest.raises(DataNotFoundError, match="calibkd.data.fetch glyphs"):
        make_splits(get_profile("smoke", "glyphs").split, tmp_path)


def test_group_label_distribution_is_uniform_on_groups():
    true = group_label_distribution(torch.tensor([0, 1, 2, 3]), [(0, 2), (1, 3, 4)], 6)
    assert torch.allclose(true.sum(1), torch.ones(4))
    assert true[0, 0] == true[0, 2] == 0.5 and true[1, 4] == pytest.approx(1 / 3) and true[1, 0] == 0


# ---------------------------------------------------------------------------
# rendering (smoke fonts)
# ---------------------------------------------------------------------------


def test_generation_is_deterministic_for_a_seed(tied):
    again = glyphs.generate(SMOKE)
    assert torch.equal(again.images, tied.images) and torch.equal(again.labels, tied.labels)
    assert again.manifest["groups"] == tied.manifest["groups"]
    other = glyphs.apply_jitter(torch.full((1, 64, 64), 255, dtype=torch.uint8),
                                glyphs.draw_jitter(1, SMOKE.jitter, torch.Generator().manual_seed(1)))
    assert other.shape == (1, 1, 32, 32) and other.dtype == torch.uint8


def test_every_class_is_in_every_split_and_balanced(tied):
    for part in glyphs.SPLITS:
        _, labels = tied.part(part)
        counts = torch.bincount(labels, minlength=183)
        assert counts.min() > 0 and counts.min() == counts.max(), part


def test_no_lineage_is_in_two_splits(tied):
    faces = tied.manifest["faces"]
    where = {}
    for face in faces:
        where.setdefault(face["lineage"], set()).add(face["split"])
    assert all(len(s) == 1 for s in where.values())
    for part in glyphs.SPLITS:
        face_ids = tied.face[tied.split == glyphs.SPLITS.index(part)].unique().tolist()
        assert {faces[i]["split"] for i in face_ids} == {part}
        assert all(f["licence"] and f["package"] in SMOKE.packages for f in faces)


def test_homoglyph_groups_are_found(tied):
    found = {"".join(GLYPH_CLASSES[c] for c in g) for g in tied.groups}
    assert {"AΑА", "OΟО", "oοо", "pр", "cс"} <= found
    assert all(len(g) >= 2 for g in tied.groups) and 20 <= len(found) <= 40


def test_tied_group_members_share_pixels(tied, natural):
    n = len(tied.labels)
    for group in tied.groups:
        images = [tied.images[tied.labels == c] for c in group]  # same face and render order per class
        for other in images[1:]:
            assert torch.equal(images[0], other)
    # the natural variant has the same jitter: classes outside groups match the tied pixels
    assert natural.images.shape[0] == n
    lone = [c for c in range(183) if all(c not in g for g in tied.groups)][0]
    assert torch.equal(tied.images[tied.labels == lone], natural.images[natural.labels == lone])
    # and somewhere within a group the natural glyphs differ (they are only mostly identical)
    differ = any(not torch.equal(natural.images[natural.labels == g[0]], natural.images[natural.labels == c])
                 for g in tied.groups for c in g[1:])
    assert differ


def test_placement_keeps_case_height_cues(natural):
    def ink_rows(char):
        images = natural.images[natural.labels == GLYPH_CLASSES.index(char)].float()
        return (images.mean(0)[0] > 20).any(1).sum().item()

    assert ink_rows("O") > ink_rows("o") + 3
    assert ink_rows("p") > ink_rows("o")  # descender below the fixed baseline


def test_cache_is_keyed_by_parameters(tied, glyph_root):
    path, manifest = glyphs.cache_paths(SMOKE, glyph_root)
    assert path.is_file() and manifest.is_file() and tied.source == str(path)
    again = glyphs.load_glyphs(SMOKE, glyph_root, generate_missing=False)
    assert torch.equal(again.images, tied.images)
    with pytest.raises(glyphs.GlyphCacheError, match="other parameters"):
        glyphs.read(path, glyphs.glyph_config("smoke", "tied", seed=1))
    assert glyphs.cache_paths(glyphs.glyph_config("smoke", "tied", seed=1), glyph_root)[0] != path


def test_a_character_no_font_covers_is_named(glyph_root):
    config = glyphs.glyph_config("smoke", classes=("A", "B", "漢"))
    with pytest.raises(glyphs.GlyphError, match="漢"):
        glyphs.generate(config)


def test_glyph_splits_carry_true_distributions_and_groups(tied, natural):
    config = SplitConfig(dataset="glyphs", val_size=200, train_size=500, test_size=300, split_seed=3)
    data = make_splits(config, raw=tied)
    held = min(GLYPH_SEEN_FONT_TEST_SIZE, int((tied.split == 0).sum()) // 10)
    assert data.sizes() == {"train": 500, "val": 200, "test": 300, "iid_test": held}
    assert data.known_posterior and data.info.class_groups == tied.groups
    assert data.manifest == {**tied.manifest, "seen_font_test_images": held}
    assert torch.allclose(data.test.true_probs.sum(1), torch.ones(300))
    for split in (data.train, data.test):
        on_label = split.true_probs[torch.arange(len(split)), split.labels]
        assert (on_label <= 1).all() and (on_label >= 1 / 3 - 1e-6).all()
    sub = data.train.subset(100, seed=0)
    assert sub.true_probs.shape == (100, 183)
    assert "disjoint font lineages" in data.describe()
    plain = make_splits(SplitConfig(dataset="glyphs_natural", val_size=100), raw=natural)
    assert not plain.known_posterior and plain.info.class_groups == natural.groups
    with pytest.raises(ValueError, match="'natural' glyph variant"):
        make_splits(SplitConfig(dataset="glyphs_natural", val_size=100), raw=tied)
    with pytest.raises(ValueError, match="validation images"):
        make_splits(SplitConfig(dataset="glyphs", val_size=5_000), raw=tied)


def test_seen_font_test_is_new_images_of_training_fonts(tied):
    """The in-distribution test split: images of the training fonts that no
    training subset can contain, the same for every train_size."""
    train_images, train_labels = tied.part("train")
    # tied homoglyphs share pixels within a face and render: (pixels, label) is unique
    rows = {(image.numpy().tobytes(), int(y)): i for i, (image, y) in enumerate(zip(train_images, train_labels))}
    assert len(rows) == len(train_images)
    whole = make_splits(SplitConfig(dataset="glyphs", val_size=100, split_seed=3), raw=tied)
    small = make_splits(SplitConfig(dataset="glyphs", val_size=100, train_size=300, split_seed=3), raw=tied)
    assert torch.equal(whole.iid_test.images, small.iid_test.images)
    assert len(whole.iid_test) + len(whole.train) == len(train_images)

    def originals(split):
        pixels = (denormalize(split.images, "glyphs") * 255).round().clamp(0, 255).to(torch.uint8)
        return {rows[image.numpy().tobytes(), int(y)] for image, y in zip(pixels, split.labels)}

    held, trained = originals(whole.iid_test), originals(whole.train)
    assert len(held) == len(whole.iid_test) and not held & trained and held | trained == set(range(len(rows)))
    assert originals(small.train) <= trained
    assert torch.allclose(whole.iid_test.true_probs.sum(1), torch.ones(len(whole.iid_test)))
    assert "held out as the in-distribution test" in whole.describe()


def test_masters_of_one_face_are_baseline_placed(tied):
    face = glyphs.find_faces(("fonts-dejavu-core",), GLYPH_CLASSES)[0]
    masters = glyphs.render_masters(face, GLYPH_CLASSES)
    assert masters.shape == (183, 64, 64) and (masters.reshape(183, -1).max(1) > 0).all()
    params = glyphs.draw_jitter(1, SMOKE.jitter, torch.Generator().manual_seed(0)).expand(2, -1)
    tied_pair = torch.from_numpy(masters[[0, 0]])
    assert torch.equal(*glyphs.apply_jitter(tied_pair, params))
    # the baseline row: H and x sit on it, so their lowest ink rows agree
    bottom = [np.nonzero(masters[GLYPH_CLASSES.index(c)].max(1) > 128)[0].max() for c in ("H", "x", "o")]
    assert max(bottom) - min(bottom) <= 2


def test_example_grid_of_many_classes_is_one_canvas():
    from calibkd import plots

    images, labels = torch.rand(400, 1, 32, 32), torch.arange(400) % 183
    fig = plots.image_grid(images, labels, GLYPH_CLASS_NAMES)
    assert len(fig.axes) == 1
    plots.plt.close(fig)


def test_generated_data_enters_the_model_cache_key(tied):
    from calibkd.training.model_cache import model_params

    profile = get_profile("smoke", "glyphs")
    data = make_splits(SplitConfig(dataset="glyphs", val_size=100), raw=tied)
    params = model_params(profile.student, data, torch.device("cpu"))
    held = len(data.iid_test)  # the training fonts' images kept out of training are part of the key
    assert params["data"] == {"content": tied.manifest["content_sha256"], "seen_font_test_images": held}
    mixture = make_splits(get_profile("smoke", "mixture").split)
    assert model_params(profile.student, mixture, torch.device("cpu"))["data"] == mixture.manifest["key"]
