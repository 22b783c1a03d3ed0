"""The learner process: PULLs segments from its rollout workers, updates, publishes, gossips, saves.

    arena train connect4 --learners 2 --workers 1 --minutes 10 --out runs/c4

One machine, three kinds of process, no central process in the learning path::

    rollout worker ──segments (PUSH)──► learner Li ◄──gossip (ROUTER/DEALER)──► learner Lj
          ▲                                 │
          └──────── params (PUB, versioned) ┘──► stats (PUB) ──► arena train (watches, prints, plots)

**Rollout worker** (``RolloutWorker``, a child of its learner). It hosts ``num_matches`` match slots
of the arena and acts for the learner's seats with the policy net, against the opponent mix of
``TrainConfig.opponents``: the same ``Trainer.step`` and ``SeatCollector`` as in-process training,
so the per-seat credit and the segment cutting are those of ``server.learn.selfplay``. Every ``chunk``
segments it pushes one ``segments`` message (raw frames, ``server.net.protocol``) to its learner; before
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
a random live peer (AD-PSGD style, ``server.learn.gossip``; averages land whole, between optimizer steps).
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
from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import zmq

import arenas
from agents.neural import NeuralAgent

from server.net.proc import child_env
from server.net.protocol import Message, ProtocolError, decode, encode

from .config import TrainConfig, policy_net, write_json
from .gossip import GossipNode
from .ppo import SegmentBatch, TorchParams, ppo_update
from .rollout import HWM, PUB_HWM, STATS_EVERY

#: the arrays of a segments message and their dtypes (obs has the arena's observation dtype)
SEGMENT_ARRAYS = {"mask": "bool", "actions": "int64", "logp": "float32", "rewards": "float32",
                  "dones": "bool", "valid": "bool", "version": "int64"}


class TrainError(RuntimeError):
    """Training cannot start or go on (a clear message for the user)."""



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
            cmd = [sys.executable, "-m", "server.learn.rollout", str(self.out / "config.json"),
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
