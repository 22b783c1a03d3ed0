"""The league's roster and seating: which of the game server's agents plays which member, and who plays
each match slot next (``server.league.run`` builds both)."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from . import FIXED, LEARNING_KINDS, Member

if TYPE_CHECKING:
    from .run import League

#: seats for remote members (``arena worker --league-member NAME``) playing at once
GUEST_SEATS = 4
#: picks drawn at once per learning member; the pool is drawn again when used up or this old (seconds)
PICK_POOL, PICK_AGE = 64, 1.0


class Roster:
    """The game server's agents and which member each plays: learners' agents (``main0-L0``...), fixed
    members (their agent spec), snapshot slots (``snap0``...)."""

    def __init__(self, members: list[Member], learners: int, slots: int):
        self.learning = [m for m in members if m.kind in LEARNING_KINDS]
        self.fixed = [m for m in members if m.kind == FIXED and not m.spec.get("remote")]
        self.learner_agents: list[str] = []
        self.member_of_agent: dict[int, str] = {}
        self.agents_of: dict[str, list[int]] = {}
        names: list[str] = []
        for m in self.learning:
            for k in range(learners):
                self.agents_of.setdefault(m.name, []).append(len(names))
                self.member_of_agent[len(names)] = m.name
                names.append(f"{m.name}-L{k}")
        self.learner_agents = list(names)
        for m in self.fixed:
            self.agents_of[m.name] = [len(names)]
            self.member_of_agent[len(names)] = m.name
            names.append(m.spec["agent"])
        self.slot_base = len(names)
        names += [f"snap{k}" for k in range(slots)]
        self.guest_base = len(names)
        names += [f"guest{k}" for k in range(GUEST_SEATS)]
        self.names = names
        self.slot_member: dict[int, str] = {}        # snapshot slot -> the snapshot in it
        self.guest_member: dict[int, str] = {}       # guest seat -> the remote member playing there

    def seat_guest(self, member: str) -> int | None:
        """Reserve a free guest seat for the remote member ``member`` (None: all taken); it is matched once
        its worker is ready (``play_guest``)."""
        k = next((k for k in range(GUEST_SEATS) if k not in self.guest_member), None)
        if k is not None:
            self.guest_member[k] = member
            self.member_of_agent[self.guest_base + k] = member
        return k

    def play_guest(self, member: str) -> None:
        for k, m in self.guest_member.items():
            if m == member:
                self.agents_of[member] = [self.guest_base + k]

    def unseat_guest(self, member: str) -> None:
        for k, m in list(self.guest_member.items()):
            if m == member:
                del self.guest_member[k]
                self.agents_of.pop(member, None)     # its matches in flight still count, as forfeits

    def seat(self, slot: int, member: str) -> None:
        if member in self.agents_of:            # a slot refilled: its previous snapshot leaves it
            old = self.agents_of.pop(member)
            self.member_of_agent.pop(old[0], None)
        prev = self.slot_member.get(slot)
        if prev is not None:
            self.agents_of.pop(prev, None)
        self.slot_member[slot] = member
        self.agents_of[member] = [self.slot_base + slot]
        self.member_of_agent[self.slot_base + slot] = member

    def free_slot(self) -> int | None:
        """A snapshot slot no snapshot has taken yet (None: all taken)."""
        return next((k for k in range(self.guest_base - self.slot_base) if k not in self.slot_member), None)


class LeagueSeating:
    """Records each finished match and seats the slot's next one from the matchmaker (shared by groups)."""

    def __init__(self, league: "League"):
        self.league = league
        self.pools: dict[str, tuple[float, list[str]]] = {}

    def group(self, group: int, global_slots: np.ndarray) -> "_GroupSeating":
        return _GroupSeating(self, group, global_slots)

    def pick(self, member: str) -> str:
        now = time.monotonic()
        made, pool = self.pools.get(member, (0.0, []))
        if not pool or now - made > PICK_AGE:
            lg = self.league
            members = [m for m in lg.members if m.active and m.name in lg.roster.agents_of]   # seated ones
            pool = [lg.matchmaker.opponent(member, members, lg.payoff) for _ in range(PICK_POOL)]
            made = now
        opp = pool.pop()
        self.pools[member] = (made, pool)
        return opp


class _GroupSeating:
    def __init__(self, parent: LeagueSeating, group: int, global_slots: np.ndarray):
        self.parent, self.group_index = parent, group
        self.global_slots = np.asarray(global_slots, dtype=np.int64)
        lg = parent.league
        self.owner = np.array(lg.roster.learner_agents and [s % len(lg.roster.learner_agents)
                                                             for s in self.global_slots], dtype=np.int64)
        self.matches = np.zeros(len(self.global_slots), dtype=np.int64)
        self.runner = None

    def bind(self, runner) -> None:
        self.runner = runner

    def initial(self) -> np.ndarray:
        return self._seat(np.arange(len(self.global_slots)))

    def _seat(self, slots: np.ndarray) -> np.ndarray:
        lg = self.parent.league
        roster = lg.roster
        out = np.zeros((len(slots), 2), dtype=np.int64)
        for i, s in enumerate(slots):
            me = int(self.owner[s])
            member = roster.member_of_agent[me]
            opp = self.parent.pick(member)
            agents = roster.agents_of.get(opp)
            if opp == member or not agents:
                them = me
            else:
                k = roster.agents_of[member].index(me)
                them = agents[k % len(agents)]
            first = (int(self.global_slots[s]) + int(self.matches[s])) % 2 == 0
            self.matches[s] += 1
            out[i] = (me, them) if first else (them, me)
        return out

    def __call__(self, slots: np.ndarray, team_agent: np.ndarray) -> np.ndarray:
        lg = self.parent.league
        if self.runner is not None:
            ended, seated, winner = self.runner.last_ended
            lengths = self.runner.game.episode_length[ended]
            lg.finished(self.group_index, ended, seated, winner, lengths)
        return self._seat(np.asarray(slots, dtype=np.int64))
