"""Agents by name: the built-in ones, per arena where the agent is game-specific."""
from __future__ import annotations

from typing import Any

from .base import Agent
from simcore.plugins import load_module_attr  # built-in targets are "module:Attr"

# name -> {arena name or "*": "module:Class"}
_BUILTIN: dict[str, dict[str, str]] = {
    "random": {"*": "agents.random_agent:RandomAgent"},
    "greedy": {
        "connect4": "agents.greedy_connect4:Connect4Greedy",
        "battle": "agents.greedy_battle:BattleGreedy",
        "tag": "agents.greedy_tag:TagGreedy",
    },
    "search": {"connect4": "agents.search_connect4:Connect4Search"},
}


class UnknownAgent(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def names(arena: str | None = None) -> list[str]:
    """Built-in agent names, only those that play ``arena`` when one is given."""
    return [n for n, by in _BUILTIN.items() if arena is None or "*" in by or arena in by]


def arenas_of(name: str) -> list[str]:
    return list(_BUILTIN.get(name, {}))


def make_agent(name: str, game, seed: int = 0, **kwargs: Any) -> Agent:
    """Build agent ``name`` for ``game`` (a ``BatchedGame``), seeded with ``seed``."""
    by_arena = _BUILTIN.get(name)
    arena = getattr(game, "name", "")
    if by_arena is None:
        raise UnknownAgent(f"unknown agent {name!r} for arena {arena!r}; choose from: {', '.join(names(arena))}")
    target = by_arena.get(arena) or by_arena.get("*")
    if target is None:
        raise UnknownAgent(f"agent {name!r} does not play {arena!r} (it plays {', '.join(by_arena)}); "
                           f"choose from: {', '.join(names(arena))}")
    agent = load_module_attr(target)(game, seed=seed, **kwargs)
    agent.name = name
    return agent
