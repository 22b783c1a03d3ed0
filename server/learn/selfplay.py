"""Training in one process: a batched game, the current policy against a mix of opponents, PPO updates.

    trainer = Trainer(preset("connect4"))        # the measured settings per arena (PRESETS)
    trainer.run(seconds=60)                      # iterate(): collect a batch of segments, one ppo_update
    trainer.evaluate("greedy", games=1000)       # MatchRunner, half first / half second
    trainer.save("runs/c4")                      # ckpt:runs/c4 for arena run

With gossip (one process per learner; ``server.learn.gossip``)::

    node = GossipNode("L0", "tcp://127.0.0.1:5600", trainer.params, {"L1": "tcp://127.0.0.1:5601"},
                      version=lambda: trainer.version).start()
    trainer.run(seconds=600, gossip=node, every=1)   # one exchange per update, in the background

**Seats and segments.** Each match slot seats the learner on one team (alternating by slot, so it
plays first or on the left half the time) against an opponent drawn from ``TrainConfig.opponents``:
``self`` (the learner on both teams, both sides learn), ``past`` (a frozen snapshot of the learner,
refreshed every ``snapshot_every`` updates from a pool of old versions), or a built-in agent by name
(``random``, ``greedy``). ``SeatCollector`` keeps one stream per (slot, seat) the learner controls
and cuts it into segments of ``horizon`` decisions of that seat:

- **Per-seat credit (turn-based, connect4).** A decision's reward is everything the seat receives from
  that decision until its own next decision: in connect4 a seat's move is answered by the opponent's
  before the seat moves again, so a loss caused by the reply lands on the move that allowed it. A
  match's end reaches both seats in the same step (``terminations`` is set for both), which closes the
  last decision of each with ``done``.
- **Teams (battle).** Every live agent of the learner's team acts in the same step, each on its own
  stream; an agent that dies gets ``done`` on its last decision and makes no more decisions until its
  slot's next match, so its stream is emitted at once, cut short (``SegmentBatch.valid``) rather than
  left to wait and grow stale. The step limit's truncation ends a match like a termination (no
  bootstrap past it: with ``timeout_winner="survivors"`` the match is decided there). ``win_reward`` (+ for a win, - for a loss, to the learner seats still deciding when
  the match ends) adds the team outcome to the arena's own damage and kill rewards.

The segments go into a ``SegmentBatch``; a segment that spans an update keeps the older version, so
``ppo_update``'s V-trace correction and lag limit apply (a row's stream is never cut at an update).
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import torch

import arenas
from agents import make_agent
from agents.neural import NeuralAgent, PolicyNet
from simcore.game import DRAW

from .config import PAST, SELF, TrainConfig, policy_net
from .evaluate import evaluate
from .ppo import MASKED_LOGIT, SegmentBatch, TorchParams, ppo_update


class SeatCollector:
    """Cuts the decisions of the learner's seats into segments, written in place into a ``SegmentBatch``.

    One rolling stream per flat row ``match * num_agents + seat``; ``ptr[row]`` decisions of the current
    segment are stored, the last one still ``open`` (collecting rewards) until the seat decides again
    or its episode ends. A segment is emitted when a full stream closes: at the seat's next decision
    (whose observation bootstraps the returns) or at its episode's end.
    """

    def __init__(self, game, horizon: int):
        n, a = game.num_matches, game.num_agents
        r, t = n * a, int(horizon)
        self.game, self.horizon = game, t
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
        self.version = np.zeros(r, dtype=np.int64)
        self.ptr = np.zeros(r, dtype=np.int64)
        self.open = np.zeros(r, dtype=np.bool_)
        self.lost_segments = 0     # emitted while the batch was full (never happens when sized as Trainer does)

    def decide(self, rows: np.ndarray, actions: np.ndarray, logp: np.ndarray, version: int,
               batch: SegmentBatch) -> None:
        """Rows (flat seats) decide now, before ``game.step``; streams that are full are emitted first."""
        full = rows[self.ptr[rows] == self.horizon]
        if full.size:
            self._emit(full, batch)
        p = self.ptr[rows]
        self.obs[rows, p] = self.obs_flat[rows]
        self.mask[rows, p] = self.mask_flat[rows] != 0
        self.actions[rows, p] = actions
        self.logp[rows, p] = logp
        self.rewards[rows, p] = 0.0
        self.dones[rows, p] = False
        self.version[rows[p == 0]] = version
        self.ptr[rows] = p + 1
        self.open[rows] = True

    def observe(self, batch: SegmentBatch, bonus: np.ndarray | None = None) -> None:
        """After ``game.step``: rewards reach the open decisions; ended episodes close them.

        A stream whose seat is done while its match goes on (a battle agent that died) is emitted at
        once, cut short if need be: it would otherwise wait for the next match and grow stale."""
        rows = np.flatnonzero(self.open)
        last = self.ptr[rows] - 1
        gained = self.rewards_flat[rows] if bonus is None else self.rewards_flat[rows] + bonus[rows]
        self.rewards[rows, last] += gained
        ended = self.term_flat[rows] | self.trunc_flat[rows]
        rows, last = rows[ended], last[ended]
        self.dones[rows, last] = True
        self.open[rows] = False
        idle = ~self.game.episode_done[rows // self.game.num_agents]
        emit = rows[idle | (self.ptr[rows] == self.horizon)]
        if emit.size:
            self._emit(emit, batch)

    def _emit(self, rows: np.ndarray, batch: SegmentBatch) -> None:
        sl = batch.claim(rows.size)
        k = sl.stop - sl.start
        self.lost_segments += rows.size - k
        src = rows[:k]
        batch.valid[sl] = np.arange(self.horizon)[None, :] < self.ptr[src][:, None]
        batch.obs[sl, :-1] = self.obs[src]
        batch.obs[sl, -1] = self.obs_flat[src]   # the next decision's observation (unused after a done)
        batch.mask[sl] = self.mask[src]
        batch.actions[sl] = self.actions[src]
        batch.logp[sl] = self.logp[src]
        batch.rewards[sl] = self.rewards[src]
        batch.dones[sl] = self.dones[src]
        batch.version[sl] = self.version[src]
        self.ptr[rows] = 0


class Trainer:
    """The in-process training loop: collect segments from ``num_matches`` slots, update, repeat.

    ``params`` (``TorchParams``) is what a gossip node (``server.learn.gossip``) reads and averages: the
    trainer applies pending averages before each acting pass and after each optimizer step.
    ``version`` counts updates.
    """

    def __init__(self, cfg: TrainConfig, net: PolicyNet | None = None, device: str = "cpu"):
        self.cfg = cfg
        self.device = torch.device(device)
        self.game = arenas.make(cfg.arena, num_matches=cfg.num_matches, seed=cfg.seed, **cfg.options)
        game = self.game
        self.net = net or policy_net(cfg, game)
        self.net.to(self.device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.ppo.lr, eps=1e-5)
        self.params = TorchParams(self.net)
        self.version = 0
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)

        # -- who sits where: slot m's learner team alternates, its opponent follows the mix ---------
        n, a = game.num_matches, game.num_agents
        names = list(cfg.opponents)
        weights = np.array([cfg.opponents[k] for k in names], dtype=np.float64)
        counts = np.floor(weights / weights.sum() * n).astype(np.int64)
        counts[np.argmax(weights)] += n - counts.sum()
        self.slot_opponent = np.repeat(np.arange(len(names)), counts)
        self.opponent_names = names
        self.learner_team = np.arange(n) % 2
        is_self = np.array([k == SELF for k in names])[self.slot_opponent]
        team_of_seat = game.seat_team[None, :]
        learner_seat = (team_of_seat == self.learner_team[:, None]) | is_self[:, None]
        self.learner_rows = learner_seat.reshape(-1)
        owner = np.where(learner_seat, -1, self.slot_opponent[:, None])      # -1: the learner
        self.owner_flat = owner.reshape(-1)
        self.opponents: dict[int, object] = {}
        for j, k in enumerate(names):
            if k == SELF:
                continue
            if k == PAST:
                agent = NeuralAgent(game, seed=cfg.seed + j, net=copy.deepcopy(self.net), device=str(self.device))
            else:
                agent = make_agent(k, game, seed=cfg.seed + 1000 + j)
            agent.reset(cfg.seed + 1000 + j)
            self.opponents[j] = agent
        self.pool: list[dict] = []

        # -- buffers ---------------------------------------------------------------------------------
        self.collector = SeatCollector(game, cfg.horizon)
        self.batch = SegmentBatch(cfg.batch_segments + int(self.learner_rows.sum()), cfg.horizon,
                                  game.obs_shape, game.obs.dtype, game.num_actions)
        self.actions = np.zeros((n, a), dtype=np.int64)
        self._actions_flat = self.actions.reshape(-1)
        self._bonus = np.zeros(n * a, dtype=np.float32) if cfg.win_reward else None
        self.results = np.zeros((len(names), 3), dtype=np.int64)   # per opponent: learner wins, losses, draws
        self.steps = 0
        self.agent_steps = 0      # actions of every seat that acted, learner and opponents
        self.decisions = 0
        self.seconds = 0.0
        self.dropped_segments = 0

    # -- acting --------------------------------------------------------------------------------------
    @torch.no_grad()
    def _policy(self, obs: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = torch.from_numpy(obs).to(self.device)
        m = torch.from_numpy(mask).to(self.device) != 0
        logits, _ = self.net(x)
        logp_all = torch.log_softmax(logits.masked_fill(~m, MASKED_LOGIT), dim=-1)
        u = torch.rand(logp_all.shape, generator=self.gen).clamp_(1e-12, 1.0).to(self.device)
        actions = (logp_all - torch.log(-torch.log(u))).argmax(dim=1)     # Gumbel-max sample
        logp = logp_all.gather(1, actions[:, None]).squeeze(1)
        return actions.cpu().numpy(), logp.cpu().numpy()

    def step(self) -> None:
        """One batched game step: the learner and every opponent act on their rows, the game steps."""
        game, col = self.game, self.collector
        active = game.active.reshape(-1)
        rows = np.flatnonzero(active & self.learner_rows)
        self.params.sync(changed=False)
        if rows.size:
            acts, logp = self._policy(col.obs_flat[rows], col.mask_flat[rows])
            self._actions_flat[rows] = acts
            col.decide(rows, acts, logp, self.version, self.batch)
            self.decisions += rows.size
        for j, agent in self.opponents.items():
            orows = np.flatnonzero(active & (self.owner_flat == j))
            if orows.size:
                self._actions_flat[orows] = agent.act(col.obs_flat[orows], col.mask_flat[orows])
        self.agent_steps += int(np.count_nonzero(active))
        game.step(self.actions)
        self.steps += 1
        done = np.flatnonzero(game.episode_done)
        if done.size:
            self._score(done)
        col.observe(self.batch, self._bonus)
        if done.size and self._bonus is not None:
            self._bonus[:] = 0

    def _score(self, slots: np.ndarray) -> None:
        winner = self.game.episode_winner[slots].astype(np.int64)
        outcome = np.where(winner == DRAW, 2, np.where(winner == self.learner_team[slots], 0, 1))
        np.add.at(self.results, (self.slot_opponent[slots], outcome), 1)
        if self._bonus is not None:
            a = self.game.num_agents
            sign = np.where(outcome == 0, 1.0, np.where(outcome == 1, -1.0, 0.0)).astype(np.float32)
            seats = self.game.seat_team[None, :] == self.learner_team[slots, None]       # (F, A)
            rows = (slots[:, None] * a + np.arange(a)[None, :])[seats]
            self._bonus[rows] = self.cfg.win_reward * np.repeat(sign, seats.sum(axis=1))

    def collect(self) -> None:
        """Step until ``batch_segments`` segments are ready."""
        while self.batch.size < self.cfg.batch_segments:
            self.step()

    # -- learning ------------------------------------------------------------------------------------
    def update(self) -> dict:
        stats = ppo_update(self.net, self.optimizer, self.batch, self.cfg.ppo, self.version, self.params.sync, self.gen)
        self.batch.clear()
        self.dropped_segments += stats["dropped_segments"]
        self.version += 1
        if PAST in self.opponent_names and self.version % self.cfg.snapshot_every == 0:
            self._snapshot()
        return stats

    def _snapshot(self) -> None:
        state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        self.pool.append(state)
        del self.pool[:-self.cfg.pool_size]
        past = self.opponents[self.opponent_names.index(PAST)]
        past.net.load_state_dict(self.pool[int(self.rng.integers(len(self.pool)))])

    def iterate(self) -> dict:
        """Collect one batch and update once; returns the update's statistics and the time taken."""
        t0 = time.perf_counter()
        self.collect()
        t1 = time.perf_counter()
        stats = self.update()
        t2 = time.perf_counter()
        self.seconds += t2 - t0
        stats.update(version=self.version, collect_seconds=t1 - t0, update_seconds=t2 - t1,
                     steps=self.steps, total_decisions=self.decisions, seconds=self.seconds)
        return stats

    def run(self, seconds: float | None = None, updates: int | None = None, gossip=None, every: int = 1,
            on_update=None) -> None:
        """Iterate until ``seconds`` of training or ``updates`` updates (whichever first). With
        ``gossip`` (a started ``server.learn.gossip.GossipNode`` over ``self.params``), ask it for one
        exchange every ``every`` updates; it runs in the background and lands at a safe point.
        ``on_update(trainer, stats)`` after each update."""
        start_seconds, start_version = self.seconds, self.version
        while ((seconds is None or self.seconds - start_seconds < seconds)
               and (updates is None or self.version - start_version < updates)):
            stats = self.iterate()
            if gossip is not None and self.version % every == 0:
                gossip.request()
            if on_update is not None:
                on_update(self, stats)

    def win_rates(self, reset: bool = True) -> dict:
        """Learner's win rate per opponent in the games played since the last call (self-play left out)."""
        out = {}
        for j, k in enumerate(self.opponent_names):
            w, l, d = self.results[j]
            if k != SELF and w + l + d:
                out[k] = float(w / (w + l + d))
        if reset:
            self.results[:] = 0
        return out

    # -- evaluation ----------------------------------------------------------------------------------
    def policy_agent(self, greedy: bool = False, seed: int = 0) -> NeuralAgent:
        """A ``NeuralAgent`` on a copy of the current net (sampling, or the argmax with ``greedy``)."""
        net = copy.deepcopy(self.net)
        agent = NeuralAgent(self.game, seed=seed, net=net, device=str(self.device), greedy=greedy)
        agent.name = "learner"
        return agent

    def save(self, path) -> "Path":
        """Write the policy as ``ckpt:`` loads it (``PATH.safetensors`` + ``PATH.json``, atomically)."""
        return self.policy_agent().save(path)

    def load(self, path) -> None:
        """Restart from a policy saved by ``save`` (a learner that rejoins from its checkpoint): the
        weights are loaded strictly and published to gossip; optimizer moments start afresh."""
        agent = NeuralAgent.load(path, game=self.game, device=str(self.device))
        self.net.load_state_dict(agent.net.state_dict(), strict=True)
        self.params.sync()

    def evaluate(self, opponent: str, games: int = 1000, greedy: bool = False, seed: int = 12345) -> dict:
        """Play ``games`` games (one per slot; half as first player / left team) against ``opponent``."""
        return evaluate(self.policy_agent(greedy, seed), self.cfg.arena, opponent, games, seed, self.cfg.options)
