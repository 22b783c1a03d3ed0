"""arenas: the concrete games, their PettingZoo and Gymnasium adapters, and the registry.

    import arenas
    game = arenas.make("battle", num_matches=4096, seed=0)        # the batched game (simcore contract)
    env = arenas.make_pettingzoo("connect4")                       # one match, PettingZoo AEC
    env = arenas.make_pettingzoo("battle")                         # one match, PettingZoo Parallel
    venv = arenas.make_vector("battle", num_envs=1024, seed=0)     # Gymnasium-style vector view
"""
from __future__ import annotations

from typing import Any

from .registry import ArenaSpec, UnknownArena, get, names


def make(name: str, num_matches: int = 1, seed: int | None = None, **options: Any):
    """Create the batched game ``name`` with ``num_matches`` matches, reset with ``seed``."""
    spec = get(name)
    game = spec.game(num_matches=num_matches, **options)
    game.reset(seed=seed)
    return game


def make_pettingzoo(name: str, **options: Any):
    """One match of ``name`` as a PettingZoo env: AEC for turn-based games, Parallel otherwise."""
    spec = get(name)
    if spec.pettingzoo is None:
        raise ValueError(f"arena {name!r} has no PettingZoo adapter")
    return spec.pettingzoo(**options)


def make_vector(name: str, num_envs: int, seed: int | None = None, **options: Any):
    """The Gymnasium-style vector view of ``name``: one row per (match, seat); see ``arenas.vector``."""
    from .vector import BatchedVectorEnv

    return BatchedVectorEnv(name, num_envs=num_envs, seed=seed, **options)


__all__ = ["ArenaSpec", "UnknownArena", "get", "make", "make_pettingzoo", "make_vector", "names"]
