"""Who a learning member plays next, and when it is frozen into a snapshot (AlphaStar's league).

After Vinyals et al. 2019 ("Grandmaster level in StarCraft II using multi-agent reinforcement learning",
Methods "League composition" and the supplementary pseudocode's ``MainPlayer``, ``MainExploiter`` and
``LeagueExploiter``). ``Matchmaker.pick`` chooses the opponent of one match slot:

| learner            | opponent                                                                          |
| ------------------ | --------------------------------------------------------------------------------- |
| ``main``           | 35%: self-play, a main agent drawn uniformly (itself included);                    |
|                    | 50%: PFSP over every frozen member (snapshots and fixed members);                 |
|                    | 15%: PFSP over the main exploiters' snapshots and the snapshots it no longer      |
|                    | beats (win rate < 0.7); when that set is empty, the 50% branch                    |
| ``main_exploiter`` | a main agent drawn uniformly; if its win rate against it is < 0.1, PFSP           |
|                    | ``variance`` over that main agent's snapshots instead (when it has any)           |
| ``league_exploiter`` | PFSP over every frozen member                                                   |

With no frozen member yet, a main agent plays self-play and an exploiter plays the main agents.
PFSP (``pfsp``) uses the matchmaker's weighting (``hard``, p = 2 by default: AlphaStar's "squared"),
except the main exploiter's fallback, which is ``variance`` as in AlphaStar.

Departures from AlphaStar, for a small league: its main agent's self-play branch plays the opponent's
snapshots when it wins < 0.3 against that main agent, and its 15% branch takes the exploiters' snapshots
only when one beats it (< 0.3); here the self-play branch always plays a main agent (usually itself),
and the 15% branch takes every main exploiter's snapshot, PFSP already weighting the dangerous ones most.

``SnapshotRule`` says when a learner is frozen (``due``/``ready``) and whether it restarts from its
initial weights afterwards (``resets_after_snapshot``). The league is described by a sequence of
``Member`` (``LeagueStore.members()``); inactive members are never picked.
"""
from __future__ import annotations

from typing import Iterable, NamedTuple, Sequence

import numpy as np

from . import (FROZEN_KINDS, LEAGUE_EXPLOITER, LEARNING_KINDS, MAIN, MAIN_EXPLOITER, SNAPSHOT,
               LeagueError, Member, check_kind)
from . import pfsp as _pfsp
from .payoff import Payoff

# -- AlphaStar's constants (Vinyals et al. 2019, Methods and supplementary pseudocode) -------------------
#: a main agent's share of self-play ("35% ... self-play")
SELF_PLAY = 0.35
#: a main agent's share of PFSP against all past players ("50% ... PFSP against all past players")
PFSP_ALL = 0.50
#: a main agent's share of PFSP against forgotten players and past main exploiters ("15% ...")
VERIFICATION = 0.15
#: a main agent "no longer beats" a snapshot whose win rate against it is below this (pseudocode: ``< 0.7``)
FORGOTTEN_BELOW = 0.7
#: a main exploiter below this win rate against a main agent plays that agent's snapshots instead (``> 0.1``)
EXPLOITER_TOO_WEAK = 0.1
#: a learner "beats" an opponent at this win rate or more, for the snapshot rule (``win_rates.min() > 0.7``)
BEATS = 0.7
#: the chance that a league exploiter restarts from its initial weights after a snapshot ("25%")
LEAGUE_EXPLOITER_RESET = 0.25
#: the league's learning members on a small machine (2 cores): one main agent and one main exploiter, each
#: with one learner. AlphaStar ran 3 main agents, 3 main exploiters and 6 league exploiters (one or two per
#: race); the main agent and its exploiter are the smallest league in which exploitation is checked.
DEFAULT_COMPOSITION = {MAIN: 1, MAIN_EXPLOITER: 1, LEAGUE_EXPLOITER: 0}

#: the branches ``Matchmaker.pick`` reports
SELF_PLAY_BRANCH, PFSP_BRANCH, VERIFICATION_BRANCH = "self_play", "pfsp", "verification"
EXPLOIT_MAIN_BRANCH, EXPLOIT_SNAPSHOTS_BRANCH = "exploit_main", "exploit_snapshots"


class Pick(NamedTuple):
    """The opponent chosen for one match slot, and the branch that chose it (for logs and tests)."""

    opponent: str
    branch: str


class _View:
    """The league as the matchmaker reads it: members by name, and the active ones by kind."""

    def __init__(self, league: Iterable[Member]):
        self.by_name = {m.name: m for m in league}
        active = [m for m in self.by_name.values() if m.active]
        self.mains = [m.name for m in active if m.kind == MAIN]
        self.snapshots = [m for m in active if m.kind == SNAPSHOT]
        self.frozen = [m.name for m in active if m.kind in FROZEN_KINDS]

    def learner(self, name: str) -> Member:
        member = self.by_name.get(name)
        if member is None:
            raise LeagueError(f"{name!r} is not a member of the league")
        if not member.learning:
            raise LeagueError(f"{name!r} is a {member.kind} member; only learning members "
                              f"({', '.join(LEARNING_KINDS)}) are matched")
        return member

    def parent_kind(self, snapshot: Member) -> str | None:
        parent = self.by_name.get(snapshot.parent or "")
        return parent.kind if parent is not None else None


class Matchmaker:
    """Chooses the opponents of learning members (see the module docstring for the rules).

    ``rng`` makes every choice reproducible; ``pfsp`` and ``p`` are the weighting of the PFSP branches
    (``pfsp.KINDS``).
    """

    def __init__(self, rng: np.random.Generator, pfsp: str = "hard", p: float = _pfsp.DEFAULT_P):
        _pfsp.weights(np.zeros(0), pfsp, p)          # refuses an unknown weighting or p <= 0 now
        self.rng = rng
        self.pfsp = pfsp
        self.p = float(p)

    def opponent(self, learner: str, league: Iterable[Member], payoff: Payoff) -> str:
        """The name of ``learner``'s next opponent (``learner`` itself for self-play)."""
        return self.pick(learner, league, payoff).opponent

    def pick(self, learner: str, league: Iterable[Member], payoff: Payoff) -> Pick:
        """``learner``'s next opponent and the branch that chose it."""
        view = _View(league)
        kind = view.learner(learner).kind
        if kind == MAIN:
            return self._main(learner, view, payoff)
        if kind == MAIN_EXPLOITER:
            return self._main_exploiter(learner, view, payoff)
        return self._league_exploiter(learner, view, payoff)

    def _choose(self, learner: str, names: list[str], payoff: Payoff, kind: str | None = None) -> str:
        return _pfsp.sample(self.rng, names, payoff.win_rates(learner, names), kind or self.pfsp, self.p)

    def _a_main_agent(self, learner: str, view: _View) -> str:
        if not view.mains:
            raise LeagueError(f"the league has no active main agent for {learner!r} to play")
        return view.mains[int(self.rng.integers(len(view.mains)))]

    def _main(self, learner: str, view: _View, payoff: Payoff) -> Pick:
        coin = self.rng.random()
        if coin < SELF_PLAY or not view.frozen:
            return Pick(self._a_main_agent(learner, view), SELF_PLAY_BRANCH)
        if coin >= SELF_PLAY + PFSP_ALL:
            names = [s.name for s in view.snapshots
                     if view.parent_kind(s) == MAIN_EXPLOITER or payoff.win_rate(learner, s.name) < FORGOTTEN_BELOW]
            if names:
                return Pick(self._choose(learner, names, payoff), VERIFICATION_BRANCH)
        return Pick(self._choose(learner, view.frozen, payoff), PFSP_BRANCH)

    def _main_exploiter(self, learner: str, view: _View, payoff: Payoff) -> Pick:
        target = self._a_main_agent(learner, view)
        if payoff.win_rate(learner, target) < EXPLOITER_TOO_WEAK:
            names = [s.name for s in view.snapshots if s.parent == target]
            if names:
                return Pick(self._choose(learner, names, payoff, "variance"), EXPLOIT_SNAPSHOTS_BRANCH)
        return Pick(target, EXPLOIT_MAIN_BRANCH)

    def _league_exploiter(self, learner: str, view: _View, payoff: Payoff) -> Pick:
        if not view.frozen:
            return Pick(self._a_main_agent(learner, view), EXPLOIT_MAIN_BRANCH)
        return Pick(self._choose(learner, view.frozen, payoff), PFSP_BRANCH)


# -- snapshots -------------------------------------------------------------------------------------------
def current_opponents(learner: str, league: Iterable[Member]) -> list[str]:
    """The members ``learner`` must beat before its snapshot is due (AlphaStar's ``ready_to_checkpoint``).

    A main agent and a league exploiter: every active frozen member (snapshots, its own included, and
    fixed members). A main exploiter: the active main agents. A pair that has not played counts as 0.5 in
    the payoff, that is, not beaten: a member that was never played holds the snapshot until ``2N``.
    """
    view = _View(league)
    if view.learner(learner).kind == MAIN_EXPLOITER:
        return list(view.mains)
    return list(view.frozen)


def steps_since_snapshot(learner: str, league: Iterable[Member]) -> int:
    """``learner``'s steps minus its newest snapshot's (its steps when taken); all its steps before one."""
    view = _View(league)
    member = view.learner(learner)
    taken = [m.steps for m in view.by_name.values() if m.kind == SNAPSHOT and m.parent == learner]
    return member.steps - max(taken, default=0)


class SnapshotRule:
    """When a learning member is frozen into a snapshot, and what it does afterwards.

    AlphaStar checkpoints a learner once it has trained ``2e9`` steps since its last snapshot and beats
    every current opponent at more than 0.7, or after ``4e9`` steps regardless; ``steps`` here is that
    first amount (``N``), and ``2N`` the second. A learner with no opponent yet beats every one of them.
    """

    def __init__(self, steps: int, rng: np.random.Generator | None = None, beats: float = BEATS):
        if steps <= 0:
            raise LeagueError(f"the snapshot interval must be a positive number of steps, got {steps}")
        self.steps = int(steps)
        self.beats = float(beats)
        self.rng = rng if rng is not None else np.random.default_rng()

    def due(self, steps_since_snapshot: int, win_rates: Sequence[float] | np.ndarray) -> bool:
        """Whether to snapshot now: ``N`` steps and a win rate >= ``beats`` against every current opponent
        (``win_rates``: one per ``current_opponents``), or ``2N`` steps whatever the win rates."""
        if steps_since_snapshot >= 2 * self.steps:
            return True
        rates = np.asarray(win_rates, dtype=np.float64)
        return steps_since_snapshot >= self.steps and bool(np.all(rates >= self.beats))

    def ready(self, learner: str, league: Iterable[Member], payoff: Payoff) -> bool:
        """``due`` for ``learner``, with its steps since the last snapshot and its current opponents
        read from ``league`` and ``payoff``."""
        league = list(league)
        rates = payoff.win_rates(learner, current_opponents(learner, league))
        return self.due(steps_since_snapshot(learner, league), rates)

    def resets_after_snapshot(self, kind: str) -> bool:
        """Whether a learner of ``kind`` restarts from its initial weights after its snapshot (AlphaStar):
        a main exploiter always, a league exploiter with probability 0.25 (drawn from ``rng``), a main
        agent never."""
        check_kind(kind)
        if kind == MAIN_EXPLOITER:
            return True
        if kind == LEAGUE_EXPLOITER:
            return bool(self.rng.random() < LEAGUE_EXPLOITER_RESET)
        if kind == MAIN:
            return False
        raise LeagueError(f"a {kind} member does not learn, so it is never snapshotted")


__all__ = ["Matchmaker", "Pick", "SnapshotRule", "current_opponents", "steps_since_snapshot", "SELF_PLAY",
           "PFSP_ALL", "VERIFICATION", "FORGOTTEN_BELOW", "EXPLOITER_TOO_WEAK", "BEATS", "LEAGUE_EXPLOITER_RESET",
           "DEFAULT_COMPOSITION"]
