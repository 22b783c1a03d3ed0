"""Seating policies: who plays a match slot's next match, chosen when its last match ends.

A seating policy is a callable ``seating(slots, team_agent) -> team_agent``: for the slots whose match just
ended and who sat there (``(len(slots), num_teams)`` agent indices of the ``MatchRunner``), the agents of
the next match. ``MatchRunner.seating`` calls it after counting the finished games, so the game server
re-seats slots one match at a time (``arena train``'s opponent mix; later the league's matchmaker).

``OpponentMix`` is ``arena train``'s: slot ``m`` belongs to learner share ``share[m]`` (agent
``learners[share[m]]``); each match draws the opponent from weighted names (``self`` is the same learner on
the other team; other names are agents of the runner), and the learner's team alternates from one match
of a slot to the next, so it moves first (or plays left) half the time.
"""
from __future__ import annotations

import numpy as np

SELF = "self"


class OpponentMix:
    """The learner of each slot's share against an opponent drawn per match from a weighted mix."""

    def __init__(self, learners: list[int], opponents: dict[str, float], agent_index: dict[str, int],
                 shares: np.ndarray, seed: int = 0):
        names = list(opponents)
        if not names:
            raise ValueError("the opponent mix is empty")
        w = np.array([float(opponents[k]) for k in names], dtype=np.float64)
        if (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
            raise ValueError(f"opponent weights must be non-negative with a positive sum, got {opponents}")
        unknown = [k for k in names if k != SELF and k not in agent_index]
        if unknown:
            raise ValueError(f"unknown opponent(s) {', '.join(unknown)}")
        self.names = names
        self.p = w / w.sum()
        self.learners = np.asarray(learners, dtype=np.int64)
        self.opp_index = np.array([-1 if k == SELF else agent_index[k] for k in names], dtype=np.int64)
        self.shares = np.asarray(shares, dtype=np.int64)
        self.rng = np.random.default_rng(seed)
        self.matches = np.zeros(len(self.shares), dtype=np.int64)   # matches seated per slot so far

    def draw(self, slots: np.ndarray) -> np.ndarray:
        """Opponent name indices for ``slots``."""
        return self.rng.choice(len(self.names), size=len(slots), p=self.p)

    def initial(self) -> np.ndarray:
        """The seating of every slot's first match, ``(N, 2)``."""
        return self.seat(np.arange(len(self.shares)))

    def seat(self, slots: np.ndarray) -> np.ndarray:
        slots = np.asarray(slots, dtype=np.int64)
        me = self.learners[self.shares[slots]]
        opp = self.opp_index[self.draw(slots)]
        opp = np.where(opp < 0, me, opp)
        first = (slots + self.matches[slots]) % 2 == 0          # the learner's team alternates per match
        self.matches[slots] += 1
        return np.stack([np.where(first, me, opp), np.where(first, opp, me)], axis=1)

    def __call__(self, slots: np.ndarray, team_agent: np.ndarray) -> np.ndarray:
        return self.seat(slots)
