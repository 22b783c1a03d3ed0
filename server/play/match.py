"""Playing matches in one process: who sits where, asking each agent for its rows, keeping score.

This is the pure logic under ``arena run`` (and, later, under the game server): no sockets here,
except through agents that run isolated in a process of their own (``server.play.isolated``).

Seating: with two agents, even match slots seat agent 0 as team 0 and agent 1 as team 1, odd slots the
other way round, so each side plays first (connect4) or on the left (battle) equally often. With more
agents, slots cycle through every ordered pair of distinct agents (a round robin, both orientations).

Faults: an agent that raises, returns the wrong shape or dtype, NaN, an out-of-range action or, in
connect4, a masked one, forfeits the matches concerned (all of its rows in that call for a whole-answer
fault, only the bad rows' matches otherwise): the match counts as a loss for it and a win for the
opponent, is listed under ``forfeits`` with the reason, and its slot starts a new match. An isolated
agent that hangs past its deadline or whose process dies is disqualified: that call's matches and every
later one it would play are forfeited. Everyone else's matches go on untouched. The summary's
``forfeits`` count the forfeits among the counted games (the ones in the results table's losses) and,
apart, those in games past the stop rule's count (``uncounted``: a slot that restarted after its
counted game and was forfeited again).
"""
from __future__ import annotations

import itertools
import re
import sys
from typing import Callable

import numpy as np

from agents.base import Agent
from agents.check import AgentFault, describe, legal_into, neutral_action, validate_actions
from agents.loader import adapt
from simcore.game import DRAW, BatchedGame
from simcore.rows import take_rows

from .summary import AgentTotals

FORFEIT = -2  # a pseudo-team in the forfeit bookkeeping: "nobody forfeited"
_EMPTY = np.zeros(0, dtype=np.int64)
NONE_COUNTED = (_EMPTY, _EMPTY, _EMPTY, _EMPTY.astype(np.bool_))


def seat_plan(num_matches: int, num_agents: int, num_teams: int) -> np.ndarray:
    """``(num_matches, num_teams)``: which agent plays each team in each slot."""
    if num_agents < 1:
        raise ValueError("at least one agent is needed")
    if num_agents == 1:
        return np.zeros((num_matches, num_teams), dtype=np.int64)
    if num_teams != 2:
        raise ValueError(f"seating for {num_teams} teams is not supported yet")
    pairs = [(0, 1), (1, 0)] if num_agents == 2 else list(itertools.permutations(range(num_agents), 2))
    return np.array([pairs[m % len(pairs)] for m in range(num_matches)], dtype=np.int64)


def _overrides(agent, hook: str) -> bool:
    """Whether ``agent`` wants ``hook`` called (isolated agents forward hooks to their process)."""
    if getattr(agent, "isolated", False):
        return hook in getattr(agent, "hooks", ())
    fn = getattr(type(agent), hook, None)
    return fn is not None and fn is not getattr(Agent, hook)


class MatchRunner:
    """Plays a ``BatchedGame`` with a list of agents and keeps the score.

    Stop rules (``play``): by default each match slot counts its first finished game and play stops
    when every slot has finished once (``num_matches`` games, none favoured for being short);
    ``games=G`` counts every finished game and stops at G (ties inside the last step broken by slot
    index); ``steps=T`` stops after T batched steps. With both, whichever comes first.
    """

    def __init__(self, game: BatchedGame, agents: list[Agent], names: list[str] | None = None,
                 warn: Callable[[str], None] | None = None):
        self.game = game
        self.agents = [adapt(a) for a in agents]   # objects with only act() get the optional methods
        self.names = names or [getattr(a, "name", f"agent{i}") for i, a in enumerate(agents)]
        self.warn = warn or (lambda text: print(text, file=sys.stderr))
        n, a = game.num_matches, game.num_agents
        self.team_agent = seat_plan(n, len(agents), game.num_teams)
        #: ``seating(slots, team_agent) -> team_agent``: who plays each slot's next match (None: as before)
        self.seating: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
        self.seat_owner = np.ascontiguousarray(self.team_agent[:, game.seat_team])    # (N, A)
        self._owner_flat = self.seat_owner.reshape(-1)          # a view: ``reseat`` writes through it
        self._obs_flat = game.obs.reshape((n * a,) + game.obs_shape)
        self._mask_flat = game.action_mask.reshape(n * a, -1)
        self._actions = np.zeros_like(game.actions)
        self._actions_flat = self._actions.reshape((n * a,) + tuple(game.action_shape))
        # teams that observe different things (tag) are asked apart, each with its rows cut to its space
        self._seat_team_flat = np.tile(game.seat_team, n)
        self.split_teams = any(sp.shape != tuple(game.obs_shape) for sp in game.team_observation_spaces)
        self._hooks_end = [_overrides(ag, "on_match_end") for ag in agents]
        self._hooks_start = [_overrides(ag, "on_match_start") for ag in agents]
        self.totals = [AgentTotals(stats={s: 0.0 for s in game.stat_names}) for _ in agents]
        self.pairings: dict[tuple[int, int], list[int]] = {}
        self.forfeit_log: dict[tuple[int, str], int] = {}   # (agent, reason) -> matches forfeited, all of them
        #: (agent, reason) -> the forfeits among the counted games (what the results table holds)
        self.counted_forfeits: dict[tuple[int, str], int] = {}
        self._forfeit_kinds: dict[tuple[int, str], str] = {}
        self._reason_keys: list[tuple[int, str]] = []        # reason id -> (agent, reason)
        self._reason_ids: dict[tuple[int, str], int] = {}
        self.disqualified: dict[int, str] = {}
        self.counted = np.zeros(n, dtype=np.bool_)
        self.games = 0
        self.steps = 0
        self.agent_steps = 0
        self._outcome_chunks: list[np.ndarray] = []
        #: ``(slots, winner, length, forfeited)`` of the games counted by the last ``record`` call
        self.last_counted: tuple[np.ndarray, ...] = NONE_COUNTED
        self.last_ended: tuple[np.ndarray, ...] = (_EMPTY, np.zeros((0, game.num_teams), np.int64), _EMPTY)
        self._forfeit_team = np.full(n, FORFEIT, dtype=np.int64)   # per slot this step: the team that forfeits
        self._forfeit_len = np.zeros(n, dtype=np.int64)
        self._ended_forfeit = self._forfeit_team.copy()   # the forfeits of the last ended step, for record()
        self._forfeit_reason = np.full((n, game.num_teams), -1, dtype=np.int64)   # per slot and team: reason id
        self._ended_reason = self._forfeit_reason.copy()
        self._asked_rows = 0

    @property
    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Views of the game's observations and action masks with one row per flat seat
        ``match * num_agents + seat`` (what ``begin_step``'s row indices index)."""
        return self._obs_flat, self._mask_flat

    def actions_of(self, rows: np.ndarray) -> np.ndarray:
        """The actions stored for ``rows`` this step (after validation: forfeited rows hold stand-ins)."""
        return self._actions_flat[rows].copy()

    def obs_of(self, rows: np.ndarray) -> np.ndarray:
        """The observations of ``rows`` (all of one team when ``split_teams``), cut to that team's space."""
        if not self.split_teams or rows.size == 0:
            return take_rows(self._obs_flat, rows)
        team = int(self._seat_team_flat[rows[0]])
        return np.ascontiguousarray(self._obs_flat[rows][(slice(None),) + self.game.team_obs_index(team)])

    def reset(self, seed: int) -> None:
        self.game.reset(seed=seed)
        for agent, ss in zip(self.agents, np.random.SeedSequence(seed).spawn(len(self.agents))):
            agent.reset(int(ss.generate_state(1)[0]))
        slots = np.arange(self.game.num_matches)
        for i, agent in enumerate(self.agents):
            if self._hooks_start[i]:
                agent.on_match_start(slots[(self.team_agent == i).any(axis=1)])

    # -- faults ------------------------------------------------------------------------------------
    def _forfeit(self, i: int, rows: np.ndarray, reason: str) -> None:
        """Agent ``i`` forfeits the matches of ``rows`` (flat (match, seat) indices)."""
        slots = np.unique(rows // self.game.num_agents)
        team = np.argmax(self.team_agent[slots] == i, axis=1)
        fresh = self._forfeit_team[slots] == FORFEIT
        both = ~fresh & (self._forfeit_team[slots] != team)
        self._forfeit_team[slots[fresh]] = team[fresh]
        self._forfeit_team[slots[both]] = DRAW - 10   # both sides forfeited this step
        kind = (i, re.sub(r"\d+", "#", reason))   # the same fault with other numbers is one entry
        if kind not in self._forfeit_kinds:
            self._forfeit_kinds[kind] = reason
            self.warn(f"arena: agent {self.names[i]!r} in {self.game.name!r} {reason}; "
                      f"it forfeits the matches concerned and the run goes on")
        key = (i, self._forfeit_kinds[kind])
        self.forfeit_log[key] = self.forfeit_log.get(key, 0) + int(slots.size)
        if key not in self._reason_ids:
            self.counted_forfeits[key] = 0
            self._reason_ids[key] = len(self._reason_keys)
            self._reason_keys.append(key)
        self._forfeit_reason[slots, team] = self._reason_ids[key]
        # a legal stand-in move keeps the engine's rules intact until the slot is reset after the step
        if self.game.continuous_actions:
            self._actions_flat[rows] = neutral_action(self.game.single_action_space)
        else:
            self._actions_flat[rows] = np.argmax(self._mask_flat[rows] != 0, axis=1)

    def take(self, i: int, rows: np.ndarray, out) -> None:
        """Agent ``i``'s answer for ``rows``: validated, bad rows forfeited, good ones stored."""
        if not self.game.continuous_actions and legal_into(out, self._mask_flat, rows, self._actions_flat):
            return                                  # all legal integers: stored in one pass
        try:
            actions, bad = validate_actions(out, self._mask_flat[rows], self.game.single_action_space)
        except AgentFault as exc:
            self._forfeit(i, rows, str(exc))
            return
        self._actions_flat[rows] = actions
        for reason, rows_bad in bad.items():
            self._forfeit(i, rows[rows_bad], reason)

    # -- one step ----------------------------------------------------------------------------------
    def begin_step(self) -> list[tuple[int, np.ndarray]]:
        """Which agent must act on which rows this step: ``[(agent index, flat rows)]``, one entry per
        agent, or per (agent, team) when the teams observe different things (``split_teams``).

        Disqualified agents are not asked: their rows are forfeited at once."""
        game = self.game
        active = game.active.reshape(-1)
        self._asked_rows = int(np.count_nonzero(active))
        self._forfeit_team[:] = FORFEIT
        self._forfeit_reason[:] = -1
        single = len(self.agents) == 1
        asked: list[tuple[int, np.ndarray]] = []
        for i, agent in enumerate(self.agents):
            rows = np.flatnonzero(active) if single else np.flatnonzero(active & (self._owner_flat == i))
            if rows.size == 0:
                continue
            if i not in self.disqualified and getattr(agent, "fault", None):
                self.disqualified[i] = agent.fault
            if i in self.disqualified:
                self._forfeit(i, rows, self.disqualified[i])
                continue
            if self.split_teams:
                team = self._seat_team_flat[rows]
                asked.extend((i, rows[team == t]) for t in range(game.num_teams) if (team == t).any())
            else:
                asked.append((i, rows))
        return asked

    def fault(self, i: int, rows: np.ndarray, reason: str, disqualify: bool = False) -> None:
        """Agent ``i`` could not answer for ``rows``; with ``disqualify`` it is asked no more."""
        if disqualify:
            self.disqualified[i] = reason
        self._forfeit(i, rows, reason)

    def end_step(self) -> np.ndarray:
        """Step the game with the collected actions, restart forfeited slots; returns finished slots."""
        game = self.game
        game.step(self._actions)
        self.steps += 1
        self.agent_steps += self._asked_rows
        np.copyto(self._ended_forfeit, self._forfeit_team)
        np.copyto(self._ended_reason, self._forfeit_reason)
        forfeited = np.flatnonzero(self._forfeit_team != FORFEIT)
        if forfeited.size:
            # slots that ended by the rules this same step were reset already; the rest restart now
            self._forfeit_len[forfeited] = np.where(game.episode_done[forfeited], game.episode_length[forfeited],
                                                    game.step_count[forfeited])
            game.reset_matches(forfeited[~game.episode_done[forfeited]])
            return np.union1d(np.flatnonzero(game.episode_done), forfeited)
        return np.flatnonzero(game.episode_done)

    def _send_isolated(self, asked: list[tuple[int, np.ndarray]]) -> None:
        """Isolated agents get their requests first, so they think while this process works."""
        for i, rows in asked:
            agent = self.agents[i]
            if getattr(agent, "isolated", False):
                try:
                    agent.send(self.obs_of(rows), self._mask_flat[rows])
                except AgentFault as exc:
                    self.fault(i, rows, str(exc), disqualify=True)

    def _complete_step(self, asked: list[tuple[int, np.ndarray]]) -> np.ndarray:
        """In-process agents act, isolated answers are collected, the game steps."""
        for i, rows in asked:
            agent = self.agents[i]
            if getattr(agent, "isolated", False) or i in self.disqualified:
                continue
            try:
                out = agent.act(self.obs_of(rows), self._mask_flat[rows])
            except Exception as exc:
                self.fault(i, rows, describe(exc))
                continue
            self.take(i, rows, out)
        for i, rows in asked:
            agent = self.agents[i]
            if not getattr(agent, "isolated", False) or i in self.disqualified:
                continue
            try:
                out = agent.wait()
            except AgentFault as exc:
                self.fault(i, rows, str(exc), disqualify=agent.fault is not None)
                continue
            self.take(i, rows, out)
        return self.end_step()

    def step(self) -> np.ndarray:
        """One batched step: every agent acts on its active rows, the game steps. Returns finished slots."""
        asked = self.begin_step()
        self._send_isolated(asked)
        return self._complete_step(asked)

    # -- scores --------------------------------------------------------------------------------------
    def record(self, slots: np.ndarray, all_finished: np.ndarray | None = None) -> None:
        """Count the games of ``slots``; tell agents about every slot in ``all_finished``.

        Vectorised over the slots: per-agent totals grow by ``bincount`` per team.
        """
        if not slots.size:
            self.last_counted = NONE_COUNTED
        else:
            game, k = self.game, len(self.agents)
            ff = self._ended_forfeit[slots]
            natural = ff == FORFEIT
            both = ~natural & (ff < 0)
            winner = np.where(natural, game.episode_winner[slots].astype(np.int64),
                              np.where(both, DRAW, 1 - ff))
            length = np.where(natural, game.episode_length[slots], self._forfeit_len[slots])
            seated = self.team_agent[slots]
            count = lambda sel, ag: np.bincount(ag[sel], minlength=k)
            for team in range(seated.shape[1]):
                ag = seated[:, team]
                lost_by_forfeit = ~natural & ((ff == team) | both)
                wins = count(winner == team, ag)
                losses = count((winner != team) & (winner != DRAW) | lost_by_forfeit, ag)
                draws = count((winner == DRAW) & ~lost_by_forfeit, ag)
                forfeits = count(lost_by_forfeit, ag)
                why = self._ended_reason[slots[lost_by_forfeit], team]
                for r, c in enumerate(np.bincount(why[why >= 0], minlength=len(self._reason_keys))):
                    if c:
                        self.counted_forfeits[self._reason_keys[r]] += int(c)
                stats = [np.bincount(ag[natural], weights=game.episode_stats[slots[natural], team, j], minlength=k)
                         for j in range(len(game.stat_names))]
                for i, t in enumerate(self.totals):
                    t.wins += int(wins[i])
                    t.losses += int(losses[i])
                    t.draws += int(draws[i])
                    t.forfeits += int(forfeits[i])
                    for j, name in enumerate(game.stat_names):
                        t.stats[name] += float(stats[j][i])
            pair = seated[:, 0] * k + seated[:, -1]
            cat = np.where(winner == DRAW, 2, winner)
            table = np.bincount(pair * 3 + cat, minlength=k * k * 3).reshape(k * k, 3)
            for p in np.flatnonzero(table.sum(axis=1)):
                rec = self.pairings.setdefault((int(p // k), int(p % k)), [0, 0, 0])  # team-0 wins, team-1 wins, draws
                for c in range(3):
                    rec[c] += int(table[p, c])
            self._outcome_chunks.append(np.stack([slots, winner, length], axis=1))
            self.last_counted = (slots, winner, length, ~natural)
            self.games += int(slots.size)
        ended = slots if all_finished is None else all_finished
        self._tell_agents(ended, start=False)
        #: ``(slots, team_agent, winner)`` of every match that ended in the last step, counted or not,
        #: as seated before re-seating (winner: the team, -1 for a draw, forfeits included)
        self.last_ended = (ended, self.team_agent[ended].copy(), self.winners(ended))
        if self.seating is not None and ended.size:
            self.reseat(ended, self.seating(ended, self.team_agent[ended]))
        self._tell_agents(ended, end=False)

    @property
    def outcomes(self) -> list[tuple[int, int, int]]:
        """``(slot, winning team or -1, length)`` of every counted game, in the order counted."""
        if not self._outcome_chunks:
            return []
        return [tuple(r) for r in np.concatenate(self._outcome_chunks).tolist()]

    def winners(self, slots: np.ndarray) -> np.ndarray:
        """The winning team of the matches of ``slots`` that ended in the last step (-1 a draw), a forfeit
        losing the match for the team that forfeited."""
        ff = self._ended_forfeit[slots]
        return np.where(ff == FORFEIT, self.game.episode_winner[slots].astype(np.int64),
                        np.where(ff < 0, DRAW, 1 - ff))

    def reseat(self, slots: np.ndarray, team_agent: np.ndarray) -> None:
        """Seat ``team_agent`` (``(len(slots), num_teams)`` agent indices) in ``slots`` for their next match."""
        team_agent = np.asarray(team_agent, dtype=np.int64)
        if team_agent.shape != (len(slots), self.game.num_teams) or team_agent.min(initial=0) < 0 \
                or team_agent.max(initial=0) >= len(self.agents):
            raise ValueError(f"seating: expected agent indices of shape ({len(slots)}, {self.game.num_teams})")
        self.team_agent[slots] = team_agent
        self.seat_owner[slots] = team_agent[:, self.game.seat_team]

    def _tell_agents(self, finished: np.ndarray, end: bool = True, start: bool = True) -> None:
        if finished.size == 0 or not ((end and any(self._hooks_end)) or (start and any(self._hooks_start))):
            return
        seated = self.team_agent[finished]                     # (F, T)
        ff = self._ended_forfeit[finished]
        winner = np.where(ff == FORFEIT, self.game.episode_winner[finished].astype(np.int64),
                          np.where(ff < 0, DRAW, 1 - ff))
        for i, agent in enumerate(self.agents):
            if i in self.disqualified:
                continue
            sits = (seated == i)
            mine = sits.any(axis=1)
            if not mine.any():
                continue
            team = np.argmax(sits[mine], axis=1)
            w = winner[mine]
            outcome = np.where(w == DRAW, 0, np.where(w == team, 1, -1)).astype(np.int8)
            if end and self._hooks_end[i]:
                agent.on_match_end(finished[mine], outcome)
            if start and self._hooks_start[i]:
                agent.on_match_start(finished[mine])

    def stop_rule(self, games: int | None = None, steps: int | None = None) -> None:
        """Set the stop rule (see the class docstring); ``done`` then says when it is met."""
        self._each_once = games is None and steps is None
        self._target = self.game.num_matches if self._each_once else games
        self._max_steps = steps

    @property
    def done(self) -> bool:
        return ((self._max_steps is not None and self.steps >= self._max_steps)
                or (self._target is not None and self.games >= self._target))

    def account(self, all_finished: np.ndarray) -> int:
        """Count what the stop rule counts among the slots that just finished; returns how many."""
        finished = all_finished
        if self._each_once:
            finished = finished[~self.counted[finished]]
            self.counted[finished] = True
        if self._target is not None and finished.size > self._target - self.games:
            finished = finished[: self._target - self.games]
        before = self.games
        self.record(finished, all_finished)
        return self.games - before

    def play(self, games: int | None = None, steps: int | None = None,
             on_step: Callable[["MatchRunner", int], None] | None = None) -> None:
        """Step until the stop rule (see the class docstring) is met. ``on_step(runner, new_games)``.

        When isolated agents take part and none of them wants the match hooks, the next step's
        requests go out before this step's games are counted, so the agents think while we count;
        a request sent after the last step is simply never collected."""
        self.stop_rule(games, steps)
        if self.done:
            return
        early = any(getattr(a, "isolated", False) for a in self.agents) and not any(
            getattr(a, "isolated", False) and getattr(a, "hooks", ()) for a in self.agents)
        asked = self.begin_step()
        self._send_isolated(asked)
        while True:
            finished = self._complete_step(asked)
            sent = early and not (self._max_steps is not None and self.steps >= self._max_steps)
            if sent:
                asked = self.begin_step()
                self._send_isolated(asked)
            new = self.account(finished)
            if on_step is not None:
                on_step(self, new)
            if self.done:
                return
            if not sent:
                asked = self.begin_step()
                self._send_isolated(asked)

    def close(self) -> None:
        for agent in self.agents:
            try:
                agent.close()
            except Exception:
                pass

    def summary(self, arena: str, seconds: float, **extra) -> dict:
        """The run's figures (``arena run --json``): results per agent, pairings, forfeits, throughput."""
        from .summary import summarize
        return summarize(self, arena, seconds, **extra)
