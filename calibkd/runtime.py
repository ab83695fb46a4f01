"""Process-wide settings that make runs repeatable: seeds, threads, device."""

from __future__ import annotations

import os
import random
import sys

import numpy as np
import torch


def set_determinism(seed: int, num_threads: int | None = None) -> None:
    """Seed Python, NumPy and torch, and fix the number of CPU threads.

    Same seed and thread count on the same machine give the same numbers,
    which is what lets nbval compare notebook outputs.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; ``"cuda"`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but no CUDA GPU is available; use 'auto' or 'cpu'")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; allowed: ['auto', 'cpu', 'cuda']")
    return torch.device(name)


def interactive() -> bool:
    """True in a live notebook or terminal; False under papermill, nbval or CI,
    where tqdm's redraws would flood the saved output.

    ``$CALIBKD_PROGRESS`` (1 or 0) overrides the guess. Kernels started by a
    Jupyter server carry ``JPY_SESSION_NAME``; headless executors do not.
    """
    if os.environ.get("CALIBKD_PROGRESS") in ("0", "1"):
        return os.environ["CALIBKD_PROGRESS"] == "1"
    if os.environ.get("CI"):
        return False
    return bool(os.environ.get("JPY_SESSION_NAME")) or sys.stderr.isatty()
