"""Gossip: learners average their parameters pairwise, peer to peer, over ZeroMQ. No parameter server.

Scheme: **pairwise averaging, as in AD-PSGD** (Lian et al. 2018), not push-sum. Every ``G`` updates a
learner asks its ``GossipNode`` for one exchange; the node picks a random live peer and the two
replace their parameters by the average of the pair::

    initiator A                                   responder B
    params      {learner: A, version: vA}  ──►    x_B' = (x_B + x_A) / 2   (applied, then answered)
                                           ◄──    params_ack {learner: B, version: vB} carrying x_B
    x_A' = (x_A + x_B) / 2

Each side averages its *current* parameters with the vector it received, so when neither side moved
in between both end at the same point and the sum over learners is unchanged; when they did move
(training, or two exchanges crossing) each side still takes a convex combination of complete
parameter vectors, so without training the learners' parameters stay within their starting hull and
their spread shrinks geometrically (4 learners, one exchange each per round: about x0.45 per round,
1e-6 of the start in 15-20 rounds; ``tests/server/test_gossip.py``). Each message carries the sender's
``(learner, version)`` (``meta`` and the header's policy version), its parameter count and a layout
hash, and the whole flat float32 vector in one raw frame (``server.net.protocol``).

Faults:

- **Never half applied.** A vector is used only once its whole message has arrived (ZeroMQ delivers
  a multipart message whole or not at all) and passed validation (type, dtype, shape, layout, every
  value finite); the average is then applied whole, with one ``params.average`` call (for a torch
  learner, ``learner.TorchParams``: whole, by the training thread at its next safe point, between
  two optimizer steps).
- **Timeouts.** An initiator waits ``timeout`` seconds for the answer. Without one it keeps its
  parameters unchanged, drops its socket to that peer (the Lazy Pirate pattern of the ZeroMQ guide:
  the unanswered request is discarded, a late answer can never arrive) and skips that peer for
  ``retry_after`` seconds; after that it is tried again like any other, so a learner that restarts
  (from its checkpoint, on the same endpoint) rejoins by itself.
- **The point of no return** is the responder's: it averages as soon as it holds a valid request.
  A learner killed (even by SIGKILL) in the middle of an exchange therefore leaves its peer either
  unchanged (the peer was waiting for its answer: it times out) or averaged with a complete, valid
  vector, never with part of one.

Sockets: one ROUTER per node, bound to its own endpoint, for incoming requests; one DEALER per peer
for its own requests; all owned by the node's thread, so a learner's training never waits on a
slow peer, and requests from peers are answered while it trains. Endpoints must be loopback unless
``keys_dir`` holds CURVE keys (``arena keys DIR``).

Bytes per round: one exchange sends one vector each way, so a learner that starts one exchange per
round sends one vector for its own request and, on average, one answer: ``2 * (4 * size + header)``
bytes per round, whatever the number of learners (measured on loopback, 10,000 parameters: 80,240
bytes per learner per round for K = 2, 4 and 8).
"""
from __future__ import annotations

import random
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np
import zmq

from server.net.endpoints import EndpointError, bind as bind_socket, is_loopback, stop_authenticator
from server.net.protocol import MAX_HEADER_BYTES, Message, ProtocolError, decode, encode

#: seconds an initiator waits for ``params_ack``. The responder's gossip thread answers at once (a
#: vector copy and an average: milliseconds for a million parameters on loopback), so 0.5-5 s tells
#: a dead or stuck peer from a busy one; raise it for slow links (the vector must cross in time).
PARAMS_TIMEOUT = 2.0
#: seconds a peer that timed out is skipped before it is tried again (1-30 s: how soon a restarted
#: learner is used again vs how many exchanges are wasted on a dead one)
RETRY_AFTER = 5.0
#: requests waiting behind the one in flight; more are answered "busy" at once (a learner that asks
#: every few updates while its peers time out must not build a backlog of stale exchanges)
MAX_QUEUED = 1


class FlatParams(Protocol):
    """What a node averages: a flat float32 vector of ``size`` (``layout``: the shapes it is made of).

    Both calls come from the gossip thread and must be atomic with respect to the learner:
    ``get`` returns a whole copy; ``average(theirs)`` makes the parameters the mean of theirs and the
    parameters as they are (now, or whole at the learner's next safe point, as ``TorchParams``
    does) and returns the vector it averaged with."""

    size: int
    layout: list

    def get(self) -> np.ndarray: ...

    def average(self, theirs: np.ndarray) -> np.ndarray: ...


class VectorParams:
    """``FlatParams`` over a plain numpy vector, averaged at once under a lock (tests, simple learners)."""

    def __init__(self, vec: np.ndarray):
        self.vec = np.ascontiguousarray(vec, dtype=np.float32).copy()
        self.size = int(self.vec.size)
        self.layout = [[self.size]]
        self.lock = threading.Lock()

    def get(self) -> np.ndarray:
        with self.lock:
            return self.vec.copy()

    def average(self, theirs: np.ndarray) -> np.ndarray:
        with self.lock:
            mine = self.vec.copy()
            np.copyto(self.vec, (mine + theirs) * np.float32(0.5))
        return mine


def consensus_distance(vectors: list[np.ndarray]) -> float:
    """How far the learners are from agreeing: ``sqrt(sum_i ||x_i - mean(x)||^2)`` (0 at consensus)."""
    x = np.stack(vectors).astype(np.float64)
    return float(np.sqrt(((x - x.mean(axis=0)) ** 2).sum()))


def layout_hash(params: FlatParams) -> int:
    """A checksum of the parameter shapes: learners with different nets never average."""
    return zlib.crc32(repr(getattr(params, "layout", [[params.size]])).encode()) & 0x7FFFFFFF


@dataclass
class Exchange:
    """The outcome of one exchange, as ``GossipNode.exchange`` returns it."""

    peer: str | None
    ok: bool
    reason: str = ""            # "" when ok; "timeout", "no live peer", "refused: ...", "unreachable", "busy"
    peer_version: int | None = None
    seconds: float = 0.0


@dataclass
class _Peer:
    name: str
    endpoint: str
    sock: zmq.Socket | None = None
    skip_until: float = 0.0


@dataclass
class _InFlight:
    peer: _Peer
    seq: int
    deadline: float
    started: float


@dataclass
class GossipStats:
    exchanges: int = 0          # own exchanges completed (answer applied)
    timeouts: int = 0           # own exchanges whose peer did not answer in time
    refused: int = 0            # own exchanges the peer refused (layout, bad vector)
    served: int = 0             # requests from peers answered and applied
    bad_messages: int = 0       # messages that failed validation (dropped, or refused with an error)
    late_replies: int = 0       # answers to an exchange that had already ended (dropped)
    busy: int = 0               # requests dropped because one was in flight and another queued
    bytes_sent: int = 0         # every frame this node sent (requests, answers, errors)
    bytes_received: int = 0
    peer_versions: dict = field(default_factory=dict)   # learner -> last version seen

    def as_dict(self) -> dict:
        return dict(self.__dict__, peer_versions=dict(self.peer_versions))


class GossipNode:
    """One learner's end of the gossip: answers its peers, and runs the exchanges its learner asks for.

    ``peers``: ``{learner name: endpoint}`` of the others (set now or with ``connect_peers`` before
    ``start``). ``version``: a function giving the learner's current policy version. Call ``start``,
    then ``exchange()`` (blocking) or ``request()`` (returns at once; the outcome goes to
    ``results``) from one thread, the learner's; ``close`` at the end.
    """

    def __init__(self, name: str, bind: str, params: FlatParams, peers: dict[str, str] | None = None,
                 version: Callable[[], int] = lambda: 0, timeout: float = PARAMS_TIMEOUT,
                 retry_after: float = RETRY_AFTER, seed: int | None = None, keys_dir: str | None = None,
                 log: Callable[[str], None] | None = None):
        if not is_loopback(bind) and keys_dir is None:
            raise EndpointError(f"gossip endpoint {bind} is not loopback: give keys_dir (arena keys DIR)")
        self.name, self.params, self.version = name, params, version
        self.timeout, self.retry_after = float(timeout), float(retry_after)
        self.keys_dir = keys_dir
        self.log = log or (lambda text: None)
        self.layout = layout_hash(params)
        self.max_bytes = 4 * params.size + MAX_HEADER_BYTES + 1024
        self.rng = random.Random(seed)
        self.stats = GossipStats()
        self.results: list[Exchange] = []
        self.ctx = zmq.Context()
        self.router = self._socket(zmq.ROUTER)
        self.endpoint = bind_socket(self.router, bind, keys_dir, "the gossip endpoint")
        self.peers: dict[str, _Peer] = {}
        self._seq = 0
        self._inflight: _InFlight | None = None
        self._done = threading.Condition()
        self._pending = 0         # requests asked for and not yet finished
        self._finished = 0
        self._ctl_addr = f"inproc://gossip-ctl-{id(self)}"
        self._ctl_in = self.ctx.socket(zmq.PAIR)
        self._ctl_in.bind(self._ctl_addr)
        self._ctl_out = self.ctx.socket(zmq.PAIR)
        self._ctl_out.connect(self._ctl_addr)
        self._thread: threading.Thread | None = None
        if peers:
            self.connect_peers(peers)

    # -- sockets -------------------------------------------------------------------------------------
    def _socket(self, kind: int, client: bool = False) -> zmq.Socket:
        """A socket of the node; the ROUTER is made a CURVE server by ``bind``, a peer's DEALER a client here."""
        sock = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_bytes)   # a peer that sends more is disconnected
        if client and self.keys_dir is not None:
            from server.net.endpoints import secure_client
            secure_client(sock, self.keys_dir)
        return sock

    def connect_peers(self, peers: dict[str, str]) -> None:
        """Set the peers (``{name: endpoint}``; this node's own name is ignored). Before ``start``."""
        if self._thread is not None:
            raise RuntimeError("connect_peers must be called before start")
        for name, endpoint in peers.items():
            if name == self.name:
                continue
            if not is_loopback(endpoint) and self.keys_dir is None:
                raise EndpointError(f"peer endpoint {endpoint} is not loopback: give keys_dir")
            self.peers[name] = _Peer(name, endpoint)

    def _peer_socket(self, peer: _Peer) -> zmq.Socket:
        if peer.sock is None:
            peer.sock = self._socket(zmq.DEALER, client=True)
            peer.sock.connect(peer.endpoint)
        return peer.sock

    def _drop_socket(self, peer: _Peer) -> None:
        if peer.sock is not None:
            peer.sock.close(linger=0)
            peer.sock = None

    def _send(self, sock: zmq.Socket, msg: Message, ident: bytes | None = None) -> None:
        frames = encode(msg)
        self.stats.bytes_sent += sum(f.nbytes if isinstance(f, memoryview) else len(f) for f in frames)
        sock.send_multipart(([ident] if ident is not None else []) + frames, copy=False, flags=zmq.NOBLOCK)

    # -- the caller's side ---------------------------------------------------------------------------
    def start(self) -> "GossipNode":
        self._thread = threading.Thread(target=self._run, name=f"gossip-{self.name}", daemon=True)
        self._thread.start()
        return self

    def request(self, peer: str | None = None) -> None:
        """Ask for one exchange with a random live peer (or with ``peer``, live or not); the outcome is
        appended to ``results``."""
        if peer is not None and peer not in self.peers:
            raise KeyError(f"unknown peer {peer!r}; peers: {', '.join(self.peers)}")
        with self._done:
            self._pending += 1
        self._ctl_out.send(b"x" + (peer or "").encode())

    def exchange(self, peer: str | None = None, wait: float | None = None) -> Exchange:
        """One exchange (see ``request``), waited for (at most ``wait`` s, default timeout + 1)."""
        with self._done:
            target = self._finished + self._pending + 1
        self.request(peer)
        with self._done:
            ok = self._done.wait_for(lambda: self._finished >= target, wait or self.timeout + 1.0)
            if not ok:
                return Exchange(None, False, "no answer from the gossip thread")
            return self.results[-1]

    def close(self) -> None:
        if self._thread is not None:
            self._ctl_out.send(b"q")
            self._thread.join(timeout=5)
        for peer in self.peers.values():
            self._drop_socket(peer)
        for s in (self.router, self._ctl_in, self._ctl_out):
            s.close(linger=0)
        if self.keys_dir is not None:
            stop_authenticator(self.ctx)
        self.ctx.term()

    # -- the gossip thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        self._poller = poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self._ctl_in, zmq.POLLIN)
        queued: list[str | None] = []
        while True:
            now = time.monotonic()
            wait_ms = None
            if self._inflight is not None:
                wait_ms = max(0, int((self._inflight.deadline - now) * 1000) + 1)
            events = dict(poller.poll(wait_ms))
            if self._ctl_in in events:
                while True:
                    try:
                        cmd = self._ctl_in.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if cmd == b"q":
                        return
                    if len(queued) >= MAX_QUEUED:
                        self.stats.busy += 1
                        self._finish(Exchange(None, False, "busy"))
                    else:
                        queued.append(cmd[1:].decode() or None)
            try:
                if self.router in events:
                    self._serve_all()
                if self._inflight is not None:
                    sock = self._inflight.peer.sock
                    if sock is not None and sock in events:
                        self._collect(sock)
            except Exception as exc:     # a message that slipped past the checks costs a count, not the thread
                self.stats.bad_messages += 1
                self.log(f"gossip {self.name}: dropped a message that could not be used: {type(exc).__name__}: {exc}")
            if self._inflight is not None and time.monotonic() >= self._inflight.deadline:
                self._timeout()
            while queued and self._inflight is None:
                if self._begin(queued.pop(0)):
                    break

    def _finish(self, result: Exchange) -> None:
        with self._done:
            self.results.append(result)
            del self.results[:-1000]
            self._pending -= 1
            self._finished += 1
            self._done.notify_all()

    def _pick(self) -> _Peer | None:
        now = time.monotonic()
        live = [p for p in self.peers.values() if p.skip_until <= now]
        return self.rng.choice(live) if live else None

    def _header(self, mtype: str, seq: int) -> Message:
        v = int(self.version())
        return Message(type=mtype, seq=seq, sender=self.name, policy_version=v,
                       meta={"learner": self.name, "version": v, "size": self.params.size, "layout": self.layout})

    def _begin(self, name: str | None = None) -> bool:
        """Start an exchange; False when it ended at once (no live peer, unreachable)."""
        peer = self._pick() if name is None else self.peers[name]
        if peer is None:
            self._finish(Exchange(None, False, "no live peer"))
            return False
        self._seq += 1
        sock = self._peer_socket(peer)
        mine = self.params.get()
        msg = self._header("params", self._seq)
        msg.arrays = {"params": mine}
        try:
            self._send(sock, msg)
        except zmq.Again:   # its queue is full: a peer that never connected
            self._drop_socket(peer)
            peer.skip_until = time.monotonic() + self.retry_after
            self._finish(Exchange(peer.name, False, "unreachable"))
            return False
        self._poller.register(sock, zmq.POLLIN)
        now = time.monotonic()
        self._inflight = _InFlight(peer, self._seq, now + self.timeout, now)
        return True

    def _end(self, result: Exchange, drop: bool = False) -> None:
        peer = self._inflight.peer
        if peer.sock is not None:
            self._poller.unregister(peer.sock)
        if drop:
            self._drop_socket(peer)
        self._inflight = None
        self._finish(result)

    def _timeout(self) -> None:
        fl = self._inflight
        self.stats.timeouts += 1
        fl.peer.skip_until = time.monotonic() + self.retry_after
        self.log(f"gossip {self.name}: {fl.peer.name} did not answer in {self.timeout:.1f} s; skipped for "
                 f"{self.retry_after:.0f} s, parameters unchanged")
        self._end(Exchange(fl.peer.name, False, "timeout", seconds=time.monotonic() - fl.started),
                  drop=True)   # Lazy Pirate: a fresh socket next time, the old request is discarded

    def _decode(self, frames, expect: tuple[str, ...]) -> Message:
        """Decode a gossip message; raises ``ProtocolError`` on a malformed one or an unexpected type."""
        self.stats.bytes_received += sum(memoryview(getattr(f, "buffer", f)).nbytes for f in frames)
        msg = decode(frames, max_bytes=self.max_bytes)
        if msg.type not in expect:
            raise ProtocolError(f"unexpected message type {msg.type!r}")
        return msg

    def _check(self, msg: Message) -> str:
        """Why the parameters in ``msg`` must not be applied, or "" when they may."""
        learner, version = msg.meta.get("learner"), msg.meta.get("version")
        if not isinstance(learner, str) or not isinstance(version, int) or isinstance(version, bool):
            return "params need meta learner (str) and version (int)"
        if msg.meta.get("size") != self.params.size or msg.meta.get("layout") != self.layout:
            return (f"parameter layout of {learner} differs from {self.name}'s "
                    f"({msg.meta.get('size')} vs {self.params.size} parameters)")
        vec = msg.arrays.get("params")
        if set(msg.arrays) != {"params"} or vec.dtype != np.float32 or vec.shape != (self.params.size,):
            return f"params must be one float32 array of {self.params.size}"
        if not np.isfinite(vec).all():
            return f"params from {learner} are not all finite"
        return ""

    def _serve_all(self) -> None:
        while True:
            try:
                frames = self.router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._serve(frames[0].bytes, frames[1:])

    def _serve(self, ident: bytes, frames) -> None:
        """A peer's request: validate, average, answer with the parameters as they were."""
        try:
            msg = self._decode(frames, ("params",))
            seq, why = msg.seq, self._check(msg)
        except ProtocolError as exc:
            seq, why = 0, str(exc)
        if why:
            self.stats.bad_messages += 1
            try:
                self._send(self.router, Message(type="error", seq=seq, sender=self.name, meta={"error": why}), ident)
            except zmq.ZMQError:
                pass
            return
        self.stats.peer_versions[msg.meta["learner"]] = msg.meta["version"]
        mine = self.params.average(msg.arrays["params"])
        self.stats.served += 1
        reply = self._header("params_ack", msg.seq)
        reply.arrays = {"params": mine}
        try:
            self._send(self.router, reply, ident)
        except zmq.ZMQError:   # the initiator is gone; our average stands (a complete, valid vector)
            pass

    def _collect(self, sock: zmq.Socket) -> None:
        """Answers on the in-flight peer's socket: apply the one that matches, drop the rest."""
        while self._inflight is not None and self._inflight.peer.sock is sock:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            fl = self._inflight
            try:
                msg = self._decode(frames, ("params_ack", "error"))
                why = self._check(msg) if msg.type == "params_ack" else ""
            except ProtocolError as exc:
                why = str(exc)
            if why:
                self.stats.bad_messages += 1
                self.log(f"gossip {self.name}: bad answer from {fl.peer.name}: {why}")
                continue
            if msg.seq != fl.seq:
                self.stats.late_replies += 1
                continue
            if msg.type == "error":
                self.stats.refused += 1
                fl.peer.skip_until = time.monotonic() + self.retry_after
                self._end(Exchange(fl.peer.name, False, f"refused: {msg.meta.get('error')}",
                                   seconds=time.monotonic() - fl.started))
                return
            self.params.average(msg.arrays["params"])
            self.stats.exchanges += 1
            self.stats.peer_versions[msg.meta["learner"]] = msg.meta["version"]
            self._end(Exchange(fl.peer.name, True, "", msg.meta["version"], seconds=time.monotonic() - fl.started))
