"""Make sure a dataset is on disk: ``python -m calibkd.data.fetch [dataset] [--size smoke]``.

For Fashion-MNIST it installs Debian's ``dataset-fashion-mnist`` with apt when
the files are missing and apt can be used (root), and otherwise lets
torchvision download it. Exits non-zero with the list of fixes if neither works.

For ``glyphs`` it installs the Debian font packages the glyph dataset is
rendered from (``calibkd.data.glyphs.FONT_PACKAGES``; with ``--size smoke`` only the
four small packages the tests use); the images themselves are generated, on
first use or with ``python -m calibkd.data.glyphs``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

from calibkd.data import glyphs  # module access: tests replace glyphs.missing_packages
from calibkd.data.glyphs import (
    FontsMissingError,
    GlyphError,
    glyph_config,
    install_command,
)
from calibkd.data.splits import DEBIAN_PACKAGE, DataNotFoundError, find_dataset
from calibkd.errors import ConfigError


def _apt_install(*packages: str) -> bool:
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return False
    print(f"installing Debian package(s) {' '.join(packages)} with apt-get ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    quiet = {"stdout": subprocess.DEVNULL}
    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    if subprocess.run(command, env=env, check=False, **quiet).returncode == 0:
        return True
    subprocess.run(["apt-get", "update", "-q"], env=env, check=False, **quiet)
    return subprocess.run(command, env=env, check=False, **quiet).returncode == 0


def ensure_fonts(size: str = "default") -> list[str]:
    """Install the font packages of glyph size ``size`` that are missing (as
    root, with apt-get); returns the packages. Raises ``FontsMissingError``
    naming the install command when they cannot be installed."""

    packages = list(glyph_config(size).packages)
    missing = glyphs.missing_packages(packages)
    if missing:
        _apt_install(*missing)
        missing = glyphs.missing_packages(packages)
    if missing:
        raise FontsMissingError(f"font package(s) not installed: {missing}\nInstall them with:\n  "
                                f"{install_command(missing, smoke=size == 'smoke')}")
    return packages


def ensure(dataset: str = "fashion_mnist") -> str:
    """The folder holding ``dataset``, installing or downloading it if needed."""
    try:
        return str(find_dataset(dataset, allow_download=False))
    except DataNotFoundError:
        pass
    if dataset == "fashion_mnist" and _apt_install(DEBIAN_PACKAGE):
        try:
            return str(find_dataset(dataset, allow_download=False))
        except DataNotFoundError:
            pass
    return str(find_dataset(dataset))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Make sure a dataset (or the glyph fonts) is on this machine.")
    parser.add_argument("dataset", nargs="?", default="fashion_mnist",
                        help="fashion_mnist, cifar10, cifar100, or glyphs (installs the fonts)")
    parser.add_argument("--size", default="default", help="glyphs only: default or smoke (a few small packages)")
    args = parser.parse_args(argv)

    try:
        if args.dataset in ("glyphs", "glyphs_natural"):
            packages = ensure_fonts(args.size)
            print(f"glyphs ({args.size}): {len(packages)} font packages installed; "
                  "the images are generated on first use (or: python -m calibkd.data.glyphs)")
        elif args.dataset == "mixture":
            print("mixture: sampled in memory by calibkd.data.mixture, nothing to fetch")
        else:
            print(f"{args.dataset}: {ensure(args.dataset)}")
    except (ConfigError, DataNotFoundError, FontsMissingError, GlyphError) as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
