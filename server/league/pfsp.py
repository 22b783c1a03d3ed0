"""Prioritized fictitious self-play (PFSP): how likely each opponent is to be picked.

AlphaStar (Vinyals et al. 2019, "Grandmaster level in StarCraft II using multi-agent reinforcement
learning", Methods and the supplementary pseudocode's ``pfsp`` function) picks an opponent ``B`` for
learner ``A`` with probability ``f(P[A beats B]) / sum_C f(P[A beats C])``, where ``x = P[A beats B]``
is ``A``'s (decayed) win rate against ``B`` (``payoff.Payoff.win_rate``; 0.5 before any game):

| kind         | f(x)          | plays most                                   | AlphaStar name |
| ------------ | ------------- | -------------------------------------------- | -------------- |
| ``hard``     | (1 - x) ** p  | the opponents it loses to; p = 2 by default  | ``squared``    |
| ``variance`` | x (1 - x)     | opponents of its own level (x near 0.5)      | ``variance``   |
| ``linear``   | 1 - x         | like ``hard``, gentler                       | ``linear``     |

``hard`` with a large ``p`` approaches "always the hardest opponent"; ``p = 1`` is ``linear``. When every
weight is 0 (it beats everyone, or with ``variance`` every rate is 0 or 1) the pick is uniform, as in
the pseudocode (there: a sum below 1e-10).
"""
from __future__ import annotations

import numpy as np

from . import LeagueError

KINDS = ("hard", "variance", "linear")
#: the exponent of ``hard`` (AlphaStar's "squared" weighting)
DEFAULT_P = 2.0
#: a total weight below this counts as 0, and the pick is uniform (the AlphaStar pseudocode's bound)
ZERO_WEIGHT = 1e-10


def weights(win_rates: np.ndarray, kind: str = "hard", p: float = DEFAULT_P) -> np.ndarray:
    """The unnormalised weights f(x) of ``win_rates`` (each in [0, 1]) for the PFSP ``kind``."""
    x = np.asarray(win_rates, dtype=np.float64)
    if x.size and (not np.all(np.isfinite(x)) or x.min() < 0.0 or x.max() > 1.0):
        raise LeagueError(f"win rates must lie in [0, 1], got {x.tolist()}")
    if kind == "hard":
        if not p > 0:
            raise LeagueError(f"the PFSP exponent p must be > 0, got {p}")
        return (1.0 - x) ** p
    if kind == "variance":
        return x * (1.0 - x)
    if kind == "linear":
        return 1.0 - x
    raise LeagueError(f"unknown PFSP weighting {kind!r} (expected one of {', '.join(KINDS)})")


def probabilities(win_rates: np.ndarray, kind: str = "hard", p: float = DEFAULT_P) -> np.ndarray:
    """The probability of picking each opponent, given the learner's win rate against each.

    Sums to 1; uniform when every weight is 0. An empty ``win_rates`` gives an empty array (the caller
    has no opponent to pick and falls back to another branch).
    """
    w = weights(win_rates, kind, p)
    if w.size == 0:
        return w
    total = w.sum()
    if total < ZERO_WEIGHT:
        return np.full(w.shape, 1.0 / w.size)
    return w / total


def sample(rng: np.random.Generator, names: list[str], win_rates: np.ndarray, kind: str = "hard",
           p: float = DEFAULT_P) -> str:
    """One of ``names`` drawn with ``probabilities(win_rates, kind, p)``."""
    if not names:
        raise LeagueError("PFSP needs at least one opponent to choose from")
    if len(names) != len(win_rates):
        raise LeagueError(f"{len(names)} opponents but {len(win_rates)} win rates")
    return names[int(rng.choice(len(names), p=probabilities(win_rates, kind, p)))]
