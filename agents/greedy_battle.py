"""``greedy`` for battle: attack an adjacent enemy, else close in on the nearest visible one.

Per row, from the observation alone (any odd window size, uint8 or float32 channels):

1. an enemy in one of the four adjacent cells: attack it (the lowest hit points first; ties in the
   order up, down, left, right);
2. else an enemy in view: step towards the nearest one (Manhattan distance, ties in scan order) along
   the axis with the larger gap (vertical on a tie), or along the other axis when that cell is blocked;
   when both are blocked, a random unblocked move;
3. no enemy in view: a random unblocked move (stay when boxed in).

"Blocked" means a wall or any agent in the cell. Random choices come from the agent's own seeded
generator, so the same seed and observations give the same actions. Rows whose mask allows no move
(dead agents) get action 0.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from .random_agent import RandomAgent

_DR = np.array([-1, 1, 0, 0], dtype=np.int64)  # up, down, left, right
_DC = np.array([0, 0, -1, 1], dtype=np.int64)
_MOVE0 = 1    # action of "move up"; +d for direction d
_ATTACK0 = 5  # action of "attack up"; +d for direction d


@nb.njit(cache=True)
def _free_nb(obs, b, r, c):
    return obs[b, r, c, 0] == 0 and obs[b, r, c, 1] == 0 and obs[b, r, c, 2] == 0


@nb.njit(cache=True)
def _random_move_nb(obs, mask, b, c, u):
    """The ``floor(u * count)``-th unblocked legal move of row ``b``; 0 (stay) when there is none."""
    count = 0
    for d in range(4):
        if mask[b, _MOVE0 + d] != 0 and _free_nb(obs, b, c + _DR[d], c + _DC[d]):
            count += 1
    if count == 0:
        return 0
    k = int(u * count)
    for d in range(4):
        if mask[b, _MOVE0 + d] != 0 and _free_nb(obs, b, c + _DR[d], c + _DC[d]):
            if k == 0:
                return _MOVE0 + d
            k -= 1
    return 0


@nb.njit(cache=True)
def greedy_battle_nb(obs, mask, u, out):
    """One greedy action per row of ``obs`` ``(B, V, V, 4)`` into ``out``; ``u`` uniform floats ``(B,)``."""
    v = obs.shape[1]
    c = v // 2
    for b in range(obs.shape[0]):
        out[b] = 0
        # 1. adjacent enemy with the lowest hp
        best = -1
        best_hp = 0.0
        for d in range(4):
            r, q = c + _DR[d], c + _DC[d]
            if obs[b, r, q, 2] > 0 and mask[b, _ATTACK0 + d] != 0:
                h = float(obs[b, r, q, 3])
                if best < 0 or h < best_hp:
                    best, best_hp = d, h
        if best >= 0:
            out[b] = _ATTACK0 + best
            continue
        # 2. nearest visible enemy
        er, ec, dist = -1, -1, 1 << 30
        for r in range(v):
            for q in range(v):
                if obs[b, r, q, 2] > 0:
                    dd = abs(r - c) + abs(q - c)
                    if dd < dist:
                        er, ec, dist = r, q, dd
        if er < 0:
            out[b] = _random_move_nb(obs, mask, b, c, u[b])
            continue
        dy, dx = er - c, ec - c
        vert = 1 if dy > 0 else 0       # direction index: down / up
        horiz = 3 if dx > 0 else 2      # right / left
        if abs(dy) >= abs(dx):
            first, second, has_second = vert, horiz, dx != 0
        else:
            first, second, has_second = horiz, vert, dy != 0
        if mask[b, _MOVE0 + first] != 0 and _free_nb(obs, b, c + _DR[first], c + _DC[first]):
            out[b] = _MOVE0 + first
        elif has_second and mask[b, _MOVE0 + second] != 0 and _free_nb(obs, b, c + _DR[second], c + _DC[second]):
            out[b] = _MOVE0 + second
        else:
            out[b] = _random_move_nb(obs, mask, b, c, u[b])


class BattleGreedy(RandomAgent):
    """Scripted battle player: attack adjacent enemies, chase visible ones, wander otherwise.

    It takes ``RandomAgent``'s seeded generator (``self.rng``, restarted by ``reset(seed)``) for its
    random moves and replaces ``act``.
    """

    name = "greedy"

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if obs.ndim != 4 or obs.shape[1] != obs.shape[2] or obs.shape[1] % 2 == 0 or obs.shape[3] != 4:
            raise ValueError(f"BattleGreedy expects battle observations (B, view, view, 4) with an odd view, "
                             f"got shape {obs.shape}")
        out = np.empty(obs.shape[0], dtype=np.int64)
        greedy_battle_nb(np.ascontiguousarray(obs), np.ascontiguousarray(mask), self.rng.random(obs.shape[0]), out)
        return out
