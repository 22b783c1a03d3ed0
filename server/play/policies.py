"""Policies a worker serves from parameter broadcasts: the learners' current versions and frozen snapshots.

A learner publishes ``params`` messages (a flat float32 vector, its ``version`` and the net's layout) on a
PUB socket. ``LearningPolicy`` subscribes to one learner and swaps the newest version in *between*
batches (``refresh``), never during one; its ``act_logp`` answers a batch with the actions, their
log-probabilities under the acting parameters and that version, which the game server records with the
trajectory. ``SnapshotPool`` keeps every ``every``-th version it sees as a frozen snapshot; the ``past``
opponent plays one of them, drawn again whenever a new snapshot arrives.

Parameters are data: they fill our own ``PolicyNet`` (built from the layout the message names and the
game's spaces); a vector of the wrong size or dtype, or not finite, is refused and counted.
"""
from __future__ import annotations

import numpy as np
import torch
import zmq

from agents.neural import PolicyNet, Staging, pad_rows, pick_device
from server.net.endpoints import subscriber
from server.net.protocol import ProtocolError, decode

#: the logit given to masked actions when computing log-probabilities (finite: log-softmax stays finite)
MASKED_LOGIT = -1e9
#: messages a SUB socket keeps per publisher (only the newest parameters matter)
RCVHWM = 4


def net_for(game, layout: dict) -> PolicyNet:
    """A ``PolicyNet`` for ``game`` with the architecture a params message names."""
    arch = layout.get("arch", "mlp")
    hidden, channels = int(layout.get("hidden", 128)), int(layout.get("channels", 32))
    if arch not in ("mlp", "conv") or not (0 < hidden <= 8192) or not (0 < channels <= 1024):
        raise ProtocolError(f"params: unusable layout {layout!r}")
    space = game.single_observation_space
    return PolicyNet(space.shape, game.num_actions, arch=arch, hidden=hidden, channels=channels,
                     obs_high=np.asarray(space.high, np.float32))


def _vector_into(net: torch.nn.Module, vec: np.ndarray) -> None:
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(torch.from_numpy(np.ascontiguousarray(vec)), list(net.parameters()))


class LearningPolicy:
    """One learner's policy, as its newest published version; acts with log-probabilities."""

    def __init__(self, name: str, endpoint: str, game, ctx: zmq.Context, device: str = "auto",
                 keys_dir: str | None = None, seed: int = 0, precision: str = "fp32", compile: bool = False):
        self.name, self.endpoint, self.game = name, endpoint, game
        self.device = pick_device(device)
        self.stage = Staging(self.device)       # pinned host buffers and non-blocking copies on CUDA
        self.precision, self.compile = precision, compile
        self.infer = None           # agents.inference.Inference over ``net``: the copy that acts
        self.sub = subscriber(ctx, endpoint, keys_dir, rcvhwm=RCVHWM)
        self.net: PolicyNet | None = None
        self.version = -1
        self.swaps = 0
        self.refused = 0
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(seed)
        self.on_version = None          # called with (vector, version) after each swap (snapshot pools)

    @property
    def ready(self) -> bool:
        return self.net is not None

    def refresh(self, wait: float = 0.0) -> bool:
        """Swap in the newest version waiting on the socket, if it moved; ``wait`` seconds for the first."""
        newest = None
        timeout = int(wait * 1000)
        while self.sub.poll(timeout if newest is None else 0):
            timeout = 0
            try:
                msg = decode(self.sub.recv_multipart(copy=False))
            except ProtocolError:
                self.refused += 1
                continue
            if msg.type == "params" and "params" in msg.arrays:
                newest = msg
        if newest is None:
            return False
        version = newest.meta.get("version")
        vec = newest.arrays["params"]
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            self.refused += 1
            return False
        if version == self.version:
            return False
        try:
            net = self.net if self.net is not None else net_for(self.game, newest.meta).to(self.device).eval()
        except (ProtocolError, ValueError, TypeError):
            self.refused += 1
            return False
        size = sum(p.numel() for p in net.parameters())
        if vec.dtype != np.float32 or vec.shape != (size,) or not np.isfinite(vec).all():
            self.refused += 1
            return False
        _vector_into(net, vec)
        if self.infer is None:
            from agents.inference import Inference
            self.infer = Inference(net, self.precision, "compile" if self.compile else "eager", self.device)
        self.infer.refresh(version)          # the compressed copy is derived again from the new fp32 master
        self.net, self.version = net, version
        self.swaps += 1
        self.layout = {k: newest.meta.get(k) for k in ("arch", "hidden", "channels")}
        if self.on_version is not None:
            self.on_version(vec, version, self.layout)
        return True

    def reseed(self, seed: int) -> None:
        """The sampling stream of the next batch (a re-sent batch samples alike)."""
        self.gen.manual_seed(int(seed) & 0x7FFFFFFFFFFFFFFF)

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.act_logp(obs, mask)[0]

    @torch.inference_mode()
    def act_logp(self, obs: np.ndarray, mask: np.ndarray, seed: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
        """Sample actions from the masked softmax; returns ``(actions, logp, version)``."""
        return sample(self.infer, obs, mask, self.gen, self.stage, seed, tuple(self.net.obs_shape)) + (self.version,)

    def close(self) -> None:
        self.sub.close(linger=0)


def sample(net, obs: np.ndarray, mask: np.ndarray, gen: torch.Generator, stage: Staging, seed: int | None = None,
           obs_shape: tuple | None = None):
    """``(actions, logp)`` sampled from the masked softmax of ``net`` (a ``PolicyNet`` or an
    ``agents.inference.Inference`` copy of one; Gumbel-max with ``gen``), its inputs put on the device by
    ``stage``."""
    if seed is not None:
        gen.manual_seed(int(seed) & 0x7FFFFFFFFFFFFFFF)
    n = obs.shape[0]
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    obs = pad_rows(obs, obs_shape or tuple(net.obs_shape))
    device = stage.device
    x, m = stage("obs", obs), stage("mask", mask) != 0
    logits, _ = net(x)
    logp_all = torch.log_softmax(logits.float().nan_to_num(neginf=MASKED_LOGIT).masked_fill(~m, MASKED_LOGIT), dim=-1)
    u = torch.rand(logp_all.shape, generator=gen, device=device).clamp_(1e-12, 1.0)
    actions = (logp_all - torch.log(-torch.log(u))).argmax(dim=1)
    logp = logp_all.gather(1, actions[:, None]).squeeze(1)
    return actions.cpu().numpy().astype(np.int64), logp.cpu().numpy().astype(np.float32)


class SnapshotPool:
    """Frozen snapshots of a learning policy (every ``every``-th version it sees, the newest ``size`` kept);
    ``act`` plays one of them, drawn again from the pool whenever a snapshot is added."""

    def __init__(self, game, every: int = 10, size: int = 8, device: str = "auto", seed: int = 0):
        self.game, self.every, self.size = game, max(1, int(every)), max(1, int(size))
        self.device = pick_device(device)
        self.stage = Staging(self.device)
        self.vectors: list[tuple[int, np.ndarray]] = []
        self.layout: dict | None = None
        self.net: PolicyNet | None = None
        self.acting = -1
        self.rng = np.random.default_rng(seed)
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(seed + 1)
        self._last_kept = None

    def offer(self, vec: np.ndarray, version: int, layout: dict) -> None:
        """A version seen on a learner's stream; kept when it is ``every`` past the last kept one."""
        if self._last_kept is not None and version < self._last_kept + self.every:
            return
        self._last_kept = version
        self.layout = layout
        self.vectors.append((version, np.array(vec, copy=True)))
        del self.vectors[:-self.size]
        version, vec = self.vectors[int(self.rng.integers(len(self.vectors)))]
        if self.net is None:
            self.net = net_for(self.game, layout).to(self.device).eval()
        _vector_into(self.net, vec)
        self.acting = version

    @property
    def ready(self) -> bool:
        return self.net is not None

    def reseed(self, seed: int) -> None:
        self.gen.manual_seed(int(seed) & 0x7FFFFFFFFFFFFFFF)

    @torch.inference_mode()
    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return sample(self.net, obs, mask, self.gen, self.stage)[0]


class SnapshotBoard:
    """The league's frozen snapshots, as one publisher broadcasts them: ``params`` messages whose
    ``meta["learner"]`` names a snapshot slot (``snap0``, ``snap1``, ...) and whose ``version`` says which
    snapshot fills it now (a slot is refilled only once no match seats it). One SUB socket for all slots;
    ``slot(name)`` is the agent that plays one of them."""

    def __init__(self, endpoint: str, game, ctx: zmq.Context, device: str = "auto", keys_dir: str | None = None,
                 seed: int = 0):
        self.game, self.device = game, pick_device(device)
        self.stage = Staging(self.device)
        self.sub = subscriber(ctx, endpoint, keys_dir)
        self.nets: dict[str, tuple[int, PolicyNet]] = {}     # slot -> (version, net)
        self.refused = 0
        self.seed = seed

    def refresh(self, wait: float = 0.0) -> None:
        """Take every snapshot waiting on the socket (``wait`` seconds for the first)."""
        timeout = int(wait * 1000)
        while self.sub.poll(timeout):
            timeout = 0
            try:
                msg = decode(self.sub.recv_multipart(copy=False))
            except ProtocolError:
                self.refused += 1
                continue
            name, version, vec = msg.meta.get("learner"), msg.meta.get("version"), msg.arrays.get("params")
            if msg.type != "params" or not isinstance(name, str) or vec is None or not isinstance(version, int) \
                    or isinstance(version, bool):
                self.refused += 1
                continue
            if name in self.nets and self.nets[name][0] == version:
                continue
            try:
                net = net_for(self.game, msg.meta).to(self.device).eval()
            except (ProtocolError, ValueError, TypeError):
                self.refused += 1
                continue
            if vec.dtype != np.float32 or vec.shape != (sum(p.numel() for p in net.parameters()),) \
                    or not np.isfinite(vec).all():
                self.refused += 1
                continue
            _vector_into(net, vec)
            self.nets[name] = (version, net)

    def slot(self, name: str) -> "FrozenSnapshot":
        return FrozenSnapshot(self, name)

    def close(self) -> None:
        self.sub.close(linger=0)


class FrozenSnapshot:
    """One snapshot slot of a ``SnapshotBoard``: samples from the masked softmax of the snapshot filling
    it (waiting up to ``WAIT_S`` for it to arrive, else a fault: the match is forfeited)."""

    WAIT_S = 2.0

    def __init__(self, board: SnapshotBoard, name: str):
        self.board, self.name = board, name
        self.gen = torch.Generator(device=board.device)
        self.gen.manual_seed(board.seed)

    def reseed(self, seed: int) -> None:
        self.gen.manual_seed(int(seed) & 0x7FFFFFFFFFFFFFFF)

    @property
    def version(self) -> int:
        return self.board.nets.get(self.name, (-1, None))[0]

    @property
    def ready(self) -> bool:
        """Whether a snapshot fills this slot (the worker's warm-up skips an empty one)."""
        return self.name in self.board.nets

    @torch.inference_mode()
    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        self.board.refresh(0.0 if self.name in self.board.nets else self.WAIT_S)
        if self.name not in self.board.nets:
            raise RuntimeError(f"snapshot slot {self.name!r} has no snapshot yet")
        net = self.board.nets[self.name][1]
        return sample(net, obs, mask, self.gen, self.board.stage, obs_shape=tuple(net.obs_shape))[0]

    def close(self) -> None:
        pass
