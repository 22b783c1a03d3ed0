"""``greedy`` for tag: adversaries chase the nearest good agent, good agents flee the nearest adversary.

Per row, from the observation alone (layout in the ``arenas.tag`` docstring):

- an adversary heads for the nearest good agent (Euclidean, ties to the lower seat);
- a good agent heads straight away from the nearest adversary, except that along an axis where it is
  already past 0.8 from the centre it heads back inwards (the bound penalty starts at 0.9);
- obstacles are ignored.

The heading becomes a discrete move along its larger component (``1``/``2`` for -x/+x, ``3``/``4`` for
-y/+y, the x axis on a tie, ``0`` when there is nowhere to go), or, with continuous actions, the
vector ``[0, max(-x, 0), max(x, 0), max(-y, 0), max(y, 0)]`` scaled so that its largest component is 1.

Which side a row plays is read from the width of the observations: the agent is asked once per team
with that team's rows cut to its observation space (``simcore.game``): 16 numbers for adversaries
and 14 for good agents with the defaults. It needs the game it plays for the sizes, and draws no
random numbers.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from .base import Agent

EDGE = 0.8  # beyond this |coordinate| a fleeing good agent turns back inwards


@nb.njit(cache=True)
def heading_nb(obs, adversary, num_adv, num_good, num_obstacles, out):
    """The heading ``(x, y)`` of each row into ``out`` ``(B, 2)``."""
    others = 4 + 2 * num_obstacles    # offset of the other agents' relative positions
    for b in range(obs.shape[0]):
        o = obs[b]
        if adversary:   # the good agents are the last num_good of the others
            first, count, sign = others + 2 * (num_adv - 1), num_good, 1.0
        else:           # the adversaries are the first num_adv of the others
            first, count, sign = others, num_adv, -1.0
        best = -1
        best_d = np.inf
        for j in range(count):
            dx = o[first + 2 * j]
            dy = o[first + 2 * j + 1]
            d = dx * dx + dy * dy
            if d < best_d:
                best, best_d = j, d
        hx = 0.0
        hy = 0.0
        if best >= 0:
            hx = sign * o[first + 2 * best]
            hy = sign * o[first + 2 * best + 1]
        if not adversary:
            if o[2] > EDGE:
                hx = -1.0
            elif o[2] < -EDGE:
                hx = 1.0
            if o[3] > EDGE:
                hy = -1.0
            elif o[3] < -EDGE:
                hy = 1.0
        out[b, 0] = hx
        out[b, 1] = hy


def discrete_moves(heading: np.ndarray) -> np.ndarray:
    """One Discrete(5) move per heading ``(B, 2)``: along the larger component (x on a tie), 0 if none."""
    hx, hy = heading[:, 0], heading[:, 1]
    along_x = np.abs(hx) >= np.abs(hy)
    move = np.where(along_x, np.where(hx > 0, 2, 1), np.where(hy > 0, 4, 3))
    return np.where((hx == 0) & (hy == 0), 0, move).astype(np.int64)


def continuous_moves(heading: np.ndarray) -> np.ndarray:
    """One Box(0, 1, (5,)) action per heading ``(B, 2)``, its largest component 1 (zeros if none)."""
    scale = np.abs(heading).max(axis=1, keepdims=True)
    h = np.divide(heading, scale, out=np.zeros_like(heading), where=scale > 0)
    out = np.zeros((heading.shape[0], 5), dtype=np.float32)
    out[:, 1], out[:, 2] = np.maximum(-h[:, 0], 0), np.maximum(h[:, 0], 0)
    out[:, 3], out[:, 4] = np.maximum(-h[:, 1], 0), np.maximum(h[:, 1], 0)
    return out


class TagGreedy(Agent):
    """Scripted tag player for either side: chase (adversaries) or flee (good agents), see the module."""

    name = "greedy"

    def __init__(self, game=None, seed: int = 0, **kwargs):
        super().__init__(game, seed, **kwargs)   # unknown --agent-arg keys are an error
        if game is None or getattr(game, "name", "") != "tag":
            raise ValueError("the tag greedy agent needs the tag game it plays (for its numbers of agents)")
        from arenas.tag.game import obs_sizes

        self.num_adv, self.num_good, self.num_obstacles = game.num_adversaries, game.num_good, game.num_obstacles
        self.adversary_width, self.good_width = obs_sizes(self.num_good, self.num_adv, self.num_obstacles)
        self.continuous = bool(game.continuous_actions)

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if obs.ndim != 2 or obs.shape[1] not in (self.adversary_width, self.good_width):
            raise ValueError(f"the tag greedy agent expects the rows of one team: (B, {self.adversary_width}) for "
                             f"adversaries or (B, {self.good_width}) for good agents, got {obs.shape}")
        heading = np.empty((obs.shape[0], 2), dtype=np.float64)
        heading_nb(np.ascontiguousarray(obs), obs.shape[1] == self.adversary_width, self.num_adv, self.num_good,
                   self.num_obstacles, heading)
        return continuous_moves(heading) if self.continuous else discrete_moves(heading)
