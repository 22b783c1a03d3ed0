"""The payoff table: each member's win rate against each other, decayed so that it follows learners.

AlphaStar's ``Payoff`` (Vinyals et al. 2019, supplementary pseudocode) keeps, per ordered pair, counts
that shrink by ``decay`` each time the pair plays again. Here, on a result of ``a`` against ``b`` with
``score`` (1 a win, 0.5 a draw, 0 a loss, from ``a``'s side)::

    wins[a, b]  = decay * wins[a, b]  + score          wins[b, a]  = decay * wins[b, a]  + (1 - score)
    games[a, b] = decay * games[a, b] + 1              games[b, a] = decay * games[b, a] + 1

and ``win_rate(a, b) = wins[a, b] / games[a, b]`` (0.5 before any game). This is AlphaStar's
``(wins + 0.5 draws) / games`` with the same decay. With ``DECAY = 0.99`` a result counts half after
about 69 more games of the same pair (0.99 ** 69 ~ 0.5), so a learner's win rate against a fixed
opponent follows its recent few hundred games rather than its whole history.

Raw counts (undecayed games, wins, draws and losses per ordered pair) are kept beside, for
``payoff.csv``. A member's games against itself (self-play of one learner) are counted there but never
move its win rate, which is 0.5 by definition.

The table is a pure function of the results in order: ``Payoff.from_matches(store.matches())`` rebuilds
it on resume.
"""
from __future__ import annotations

import csv
import io
from typing import Any, Iterable, NamedTuple, Sequence

import numpy as np

from . import LeagueError

#: the decay of AlphaStar's payoff pseudocode (``self._decay = 0.99``)
DECAY = 0.99
#: the win rate of a pair that has not played yet
NO_GAMES = 0.5
#: the scores a match result may carry, from the first player's side: loss, draw, win
SCORES = (0.0, 0.5, 1.0)


def check_score(score: float) -> float:
    """``score`` as a float if it is 0, 0.5 or 1, else a ``LeagueError``."""
    try:
        value = float(score)
    except (TypeError, ValueError):
        value = None
    if value not in SCORES:
        raise LeagueError(f"a match score must be 1 (win), 0.5 (draw) or 0 (loss) for the first player, "
                          f"got {score!r}")
    return value


class Counts(NamedTuple):
    """Undecayed results of one ordered pair, from the first member's side."""

    games: int
    wins: int
    draws: int
    losses: int


CSV_FIELDS = ("a", "b", "games", "wins", "draws", "losses", "win_rate")


class Payoff:
    """Decayed win rates and raw counts for every ordered pair of members that has played."""

    def __init__(self, decay: float = DECAY):
        if not 0.0 < decay <= 1.0:
            raise LeagueError(f"the payoff decay must lie in (0, 1], got {decay}")
        self.decay = float(decay)
        self._wins: dict[tuple[str, str], float] = {}
        self._games: dict[tuple[str, str], float] = {}
        self._raw: dict[tuple[str, str], list[int]] = {}     # [games, wins, draws, losses]

    @classmethod
    def from_matches(cls, matches: Iterable[Any], decay: float = DECAY) -> "Payoff":
        """The table after ``matches`` in order: each has ``.a``, ``.b`` and ``.score`` (a
        ``store.MatchRecord``) or is an ``(a, b, score)`` triple."""
        payoff = cls(decay)
        for m in matches:
            if hasattr(m, "score"):
                payoff.update(m.a, m.b, m.score)
            else:
                a, b, score = m
                payoff.update(a, b, score)
        return payoff

    def update(self, a: str, b: str, score: float) -> None:
        """Add one result of ``a`` against ``b``; ``score`` is ``a``'s (1, 0.5 or 0)."""
        score = check_score(score)
        raw = self._raw.setdefault((a, b), [0, 0, 0, 0])
        raw[0] += 1
        raw[1 if score == 1.0 else 2 if score == 0.5 else 3] += 1
        if a == b:
            return
        back = self._raw.setdefault((b, a), [0, 0, 0, 0])
        back[0] += 1
        back[1 if score == 0.0 else 2 if score == 0.5 else 3] += 1
        for pair, won in (((a, b), score), ((b, a), 1.0 - score)):
            self._wins[pair] = self.decay * self._wins.get(pair, 0.0) + won
            self._games[pair] = self.decay * self._games.get(pair, 0.0) + 1.0

    def win_rate(self, a: str, b: str) -> float:
        """``a``'s decayed win rate against ``b`` (draws count half); 0.5 before any game."""
        games = self._games.get((a, b), 0.0)
        if a == b or games <= 0.0:
            return NO_GAMES
        return self._wins[(a, b)] / games

    def win_rates(self, a: str, opponents: Sequence[str]) -> np.ndarray:
        """``a``'s win rate against each of ``opponents``, as float64."""
        return np.array([self.win_rate(a, b) for b in opponents], dtype=np.float64)

    def matrix(self, names: Sequence[str]) -> np.ndarray:
        """``M[i, j] = win_rate(names[i], names[j])``: row players' win rates, 0.5 on the diagonal."""
        return np.array([[self.win_rate(a, b) for b in names] for a in names], dtype=np.float64).reshape(
            len(names), len(names))

    def decayed_games(self, a: str, b: str) -> float:
        """The decayed number of games of ``a`` against ``b`` (the weight behind ``win_rate``)."""
        return self._games.get((a, b), 0.0)

    def counts(self, a: str, b: str) -> Counts:
        """Undecayed games, wins, draws and losses of ``a`` against ``b``."""
        return Counts(*self._raw.get((a, b), (0, 0, 0, 0)))

    def names(self) -> list[str]:
        """Every member that has played, sorted."""
        return sorted({name for pair in self._raw for name in pair})

    def to_csv(self, names: Sequence[str] | None = None) -> str:
        """``payoff.csv``'s text: one row per ordered pair that has played (``CSV_FIELDS``), in the order
        of ``names`` (default: ``names()``); ``win_rate`` is the decayed one the matchmaker uses."""
        order = list(self.names() if names is None else names)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_FIELDS)
        for a in order:
            for b in order:
                if (a, b) in self._raw:
                    writer.writerow([a, b, *self.counts(a, b), f"{self.win_rate(a, b):.4f}"])
        return out.getvalue()
