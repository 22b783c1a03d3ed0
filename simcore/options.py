"""Parsing ``key=value`` options from the command line into Python values."""
from __future__ import annotations

from typing import Any


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
