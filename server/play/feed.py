"""The game server's side of training: segments of the learning policies PUSHed to their learners.

``LearnerFeed`` holds, per batched game (group) and learning policy, a ``TrajectoryRecorder``, and one PUSH
socket per learner. The game server calls it at three points of each group step:

- ``decided(group, agent, rows, actions, logp, version)`` for an accepted reply of a learning policy;
- ``stepped(group, finished)`` after the game stepped, the finished games were counted and their slots
  re-seated: rewards and ends reach the streams; results per opponent are kept per learner; segments
  that filled a chunk are sent;
- ``blocked()`` before it asks for the next step: True while a live learner's outbox holds a full chunk
  it cannot take (backpressure: stepping pauses, counted in ``stats``). A learner is live while its PUB
  socket (stats once a second) was heard from in the last ``LEARNER_LIVENESS`` seconds; a dead learner's
  chunks wait in its bounded outbox and what does not fit is dropped and counted, so the server never
  stalls on the dead.

A ``segments`` message carries per-decision arrays (``trajectory.SEGMENT_ARRAYS``) and in ``meta``: the
server's ``steps``, the learner's slots' ``agent_steps`` and ``decisions`` since the last message, and the
results of its matches per opponent name (``opponents``, ``results``: wins, losses, draws per name).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import zmq

from server.net.endpoints import subscriber
from server.net.protocol import Message, encode, waiting

from .trajectory import TrajectoryRecorder

#: messages queued on the way to each learner (ours and its receive queue): the server runs at most
#: this far ahead of a learner before stepping pauses
SNDHWM = 1
#: seconds without hearing a learner's PUB socket after which it counts as dead
LEARNER_LIVENESS = 5.0


@dataclass
class LearningSpec:
    """The learners the server records for: each learner's acting agent and where it listens."""

    agents: dict[str, tuple[str, str, str]]    # learner name -> (its agent's name, segments endpoint, PUB endpoint)
    horizon: int = 16
    chunk: int = 256
    win_reward: float = 0.0


class LearnerFeed:
    def __init__(self, spec: LearningSpec, runners: list, agent_names: list[str], ctx: zmq.Context,
                 keys_dir: str | None = None, liveness: float = LEARNER_LIVENESS):
        self.spec = spec
        self.names = list(spec.agents)
        self.agent_of = np.array([agent_names.index(spec.agents[n][0]) for n in self.names], dtype=np.int64)
        self.learner_of = {int(a): k for k, a in enumerate(self.agent_of)}   # agent index -> learner
        self.agent_names = agent_names
        self.runners = runners
        self.liveness = float(liveness)
        k = len(self.names)
        # one recorder per (group, learner): the learner's agent's seats, one outbox
        self.recorders: list[list[TrajectoryRecorder]] = [
            [TrajectoryRecorder(r.game, int(self.agent_of[j]), spec.horizon, spec.chunk,
                                np.zeros(r.game.num_matches, np.int64), 1, win_reward=spec.win_reward)
             for j in range(k)] for r in runners]
        self.push: list[zmq.Socket] = []
        self.sub = subscriber(ctx, [], keys_dir)
        for name in self.names:
            _, seg, pub = spec.agents[name]
            s = ctx.socket(zmq.PUSH)
            s.setsockopt(zmq.SNDHWM, SNDHWM)
            s.setsockopt(zmq.LINGER, 0)
            if keys_dir:
                from server.net.endpoints import secure_client
                secure_client(s, keys_dir)
            s.connect(seg)
            self.push.append(s)
            self.sub.connect(pub)
        self.heard = np.full(k, -np.inf)
        self.started = time.monotonic()
        self.seq = 0
        # per learner, since its last message: decisions, agent-steps, results per opponent agent index
        self.decisions = np.zeros(k, dtype=np.int64)
        self.agent_steps = np.zeros(k, dtype=np.int64)
        self.results = np.zeros((k, len(agent_names), 3), dtype=np.int64)
        self.exact = np.ones(k, dtype=np.bool_)
        self.counters = {"segments_sent": 0, "messages_sent": 0, "segments_dropped": 0, "backpressure_waits": 0,
                         "backpressure_s": 0.0, "unrecorded_replies": 0}
        self._blocked_since: float | None = None

    def learns(self, agent: int) -> bool:
        """Whether agent ``agent``'s replies are recorded (it is a learner's)."""
        return agent in self.learner_of

    # -- the game server's calls -------------------------------------------------------------------
    def decided(self, group: int, agent: int, rows: np.ndarray, actions: np.ndarray, logp: np.ndarray,
                version: int, exact: bool = True) -> None:
        """An accepted reply of learner ``agent``'s policy; ``exact``: made by the fp32 net (a bf16 or int8
        copy's log-probabilities differ from the fp32 ones by rounding, which the learner's audit allows)."""
        k = self.learner_of[agent]
        self.exact[k] &= bool(exact)
        self.recorders[group][k].decide(rows, actions, logp, version)
        self.decisions[k] += rows.size

    def stepped(self, group: int, finished: np.ndarray, asked: list) -> None:
        """After a step of ``group``: ``asked`` are its ``(agent, rows)`` requests of the step."""
        runner = self.runners[group]
        owner = runner.seat_owner.reshape(-1)
        # every seat's action counts for the learner whose slot it is (opponents' too, as agent-steps)
        learner = np.full(runner.game.num_matches, -1, dtype=np.int64)
        for k, a in enumerate(self.agent_of):
            learner[(runner.team_agent == a).any(axis=1)] = k
        a = runner.game.num_agents
        for _, rows in asked:
            ks = learner[rows // a]
            self.agent_steps += np.bincount(ks[ks >= 0], minlength=len(self.names))
        if finished.size:
            self._score(group)
        for rec in self.recorders[group]:
            rec.observe(finished, owner)
        self.flush()

    def _score(self, group: int) -> None:
        """Results of the learners' finished matches, per learner and opponent."""
        slots, team_agent, winner = self.runners[group].last_ended
        if team_agent.shape[1] != 2:
            return
        for k, a in enumerate(self.agent_of):
            ours = team_agent == a
            mine = ours.any(axis=1)
            if not mine.any():
                continue
            ta, w = team_agent[mine], winner[mine]
            team = np.argmax(ours[mine], axis=1)                     # our team (the first, in self-play)
            opp = ta[np.arange(len(ta)), 1 - team]
            outcome = np.where(w < 0, 2, np.where(w == team, 0, 1))
            np.add.at(self.results[k], (opp, outcome), 1)

    # -- sending -----------------------------------------------------------------------------------
    def _alive(self, now: float) -> np.ndarray:
        for msg in waiting(self.sub):
            name = msg.meta.get("learner", msg.sender)
            if name in self.names:
                self.heard[self.names.index(name)] = now
        # a learner counts as live until it has had the liveness period to say hello
        return (now - self.heard <= self.liveness) | (now - self.started <= self.liveness * 4)

    def _message(self, k: int, arrays: dict) -> Message:
        own = self.agent_names[int(self.agent_of[k])]
        names = ["self" if n == own else n.split("#")[0] for n in self.agent_names]
        meta = {"learner": self.names[k], "decisions": int(self.decisions[k]), "agent_steps": int(self.agent_steps[k]),
                "steps": int(max(r.steps for r in self.runners)), "opponents": names,
                "results": [int(x) for x in self.results[k].reshape(-1)], "policy": own,
                "exact": bool(self.exact[k])}
        self.seq += 1
        return Message("segments", seq=self.seq, sender="server", arrays=arrays, meta=meta)

    def flush(self) -> None:
        """Send every full chunk a learner can take now."""
        for k, sock in enumerate(self.push):
            for group in self.recorders:
                rec = group[k]
                if not rec.ready(0):
                    continue
                msg = self._message(k, rec.arrays(0))
                try:
                    sock.send_multipart(encode(msg), flags=zmq.NOBLOCK, copy=True)
                except zmq.Again:
                    break
                self.counters["segments_sent"] += rec.outbox[0].size
                self.counters["messages_sent"] += 1
                rec.clear(0)
                self.decisions[k] = self.agent_steps[k] = 0
                self.results[k] = 0
                self.exact[k] = True

    def blocked(self) -> bool:
        """Whether stepping must pause: a live learner has a full chunk waiting that it cannot take."""
        self.flush()
        now = time.monotonic()
        alive = self._alive(now)
        waiting = np.zeros(len(self.names), dtype=np.bool_)
        for group in self.recorders:
            for k, rec in enumerate(group):
                box = rec.outbox[0]
                if rec.ready(0) and not alive[k]:
                    # the dead learner's queue is bounded: a full one is dropped and counted
                    if box.size > box.capacity - rec.game.num_matches * rec.game.num_agents:
                        self.counters["segments_dropped"] += box.size
                        box.clear()
                elif rec.ready(0):
                    waiting[k] = True
        blocked = bool(waiting.any())
        if blocked and self._blocked_since is None:
            self._blocked_since = now
            self.counters["backpressure_waits"] += 1
        elif not blocked and self._blocked_since is not None:
            self.counters["backpressure_s"] += now - self._blocked_since
            self._blocked_since = None
        return blocked

    def stats(self) -> dict:
        out = dict(self.counters)
        out["backpressure_s"] = round(out["backpressure_s"], 3)
        out["segments_lost"] = sum(r.lost for group in self.recorders for r in group)
        return out

    def close(self) -> None:
        for s in self.push:
            s.close(linger=0)
        self.sub.close(linger=0)
