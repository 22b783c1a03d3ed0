"""The learner process: PULLs segments from the game server, updates, publishes versions, gossips, saves.

    arena learner connect4 --name L0 --segments ipc://... --pub ipc://... --bind ipc://... --peers L1=...

**In.** ``segments`` messages from the game server (``server.play.feed``): fixed-length segments of the
decisions of the slots this learner owns, each decision with the behaviour log-probability and the
parameter version that produced it. Each message is validated (shapes, dtypes, versions no newer than
ours, finite values; a bad one is dropped and counted) and a few of its decisions are *audited*: their
log-probability is re-computed under the version they name (the last ``AUDIT_VERSIONS`` are kept), so a
row stitched from two replies would show up in ``mismatched_rows``.

**Update.** ``ppo_update`` runs once ``batch_segments`` segments are in (V-trace corrected; segments
more than ``PPOConfig.max_lag`` versions old are dropped and counted). Every change of the parameters,
an update or a gossip average that landed (``server.learn.gossip``, AD-PSGD style, every
``gossip_every`` updates with a random live peer), is a new version, published at once on the PUB
socket (``params``: the flat vector, its version and the net's description) for the policy workers to
swap in between batches. Once a second it publishes ``stats`` (and the parameters again, for late
subscribers).

**Checkpoints.** Every ``save_every`` seconds, and when it stops (SIGTERM, SIGINT), it writes its
checkpoint as one unit (``agents.checkpoint``): a new folder ``OUT/ckpt-NNNNNN/`` with
``policy.safetensors`` + ``policy.json`` (``ckpt:OUT`` loads it), ``optimizer.pt`` (tensors only, read
back with ``weights_only=True``) and ``state.json``, each recording the checkpoint's number, then
``OUT/checkpoint.json`` switched to it atomically. ``--resume`` starts from the checkpoint the pointer
names (its version never goes back) and refuses a corrupt or mismatched one. While a learner is down,
the game server keeps its segments in a bounded queue (then drops and counts them) and the other
learners go on.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import zmq

import arenas
from agents.checkpoint import CheckpointError
from agents.neural import NeuralAgent, Staging, pick_device

from server.net.proc import make_run_dir
from server.net.endpoints import bind as bind_socket, stop_authenticator
from server.net.protocol import MAX_HEADER_BYTES, MAX_MESSAGE_BYTES, Message, ProtocolError, decode, encode

from .config import TrainConfig, policy_net, write_json
from .gossip import GossipNode
from .ppo import SegmentBatch, TorchParams, ppo_update
from server.play.policies import MASKED_LOGIT
from server.play.trajectory import SEGMENT_ARRAYS

#: messages queued on the way in (the game server's PUSH holds one more): the server runs at most this
#: far ahead of the learner before it pauses stepping, so segments wait for at most a few updates
HWM = 1
#: seconds between a learner's stats messages (and re-publications of its parameters, for late subscribers)
STATS_EVERY = 1.0
#: messages a PUB socket keeps per subscriber (parameters: only the newest matters)
PUB_HWM = 4
#: the file in a learner's folder that records the highest version it published
PUBLISHED = "published.json"
#: versions of the parameters kept to audit behaviour log-probabilities (at least the lag limit)
AUDIT_VERSIONS = 24
#: decisions re-computed per segments message, and the largest difference in log-probability allowed:
#: for decisions of the fp32 net, and for those of a worker's bf16 or int8 copy (``arena worker --precision``)
AUDIT_ROWS, AUDIT_TOLERANCE, AUDIT_TOLERANCE_COMPRESSED = 16, 1e-3, 0.25


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
    audited_rows: int = 0          # decisions whose log-probability was re-computed under their version
    mismatched_rows: int = 0       # ... and did not match (a row stitched from two replies would not)
    results: dict = field(default_factory=dict)   # opponent -> [wins, losses, draws], all time


class Learner:
    """One learner: PULLs segments from the game server, updates, publishes versions, gossips, saves."""

    def __init__(self, cfg: TrainConfig, name: str, out: str | os.PathLike,
                 gossip_bind: str = "tcp://127.0.0.1:5600", peers: dict[str, str] | None = None,
                 pub_bind: str | None = None, segments_bind: str | None = None,
                 gossip_every: int = 1, gossip_timeout: float = 5.0, save_every: float = 60.0,
                 resume: bool = False, keys_dir: str | None = None, device: str = "auto",
                 exit_with_parent: bool = False, log: Callable[[str], None] | None = None,
                 init: str | None = None, version_start: int = 0):
        self.cfg, self.name, self.out = cfg, name, Path(out)
        self.log = log or (lambda text: print(f"[{name}] {text}", file=sys.stderr, flush=True))
        self.out.mkdir(parents=True, exist_ok=True)
        self.game = arenas.make(cfg.arena, num_matches=1, seed=0, **cfg.options)
        game = self.game
        self.device = pick_device(device, log=self.log)      # cuda without a device: the CPU, said once
        self.stage = Staging(self.device)                    # pinned host buffers for the batches on CUDA
        self.net = policy_net(cfg, game).to(self.device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.ppo.lr, eps=1e-5)
        self.state = LearnerState(name=name, version=int(version_start))
        if resume:
            self._load()
        elif init:
            self._init_from(init)
        self.params = TorchParams(self.net)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.batch = SegmentBatch(cfg.batch_segments, cfg.horizon, game.obs_shape, game.obs.dtype, game.num_actions)
        self.gossip_every, self.save_every = int(gossip_every), float(save_every)
        self.last_stats: dict = {}
        self.parent = os.getppid() if exit_with_parent else None

        self._tmp = make_run_dir(name)
        self.ctx = zmq.Context()
        # the biggest segments message the server sends (a chunk plus one step's streams of a few groups):
        # each frame above it disconnects the sender before it is allocated; decode refuses more
        seg_bytes = sum(a.nbytes for a in vars(self.batch).values() if isinstance(a, np.ndarray)) // max(cfg.batch_segments, 1)
        seg_bytes += 8 * cfg.horizon                        # the per-decision versions
        most = cfg.batch_segments + 4 * cfg.num_matches * game.num_agents
        self.max_segments_bytes = min(MAX_MESSAGE_BYTES, MAX_HEADER_BYTES + most * seg_bytes + (1 << 20))
        self.history: dict[int, np.ndarray] = {}            # version -> parameters, for the audit
        self.updates_at: dict[int, int] = {}                 # version -> updates done when it was published
        self.audit_net = policy_net(cfg, game).eval()
        self.audit_rng = np.random.default_rng(cfg.seed + 17)
        self.keys_dir = keys_dir
        self.pull = self.ctx.socket(zmq.PULL)
        self.pull.setsockopt(zmq.RCVHWM, HWM)
        self.pull.setsockopt(zmq.LINGER, 0)
        self.pull.setsockopt(zmq.MAXMSGSIZE, self.max_segments_bytes)
        self.segments_endpoint = bind_socket(self.pull, segments_bind or f"ipc://{self._tmp}/segments", keys_dir,
                                             "the segments endpoint")
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.SNDHWM, PUB_HWM)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.setsockopt(zmq.MAXMSGSIZE, 64 * 1024)       # subscribers send subscriptions only
        self.pub_endpoint = bind_socket(self.pub, pub_bind or f"ipc://{self._tmp}/pub", keys_dir, "--pub")
        self.gossip = GossipNode(name, gossip_bind, self.params, peers or {}, version=lambda: self.state.version,
                                 timeout=gossip_timeout, seed=cfg.seed, keys_dir=keys_dir, log=self.log)
        write_json(self.out / "config.json", cfg.to_dict())

    # -- checkpoints ---------------------------------------------------------------------------------
    def _load(self) -> None:
        """Start from the checkpoint in ``out`` (``server.learn.checkpoints.read_learner_checkpoint``: the one
        its pointer names, checked as one unit). A corrupt, truncated, absurd or mismatched checkpoint
        raises ``CheckpointError`` (one line); one that does not fit this configuration, ``TrainError``."""
        from .checkpoints import read_learner_checkpoint

        try:
            ck = read_learner_checkpoint(self.out, self.game)
        except FileNotFoundError as exc:
            raise TrainError(f"--resume: {exc}") from None
        if ck.number is None:
            self.log(f"{self.out} holds a checkpoint from before versioned checkpoints: its files cannot be "
                     f"checked against each other; the next save writes the new format")
        try:
            self.net.load_state_dict(ck.agent.net.state_dict(), strict=True)
            if ck.optimizer is not None:
                self.optimizer.load_state_dict(ck.optimizer)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise TrainError(f"--resume: the checkpoint in {ck.folder} does not fit this configuration "
                             f"({str(exc).splitlines()[0]})") from None
        for group in self.optimizer.param_groups:      # the configured step size wins over the saved one
            group["lr"] = self.cfg.ppo.lr
        self.state = LearnerState(**ck.state)
        self.state.name = self.name
        saved, published = self.state.version, self._published()
        if published >= saved:      # it had published past its checkpoint before it stopped
            self.state.version = published + 1
        self.log(f"resumed from {ck.folder} at version {saved} "
                 f"({self.state.agent_steps:,} agent-steps, {self.state.seconds:.0f} s trained)"
                 + (f"; publishing from version {self.state.version}, above the {published} it had published"
                    if published >= saved else ""))

    def _init_from(self, path: str) -> None:
        """Start from the weights of the policy checkpoint ``path`` (``ckpt:PATH`` or ``PATH``: data only);
        its net must be the one this configuration builds."""
        try:
            agent = NeuralAgent.load(path[5:] if path.startswith("ckpt:") else path, self.game, device="cpu")
            self.net.load_state_dict(agent.net.state_dict(), strict=True)
        except (CheckpointError, FileNotFoundError, OSError, ValueError) as exc:
            raise TrainError(f"--init {path}: {str(exc).splitlines()[0]}") from None
        except RuntimeError as exc:
            raise TrainError(f"--init {path}: its net does not fit this configuration "
                             f"({str(exc).splitlines()[0]})") from None
        self.log(f"starting from the weights of {path}")

    def save(self) -> Path:
        """Write the checkpoint as one unit (``agents.checkpoint``): policy, optimizer (tensors only) and
        state into a new numbered folder, each fsynced, then the pointer switched to it; returns the folder."""
        from agents import checkpoint as ckpt

        agent = NeuralAgent(self.game, net=copy.deepcopy(self.net), device="cpu", arena=self.cfg.arena,
                            hidden=self.cfg.hidden, channels=self.cfg.channels)
        files = agent.checkpoint_files(info={"learner": self.name, "policy_version": self.state.version})
        optimizer, state = self.optimizer.state_dict(), asdict(self.state)
        files["optimizer.pt"] = lambda path, n: torch.save({"checkpoint": n, "optimizer": optimizer}, path)
        files["state.json"] = lambda path, n: path.write_text(json.dumps({**state, "checkpoint": n}, indent=2))
        return ckpt.write(self.out, files, info={"learner": self.name, "version": self.state.version})

    # -- messages ------------------------------------------------------------------------------------
    def publish_params(self) -> None:
        """Broadcast the parameters under the current version (policy workers swap them in between
        batches; the net's description lets them build it)."""
        vec = self.params.get()
        v = self.state.version
        if v not in self.history:
            self._note_published(v)
            self.history[v] = vec
            for old in sorted(self.history)[:-AUDIT_VERSIONS]:
                del self.history[old]
            self.updates_at[v] = self.state.updates
            for old in sorted(self.updates_at)[:-4 * AUDIT_VERSIONS]:
                del self.updates_at[old]
        msg = Message("params", sender=self.name, policy_version=v, arrays={"params": vec},
                      meta={"learner": self.name, "version": v, "size": int(vec.size), "layout": self.gossip.layout,
                            "arch": self.cfg.arch, "hidden": self.cfg.hidden, "channels": self.cfg.channels})
        self.pub.send_multipart(encode(msg), copy=False)

    def _note_published(self, version: int) -> None:
        """Record ``version`` as published (before it is): a learner restarted from an older checkpoint then
        publishes above it, so no version number ever names two different sets of parameters."""
        path = self.out / PUBLISHED
        tmp = path.with_name(f".{PUBLISHED}.{os.getpid()}")
        tmp.write_text(json.dumps({"version": int(version)}))
        os.replace(tmp, path)

    def _published(self) -> int:
        """The highest version an earlier process of this learner published (-1: none recorded)."""
        try:
            v = json.loads((self.out / PUBLISHED).read_text()).get("version")
            return int(v) if isinstance(v, int) and not isinstance(v, bool) else -1
        except (OSError, ValueError, AttributeError):
            return -1

    def new_version(self) -> None:
        """The parameters changed (an update, or a gossip average that landed): a new version, published."""
        self.state.version += 1
        self.publish_params()

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
            arr = msg.arrays.get(key)
            want = (n, b.horizon) if key == "version" else (n,) + getattr(b, key).shape[1:]
            if arr is None or arr.dtype.name != dtype or arr.shape != want:
                raise ProtocolError(f"{key} must be {dtype} {want}")
        valid, version = msg.arrays["valid"], msg.arrays["version"]
        if n and (version[valid].min(initial=0) < 0 or (version[~valid] != -1).any()):
            raise ProtocolError("a decision's version must be non-negative, padding's -1")
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
        self._audit(src, AUDIT_TOLERANCE if meta.get("exact", True) is not False else AUDIT_TOLERANCE_COMPRESSED)
        n, start, updated = src["obs"].shape[0], 0, False
        while start < n:
            sl = self.batch.claim(n - start)
            k = sl.stop - sl.start
            for key in ("obs",) + tuple(SEGMENT_ARRAYS):
                if key == "version":
                    # a segment is as old as its first decision, counted in updates (gossip averages are
                    # versions too, but no staler for it); a version we never published is too old
                    first = src["version"][start:start + k, 0]
                    self.batch.version[sl] = [self.updates_at.get(int(v), -(1 << 40)) for v in first]
                else:
                    getattr(self.batch, key)[sl] = src[key][start:start + k]
            start += k
            if self.batch.full:
                self.update()
                updated = True
        return updated

    @torch.no_grad()
    def _audit(self, src: dict, tolerance: float = AUDIT_TOLERANCE) -> None:
        """Re-compute the behaviour log-probability of a few decisions under the version each names:
        a row whose recorded version did not produce it (stitched from two replies) does not match."""
        valid = src["valid"]
        rows, cols = np.nonzero(valid)
        if rows.size == 0:
            return
        pick = self.audit_rng.choice(rows.size, size=min(AUDIT_ROWS, rows.size), replace=False)
        rows, cols = rows[pick], cols[pick]
        versions = src["version"][rows, cols]
        for v in np.unique(versions):
            vec = self.history.get(int(v))
            if vec is None:                  # older than the versions kept: not audited
                continue
            sel = versions == v
            r, c = rows[sel], cols[sel]
            torch.nn.utils.vector_to_parameters(torch.from_numpy(vec), list(self.audit_net.parameters()))
            logits, _ = self.audit_net(torch.from_numpy(np.ascontiguousarray(src["obs"][r, c])))
            m = torch.from_numpy(np.ascontiguousarray(src["mask"][r, c]))
            logp = torch.log_softmax(logits.masked_fill(~m, MASKED_LOGIT), dim=-1)
            logp = logp.gather(1, torch.from_numpy(src["actions"][r, c])[:, None]).squeeze(1).numpy()
            self.state.audited_rows += int(r.size)
            self.state.mismatched_rows += int((np.abs(logp - src["logp"][r, c]) > tolerance).sum())

    def update(self) -> dict:
        stats = ppo_update(self.net, self.optimizer, self.batch, self.cfg.ppo, self.state.updates,
                           self.params.sync, self.gen, stage=self.stage)
        self.batch.clear()
        st = self.state
        st.dropped_segments += stats["dropped_segments"]
        if stats["segments"] == 0:          # all too old: nothing trained, the version stays
            return stats
        st.updates += 1
        self.last_stats = stats
        self.new_version()
        if self.gossip.peers and st.updates % self.gossip_every == 0:
            self.gossip.request()
        return stats

    def stats_message(self) -> Message:
        st, ls, gs = self.state, self.last_stats, self.gossip.stats
        meta = {"learner": self.name, "version": st.version, "updates": st.updates, "decisions": st.decisions,
                "agent_steps": st.agent_steps, "steps": st.steps, "seconds": round(st.seconds, 3),
                "dropped_segments": st.dropped_segments, "bad_messages": st.bad_messages,
                "audited_rows": st.audited_rows, "mismatched_rows": st.mismatched_rows,
                "gossip_exchanges": gs.exchanges, "gossip_served": gs.served, "gossip_timeouts": gs.timeouts,
                "gossip_bytes_sent": gs.bytes_sent, "averaged": self.params.averaged,
                "opponents": list(st.results), "results": [x for v in st.results.values() for x in v]}
        for key in ("mean_lag", "pg_loss", "v_loss", "entropy", "approx_kl", "clipfrac", "explained_variance"):
            if key in ls:
                meta[key] = float(ls[key])
        return Message("stats", sender=self.name, policy_version=st.version, meta=meta)

    # -- the loop ------------------------------------------------------------------------------------
    def run(self, seconds: float | None = None, stop: list[bool] | None = None) -> LearnerState:
        """Train on the segments that come in until ``seconds`` pass (this run) or ``stop[0]`` is set; then save."""
        stop = stop if stop is not None else [False]
        self.gossip.start()
        self.publish_params()
        t0 = time.monotonic()
        trained0 = self.state.seconds
        next_stats = next_save = t0
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
                            msg = decode(frames, max_bytes=self.max_segments_bytes)
                            self._check_segments(msg)
                        except ProtocolError as exc:
                            self.state.bad_messages += 1
                            self.log(f"segments message refused ({exc}); {self.state.bad_messages} so far")
                            continue
                        if self._take(msg):
                            break
                if self.params.sync(changed=False):
                    self.new_version()              # an average landed while we waited for data
                now = time.monotonic()
                self.state.seconds = trained0 + (now - t0)
                if now >= next_stats:
                    self.pub.send_multipart(encode(self.stats_message()), copy=False)
                    self.publish_params()           # for late subscribers (a new worker or watcher)
                    next_stats = now + STATS_EVERY
                if self.save_every and now >= next_save + self.save_every:
                    self.save()
                    next_save = now
        finally:
            self.state.seconds = trained0 + (time.monotonic() - t0)
            self.save()
            self.pub.send_multipart(encode(self.stats_message()), copy=False)
        return self.state

    def close(self) -> None:
        self.gossip.close()
        self.pull.close(linger=0)
        self.pub.close(linger=0)
        stop_authenticator(self.ctx)
        self.ctx.term()
        shutil.rmtree(self._tmp, ignore_errors=True)
