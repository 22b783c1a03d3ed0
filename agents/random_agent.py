"""``random``: a uniformly random legal action per row, for any arena.

With continuous actions (a game whose ``single_action_space`` is a ``Box``) each row gets a vector
uniform in the Box (bounds taken as [-1, 1] where infinite), in the Box's dtype."""
from __future__ import annotations

import numba as nb
import numpy as np

from simcore.check import uniform_in_box

from .base import Agent


@nb.njit(cache=True, parallel=True)
def pick_legal_nb(mask, u, out):
    """For each row pick the ``floor(u * count)``-th legal action of ``mask``; 0 if none is legal.

    Also the benchmark's way of turning pre-drawn uniform numbers into legal actions."""
    for i in nb.prange(mask.shape[0]):
        count = 0
        for j in range(mask.shape[1]):
            count += mask[i, j] != 0
        out[i] = 0
        if count == 0:
            continue
        k = int(u[i] * count)
        for j in range(mask.shape[1]):
            if mask[i, j] != 0:
                if k == 0:
                    out[i] = j
                    break
                k -= 1


class RandomAgent(Agent):
    """Picks uniformly among the legal actions of each row."""

    name = "random"

    def __init__(self, game=None, seed: int = 0, **kwargs):
        super().__init__(game, seed, **kwargs)   # unknown --agent-arg keys are an error
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self.rng = np.random.default_rng(self.seed)

    def reseed(self, seed: int) -> None:
        """Restart the stream (the game server does this per batch, so a re-sent batch gets the same actions)."""
        self.rng = np.random.default_rng(seed)

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if getattr(self.game, "continuous_actions", False):
            space = self.game.single_action_space
            return uniform_in_box(space, self.rng.random((mask.shape[0],) + tuple(space.shape)))
        out = np.empty(mask.shape[0], dtype=np.int64)
        pick_legal_nb(np.ascontiguousarray(mask), self.rng.random(mask.shape[0]), out)
        return out
