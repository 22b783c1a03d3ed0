"""The arena registry: names to game classes and adapters.

Built-in arenas register here; installed packages add theirs through the entry-point group
``arena.arenas`` (the entry point names an ``ArenaSpec`` or a ``BatchedGame`` subclass).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable

from simcore.plugins import load_module_attr  # built-in targets are "module:Attr"


@dataclass(frozen=True)
class ArenaSpec:
    """What the registry knows about one arena."""

    name: str
    #: the ``BatchedGame`` subclass; called as ``game(num_matches=N, **options)``
    game: type
    #: one match as a PettingZoo env (AEC or Parallel); called as ``pettingzoo(**options)``
    pettingzoo: Callable[..., Any] | None = None
    #: one line for ``arena list``
    description: str = ""
    #: the options ``make`` accepts, with their defaults (shown by ``arena list``)
    defaults: dict[str, Any] = field(default_factory=dict)


_BUILTIN = {
    "connect4": "arenas.connect4:SPEC",
    "battle": "arenas.battle:SPEC",
    "tag": "arenas.tag:SPEC",
}
ENTRY_POINT_GROUP = "arena.arenas"


class UnknownArena(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def names() -> list[str]:
    """Every arena name on offer: built-in first, then installed entry points."""
    return list(_BUILTIN) + sorted(n for n in _entry_points() if n not in _BUILTIN)


def _as_spec(obj: Any, name: str) -> ArenaSpec:
    if isinstance(obj, ArenaSpec):
        return obj
    if isinstance(obj, type):
        return ArenaSpec(name=getattr(obj, "name", "") or name, game=obj, description=(obj.__doc__ or "").strip().split("\n")[0])
    raise TypeError(f"arena {name!r} must name an ArenaSpec or a BatchedGame subclass, got {type(obj).__name__}")


def get(name: str) -> ArenaSpec:
    """The spec of arena ``name``; raises ``UnknownArena`` naming the choices."""
    if name in _BUILTIN:
        return load_module_attr(_BUILTIN[name])
    eps = _entry_points()
    if name in eps:
        try:
            return _as_spec(eps[name].load(), name)
        except Exception as exc:
            raise UnknownArena(f"cannot load arena entry point {name!r}: {type(exc).__name__}: {exc}") from None
    if ":" in name:
        from simcore.plugins import PluginError, load_attr
        try:
            return _as_spec(load_attr(name), name)
        except (PluginError, TypeError) as exc:
            raise UnknownArena(str(exc)) from None
    raise UnknownArena(f"unknown arena {name!r}; choose from: {', '.join(names())} "
                       f"(or a module:Class / path/to/file.py:Class of your own)")
