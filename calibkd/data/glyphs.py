"""Glyphs: a 183-class image dataset rendered from fonts that Debian packages.

One class per character (Latin, Greek and Russian Cyrillic letters, digits,
and the Cyrillic Ѕ ѕ І і Ј ј), grayscale 32x32. Why it exists: the study needs
an offline dataset with many plausible classes, and one where the *true* label
distribution of an input is known (claim C-cardinality).

How an image is made:

1. *Faces.* Every font file of ``GlyphConfig.packages`` (found with ``dpkg -L``)
   whose character map covers every class and whose glyphs all leave ink.
   Faces that render identically are merged, and at most
   ``max_faces_per_lineage`` faces (seeded choice) are kept per design
   *lineage* (a superfamily with its clones: Liberation ~ Arimo/Tinos/Cousine,
   Nimbus ~ FreeSans/FreeSerif/FreeMono, DejaVu ~ Hack, Noto ~ Open Sans,
   Lato ~ Carlito; see ``lineage_of``).
2. *Masters.* Each (face, class) is drawn once at 4x resolution and reduced to
   a 64x64 master, placed by its *baseline*: capital height is half the image
   and the baseline sits on a fixed row, so x-height and descender cues
   survive (fitting each glyph to its box would make o / O a graded confusion).
3. *Homoglyph groups.* Two classes belong to one group when their masters are
   pixel-identical (up to ``identity_tolerance``) in at least
   ``group_threshold`` of the faces (A / Α / А, o / ο / о, p / р, ...).
4. *Variants.* ``tied``: every member of a group is drawn from the master of
   the group's first class, so within a group the images are identically
   distributed and, with balanced classes, the true posterior is uniform over
   the group. ``natural``: each face's own glyphs.
5. *Jitter.* Each (face, render) draws one small rotation, shear, scale,
   aspect, shift and stroke thickening or thinning (seeded) and applies it to
   every class of that face, so tied group members share their pixels exactly.
6. *Splits by lineage.* Train, validation and test fonts never share a
   lineage: held-out typefaces are a distribution shift of their own.

Generated once per parameters into ``glyphs-<variant>-<key>.npz`` with a JSON
manifest (faces, files, packages, licences, lineages, splits, groups); the font
files themselves are not copied. ``python -m calibkd.data.glyphs`` generates;
``python -m calibkd.data.fetch glyphs`` installs the fonts.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from calibkd.config.charsets import GLYPH_CLASSES, class_name
from calibkd.io import atomic_write_bytes, atomic_write_text, params_key
from calibkd.paths import generated_dir
from calibkd.runtime import interactive

VARIANTS = ("tied", "natural")
SPLITS = ("train", "val", "test")

# ---------------------------------------------------------------------------
# fonts and lineages
# ---------------------------------------------------------------------------

#: Debian packages with faces covering all three scripts (measured on Debian 12:
#: 48 packages had 445 covering faces; left out: fonts-cegui's runic FutharkAdapted, and
#: fonts-wine, whose faces all run off the canvas).
FONT_PACKAGES: tuple[str, ...] = (
    "fonts-inter", "fonts-urw-base35", "fonts-cmu", "fonts-roboto-unhinted", "fonts-lato",
    "fonts-liberation", "fonts-liberation2", "fonts-noto-core", "fonts-noto-mono", "fonts-jetbrains-mono",
    "fonts-dejavu-core", "fonts-dejavu-extra", "fonts-open-sans", "fonts-freefont-ttf", "fonts-croscore",
    "fonts-vollkorn", "fonts-crosextra-carlito", "fonts-hack", "fonts-firacode", "fonts-linuxlibertine",
    "fonts-sil-gentiumplus", "fonts-sil-gentiumplus-compact", "fonts-stix", "fonts-cantarell",
    "fonts-comfortaa", "fonts-anonymous-pro", "fonts-go", "fonts-oldstandard", "fonts-ebgaramond",
    "fonts-ebgaramond-extra", "fonts-mononoki", "fonts-fantasque-sans", "fonts-tuffy", "fonts-play",
    "fonts-manrope", "fonts-symbola", "fonts-clear-sans", "fonts-jura", "fonts-monoid", "fonts-roboto-slab",
    "fonts-agave", "fonts-3270", "fonts-osifont", "fonts-mph-2b-damase", "fonts-linex",
    "fonts-monofur",
)
#: Four small packages (about 13 MB installed), four lineages: enough for tests.
SMOKE_FONT_PACKAGES: tuple[str, ...] = ("fonts-dejavu-core", "fonts-liberation", "fonts-freefont-ttf", "fonts-go")

#: Family-name prefixes (lower case) that belong to another design's lineage:
#: metric clones, forks and renamed copies. Longest prefix wins.
FAMILY_LINEAGE: dict[str, str] = {
    "liberation": "liberation", "arimo": "liberation", "tinos": "liberation", "cousine": "liberation",
    "nimbus": "nimbus", "freesans": "nimbus", "freeserif": "nimbus", "freemono": "nimbus",
    "tex gyre heros": "nimbus", "tex gyre termes": "nimbus", "tex gyre cursor": "nimbus",
    "p052": "palatino", "tex gyre pagella": "palatino", "c059": "century-schoolbook",
    "tex gyre schola": "century-schoolbook", "urw bookman": "bookman", "tex gyre bonum": "bookman",
    "urw gothic": "avant-garde", "tex gyre adventor": "avant-garde", "z003": "zapf-chancery",
    "dejavu": "dejavu", "hack": "dejavu", "bitstream vera": "dejavu",
    "noto": "noto-open-sans", "open sans": "noto-open-sans", "droid": "noto-open-sans",
    "lato": "lato", "carlito": "lato",
    "stix": "stix", "linux": "libertine", "eb garamond": "eb-garamond", "old standard": "old-standard",
    "anonymous pro": "anonymous-pro", "clear sans": "clear-sans", "monoisome": "monoid",
    "gentium": "gentium", "fira": "fira", "jetbrains": "jetbrains-mono", "ibm 3270": "ibm-3270",
    "fantasque": "fantasque-sans",
}
#: Packages whose faces form one lineage whatever their family names.
PACKAGE_LINEAGE: dict[str, str] = {"fonts-wine": "wine"}

#: Where the baseline sits (fraction of the image height from the top) and
#: how tall a capital is (fraction of the image height).
BASELINE_ROW = 0.72
CAP_HEIGHT = 0.5
MASTER_SIZE = 64
IMAGE_SIZE = 32
_SUPERSAMPLE = 4  # the master is drawn at 4x and reduced


class GlyphError(ValueError):
    """Bad glyph parameters or input (classes, variant, split); raised before work."""


class FontsMissingError(FileNotFoundError):
    """Font packages are not installed; the message names the install command."""


class GlyphCacheError(RuntimeError):
    """A glyph cache file is corrupt or was written with other parameters."""


def install_command(packages: Sequence[str], smoke: bool = False) -> str:
    """The commands that install ``packages`` (the fetch command, or apt-get)."""
    fetch = "python -m calibkd.data.fetch glyphs" + (" --size smoke" if smoke else "")
    return f"{fetch}   (as root), or: sudo apt-get install -y {' '.join(packages)}"


def lineage_of(family: str, package: str = "") -> str:
    """A face's design lineage: its package's (``PACKAGE_LINEAGE``), the
    longest ``FAMILY_LINEAGE`` prefix of its family name, or else the first
    word of the family name."""
    if package in PACKAGE_LINEAGE:
        return PACKAGE_LINEAGE[package]
    name = re.sub(r"\s+", " ", family.strip().lower())
    matches = [prefix for prefix in FAMILY_LINEAGE if name == prefix or name.startswith(prefix)]
    if matches:
        return FAMILY_LINEAGE[max(matches, key=len)]
    return name.split(" ")[0] if name else "unknown"


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Jitter:
    """Ranges of the per-image jitter (uniform; scale and aspect log-uniform)."""

    rotation_deg: float = 7.0
    shear: float = 0.15
    scale: float = 0.08
    aspect: float = 0.08
    shift_px: float = 1.5
    #: stroke change in master pixels (1 = one 3x3 dilation; negative thins)
    stroke: tuple[float, float] = (-0.6, 1.0)


@dataclass(frozen=True)
class GlyphConfig:
    """Everything that determines a generated glyph dataset (its cache key)."""

    variant: str = "tied"
    packages: tuple[str, ...] = FONT_PACKAGES
    classes: tuple[str, ...] = GLYPH_CLASSES
    #: images per (face, class); each render of a face draws a new jitter
    renders_per_face: int = 2
    max_faces_per_lineage: int = 12
    val_fraction: float = 0.12
    test_fraction: float = 0.2
    #: lineages pinned to a split (the rest are assigned by the seeded balancer)
    pinned: tuple[tuple[str, str], ...] = ()
    #: RMS pixel difference (0-1 scale, 32x32) below which two renders are "identical"
    identity_tolerance: float = 0.03
    #: fraction of faces in which two classes must be identical to form a group
    group_threshold: float = 0.5
    jitter: Jitter = field(default_factory=Jitter)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise GlyphError(f"unknown glyph variant {self.variant!r}; allowed variants: {list(VARIANTS)}")
        if len(set(self.classes)) != len(self.classes) or not self.classes:
            raise GlyphError("classes must be distinct characters (and at least one)")
        bad = [c for c in self.classes if not isinstance(c, str) or len(c) != 1]
        if bad:
            raise GlyphError(f"classes must be single characters; got {bad[:5]}")
        if not self.packages:
            raise GlyphError("packages must name at least one Debian font package")
        for name in ("renders_per_face", "max_faces_per_lineage", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "seed" else 1):
                raise GlyphError(f"{name}={value!r} must be a {'non-negative' if name == 'seed' else 'positive'} integer")
        if not (0 < self.val_fraction < 1 and 0 < self.test_fraction < 1 and self.val_fraction + self.test_fraction < 1):
            raise GlyphError(f"val_fraction={self.val_fraction} and test_fraction={self.test_fraction} "
                             "must be in (0, 1) and leave room for training fonts")
        for lineage, split in self.pinned:
            if split not in SPLITS:
                raise GlyphError(f"pinned lineage {lineage!r} to unknown split {split!r}; allowed: {list(SPLITS)}")
        pinned_names = [lineage for lineage, _ in self.pinned]
        doubled = sorted({n for n in pinned_names if pinned_names.count(n) > 1})
        if doubled:
            raise GlyphError(f"lineage(s) {doubled} pinned to more than one split: a lineage must stay in one split")

    def record(self) -> dict:
        """The JSON view the cache key and the manifest are made of."""
        return {**asdict(self), "image_size": IMAGE_SIZE, "master_size": MASTER_SIZE,
                "baseline_row": BASELINE_ROW, "cap_height": CAP_HEIGHT, "format": 2}

    def key(self) -> str:
        return params_key(self.record())


#: Named sizes: ``default`` is what the study trains on, ``smoke`` is for tests.
GLYPH_SIZES: dict[str, GlyphConfig] = {
    "default": GlyphConfig(),
    "smoke": GlyphConfig(packages=SMOKE_FONT_PACKAGES, renders_per_face=1, max_faces_per_lineage=3),
}


def glyph_config(size: str = "default", variant: str = "tied", **changes) -> GlyphConfig:
    """A named size (``GLYPH_SIZES``) in one variant, with optional changes."""
    if size not in GLYPH_SIZES:
        raise GlyphError(f"unknown glyph size {size!r}; allowed sizes: {sorted(GLYPH_SIZES)}")
    return replace(GLYPH_SIZES[size], variant=variant, **changes)


# ---------------------------------------------------------------------------
# finding faces
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Face:
    """One font face: a file (and index inside a collection) and where it came from."""

    path: str
    index: int
    family: str
    style: str
    package: str
    lineage: str
    licence: str

    @property
    def name(self) -> str:
        return f"{self.family} {self.style}".strip()


_FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")


def _package_files(package: str) -> list[str] | None:
    """Font files of an installed Debian package (None when it is not installed)."""
    if not shutil.which("dpkg"):
        return None
    status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False)
    if "install ok installed" not in status.stdout:
        return None
    listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=False).stdout.split("\n")
    return sorted(f for f in listing if f.lower().endswith(_FONT_SUFFIXES) and os.path.isfile(f))


def missing_packages(packages: Iterable[str]) -> list[str]:
    """The packages of ``packages`` that are not installed."""
    return [p for p in packages if _package_files(p) is None]


def _name(table, ids: Sequence[int]) -> str:
    for name_id in ids:
        record = table.getName(name_id, 3, 1, 0x409) or table.getName(name_id, 1, 0, 0)
        if record is not None:
            return str(record.toUnicode()).strip()
    return ""


def find_faces(packages: Sequence[str], classes: Sequence[str]) -> list[Face]:
    """Faces of ``packages`` whose character map holds every class, sorted.

    Raises ``FontsMissingError`` (naming the install command) when a package is
    not installed, and ``GlyphError`` when some class is in no face at all.
    """
    from fontTools.ttLib import TTCollection, TTFont

    missing = missing_packages(packages)
    if missing:
        raise FontsMissingError(
            f"font package(s) not installed: {missing}\nInstall them with:\n  {install_command(missing)}")
    seen: set[str] = set()
    faces: list[Face] = []
    covered: set[str] = set()
    codes = [ord(c) for c in classes]
    for package in packages:
        for file in _package_files(package) or []:
            real = os.path.realpath(file)
            if real in seen:
                continue
            seen.add(real)
            try:
                count = len(TTCollection(real).fonts) if real.lower().endswith(("ttc", "otc")) else 1
            except Exception:  # unreadable collection: skip the file
                continue
            for index in range(count):
                try:
                    font = TTFont(real, fontNumber=index, lazy=True)
                    cmap = font.getBestCmap() or {}
                except Exception:
                    continue
                present = [code in cmap for code in codes]
                covered.update(c for c, ok in zip(classes, present) if ok)
                if not all(present):
                    continue
                table = font["name"]
                family = _name(table, (16, 1)) or Path(real).stem
                style = _name(table, (17, 2))
                licence = _name(table, (14, 13))[:200] or f"see /usr/share/doc/{package}/copyright"
                faces.append(Face(real, index, family, style, package, lineage_of(family, package), licence))
    uncovered = [c for c in classes if c not in covered]
    if uncovered:
        raise GlyphError(
            f"no installed font of {list(packages)} covers the character(s) {uncovered} "
            f"({', '.join(f'U+{ord(c):04X}' for c in uncovered)}); remove them from the class list "
            "or add a font package that covers them")
    return sorted(faces, key=lambda f: (f.lineage, f.family, f.style, f.path, f.index))


# ---------------------------------------------------------------------------
# masters: one baseline-placed drawing per (face, class)
# ---------------------------------------------------------------------------


def render_masters(face: Face, classes: Sequence[str]) -> np.ndarray | None:
    """(K, 64, 64) uint8 masters of ``face``, or None when a glyph leaves no ink
    or runs off the canvas (such a face is dropped)."""
    from PIL import Image, ImageDraw, ImageFont

    canvas = MASTER_SIZE * _SUPERSAMPLE
    try:
        probe = ImageFont.truetype(face.path, 200, index=face.index, layout_engine=ImageFont.Layout.BASIC)
        left, top, right, bottom = probe.getbbox("H", anchor="ls")
    except (OSError, ValueError):
        return None
    if bottom - top <= 0:
        return None
    size = 200 * CAP_HEIGHT * canvas / (bottom - top)
    font = ImageFont.truetype(face.path, size, index=face.index, layout_engine=ImageFont.Layout.BASIC)
    baseline = BASELINE_ROW * canvas
    out = np.zeros((len(classes), MASTER_SIZE, MASTER_SIZE), dtype=np.uint8)
    for k, char in enumerate(classes):
        left, top, right, bottom = font.getbbox(char, anchor="ls")
        if right <= left or bottom <= top:
            return None
        x = canvas / 2 - (left + right) / 2
        if top + baseline < 0 or bottom + baseline > canvas or right - left > canvas:
            return None  # runs off the canvas: an unusually large design
        image = Image.new("L", (canvas, canvas), 0)
        ImageDraw.Draw(image).text((x, baseline), char, font=font, fill=255, anchor="ls")
        small = np.asarray(image.resize((MASTER_SIZE, MASTER_SIZE), Image.Resampling.BOX))
        if small.max() < 64:
            return None
        out[k] = small
    return out


def _signature(masters: np.ndarray) -> torch.Tensor:
    """Masters at the output resolution, flattened, on the 0-1 scale."""
    images = torch.from_numpy(masters).float().div(255.0)[:, None]
    return F.avg_pool2d(images, MASTER_SIZE // IMAGE_SIZE).flatten(1)


def _union_find(n: int, pairs: Iterable[tuple[int, int]]) -> list[int]:
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    return [root(i) for i in range(n)]


def merge_identical_faces(signatures: torch.Tensor, tolerance: float) -> list[int]:
    """For each face, the index of the first face that renders identically
    (RMS over every class below ``tolerance``); itself when none does."""
    rms = torch.cdist(signatures, signatures) / signatures.shape[1] ** 0.5
    close = torch.nonzero(torch.triu(rms < tolerance, diagonal=1)).tolist()
    return _union_find(signatures.shape[0], [(i, j) for i, j in close])


def find_homoglyph_groups(per_face: Sequence[np.ndarray], tolerance: float, threshold: float) -> list[tuple[int, ...]]:
    """Groups of classes whose masters are identical in at least ``threshold``
    of the faces (connected components of that relation; singletons omitted)."""
    k = per_face[0].shape[0]
    counts = torch.zeros(k, k)
    for masters in per_face:
        sig = _signature(masters)
        rms = torch.cdist(sig, sig) / sig.shape[1] ** 0.5
        counts += (rms < tolerance).float()
    pairs = torch.nonzero(torch.triu(counts >= threshold * len(per_face), diagonal=1)).tolist()
    roots = _union_find(k, [(i, j) for i, j in pairs])
    members: dict[int, list[int]] = {}
    for c, r in enumerate(roots):
        members.setdefault(r, []).append(c)
    return sorted((tuple(m) for m in members.values() if len(m) > 1), key=lambda g: g[0])


def group_representatives(num_classes: int, groups: Sequence[Sequence[int]]) -> np.ndarray:
    """For each class, the class whose master it is drawn from in the tied
    variant: the first member of its group, or itself."""
    source = np.arange(num_classes)
    for group in groups:
        source[list(group)] = min(group)
    return source


# ---------------------------------------------------------------------------
# splits by lineage
# ---------------------------------------------------------------------------


def check_lineage_split(faces: Sequence[Face], splits: Sequence[str]) -> None:
    """Raise ``GlyphError`` when a lineage has faces in two splits, a split is
    unknown, or a split has no face."""
    if len(faces) != len(splits):
        raise GlyphError(f"{len(faces)} faces but {len(splits)} split assignments")
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise GlyphError(f"unknown split(s) {unknown}; allowed: {list(SPLITS)}")
    where: dict[str, set[str]] = {}
    for face, split in zip(faces, splits):
        where.setdefault(face.lineage, set()).add(split)
    broken = {lineage: sorted(s) for lineage, s in where.items() if len(s) > 1}
    if broken:
        raise GlyphError(f"lineage(s) split across train / validation / test: {broken}; "
                         "clones of one design must stay in one split")
    empty = [s for s in SPLITS if s not in splits]
    if empty:
        raise GlyphError(f"split(s) {empty} have no fonts; use more font packages or lineages")


def assign_splits(faces: Sequence[Face], config: GlyphConfig) -> list[str]:
    """One split per face, whole lineages at a time: pinned lineages first, then
    the others (largest first, ties in seeded order) to the split furthest
    below its target share of faces."""
    sizes: dict[str, int] = {}
    for face in faces:
        sizes[face.lineage] = sizes.get(face.lineage, 0) + 1
    unknown = sorted({lineage for lineage, _ in config.pinned} - set(sizes))
    if unknown:
        raise GlyphError(f"pinned lineage(s) {unknown} have no faces; known lineages: {sorted(sizes)}")
    if len(sizes) < len(SPLITS):
        raise GlyphError(f"only {len(sizes)} lineage(s) ({sorted(sizes)}): train, validation and test "
                         "need one each; use more font packages")
    target = {"train": 1 - config.val_fraction - config.test_fraction,
              "val": config.val_fraction, "test": config.test_fraction}
    total = sum(sizes.values())
    count = {s: 0 for s in SPLITS}
    chosen = dict(config.pinned)
    for lineage, split in chosen.items():
        count[split] += sizes[lineage]
    rng = np.random.default_rng(config.seed)
    free = [name for name in sorted(sizes) if name not in chosen]
    order = [free[i] for i in rng.permutation(len(free))]
    order.sort(key=lambda name: -sizes[name])
    for position, lineage in enumerate(order):
        left = len(order) - position
        empty = [s for s in SPLITS if count[s] == 0]
        if empty and left <= len(empty):
            split = empty[0]  # keep every split non-empty
        else:
            split = max(SPLITS, key=lambda s: target[s] * total - count[s])
        chosen[lineage] = split
        count[split] += sizes[lineage]
    splits = [chosen[face.lineage] for face in faces]
    check_lineage_split(faces, splits)
    return splits


# ---------------------------------------------------------------------------
# jitter
# ---------------------------------------------------------------------------


def draw_jitter(n: int, jitter: Jitter, generator: torch.Generator) -> torch.Tensor:
    """(n, 7) jitter parameters: rotation (rad), shear, log scale, log aspect,
    shift x and y (output pixels), stroke (master pixels)."""
    u = torch.rand(n, 7, generator=generator, dtype=torch.float64) * 2 - 1
    scale = torch.tensor([np.deg2rad(jitter.rotation_deg), jitter.shear, np.log1p(jitter.scale),
                          np.log1p(jitter.aspect), jitter.shift_px, jitter.shift_px, 1.0], dtype=torch.float64)
    params = u * scale
    low, high = jitter.stroke
    params[:, 6] = low + (u[:, 6] + 1) / 2 * (high - low)
    return params


def apply_jitter(masters: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Jittered (N, 1, 32, 32) uint8 images from (N, 64, 64) uint8 masters and (N, 7)
    parameters: stroke change by blending with a 3x3 dilation (thicker) or
    erosion (thinner), then one affine warp about the image centre, sampled
    at 64x64 and averaged down to 32x32. The same inputs give the same pixels."""
    x = masters.float().div(255.0)[:, None]
    stroke = params[:, 6].float().view(-1, 1, 1, 1)
    dilated = F.max_pool2d(x, 3, 1, 1)
    eroded = -F.max_pool2d(-x, 3, 1, 1)
    x = torch.where(stroke >= 0, x + stroke * (dilated - x), x + (-stroke) * (eroded - x))
    rotation, shear, log_scale, log_aspect, shift_x, shift_y = params[:, :6].T.double()
    scale, aspect = log_scale.exp(), log_aspect.exp()
    cos, sin = rotation.cos(), rotation.sin()
    # forward map (input -> output, normalised coordinates): R @ Shear @ diag(s*a, s/a)
    a11, a12 = scale * aspect * cos, scale / aspect * (cos * shear - sin)
    a21, a22 = scale * aspect * sin, scale / aspect * (sin * shear + cos)
    det = a11 * a22 - a12 * a21
    inverse = torch.stack([torch.stack([a22, -a12], 1), torch.stack([-a21, a11], 1)], 1) / det[:, None, None]
    shift = torch.stack([shift_x, shift_y], 1) * (2.0 / IMAGE_SIZE)
    theta = torch.cat([inverse, -(inverse @ shift[:, :, None])], 2).float()
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = F.avg_pool2d(warped, MASTER_SIZE // IMAGE_SIZE)
    return out.clamp(0, 1).mul(255).round().to(torch.uint8)


# ---------------------------------------------------------------------------
# the dataset
# ---------------------------------------------------------------------------


@dataclass
class GlyphData:
    """A generated glyph dataset: uint8 images (N, 1, 32, 32), labels, the face
    and split of every image, and the manifest (faces, groups, parameters)."""

    images: torch.Tensor
    labels: torch.Tensor
    face: torch.Tensor
    split: torch.Tensor
    manifest: dict
    source: str

    @property
    def groups(self) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(g) for g in self.manifest["groups"])

    def part(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels of one split (``train``, ``val`` or ``test``)."""
        if name not in SPLITS:
            raise GlyphError(f"unknown split {name!r}; allowed: {list(SPLITS)}")
        mask = self.split == SPLITS.index(name)
        return self.images[mask], self.labels[mask]


def _progress(iterable, total: int, desc: str):

    if not interactive():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="face")


def generate(config: GlyphConfig) -> GlyphData:
    """Render the dataset ``config`` describes (no cache; see ``load_glyphs``)."""
    started = time.perf_counter()
    candidates = find_faces(config.packages, config.classes)
    faces: list[Face] = []
    masters: list[np.ndarray] = []
    dropped: list[str] = []
    for face in _progress(candidates, len(candidates), "glyph faces"):
        drawn = render_masters(face, config.classes)
        if drawn is None:
            dropped.append(face.name)
            continue
        faces.append(face)
        masters.append(drawn)
    if not faces:
        raise GlyphError(f"no face of {list(config.packages)} draws every class with ink")
    roots = merge_identical_faces(torch.stack([_signature(m).flatten() for m in masters]), config.identity_tolerance)
    unique = [i for i, r in enumerate(roots) if r == i]
    merged = {faces[i].name: faces[roots[i]].name for i in range(len(faces)) if roots[i] != i}
    rng = np.random.default_rng(config.seed)
    by_lineage: dict[str, list[int]] = {}
    for i in unique:
        by_lineage.setdefault(faces[i].lineage, []).append(i)
    kept: list[int] = []
    for lineage in sorted(by_lineage):
        members = by_lineage[lineage]
        if len(members) > config.max_faces_per_lineage:
            members = sorted(rng.choice(members, config.max_faces_per_lineage, replace=False).tolist())
        kept.extend(members)
    faces = [faces[i] for i in kept]
    masters = [masters[i] for i in kept]
    splits = assign_splits(faces, config)
    groups = find_homoglyph_groups(masters, config.identity_tolerance, config.group_threshold)
    source = group_representatives(len(config.classes), groups) if config.variant == "tied" \
        else np.arange(len(config.classes))

    generator = torch.Generator().manual_seed(config.seed)
    params = draw_jitter(len(faces) * config.renders_per_face, config.jitter, generator)
    k = len(config.classes)
    images, labels, face_ids, split_ids = [], [], [], []
    for f, drawn in enumerate(masters):
        block = torch.from_numpy(drawn[source])  # (K, 64, 64): the tied variant repeats representatives
        for r in range(config.renders_per_face):
            p = params[f * config.renders_per_face + r].expand(k, -1)
            images.append(apply_jitter(block, p))
            labels.append(torch.arange(k))
            face_ids.append(torch.full((k,), f))
            split_ids.append(torch.full((k,), SPLITS.index(splits[f])))
    images_t, labels_t = torch.cat(images), torch.cat(labels)
    face_t, split_t = torch.cat(face_ids).int(), torch.cat(split_ids).to(torch.int8)
    digest = hashlib.sha256()
    for array in (images_t, labels_t, face_t, split_t):
        digest.update(array.numpy().tobytes())
    counts = {s: splits.count(s) for s in SPLITS}
    manifest = {
        "dataset": "glyphs", "params": config.record(), "key": config.key(),
        "classes": list(config.classes), "class_names": [class_name(c) for c in config.classes],
        "groups": [list(g) for g in groups],
        "group_characters": ["".join(config.classes[c] for c in g) for g in groups],
        "faces": [{**asdict(face), "name": face.name, "split": split} for face, split in zip(faces, splits)],
        "lineages": {s: sorted({f.lineage for f, t in zip(faces, splits) if t == s}) for s in SPLITS},
        "faces_per_split": counts,
        "candidates": len(candidates), "dropped_no_ink_or_off_canvas": dropped, "merged_identical": merged,
        "content_sha256": digest.hexdigest(),
        "generation_seconds": round(time.perf_counter() - started, 1),
        "note": "font files are not redistributed: each face names its Debian package and licence",
    }
    return GlyphData(images=images_t, labels=labels_t, face=face_t, split=split_t, manifest=manifest,
                     source="generated")


# ---------------------------------------------------------------------------
# cache
# ---------------------------------------------------------------------------


def cache_paths(config: GlyphConfig, root: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """The data file and manifest of ``config`` under ``root`` (default:
    ``calibkd.config.generated_dir()``)."""

    folder = Path(root).expanduser() if root else generated_dir()
    stem = f"glyphs-{config.variant}-{config.key()}"
    return folder / f"{stem}.npz", folder / f"{stem}.json"


def save(data: GlyphData, path: Path) -> None:
    """Write the arrays (compressed npz) and then the manifest, both atomically."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=data.images.numpy(), labels=data.labels.numpy().astype(np.int16),
                        face=data.face.numpy().astype(np.int16), split=data.split.numpy())
    atomic_write_bytes(path, buffer.getvalue())
    atomic_write_text(path.with_suffix(".json"), json.dumps(data.manifest, indent=1, ensure_ascii=False))


def read(path: Path, config: GlyphConfig | None = None) -> GlyphData:
    """Read a cache file; with ``config``, refuse one written with other parameters."""
    path = Path(path)
    manifest_path = path.with_suffix(".json")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise GlyphCacheError(f"glyph manifest {manifest_path} is missing or unreadable ({error}); "
                              "delete the pair of files to regenerate") from None
    if config is not None:
        expected = json.loads(json.dumps(config.record()))
        if manifest.get("params") != expected:
            differ = sorted(k for k in set(expected) | set(manifest.get("params", {}))
                            if expected.get(k) != manifest.get("params", {}).get(k))
            raise GlyphCacheError(f"glyph cache {path} was written with other parameters (differ: {differ}); "
                                  "delete it or pass the parameters it was made with")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            images, labels = arrays["images"], arrays["labels"].astype(np.int64)
            face, split = arrays["face"].astype(np.int32), arrays["split"]
    except Exception as error:
        raise GlyphCacheError(f"glyph cache {path} is corrupt ({type(error).__name__}: {error}); "
                              "delete it to regenerate") from None
    if images.ndim != 4 or images.shape[1:] != (1, IMAGE_SIZE, IMAGE_SIZE) or not (
            len(images) == len(labels) == len(face) == len(split)):
        raise GlyphCacheError(f"glyph cache {path} holds arrays of unexpected shapes; delete it to regenerate")
    return GlyphData(torch.from_numpy(images), torch.from_numpy(labels), torch.from_numpy(face),
                     torch.from_numpy(split), manifest, source=str(path))


def load_glyphs(config: GlyphConfig, root: str | os.PathLike | None = None, generate_missing: bool = True) -> GlyphData:
    """The dataset ``config`` describes: from its cache file, or generated and
    cached (when ``generate_missing``). Raises ``FontsMissingError`` naming the
    install command when the fonts are needed but not installed."""
    path, _ = cache_paths(config, root)
    if path.is_file() and path.with_suffix(".json").is_file():
        return read(path, config)
    if not generate_missing:
        raise FileNotFoundError(f"no glyph cache {path}; run: python -m calibkd.data.glyphs")
    data = generate(config)
    save(data, path)
    data.source = str(path)
    return data


def describe(data: GlyphData) -> str:
    """One paragraph: faces, lineages, groups, sizes per split."""
    m = data.manifest
    sizes = {s: int((data.split == i).sum()) for i, s in enumerate(SPLITS)}
    lineages = sum(len(v) for v in m["lineages"].values())
    grouped = sum(len(g) for g in m["groups"])
    return (f"glyphs ({m['params']['variant']}): {len(m['faces'])} faces from {lineages} lineages "
            f"(of {m['candidates']} covering faces; {len(m['merged_identical'])} merged as identical), "
            f"{len(m['groups'])} homoglyph groups covering {grouped} classes; images "
            f"train {sizes['train']:,} / val {sizes['val']:,} / test {sizes['test']:,}; "
            f"generated in {m['generation_seconds']} s")


def save_group_figure(data: GlyphData, path: str | os.PathLike, faces: int = 8) -> None:
    """The example grid: one row per homoglyph group, members side by side for
    ``faces`` faces (the first face of evenly spaced lineages), as a PNG."""
    from calibkd import plots

    manifest = data.manifest
    by_lineage: dict[str, int] = {}
    for i, face in enumerate(manifest["faces"]):
        by_lineage.setdefault(face["lineage"], i)
    lineages = sorted(by_lineage)
    picks = [by_lineage[lineages[round(j * (len(lineages) - 1) / max(faces - 1, 1))]]
             for j in range(min(faces, len(lineages)))]
    picks = list(dict.fromkeys(picks))
    names = [manifest["faces"][i]["name"] for i in picks]
    groups = [tuple(g) for g in manifest["groups"]]
    plots.set_style()
    fig = plots.glyph_group_grid(data.images, data.labels, data.face, groups, manifest["class_names"], picks, names)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    atomic_write_bytes(Path(path), buffer.getvalue())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate (or find) the cached glyph dataset.")
    parser.add_argument("--size", default="default", choices=sorted(GLYPH_SIZES))
    parser.add_argument("--variant", default="all", choices=[*VARIANTS, "all"])
    parser.add_argument("--root", default=None, help="cache folder (default: calibkd.config.generated_dir())")
    parser.add_argument("--figure", default=None,
                        help="also draw the homoglyph-group grid of the natural variant to this PNG")
    args = parser.parse_args(argv)
    try:
        for variant in VARIANTS if args.variant == "all" else (args.variant,):
            data = load_glyphs(glyph_config(args.size, variant), args.root)
            print(f"{describe(data)}\n  {data.source}")
        if args.figure:
            save_group_figure(load_glyphs(glyph_config(args.size, "natural"), args.root), args.figure)
            print(f"figure: {args.figure}")
    except (FontsMissingError, GlyphError, GlyphCacheError) as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
