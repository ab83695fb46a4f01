"""The project's error types, in one leaf module every layer may import."""

from __future__ import annotations


class ConfigError(ValueError):
    """A parameter is unknown or out of range; raised before any training."""


class CheckpointError(RuntimeError):
    """A cached model or record is missing, corrupt, or does not match its key."""
