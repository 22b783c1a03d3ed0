"""simcore: the batched game engine contract, per-match RNG and conformance checks.

Knows nothing of torch, zmq, pygame or any one game.
"""
from .game import DRAW, BatchedGame
from .check import check_arena
from .rng import seed_states

__all__ = ["BatchedGame", "DRAW", "check_arena", "seed_states"]
