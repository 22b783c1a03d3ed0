"""server.league: the self-play league, as pure logic (no processes, sockets or torch).

In: finished matches and learners' snapshots. Out: who plays whom next, ratings, the leaderboard.
``pfsp`` weights opponents by win rate, ``payoff`` keeps decayed win rates per pair, ``matchmaking``
picks opponents and says when to snapshot (AlphaStar's league, Vinyals et al. 2019), ``store`` keeps
members, matches and openskill ratings in a crash-safe SQLite file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


class LeagueError(ValueError):
    """A league request that cannot be met (unknown member or kind, a database of another arena or a
    newer schema, ...). The message is one line meant for the user."""


# -- members -----------------------------------------------------------------------------------------
#: the learning members (AlphaStar's three agent kinds)
MAIN, MAIN_EXPLOITER, LEAGUE_EXPLOITER = "main", "main_exploiter", "league_exploiter"
#: a frozen copy of a learning member (AlphaStar's "historical" player)
SNAPSHOT = "snapshot"
#: a permanent member that never learns: random, greedy, search, a custom agent
FIXED = "fixed"
LEARNING_KINDS = (MAIN, MAIN_EXPLOITER, LEAGUE_EXPLOITER)
FROZEN_KINDS = (SNAPSHOT, FIXED)
KINDS = LEARNING_KINDS + FROZEN_KINDS


def check_kind(kind: str) -> str:
    """``kind`` itself if it is a member kind, else a ``LeagueError`` that lists the kinds."""
    if kind not in KINDS:
        raise LeagueError(f"unknown league member kind {kind!r} (expected one of {', '.join(KINDS)})")
    return kind


@dataclass(frozen=True)
class Member:
    """One member of the league, as the store keeps it and the matchmaker reads it."""

    name: str
    #: one of ``KINDS``
    kind: str
    #: a snapshot's learning member; ``None`` for the others
    parent: str | None = None
    #: the member's file or folder (a snapshot's checkpoint, a custom agent's file), absolute
    path: str | None = None
    #: sha256 of ``path``'s content when it was added (a folder: of its files, see ``store.content_sha256``)
    sha256: str | None = None
    #: how to build the agent (its ``--agents`` spec, net config, ...), JSON-compatible
    spec: Mapping[str, Any] = field(default_factory=dict, hash=False)
    #: learning members: agent steps trained so far; snapshots: the parent's steps when taken
    steps: int = 0
    #: wall time (``time.time()``) when it joined
    created_at: float = 0.0
    #: inactive members stay in the records but are no longer matched
    active: bool = True

    def __post_init__(self) -> None:
        check_kind(self.kind)

    @property
    def learning(self) -> bool:
        return self.kind in LEARNING_KINDS

    @property
    def frozen(self) -> bool:
        return self.kind in FROZEN_KINDS


from .matchmaking import Matchmaker, SnapshotRule  # noqa: E402  (they import the names above)
from .payoff import Payoff  # noqa: E402
from .pfsp import probabilities  # noqa: E402
from .store import LeagueStore  # noqa: E402

__all__ = ["LeagueError", "Member", "KINDS", "LEARNING_KINDS", "FROZEN_KINDS", "MAIN", "MAIN_EXPLOITER",
           "LEAGUE_EXPLOITER", "SNAPSHOT", "FIXED", "check_kind", "Matchmaker", "SnapshotRule", "Payoff",
           "probabilities", "LeagueStore"]
