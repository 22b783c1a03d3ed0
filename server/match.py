"""Playing matches in one process: who sits where, asking each agent for its rows, keeping score.

This is the pure logic under ``arena run`` (and, later, under the game server): no sockets here.

Seating: with two agents, even match slots seat agent 0 as team 0 and agent 1 as team 1, odd slots the
other way round, so each side plays first (connect4) or on the left (battle) equally often. With more
agents, slots cycle through every ordered pair of distinct agents (a round robin, both orientations).
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from agents.base import Agent
from simcore.game import DRAW, BatchedGame


@dataclass
class AgentTotals:
    wins: int = 0
    losses: int = 0
    draws: int = 0
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def games(self) -> int:
        return self.wins + self.losses + self.draws

    def as_dict(self) -> dict:
        d = {"wins": self.wins, "losses": self.losses, "draws": self.draws, "games": self.games}
        d.update({k: (int(v) if float(v).is_integer() else float(v)) for k, v in self.stats.items()})
        return d


def seat_plan(num_matches: int, num_agents: int, num_teams: int) -> np.ndarray:
    """``(num_matches, num_teams)``: which agent plays each team in each slot."""
    if num_agents < 1:
        raise ValueError("at least one agent is needed")
    if num_agents == 1:
        return np.zeros((num_matches, num_teams), dtype=np.int64)
    if num_teams != 2:
        raise ValueError(f"seating for {num_teams} teams is not supported yet")
    pairs = [(i, j) for i, j in itertools.permutations(range(num_agents), 2)]
    if num_agents == 2:
        pairs = [(0, 1), (1, 0)]
    plan = np.array([pairs[m % len(pairs)] for m in range(num_matches)], dtype=np.int64)
    return plan


class MatchRunner:
    """Plays a ``BatchedGame`` with a list of agents and keeps the score.

    Stop rules (``play``): by default each match slot counts its first finished game and play stops
    when every slot has finished once (``num_matches`` games, none favoured for being short);
    ``games=G`` counts every finished game and stops at G (ties inside the last step broken by slot
    index); ``steps=T`` stops after T batched steps. With both, whichever comes first.
    """

    def __init__(self, game: BatchedGame, agents: list[Agent], names: list[str] | None = None):
        self.game = game
        self.agents = agents
        self.names = names or [a.name for a in agents]
        n, a = game.num_matches, game.num_agents
        self.team_agent = seat_plan(n, len(agents), game.num_teams)
        self.seat_owner = self.team_agent[:, game.seat_team]          # (N, A)
        self._owner_flat = self.seat_owner.reshape(-1)
        self._obs_flat = game.obs.reshape((n * a,) + game.obs_shape)
        self._mask_flat = game.action_mask.reshape(n * a, -1)
        self._actions = np.zeros((n, a), dtype=np.int64)
        self._actions_flat = self._actions.reshape(-1)
        self.totals = [AgentTotals(stats={s: 0.0 for s in game.stat_names}) for _ in agents]
        self.pairings: dict[tuple[int, int], list[int]] = {}
        self.counted = np.zeros(n, dtype=np.bool_)
        self.games = 0
        self.steps = 0
        self.agent_steps = 0
        self.outcomes: list[tuple[int, int, int]] = []   # (slot, winner team, length) in the order counted

    def reset(self, seed: int) -> None:
        self.game.reset(seed=seed)
        for agent, ss in zip(self.agents, np.random.SeedSequence(seed).spawn(len(self.agents))):
            agent.reset(int(ss.generate_state(1)[0]))

    def step(self) -> np.ndarray:
        """One batched step: every agent acts on its active rows, the game steps. Returns finished slots."""
        game = self.game
        active = game.active.reshape(-1)
        self.agent_steps += int(np.count_nonzero(active))
        for i, agent in enumerate(self.agents):
            rows = np.flatnonzero(active & (self._owner_flat == i)) if len(self.agents) > 1 else np.flatnonzero(active)
            if rows.size == 0:
                continue
            out = np.asarray(agent.act(self._obs_flat[rows], self._mask_flat[rows]))
            if out.shape != (rows.size,) or out.dtype.kind not in "iu":
                raise ValueError(f"agent {self.names[i]!r} returned {out.dtype}{list(out.shape)}; "
                                 f"expected integer actions of shape ({rows.size},)")
            self._actions_flat[rows] = out
        game.step(self._actions)
        self.steps += 1
        return np.flatnonzero(game.episode_done)

    def record(self, slots: np.ndarray) -> None:
        game = self.game
        for m in slots.tolist():
            winner = int(game.episode_winner[m])
            seated = self.team_agent[m]
            for team, ag in enumerate(seated.tolist()):
                t = self.totals[ag]
                if winner == DRAW:
                    t.draws += 1
                elif winner == team:
                    t.wins += 1
                else:
                    t.losses += 1
                for k, s in enumerate(game.stat_names):
                    t.stats[s] += float(game.episode_stats[m, team, k])
            key = (int(seated[0]), int(seated[1])) if len(seated) > 1 else (int(seated[0]), int(seated[0]))
            rec = self.pairings.setdefault(key, [0, 0, 0])   # team-0 wins, team-1 wins, draws
            rec[2 if winner == DRAW else winner] += 1
            self.outcomes.append((m, winner, int(game.episode_length[m])))
            self.games += 1

    def play(self, games: int | None = None, steps: int | None = None,
             on_step: Callable[["MatchRunner", int], None] | None = None) -> None:
        """Step until the stop rule (see the class docstring) is met. ``on_step(runner, new_games)``."""
        each_once = games is None and steps is None
        target = self.game.num_matches if each_once else games
        while True:
            if steps is not None and self.steps >= steps:
                break
            if target is not None and self.games >= target:
                break
            finished = self.step()
            if each_once:
                finished = finished[~self.counted[finished]]
                self.counted[finished] = True
            if target is not None and finished.size > target - self.games:
                finished = finished[: target - self.games]
            before = self.games
            self.record(finished)
            if on_step is not None:
                on_step(self, self.games - before)

    def summary(self, arena: str, seconds: float, **extra) -> dict:
        results = {name: t.as_dict() for name, t in zip(self.names, self.totals)}
        pairings = {}
        for (i, j), (w0, w1, d) in sorted(self.pairings.items()):
            pairings[f"{self.names[i]} vs {self.names[j]}"] = {"first_wins": w0, "second_wins": w1, "draws": d}
        out = {
            "arena": arena,
            "matches": self.games,
            "slots": self.game.num_matches,
            "steps": self.steps,
            "agent_steps": self.agent_steps,
            "seconds": round(seconds, 6),
            "agent_steps_per_s": round(self.agent_steps / seconds, 1) if seconds > 0 else None,
            "results": results,
            "pairings": pairings,
        }
        out.update(extra)
        return out


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0
