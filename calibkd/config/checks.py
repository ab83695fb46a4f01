"""Small checks whose messages name the parameter and its allowed values."""

from __future__ import annotations

import math
from typing import Any

from calibkd.errors import ConfigError


def check_int(name: str, value: Any, minimum: int) -> None:
    """An integer (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}={value!r} must be an integer")
    if value < minimum:
        raise ConfigError(f"{name}={value!r} must be at least {minimum}")


def check_float(
    name: str, value: Any, low: float, high: float,
    low_open: bool = False, high_open: bool = False,
) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name}={value!r} must be a finite number")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        left, right = ("(" if low_open else "["), (")" if high_open else "]")
        raise ConfigError(f"{name}={value!r} is out of range; allowed: {left}{low}, {high}{right}")


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; allowed values: {list(choices)}")
