"""``greedy`` for connect4: win now, else block, else play near the centre.

Reads only what an agent is given: the observation (channel 0 its own pieces, channel 1 the opponent's,
row 0 on top) and the action mask. For each row, among the legal columns:

1. a column where its own piece would make four in a row;
2. else a column where the opponent's piece would make four (block it);
3. else the most central one.

Candidates are always tried in the centre order 3, 2, 4, 1, 5, 0, 6, so ties go to the earliest column in
that order. Deterministic; one numba kernel over the whole batch.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from arenas.connect4.nb import COLS, ROWS, makes_four_nb

from .base import Agent

CENTRE_ORDER = np.array([3, 2, 4, 1, 5, 0, 6], dtype=np.int64)


@nb.njit(cache=True, parallel=True)
def greedy_connect4_nb(obs, mask, order, out):
    """``obs`` (B, 6, 7, 2), ``mask`` (B, 7), ``order`` the centre order; writes one column per row to ``out``.

    Rows without a legal column get 0.
    """
    for i in nb.prange(obs.shape[0]):
        choice = -1
        for plane in range(2):  # 0: a winning drop of ours; 1: a winning drop of theirs to block
            grid = obs[i, :, :, plane]
            for j in range(COLS):
                c = order[j]
                if mask[i, c] == 0:
                    continue
                r = ROWS - 1
                while r >= 0 and (obs[i, r, c, 0] != 0 or obs[i, r, c, 1] != 0):
                    r -= 1
                if r >= 0 and makes_four_nb(grid, r, c, 1):
                    choice = c
                    break
            if choice >= 0:
                break
        if choice < 0:
            for j in range(COLS):
                if mask[i, order[j]] != 0:
                    choice = order[j]
                    break
        out[i] = max(choice, 0)


class Connect4Greedy(Agent):
    """Wins when it can, blocks the opponent's immediate win, otherwise plays the most central column."""

    name = "greedy"

    def __init__(self, game=None, seed: int = 0, **kwargs):
        super().__init__(game, seed, **kwargs)   # unknown --agent-arg keys are an error

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        obs = np.ascontiguousarray(obs, dtype=np.int8)
        if obs.shape[1:] != (ROWS, COLS, 2):
            raise ValueError(f"greedy (connect4) expects observations of shape (B, {ROWS}, {COLS}, 2), "
                             f"got {obs.shape}")
        out = np.empty(obs.shape[0], dtype=np.int64)
        greedy_connect4_nb(obs, np.ascontiguousarray(mask, dtype=np.int8), CENTRE_ORDER, out)
        return out
