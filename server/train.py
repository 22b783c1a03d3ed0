"""Distributed self-play training: rollout workers stream segments to learners; learners gossip.

    arena train connect4 --learners 2 --workers 1 --minutes 10 --out runs/c4

One machine, three kinds of process, no central process in the learning path::

    rollout worker ──segments (PUSH)──► learner Li ◄──gossip (ROUTER/DEALER)──► learner Lj
          ▲                                 │
          └──────── params (PUB, versioned) ┘──► stats (PUB) ──► arena train (watches, prints, plots)

**Rollout worker** (``RolloutWorker``, a child of its learner). It hosts ``num_matches`` match slots
of the arena and acts for the learner's seats with the policy net, against the opponent mix of
``TrainConfig.opponents``: the same ``Trainer.step`` and ``SeatCollector`` as in-process training,
so the per-seat credit and the segment cutting are those of ``server.selfplay``. Every ``chunk``
segments it pushes one ``segments`` message (raw frames, ``server.protocol``) to its learner; before
each chunk it drains the learner's PUB and loads new parameters only when their version moved. A
segment carries the version of the policy that made its first decision. PUSH/PULL high-water marks
of one message (on each side, per worker) give back-pressure: a worker that runs ahead of its learner
blocks instead of producing data that would only be dropped as stale. Workers (and learners started
by ``arena train``) exit when their parent process is gone.

**Learner** (``Learner``; ``arena learner`` runs one by hand). It fills a ``SegmentBatch`` from
its workers' messages (each validated: shapes, dtypes, versions; a bad one is dropped and counted),
runs ``ppo_update`` once ``batch_segments`` segments are in (V-trace corrected; segments more than
``PPOConfig.max_lag`` versions old are dropped and counted), publishes the new parameters with the
new version, and every ``gossip_every`` updates asks its ``GossipNode`` for one pairwise average with
a random live peer (AD-PSGD style, ``server.gossip``; averages land whole, between optimizer steps).
Once a second it publishes a ``stats`` message; every ``save_every`` seconds, and when it stops
(SIGTERM, SIGINT), it writes its checkpoint: ``policy.safetensors`` + ``.json`` (``ckpt:`` loads it),
``optimizer.pt`` (tensors only, read back with ``weights_only=True``) and ``state.json``, each
written to a temporary file and renamed. ``--resume`` starts from them. A worker that dies is
noticed (its process exits) and reported; training goes on with the others.

**arena train** (``run_training``) starts the K learners (each with W workers) with the others as
gossip peers, subscribes to their PUB sockets, prints the live table and writes ``curves.csv``;
at the end (time, ``--steps`` or Ctrl-C) it stops them, copies learner L0's policy to
``DIR/policy.safetensors``, draws ``curves.png`` and plays 1,000 games against ``random`` and
``greedy`` (half as first player / left team).
"""
from __future__ import annotations

import copy
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import zmq

import arenas
from agents.neural import NeuralAgent

from . import child_env
from .gossip import GossipNode, consensus_distance
from .learner import PPOConfig, SegmentBatch, TorchParams, ppo_update
from .protocol import Message, ProtocolError, decode, encode
from .selfplay import Trainer, TrainConfig, policy_net
from .selfplay import preset as inprocess_preset

#: messages queued on each side of a worker's PUSH/PULL link: a worker runs at most this far ahead of its
#: learner, so segments wait in queues for at most a few updates (the lag limit is PPOConfig.max_lag)
HWM = 1
#: seconds between a learner's stats messages (and re-publications of its parameters, for late subscribers)
STATS_EVERY = 1.0
#: messages a PUB socket keeps per subscriber (parameters: only the newest matters)
PUB_HWM = 4
#: the arrays of a segments message and their dtypes (obs has the arena's observation dtype)
SEGMENT_ARRAYS = {"mask": "bool", "actions": "int64", "logp": "float32", "rewards": "float32",
                  "dones": "bool", "valid": "bool", "version": "int64"}


class TrainError(RuntimeError):
    """Training cannot start or go on (a clear message for the user)."""


# -- configuration --------------------------------------------------------------------------------
#: changes to ``server.selfplay.PRESETS`` for distributed training (``arena train``). The learner no
#: longer waits for its own collection, so the update's cost per decision sets the pace: APPO-style
#: fewer passes over each batch (sample-factory's APPO defaults to one epoch) keep the rollout workers
#: busy. Battle's segments arrive in bursts of about ``num_matches * team_size`` (every learner stream
#: of a worker fills at the same step), so one update takes one burst.
TRAIN_PRESETS: dict[str, dict] = {
    "connect4": {"ppo": {"update_epochs": 1, "num_minibatches": 2}},
    "battle": {"batch_segments": 1024, "ppo": {"update_epochs": 2, "num_minibatches": 4, "max_lag": 8}},
}


def preset(arena: str, **overrides) -> TrainConfig:
    """The in-process preset of ``arena`` with ``TRAIN_PRESETS`` and then ``overrides`` applied."""
    extra = TRAIN_PRESETS.get(arena, {})
    ppo = {**extra.get("ppo", {}), **overrides.pop("ppo", {})}
    return inprocess_preset(arena, **{**extra, **overrides, "ppo": ppo})


def config_from_dict(d: dict) -> TrainConfig:
    d = dict(d)
    ppo = PPOConfig(**d.pop("ppo", {}))
    return TrainConfig(ppo=ppo, **d)


def write_json(path: Path, obj) -> None:
    """Atomically: a temporary file, fsynced, renamed."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _alive_stop_flag() -> list[bool]:
    """A flag SIGTERM and SIGINT set (the loop checks it between steps)."""
    flag = [False]

    def handler(signum, frame):
        flag[0] = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return flag


# -- the rollout worker ----------------------------------------------------------------------------
class RolloutWorker:
    """Plays the learner's seats with the newest parameters it has and pushes segments to it."""

    def __init__(self, cfg: TrainConfig, name: str, segments_endpoint: str, params_endpoint: str,
                 chunk: int, seed: int):
        self.name = name
        self.trainer = Trainer(replace(cfg, seed=seed, batch_segments=chunk))
        self.params = self.trainer.params
        self.ctx = zmq.Context()
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.SNDHWM, HWM)
        self.push.setsockopt(zmq.LINGER, 0)
        self.push.connect(segments_endpoint)
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.setsockopt(zmq.RCVHWM, PUB_HWM)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.connect(params_endpoint)
        self.seq = 0
        self.refreshes = 0
        self.stop = [False]
        self.parent = os.getppid()

    def _orphaned(self) -> bool:
        return os.getppid() != self.parent

    def _refresh(self, wait: float = 0.0) -> bool:
        """Load the newest ``params`` waiting on the PUB socket if its version moved (waiting up to
        ``wait`` seconds for one). Returns whether parameters were loaded."""
        newest = None
        deadline = time.monotonic() + wait
        while True:
            timeout = max(0.0, deadline - time.monotonic()) if newest is None else 0.0
            if not self.sub.poll(int(timeout * 1000)):
                break
            try:
                msg = decode(self.sub.recv_multipart(copy=False))
            except ProtocolError:
                continue
            if msg.type == "params":
                newest = msg
        if newest is None:
            return False
        version = int(newest.meta.get("version", -1))
        vec = newest.arrays.get("params")
        if vec is None or vec.dtype != np.float32 or vec.shape != (self.params.size,):
            return False
        if version == self.trainer.version and self.refreshes:
            return False
        self.params.write(np.array(vec))
        self.params.sync(changed=True)
        self.trainer.version = version
        self.refreshes += 1
        return True

    def _message(self) -> Message:
        tr, b = self.trainer, self.trainer.batch
        n = b.size
        arrays = {"obs": b.obs[:n], "mask": b.mask[:n], "actions": b.actions[:n], "logp": b.logp[:n],
                  "rewards": b.rewards[:n], "dones": b.dones[:n], "valid": b.valid[:n], "version": b.version[:n]}
        meta = {"worker": self.name, "steps": tr.steps, "agent_steps": tr.agent_steps,
                "decisions": tr.decisions, "opponents": list(tr.opponent_names),
                "results": [int(x) for x in tr.results.reshape(-1)]}
        self.seq += 1
        return Message("segments", seq=self.seq, sender=self.name, policy_version=tr.version,
                       arrays=arrays, meta=meta)

    def run(self) -> int:
        self.stop = _alive_stop_flag()
        deadline = time.monotonic() + 60.0
        while not self._refresh(wait=0.5):
            if self.stop[0] or self._orphaned():
                return 0
            if time.monotonic() > deadline:
                print(f"rollout worker {self.name}: no parameters from the learner within 60 s", file=sys.stderr)
                return 1
        tr = self.trainer
        while not self.stop[0] and not self._orphaned():
            self._refresh()
            tr.collect()
            frames = encode(self._message())
            # counters travel as totals since the last message, so a dropped message loses only its own
            tr.steps = tr.agent_steps = tr.decisions = 0
            tr.results[:] = 0
            while not self.stop[0] and not self._orphaned():
                if self.push.poll(200, zmq.POLLOUT):
                    self.push.send_multipart(frames, copy=True)
                    break
            tr.batch.clear()
        return 0

    def close(self) -> None:
        self.push.close(linger=0)
        self.sub.close(linger=0)
        self.ctx.term()


# -- the learner -----------------------------------------------------------------------------------
@dataclass
class LearnerState:
    """What ``state.json`` keeps beside the weights and the optimizer."""

    name: str = "L0"
    version: int = 0
    updates: int = 0
    decisions: int = 0             # decisions of the learner's seats in its workers' games, all time
    agent_steps: int = 0           # actions of every seat in the workers' games, all time
    steps: int = 0                 # batched game steps of the workers, all time
    seconds: float = 0.0           # training time, all runs together
    dropped_segments: int = 0
    bad_messages: int = 0
    results: dict = field(default_factory=dict)   # opponent -> [wins, losses, draws], all time


class Learner:
    """One learner: PULLs segments from its rollout workers, updates, publishes, gossips, saves."""

    def __init__(self, cfg: TrainConfig, name: str, out: str | os.PathLike, workers: int = 1,
                 gossip_bind: str = "tcp://127.0.0.1:5600", peers: dict[str, str] | None = None,
                 pub_bind: str | None = None, segments_bind: str | None = None, chunk: int | None = None,
                 gossip_every: int = 1, gossip_timeout: float = 5.0, save_every: float = 60.0,
                 resume: bool = False, keys_dir: str | None = None, worker_seed: int | None = None,
                 exit_with_parent: bool = False, log: Callable[[str], None] | None = None):
        self.cfg, self.name, self.out = cfg, name, Path(out)
        self.log = log or (lambda text: print(f"[{name}] {text}", file=sys.stderr, flush=True))
        self.out.mkdir(parents=True, exist_ok=True)
        self.game = arenas.make(cfg.arena, num_matches=1, seed=0, **cfg.options)
        game = self.game
        self.net = policy_net(cfg, game)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.ppo.lr, eps=1e-5)
        self.state = LearnerState(name=name)
        if resume:
            self._load()
        self.params = TorchParams(self.net)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.batch = SegmentBatch(cfg.batch_segments, cfg.horizon, game.obs_shape, game.obs.dtype, game.num_actions)
        self.chunk = int(chunk or max(64, cfg.batch_segments // 4))
        self.num_workers = int(workers)
        self.worker_seed = cfg.seed * 1000 if worker_seed is None else worker_seed
        self.gossip_every, self.save_every = int(gossip_every), float(save_every)
        self.last_stats: dict = {}
        self.parent = os.getppid() if exit_with_parent else None

        self._tmp = tempfile.mkdtemp(prefix=f"arena-{name}-")
        self.ctx = zmq.Context()
        self.pull = self.ctx.socket(zmq.PULL)
        self.pull.setsockopt(zmq.RCVHWM, HWM)
        self.pull.setsockopt(zmq.LINGER, 0)
        self.pull.bind(segments_bind or f"ipc://{self._tmp}/segments")
        self.segments_endpoint = self.pull.getsockopt_string(zmq.LAST_ENDPOINT)
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.SNDHWM, PUB_HWM)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.bind(pub_bind or f"ipc://{self._tmp}/pub")
        self.pub_endpoint = self.pub.getsockopt_string(zmq.LAST_ENDPOINT)
        self.gossip = GossipNode(name, gossip_bind, self.params, peers or {}, version=lambda: self.state.version,
                                 timeout=gossip_timeout, seed=cfg.seed, keys_dir=keys_dir, log=self.log)
        self.workers: list[subprocess.Popen] = []
        self.worker_exits: dict[str, int] = {}
        write_json(self.out / "config.json", cfg.to_dict())

    # -- checkpoints ---------------------------------------------------------------------------------
    def _load(self) -> None:
        state_path = self.out / "state.json"
        if not state_path.is_file():
            raise TrainError(f"--resume: no checkpoint in {self.out} (state.json missing)")
        agent = NeuralAgent.load(self.out / "policy", game=self.game, device="cpu")
        try:
            self.net.load_state_dict(agent.net.state_dict(), strict=True)
        except RuntimeError as exc:
            raise TrainError(f"--resume: the checkpoint in {self.out} does not fit this configuration "
                             f"({str(exc).splitlines()[0]})") from None
        opt = self.out / "optimizer.pt"
        if opt.is_file():
            self.optimizer.load_state_dict(torch.load(opt, weights_only=True))
            for group in self.optimizer.param_groups:      # the configured step size wins over the saved one
                group["lr"] = self.cfg.ppo.lr
        data = json.loads(state_path.read_text())
        known = {f for f in LearnerState.__dataclass_fields__}
        self.state = LearnerState(**{k: v for k, v in data.items() if k in known})
        self.state.name = self.name
        self.log(f"resumed from {self.out} at version {self.state.version} "
                 f"({self.state.agent_steps:,} agent-steps, {self.state.seconds:.0f} s trained)")

    def save(self) -> Path:
        """Write the checkpoint (each file atomically); returns the policy's path."""
        agent = NeuralAgent(self.game, net=copy.deepcopy(self.net), device="cpu", arena=self.cfg.arena,
                            hidden=self.cfg.hidden, channels=self.cfg.channels)
        path = agent.save(self.out / "policy")
        tmp = self.out / "optimizer.pt.tmp"
        torch.save(self.optimizer.state_dict(), tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.out / "optimizer.pt")
        write_json(self.out / "state.json", asdict(self.state))
        return path

    # -- workers -------------------------------------------------------------------------------------
    def start_workers(self) -> None:
        env = child_env()
        for w in range(self.num_workers):
            name = f"{self.name}.w{w}"
            seed = self.worker_seed + 101 * w + 7 * self.state.updates
            cmd = [sys.executable, "-m", "server.train", "worker", str(self.out / "config.json"),
                   "--name", name, "--segments", self.segments_endpoint, "--params", self.pub_endpoint,
                   "--chunk", str(self.chunk), "--seed", str(seed)]
            proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
            proc.worker_name = name
            self.workers.append(proc)
            self.log(f"rollout worker {name} started (pid {proc.pid})")

    def _check_workers(self) -> int:
        alive = 0
        for proc in self.workers:
            rc = proc.poll()
            if rc is None:
                alive += 1
            elif proc.worker_name not in self.worker_exits:
                self.worker_exits[proc.worker_name] = rc
                self.log(f"rollout worker {proc.worker_name} exited with code {rc}: its trajectories stop; "
                         f"training goes on with the other workers")
        return alive

    def stop_workers(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # -- messages ------------------------------------------------------------------------------------
    def publish_params(self) -> None:
        vec = self.params.get()
        msg = Message("params", sender=self.name, policy_version=self.state.version, arrays={"params": vec},
                      meta={"learner": self.name, "version": self.state.version, "size": int(vec.size),
                            "layout": self.gossip.layout})
        self.pub.send_multipart(encode(msg), copy=False)

    def _check_segments(self, msg: Message) -> int:
        """The number of segments in a valid message; raises ``ProtocolError`` otherwise."""
        if msg.type != "segments":
            raise ProtocolError(f"expected a segments message, got {msg.type!r}")
        b = self.batch
        obs = msg.arrays.get("obs")
        if obs is None or obs.dtype != b.obs.dtype or obs.shape[1:] != b.obs.shape[1:]:
            raise ProtocolError(f"obs must be {b.obs.dtype} (n,) + {b.obs.shape[1:]}")
        n = obs.shape[0]
        for key, dtype in SEGMENT_ARRAYS.items():
            arr, want = msg.arrays.get(key), getattr(b, key)
            if arr is None or arr.dtype.name != dtype or arr.shape != (n,) + want.shape[1:]:
                raise ProtocolError(f"{key} must be {dtype} {(n,) + want.shape[1:]}")
        if n and (msg.arrays["version"].max() > self.state.version or msg.arrays["version"].min() < 0):
            raise ProtocolError("segment versions must lie between 0 and the learner's version")
        if n and ((msg.arrays["actions"] < 0) | (msg.arrays["actions"] >= b.mask.shape[2])).any():
            raise ProtocolError("actions out of range")
        if not np.isfinite(msg.arrays["logp"]).all() or not np.isfinite(msg.arrays["rewards"]).all():
            raise ProtocolError("logp and rewards must be finite")
        if n and not msg.arrays["valid"][:, 0].all():
            raise ProtocolError("every segment must hold at least one decision")
        meta = msg.meta
        for key in ("steps", "agent_steps", "decisions"):
            if not isinstance(meta.get(key), int) or isinstance(meta.get(key), bool) or meta[key] < 0:
                raise ProtocolError(f"meta {key!r} must be a non-negative integer")
        names, results = meta.get("opponents"), meta.get("results")
        if not isinstance(names, list) or not all(isinstance(k, str) for k in names) or \
                not isinstance(results, list) or len(results) != 3 * len(names) or \
                not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in results):
            raise ProtocolError("meta 'opponents' must be names and 'results' three counts per name")
        return n

    def _take(self, msg: Message) -> bool:
        """Copy a message's segments into the batch, updating each time it fills; whether it updated."""
        meta, st = msg.meta, self.state           # checked by _check_segments
        st.steps += meta["steps"]
        st.agent_steps += meta["agent_steps"]
        st.decisions += meta["decisions"]
        for j, k in enumerate(meta["opponents"]):
            acc = st.results.setdefault(k, [0, 0, 0])
            for i in range(3):
                acc[i] += meta["results"][3 * j + i]
        src = msg.arrays
        n, start, updated = src["obs"].shape[0], 0, False
        while start < n:
            sl = self.batch.claim(n - start)
            k = sl.stop - sl.start
            for key in ("obs",) + tuple(SEGMENT_ARRAYS):
                getattr(self.batch, key)[sl] = src[key][start:start + k]
            start += k
            if self.batch.full:
                self.update()
                updated = True
        return updated

    def update(self) -> dict:
        stats = ppo_update(self.net, self.optimizer, self.batch, self.cfg.ppo, self.state.version,
                           self.params.sync, self.gen)
        self.batch.clear()
        st = self.state
        st.dropped_segments += stats["dropped_segments"]
        if stats["segments"] == 0:          # all too old: nothing trained, the version stays
            return stats
        st.version += 1
        st.updates += 1
        self.last_stats = stats
        self.publish_params()
        if self.gossip.peers and st.updates % self.gossip_every == 0:
            self.gossip.request()
        return stats

    def stats_message(self, alive: int) -> Message:
        st, ls, gs = self.state, self.last_stats, self.gossip.stats
        meta = {"learner": self.name, "version": st.version, "updates": st.updates, "decisions": st.decisions,
                "agent_steps": st.agent_steps, "steps": st.steps, "seconds": round(st.seconds, 3),
                "dropped_segments": st.dropped_segments, "bad_messages": st.bad_messages,
                "workers_alive": alive, "workers": self.num_workers,
                "gossip_exchanges": gs.exchanges, "gossip_served": gs.served, "gossip_timeouts": gs.timeouts,
                "gossip_bytes_sent": gs.bytes_sent, "averaged": self.params.averaged,
                "opponents": list(st.results), "results": [x for v in st.results.values() for x in v]}
        for key in ("mean_lag", "pg_loss", "v_loss", "entropy", "approx_kl", "clipfrac", "explained_variance"):
            if key in ls:
                meta[key] = float(ls[key])
        return Message("stats", sender=self.name, policy_version=st.version, meta=meta)

    # -- the loop ------------------------------------------------------------------------------------
    def run(self, seconds: float | None = None, stop: list[bool] | None = None) -> LearnerState:
        """Train until ``seconds`` pass (this run), ``stop[0]`` is set, or every worker is gone; then save."""
        stop = stop if stop is not None else [False]
        self.gossip.start()
        self.start_workers()
        self.publish_params()
        t0 = time.monotonic()
        trained0 = self.state.seconds
        next_stats = next_save = t0
        alive = self.num_workers
        try:
            while not stop[0] and (seconds is None or time.monotonic() - t0 < seconds):
                if self.parent is not None and os.getppid() != self.parent:
                    self.log("the process that started this learner is gone: stopping")
                    break
                if self.pull.poll(100):
                    busy_until = time.monotonic() + 0.2
                    while not stop[0] and time.monotonic() < busy_until:   # then stats, saves, signals
                        try:
                            frames = self.pull.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        try:
                            msg = decode(frames)
                            self._check_segments(msg)
                        except ProtocolError as exc:
                            self.state.bad_messages += 1
                            self.log(f"segments message refused ({exc}); {self.state.bad_messages} so far")
                            continue
                        if self._take(msg):
                            break
                if self.params.sync(changed=False):
                    self.publish_params()           # an average landed while we waited for data
                now = time.monotonic()
                self.state.seconds = trained0 + (now - t0)
                if now >= next_stats:
                    alive = self._check_workers()
                    self.pub.send_multipart(encode(self.stats_message(alive)), copy=False)
                    self.publish_params()           # for late subscribers (a new worker or watcher)
                    next_stats = now + STATS_EVERY
                    if alive == 0:
                        raise TrainError(f"learner {self.name}: every rollout worker has exited "
                                         f"({self.worker_exits}); nothing left to train on")
                if self.save_every and now >= next_save + self.save_every:
                    self.save()
                    next_save = now
        finally:
            self.stop_workers()
            self.state.seconds = trained0 + (time.monotonic() - t0)
            self.save()
            self.pub.send_multipart(encode(self.stats_message(0)), copy=False)
        return self.state

    def close(self) -> None:
        self.gossip.close()
        self.pull.close(linger=0)
        self.pub.close(linger=0)
        self.ctx.term()
        shutil.rmtree(self._tmp, ignore_errors=True)


# -- arena train: the orchestrator -----------------------------------------------------------------
CSV_FIELDS = ["minutes", "learner", "version", "agent_steps", "agent_steps_per_s", "updates_per_s",
              "mean_lag", "pg_loss", "v_loss", "entropy", "approx_kl", "consensus_distance",
              "win_random", "win_greedy", "dropped_segments", "gossip_exchanges", "gossip_timeouts",
              "workers_alive"]


class Watcher:
    """Subscribes to the learners' PUB sockets: their stats and parameters (for the consensus distance)."""

    def __init__(self, endpoints: dict[str, str]):
        self.ctx = zmq.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.setsockopt(zmq.LINGER, 0)
        for ep in endpoints.values():
            self.sub.connect(ep)
        self.stats: dict[str, dict] = {}
        self.params: dict[str, np.ndarray] = {}
        self.heard: dict[str, float] = {}       # learner -> when its last message arrived

    def poll(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if not self.sub.poll(max(0, int(left * 1000))):
                return
            while True:
                try:
                    frames = self.sub.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                try:
                    msg = decode(frames)
                except ProtocolError:
                    continue
                name = str(msg.meta.get("learner", msg.sender))
                self.heard[name] = time.monotonic()
                if msg.type == "stats":
                    self.stats[name] = dict(msg.meta)
                elif msg.type == "params" and "params" in msg.arrays:
                    self.params[name] = msg.arrays["params"]     # a view of the received frame, no copy

    def forget(self, name: str) -> None:
        """Drop what a learner said (it was restarted, say)."""
        for d in (self.stats, self.params, self.heard):
            d.pop(name, None)

    def consensus(self, fresh: float = 3.0) -> float | None:
        """The consensus distance of the learners heard from in the last ``fresh`` seconds (a dead
        learner's last parameters would otherwise count forever)."""
        now = time.monotonic()
        vecs = [v for n, v in self.params.items() if now - self.heard.get(n, -1e9) <= fresh]
        if len(vecs) < 2 or len({v.size for v in vecs}) != 1:
            return None
        return consensus_distance(vecs)

    def close(self) -> None:
        self.sub.close(linger=0)
        self.ctx.term()


def _win_rates(meta: dict, prev: dict | None) -> dict[str, float]:
    """Win rate per opponent over the training games since ``prev`` (sampling policy, seats alternating)."""
    def table(m):
        names, res = m.get("opponents", []), m.get("results", [])
        return {k: np.array(res[3 * j:3 * j + 3], dtype=np.int64) for j, k in enumerate(names)}
    now, before = table(meta), table(prev or {})
    out = {}
    for k, v in now.items():
        d = v - before.get(k, 0)
        if d.sum() > 0:
            out[k] = float(d[0] / d.sum())
    return out


def plot_curves(csv_path: Path, png_path: Path, title: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(open(csv_path)))
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    panels = [("win rate in training games", ["win_random", "win_greedy"], axes[0, 0], False),
              ("agent-steps/s", ["agent_steps_per_s"], axes[0, 1], False),
              ("loss / entropy", ["pg_loss", "v_loss", "entropy"], axes[1, 0], False),
              ("consensus distance", ["consensus_distance"], axes[1, 1], True)]
    learners = sorted({r["learner"] for r in rows})
    for label, keys, ax, log in panels:
        for name in learners:
            sub = [r for r in rows if r["learner"] == name]
            x = [float(r["minutes"]) for r in sub]
            for key in keys:
                y = [float(r[key]) if r[key] not in ("", None) else np.nan for r in sub]
                if keys == ["consensus_distance"]:
                    if name != learners[0]:
                        continue                 # one value for all learners, written on each row
                    ax.plot(x, y, label=f"all {len(learners)} learners")
                    continue
                ax.plot(x, y, label=f"{name} {key}" if len(learners) > 1 or len(keys) > 1 else key)
        ax.set_title(label)
        ax.set_xlabel("minutes")
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)
    plt.close(fig)
    return png_path


@dataclass
class TrainPlan:
    arena: str
    out: Path
    learners: int = 2
    workers: int = 1
    minutes: float | None = None
    steps: int | None = None
    seed: int = 0
    resume: bool = False
    options: dict = field(default_factory=dict)
    every: float = 10.0
    eval_games: int = 1000
    gossip_every: int = 1
    save_every: float = 60.0
    overrides: dict = field(default_factory=dict)


def run_training(plan: TrainPlan, out=sys.stdout) -> dict:
    """``arena train``: start the learners, watch them, stop them, save, plot, evaluate."""
    say = lambda text: print(text, file=out, flush=True)  # noqa: E731
    root = plan.out
    run_file = root / "train.json"
    # a run exists once a learner has saved a checkpoint (a start that failed before that leaves none)
    holds_run = run_file.is_file() and any((root / "learners").glob("*/state.json"))
    if holds_run and not plan.resume:
        raise TrainError(f"{root} already holds a run; pass --resume to go on with it, or choose another --out")
    if plan.resume and not holds_run:
        raise TrainError(f"--resume: {root} holds no run (no train.json and learner checkpoints)")
    if plan.resume:
        prev = json.loads(run_file.read_text())
        if prev.get("arena") != plan.arena or prev.get("learners") != plan.learners:
            raise TrainError(f"{root} holds a run of {prev.get('arena')} with {prev.get('learners')} learners; "
                             f"resume it with the same arena and --learners")
        # the saved configuration, with what this command changes on top (--set)
        d = prev["config"]
        ppo = {**d.pop("ppo"), **plan.overrides.get("ppo", {})}
        d.update({k: v for k, v in plan.overrides.items() if k != "ppo"})
        cfg = config_from_dict({**d, "ppo": ppo})
        plan.options, plan.seed = cfg.options, prev.get("seed", plan.seed)
    else:
        cfg = preset(plan.arena, options=plan.options, seed=plan.seed, net_seed=plan.seed, **plan.overrides)
    if "past" in cfg.opponents:
        raise TrainError("the 'past' opponent is for in-process training (server.selfplay); "
                         "arena train's rollout workers play 'self', 'random', 'greedy' or other agents")
    root.mkdir(parents=True, exist_ok=True)
    write_json(run_file, {"arena": plan.arena, "learners": plan.learners, "workers": plan.workers,
                          "options": plan.options, "seed": plan.seed, "config": cfg.to_dict()})
    tmp = tempfile.mkdtemp(prefix="arena-train-")
    names = [f"L{i}" for i in range(plan.learners)]
    gossip = {n: f"ipc://{tmp}/{n}.gossip" for n in names}
    pubs = {n: f"ipc://{tmp}/{n}.pub" for n in names}
    cfg_path = Path(tmp) / "config.json"
    write_json(cfg_path, cfg.to_dict())
    env = child_env()
    procs: dict[str, subprocess.Popen] = {}
    for i, n in enumerate(names):
        cmd = [sys.executable, "-m", "server.cli", "learner", plan.arena, "--config", str(cfg_path),
               "--name", n, "--seed", str(100 + plan.seed + i), "--out", str(root / "learners" / n),
               "--workers", str(plan.workers), "--bind", gossip[n], "--pub", pubs[n],
               "--gossip-every", str(plan.gossip_every), "--save-every", str(plan.save_every),
               "--exit-with-parent"]
        peers = [f"{m}={gossip[m]}" for m in names if m != n]
        if peers:
            cmd += ["--peers", ",".join(peers)]
        if plan.resume:
            cmd.append("--resume")
        procs[n] = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    watcher = Watcher(pubs)
    csv_path = root / "curves.csv"
    new_csv = not (plan.resume and csv_path.is_file())
    fh = open(csv_path, "w" if new_csv else "a", newline="")
    writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
    if new_csv:
        writer.writeheader()
    say(f"arena train {plan.arena}: {plan.learners} learner(s) x {plan.workers} rollout worker(s), "
        f"{cfg.num_matches} matches per worker, {cfg.batch_segments} x {cfg.horizon} decisions per update; "
        f"out {root}")
    header = (f"{'min':>6} {'lrn':>3} {'ver':>5} {'agent-steps':>12} {'steps/s':>9} {'upd/s':>5} {'lag':>4} "
              f"{'pg':>7} {'v':>6} {'ent':>5} {'consensus':>9} {'rand':>5} {'grdy':>5} {'wk':>3}")
    start = steady = steady_end = None
    prev: dict[str, dict] = {}
    base: dict[str, int] = {}          # each learner's agent-steps when this run began (--resume counts on)
    summary: dict = {}
    interrupted = False
    failed: list[str] = []

    def as_interrupt(signum, frame):
        raise KeyboardInterrupt
    old_handlers = {sig: signal.signal(sig, as_interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        next_row = time.monotonic() + plan.every
        while True:
            watcher.poll(0.5)
            now = time.monotonic()
            for n, p in procs.items():
                if p.poll() is not None and n not in failed:
                    failed.append(n)
                    say(f"learner {n} exited with code {p.returncode}")
            if failed and len(failed) == len(procs):
                raise TrainError("every learner has exited; see the messages above")
            if start is None and len(watcher.stats) == len(names):
                start = now
                say(header)
            if start is None:
                if now - (next_row - plan.every) > 120:
                    raise TrainError("the learners did not start within 120 s")
                continue
            for n, s in watcher.stats.items():
                base.setdefault(n, int(s["agent_steps"]))
            total_steps = sum(int(s["agent_steps"]) - base[n] for n, s in watcher.stats.items())
            if steady is None and all(int(s["agent_steps"]) > base[n] for n, s in watcher.stats.items()):
                steady = (now, total_steps)   # every learner's workers have delivered: warm-up is over
            done = (plan.minutes is not None and now - start >= plan.minutes * 60) or \
                   (plan.steps is not None and total_steps >= plan.steps)
            if now >= next_row or done:
                cons = watcher.consensus()
                for n in names:
                    s = watcher.stats.get(n)
                    if s is None:
                        continue
                    p0 = prev.get(n)
                    dt = (s["seconds"] - p0["seconds"]) if p0 else 0.0
                    rate = (s["agent_steps"] - p0["agent_steps"]) / dt if p0 and dt > 0 else float("nan")
                    ups = (s["updates"] - p0["updates"]) / dt if p0 and dt > 0 else float("nan")
                    wins = _win_rates(s, p0)
                    row = {"minutes": round(s["seconds"] / 60, 3), "learner": n, "version": s["version"],
                           "agent_steps": s["agent_steps"], "agent_steps_per_s": round(rate, 1),
                           "updates_per_s": round(ups, 3), "mean_lag": s.get("mean_lag", ""),
                           "pg_loss": s.get("pg_loss", ""), "v_loss": s.get("v_loss", ""),
                           "entropy": s.get("entropy", ""), "approx_kl": s.get("approx_kl", ""),
                           "consensus_distance": "" if cons is None else cons,
                           "win_random": wins.get("random", ""), "win_greedy": wins.get("greedy", ""),
                           "dropped_segments": s["dropped_segments"], "gossip_exchanges": s["gossip_exchanges"],
                           "gossip_timeouts": s["gossip_timeouts"], "workers_alive": s["workers_alive"]}
                    writer.writerow(row)
                    f = lambda v, spec: format(v, spec) if isinstance(v, (int, float)) else "-"  # noqa: E731
                    say(f"{s['seconds'] / 60:>6.1f} {n:>3} {s['version']:>5} {s['agent_steps']:>12,} "
                        f"{f(rate, '>9,.0f')} {f(ups, '>5.2f')} {f(s.get('mean_lag'), '>4.1f')} "
                        f"{f(s.get('pg_loss'), '>7.3f')} {f(s.get('v_loss'), '>6.3f')} {f(s.get('entropy'), '>5.2f')} "
                        f"{f(cons, '>9.2e')} {f(wins.get('random'), '>5.0%')} {f(wins.get('greedy'), '>5.0%')} "
                        f"{s['workers_alive']:>3}")
                    prev[n] = dict(s)
                fh.flush()
                next_row = now + plan.every
            if done:
                steady_end = (now, total_steps)
                break
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: stopping the learners, saving what they have")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):     # let nothing cut the shutdown short
            signal.signal(sig, signal.SIG_IGN)
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 120
        for p in procs.values():
            try:
                p.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        watcher.poll(0.5)
        watcher.close()
        fh.close()
        shutil.rmtree(tmp, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for sig, h in old_handlers.items():
            signal.signal(sig, h)

    # -- results -------------------------------------------------------------------------------------
    final = {n: json.loads((root / "learners" / n / "state.json").read_text())
             for n in names if (root / "learners" / n / "state.json").is_file()}
    if not final:
        raise TrainError("no learner saved a checkpoint")
    best = names[0] if names[0] in final else next(iter(final))
    src = root / "learners" / best / "policy"
    for ext in (".safetensors", ".json"):
        shutil.copyfile(src.with_suffix(ext), (root / "policy").with_suffix(ext))
    agent_steps = sum(s["agent_steps"] for s in final.values())
    seconds = max(s["seconds"] for s in final.values())
    summary = {"arena": plan.arena, "learners": plan.learners, "workers": plan.workers,
               "policy": str(root / "policy.safetensors"), "agent_steps": agent_steps,
               "decisions": sum(s["decisions"] for s in final.values()),
               "updates": {n: s["updates"] for n, s in final.items()}, "seconds": round(seconds, 1),
               "agent_steps_per_s": round(agent_steps / max(seconds, 1e-9), 1),
               "dropped_segments": sum(s["dropped_segments"] for s in final.values()),
               "interrupted": interrupted}
    if steady is not None and steady_end is not None and steady_end[0] > steady[0]:
        # the rate after every worker's first delivery (start-up and compile time left out)
        summary["steady_agent_steps_per_s"] = round((steady_end[1] - steady[1]) / (steady_end[0] - steady[0]), 1)
    png = None
    try:
        png = plot_curves(csv_path, root / "curves.png", f"arena train {plan.arena}: {plan.learners} learners")
        summary["plot"] = str(png)
    except Exception as exc:  # a plot must not lose a trained policy
        say(f"(no plot: {type(exc).__name__}: {exc})")
    summary["csv"] = str(csv_path)
    steady_text = (f", {summary['steady_agent_steps_per_s']:,.0f}/s after warm-up"
                   if "steady_agent_steps_per_s" in summary else "")
    say(f"trained {seconds / 60:.1f} min: {agent_steps:,} agent-steps ({summary['agent_steps_per_s']:,.0f}/s{steady_text}), "
        f"updates {summary['updates']}, {summary['dropped_segments']} stale segments dropped")
    if plan.eval_games:
        from .selfplay import evaluate
        agent = NeuralAgent.load(root / "policy", device="cpu")
        summary["eval"] = {}
        for opp in ("random", "greedy"):
            r = evaluate(agent, plan.arena, opp, games=plan.eval_games, options=plan.options)
            summary["eval"][opp] = r
            say(f"  vs {opp:<7} {r['wins']:>5} won {r['losses']:>5} lost {r['draws']:>5} drawn of {r['games']} "
                f"(half first / left, half second / right): win rate {r['win_rate']:.1%}")
    write_json(root / "summary.json", summary)
    say(f"saved {root / 'policy.safetensors'} (+ .json), curves {csv_path}" + (f" and {png}" if png else ""))
    say(f"use it:  arena run {plan.arena} --agents ckpt:{root / 'policy'},greedy")
    return summary


# -- python -m server.train worker ... (started by a learner) ---------------------------------------
def _worker_main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m server.train worker")
    ap.add_argument("config")
    ap.add_argument("--name", required=True)
    ap.add_argument("--segments", required=True)
    ap.add_argument("--params", required=True)
    ap.add_argument("--chunk", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cfg = config_from_dict(json.loads(Path(args.config).read_text()))
    worker = RolloutWorker(cfg, args.name, args.segments, args.params, args.chunk, args.seed)
    try:
        return worker.run()
    finally:
        worker.close()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        sys.exit(_worker_main(sys.argv[2:]))
    sys.exit("usage: python -m server.train worker CONFIG ... (arena train starts these)")
