"""Make sure a dataset is on disk: ``python -m calibkd.fetch_data [dataset]``.

For Fashion-MNIST it installs Debian's ``dataset-fashion-mnist`` with apt when
the files are missing and apt can be used (root), and otherwise lets
torchvision download it. Exits non-zero with the list of fixes if neither works.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from calibkd.data import DEBIAN_PACKAGE, DataNotFoundError, find_dataset


def _apt_install(package: str) -> bool:
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return False
    print(f"installing Debian package {package} with apt-get ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    quiet = {"stdout": subprocess.DEVNULL}
    if subprocess.run(["apt-get", "install", "-y", "-q", package], env=env, check=False, **quiet).returncode == 0:
        return True
    subprocess.run(["apt-get", "update", "-q"], env=env, check=False, **quiet)
    return subprocess.run(["apt-get", "install", "-y", "-q", package], env=env, check=False, **quiet).returncode == 0


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


def main() -> int:
    dataset = sys.argv[1] if len(sys.argv) > 1 else "fashion_mnist"
    try:
        print(f"{dataset}: {ensure(dataset)}")
    except DataNotFoundError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
