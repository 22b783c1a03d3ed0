"""Trajectories from the game server: the decisions of a learning policy's seats, cut into segments.

The game server holds the observations, rewards and terminations; a policy worker's reply for a learning
policy carries, besides the actions, their log-probabilities and the parameter version that produced
them. ``TrajectoryRecorder`` (one per learning policy) keeps one rolling stream per flat seat row
``match * num_agents + seat`` and cuts it into segments of ``horizon`` decisions of that seat:

- **Per-seat credit.** A decision's reward is everything its seat receives from that decision until its
  own next decision (in connect4 the opponent's reply lands on the move that allowed it). Both teams'
  seats of the policy get this, and the team outcome (``win_reward``: + for a win, - for a loss) at a
  match's end, whichever team they played.
- **Episode ends.** A seat whose match ended (by the rules, the step limit, or a forfeit restart) closes
  its last decision with ``done``. Its stream goes on into the slot's next match when the seat is still
  this policy's and the segment is not full (fewer padded rows); otherwise it is emitted at once, cut
  short (``valid``). A battle agent that dies while its match goes on is emitted at once too.
- **Versions.** Every decision records the version of the parameters that produced it (a segment may
  span a parameter swap; V-trace corrects for the lag). Only accepted replies are recorded: the server
  drops a late or re-sent reply before it reaches ``decide``, so a step is never stitched from two.
- **Shares.** With K learners per policy, slot ``m`` belongs to learner ``share[m]``: its parameters act
  there and that slot's segments go to its outbox.

Segments wait in a preallocated ``Segments`` outbox per learner; ``ready(k)`` says when ``chunk`` are in,
``arrays(k)`` gives views of them for one ``segments`` message, ``clear(k)`` empties the outbox.
"""
from __future__ import annotations

import numpy as np

#: the arrays of a ``segments`` message and their dtypes (``obs`` has the arena's observation dtype)
SEGMENT_ARRAYS = {"mask": "bool", "actions": "int64", "logp": "float32", "rewards": "float32",
                  "dones": "bool", "valid": "bool", "version": "int64"}


class Segments:
    """Preallocated segments of one learner's share: ``S`` segments of ``T`` decisions.

    ``obs`` is ``(S, T + 1, *obs)``: ``obs[:, T]`` bootstraps the returns after the segment. ``version``
    is per decision ``(S, T)``; padding rows (``valid`` False) hold version -1."""

    def __init__(self, capacity: int, horizon: int, obs_shape, obs_dtype, num_actions: int):
        s, t = int(capacity), int(horizon)
        self.capacity, self.horizon = s, t
        self.obs = np.zeros((s, t + 1) + tuple(obs_shape), dtype=obs_dtype)
        self.mask = np.zeros((s, t, num_actions), dtype=np.bool_)
        self.actions = np.zeros((s, t), dtype=np.int64)
        self.logp = np.zeros((s, t), dtype=np.float32)
        self.rewards = np.zeros((s, t), dtype=np.float32)
        self.dones = np.zeros((s, t), dtype=np.bool_)
        self.valid = np.zeros((s, t), dtype=np.bool_)
        self.version = np.zeros((s, t), dtype=np.int64)
        self.size = 0
        self.lost = 0           # segments that found the outbox full (dropped and counted)

    def claim(self, n: int) -> slice:
        k = min(int(n), self.capacity - self.size)
        self.lost += int(n) - k
        rows = slice(self.size, self.size + k)
        self.size += k
        return rows

    def arrays(self) -> dict[str, np.ndarray]:
        n = self.size
        return {"obs": self.obs[:n], "mask": self.mask[:n], "actions": self.actions[:n], "logp": self.logp[:n],
                "rewards": self.rewards[:n], "dones": self.dones[:n], "valid": self.valid[:n],
                "version": self.version[:n]}

    def clear(self) -> None:
        self.size = 0


class TrajectoryRecorder:
    """The segments of one learning policy (agent ``agent`` of a ``MatchRunner``) in one batched game."""

    def __init__(self, game, agent: int, horizon: int, chunk: int, shares: np.ndarray, num_learners: int,
                 win_reward: float = 0.0, capacity: int | None = None):
        n, a = game.num_matches, game.num_agents
        r, t = n * a, int(horizon)
        self.game, self.agent, self.horizon, self.chunk = game, int(agent), t, int(chunk)
        self.win_reward = float(win_reward)
        self.share = np.asarray(shares, dtype=np.int64)              # (N,) learner of each slot
        self.row_share = np.repeat(self.share, a)                     # (N * A,)
        self.num_learners = int(num_learners)
        self.obs_flat = game.obs.reshape((r,) + game.obs_shape)
        self.mask_flat = game.action_mask.reshape(r, -1)
        self.rewards_flat = game.rewards.reshape(r)
        self.term_flat, self.trunc_flat = game.terminations.reshape(r), game.truncations.reshape(r)
        self.obs = np.zeros((r, t) + game.obs_shape, dtype=game.obs.dtype)
        self.mask = np.zeros((r, t, game.num_actions), dtype=np.bool_)
        self.actions = np.zeros((r, t), dtype=np.int64)
        self.logp = np.zeros((r, t), dtype=np.float32)
        self.rewards = np.zeros((r, t), dtype=np.float32)
        self.dones = np.zeros((r, t), dtype=np.bool_)
        self.version = np.zeros((r, t), dtype=np.int64)
        self.ptr = np.zeros(r, dtype=np.int64)
        self.open = np.zeros(r, dtype=np.bool_)
        # an outbox holds a chunk, plus what one step can emit at most (every seat of the game)
        cap = int(capacity or (self.chunk + r))
        self.outbox = [Segments(cap, t, game.obs_shape, game.obs.dtype, game.num_actions)
                       for _ in range(self.num_learners)]
        self.decisions = 0

    # -- one step ----------------------------------------------------------------------------------
    def decide(self, rows: np.ndarray, actions: np.ndarray, logp: np.ndarray, version) -> None:
        """Flat seat ``rows`` decide now (an accepted reply), before ``game.step``."""
        rows = np.asarray(rows, dtype=np.int64)
        full = rows[self.ptr[rows] == self.horizon]
        if full.size:
            self._emit(full)
        p = self.ptr[rows]
        self.obs[rows, p] = self.obs_flat[rows]
        self.mask[rows, p] = self.mask_flat[rows] != 0
        self.actions[rows, p] = actions
        self.logp[rows, p] = logp
        self.rewards[rows, p] = 0.0
        self.dones[rows, p] = False
        self.version[rows, p] = version
        self.ptr[rows] = p + 1
        self.open[rows] = True
        self.decisions += rows.size

    def observe(self, finished: np.ndarray, owner_flat: np.ndarray) -> None:
        """After ``game.step``: rewards reach the open decisions, ended episodes close them.

        ``finished``: the slots whose match ended this step (by the rules or a forfeit restart);
        ``owner_flat``: which agent holds each flat seat row in the slot's next match (after re-seating)."""
        game = self.game
        a = game.num_agents
        rows = np.flatnonzero(self.open)
        if not rows.size:
            return
        last = self.ptr[rows] - 1
        self.rewards[rows, last] += self.rewards_flat[rows]
        slot = rows // a
        ended_slot = np.zeros(game.num_matches, dtype=np.bool_)
        ended_slot[finished] = True
        if self.win_reward and finished.size:
            at_end = ended_slot[slot]
            winner = game.episode_winner[slot[at_end]].astype(np.int64)
            team = game.seat_team[rows[at_end] % a]
            sign = np.where(winner < 0, 0.0, np.where(winner == team, 1.0, -1.0)).astype(np.float32)
            self.rewards[rows[at_end], last[at_end]] += self.win_reward * sign
        ended = self.term_flat[rows] | self.trunc_flat[rows] | ended_slot[slot]
        rows, last, slot = rows[ended], last[ended], slot[ended]
        self.dones[rows, last] = True
        self.open[rows] = False
        idle = ~ended_slot[slot]                                   # the seat is out, its match goes on
        moved = owner_flat[rows] != self.agent                     # the seat is not ours next match
        emit = rows[idle | moved | (self.ptr[rows] == self.horizon)]
        if emit.size:
            self._emit(emit)

    def _emit(self, rows: np.ndarray) -> None:
        t = self.horizon
        for k in np.unique(self.row_share[rows]):
            src = rows[self.row_share[rows] == k]
            box = self.outbox[int(k)]
            sl = box.claim(src.size)
            src = src[:sl.stop - sl.start]
            valid = np.arange(t)[None, :] < self.ptr[src][:, None]
            box.valid[sl] = valid
            box.obs[sl, :-1] = self.obs[src]
            box.obs[sl, -1] = self.obs_flat[src]     # the next decision's observation (unused after a done)
            box.mask[sl] = self.mask[src]
            box.actions[sl] = self.actions[src]
            box.logp[sl] = self.logp[src]
            box.rewards[sl] = np.where(valid, self.rewards[src], 0.0)
            box.dones[sl] = self.dones[src] & valid
            box.version[sl] = np.where(valid, self.version[src], -1)
        self.ptr[rows] = 0

    # -- the outboxes ------------------------------------------------------------------------------
    def ready(self, k: int) -> bool:
        return self.outbox[k].size >= self.chunk

    def arrays(self, k: int) -> dict[str, np.ndarray]:
        return self.outbox[k].arrays()

    def clear(self, k: int) -> None:
        self.outbox[k].clear()

    @property
    def lost(self) -> int:
        return sum(b.lost for b in self.outbox)
