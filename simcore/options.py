"""Arena options: parsing ``key=value`` from the command line, and the checks an arena's options go through."""
from __future__ import annotations

import math
from typing import Any

import numpy as np


def parse_value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """``["team_size=16", "view=9"]`` -> ``{"team_size": 16, "view": 9}``; raises ValueError on bad form."""
    out: dict[str, Any] = {}
    for item in items or []:
        for part in item.split(","):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"option {part!r} is not of the form key=value")
            out[key.strip()] = parse_value(value.strip())
    return out


def check_int(arena: str, name: str, value: Any, lo: int, hi: int) -> int:
    """``value`` as an int in ``[lo, hi]``; a ``ValueError`` naming the arena's option otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise ValueError(f"{arena} option {name} must be an integer in [{lo}, {hi}], got {value!r}")
    return int(value)


def check_float(arena: str, name: str, value: Any) -> float:
    """``value`` as a finite float; a ``ValueError`` naming the arena's option otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value):
        raise ValueError(f"{arena} option {name} must be a finite number, got {value!r}")
    return float(value)

