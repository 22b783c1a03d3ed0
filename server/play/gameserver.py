"""The game server: plays the matches, asks policy workers for actions over ZeroMQ.

One ROUTER socket (``--bind``) talks to the workers, one PUB socket (``--stats-bind``) publishes the
server's figures once a second. The matches are split into ``groups`` separate batched games so
that stepping overlaps acting: while the workers think about one group, the server steps another.
Each group keeps its own score with a ``MatchRunner`` (the same bookkeeping as ``arena run``), so
seating, forfeits, the stop rule and the summary mean the same thing here.

Faults:
- A worker is alive while it talks: any message (a reply, a heartbeat) counts. One silent for
  ``HEARTBEAT_LIVENESS`` seconds is dead: its unanswered requests are re-sent, with the same
  sequence numbers, to a live worker serving the same agent (or wait, with a message, until one
  comes). A reply to a request that was re-sent or already answered is dropped and counted as late,
  so no match is stepped twice or lost.
- A message that fails to decode (``server.net.protocol``: only ``ProtocolError``) is dropped and
  counted. The ROUTER socket caps each frame (``zmq.MAXMSGSIZE``) at the biggest reply a worker can
  owe (``max_reply_bytes``: every seat of the biggest group), so a peer that sends more is
  disconnected before ZeroMQ allocates the frame; a message of more frames than the protocol's two is
  refused by ``decode``.
- Idle connections cost a file descriptor each until ZeroMQ's handshake timeout (``HANDSHAKE_MS``)
  closes them: the server raises its soft limit on open files to ``OPEN_FILES`` (or the hard limit)
  at start, so a crowd of idle connections does not starve it of descriptors.
- Both sockets bind through ``server.net.endpoints.bind``: off loopback only with CURVE keys, and
  then only authorized clients get through, to the statistics as to the game.
- An agent error reported by a worker forfeits the rows concerned, as in ``arena run``.

Shared memory (``transport="shm"``, or ``"auto"`` when the endpoint is local and the host has /dev/shm):
the groups' games are made with their ``obs`` and ``action_mask`` in shared memory (``server.net.shm``,
``simcore.game.shared_buffers``: the kernels write there), the rows of each request go into a shared
``rows`` array, and each worker on this host gets reply arrays of its own (``actions``, ``logp``). An
``act`` request to such a worker is then only a header (``meta["shm"] = [offset, rows]``) and so is its
reply; the worker writes its answer at the same offset of its reply arrays. A request whose rows are one
contiguous run of seats (one agent on every seat of a group) is read by the worker straight from the
game's buffers: no copy on either side. Other requests (two agents, whose seats interleave; a team's cut
of its rows) are gathered by the server, where the step just left the data in cache, into shared request
arrays (``req_obs``, ``req_mask``) that the worker reads in place.
A worker on another host (or one that cannot map the arrays: it says so in its heartbeats) gets frames,
from the same server at the same time. A worker's reply arrays are its own, so a late answer of a worker
given up for dead cannot land on the rows of the worker that took its batch over.
Those headers go over a pair of named pipes per worker (``server.net.doorbell``) once the worker has
opened them, rather than through the socket: a pipe wakes the reader itself, where a ZeroMQ message wakes
an I/O thread on each side first. A step's requests for one worker are staged first and then written
together, and the worker writes its replies together: one wake-up each way per step. Anything the pipe
cannot take at once goes over the socket, which stays the channel for everything else.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from collections import deque
import time
from typing import Callable

import numpy as np
import zmq

from simcore.rows import take_rows
from server.net import doorbell
from server.net.proc import more_open_files
from server.play.match import MatchRunner
from server.play.routing import Group, RemotePolicy, Request, Worker
from server.net.protocol import (MAX_HEADER_BYTES, MAX_MESSAGE_BYTES, Message, ProtocolError, decode, encode,
                                 layout, packed, packed_buffer)

#: seconds between the server's heartbeats to idle workers (0.1-0.5 s: shorter wakes more, longer
#: slows the detection of a dead worker)
HEARTBEAT_INTERVAL = 0.2
#: seconds of silence after which a worker is dead; at least 3 heartbeat intervals, about a second
HEARTBEAT_LIVENESS = 1.0
#: seconds between two ``stats`` messages on the PUB socket
STATS_INTERVAL = 1.0
#: seconds of silence after which a worker that has not yet said it is ready counts as gone
WARMUP_LIVENESS = 60.0
#: seconds ``stop`` waits for the steps in flight before ``serve`` returns without them
STOP_GRACE = 10.0
#: the smallest per-frame cap on the server's sockets (the CURVE handshake and hellos fit easily)
MIN_REPLY_CAP = 64 * 1024
#: the most workers given reply arrays in shared memory (more get frames): bounds what a crowd of local
#: peers saying hello can make the server allocate
MAX_SHM_WORKERS = 64
TRANSPORTS = ("auto", "shm", "frames")


def default_groups() -> int:
    """Match groups when the user names none: 2 (stepping one while the workers act on the other) where
    the host has cores to spare, 1 on 2 cores or fewer, where the server's and the workers' parallel
    kernels would only take turns on the same cores (arena launch battle on 2 cores: 9.5 M agent-steps/s
    with 1 group, 8.2 M with 2, 6.9 M with 4; connect4 with a neural policy 0.60 M and 0.51 M)."""
    return 2 if (os.cpu_count() or 1) > 2 else 1


class _Bell:
    """A worker's doorbells as the server holds them: the FIFOs' paths (request, reply), a reader on the
    reply FIFO, and the request FIFO's write end once the worker has its read end open (``out``, -1 before)."""

    def __init__(self, paths: tuple[str, str], reader: doorbell.Reader):
        self.paths, self.reader, self.out = paths, reader, -1


#: milliseconds a new connection has to complete ZeroMQ's handshake (CURVE included) before it is
#: closed (libzmq's default is 30 s; our peers take milliseconds, an idle stranger holds a file meanwhile)
HANDSHAKE_MS = 10_000


class GameServer:
    def __init__(self, arena: str, agents: list[str], matches: int, seed: int = 0, options: dict | None = None,
                 bind: str = "tcp://127.0.0.1:5555", stats_bind: str | None = None, groups: int = 2,
                 keys_dir: str | None = None, games: int | None = None, steps: int | None = None,
                 heartbeat_liveness: float = HEARTBEAT_LIVENESS, log: Callable[[str], None] | None = None,
                 spectators: Callable[[list, "zmq.Context"], object] | None = None,
                 learning=None, seating: Callable[[int, np.ndarray], object] | None = None, forever: bool = False,
                 transport: str = "auto"):
        import arenas
        from server.net import shm
        from server.net.endpoints import bind as bind_socket, is_loopback, on_this_host, stats_endpoint
        from simcore.game import shared_buffers

        self.arena, self.agent_names, self.seed = arena, list(agents), int(seed)
        self.options = dict(options or {})
        self.log = log or (lambda text: print(text, file=sys.stderr, flush=True))
        self.liveness = float(heartbeat_liveness)
        self.stats_bind = stats_bind or stats_endpoint(bind)
        for ep in (bind, self.stats_bind):   # before any work: a refused endpoint is the user's first news
            if not keys_dir and not is_loopback(ep):
                raise ValueError(f"binding to {ep} (not loopback) needs CURVE keys: make them with "
                                 f"'arena keys DIR' and pass --keys DIR")
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
        local = shm.available() and on_this_host(bind)
        if transport == "shm" and not local:
            raise ValueError("--transport shm needs an endpoint on this host (ipc://, loopback or this host's "
                             "address) and /dev/shm (Linux); use --transport auto or frames")
        #: observations, masks, request rows and workers' replies in shared memory (None: frames only)
        self.shared = shm.SharedArrays() if transport != "frames" and local else None
        spec = arenas.get(arena)
        groups = max(1, min(int(groups), matches))
        sizes = [matches // groups + (1 if g < matches % groups else 0) for g in range(groups)]
        seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(self.seed).spawn(groups)]
        self.groups: list[Group] = []
        offset = 0
        for g, (size, gseed) in enumerate(zip(sizes, seeds)):
            with shared_buffers(self.shared.allocate(f"g{g}")) if self.shared else contextlib.nullcontext():
                game = spec.game(num_matches=size, **self.options)
            runner = MatchRunner(game, [RemotePolicy(n) for n in self.agent_names], self.agent_names,
                                 warn=self.log)
            if seating is not None:     # who plays each slot is chosen per match (arena train, the league)
                policy = seating(g, np.arange(offset, offset + size))
                runner.reseat(np.arange(size), policy.initial())
                runner.seating = policy
                if hasattr(policy, "bind"):     # a policy that reads the results too (the league's)
                    policy.bind(runner)
            offset += size
            runner.reset(gseed)
            g_games = None if games is None else games // groups + (1 if g < games % groups else 0)
            runner.stop_rule(games=(1 << 62) if forever else g_games, steps=None if forever else steps)
            self.groups.append(Group(g, runner))
        self.slots = offset
        self.stat_names = self.groups[0].runner.game.stat_names
        #: where each group's rows start in the shared ``rows`` and reply arrays (one row per flat seat)
        self.row_base = np.cumsum([0] + [g.runner.game.num_matches * g.runner.game.num_agents
                                         for g in self.groups]).tolist()
        if self.shared is not None:
            self.shared.array("rows", (self.row_base[-1],), np.int64)
            first = self.groups[0].runner.game
            self._row_bytes = first.obs[0, 0].nbytes
            self.shared.array("req_obs", (self.row_base[-1] * self._row_bytes,), np.uint8)
            self.shared.array("req_mask", (self.row_base[-1], first.action_mask.shape[-1]), np.int8)
        self._shm_replies: dict[bytes, str] = {}      # worker ident -> the prefix of its reply arrays
        #: per worker ident on this host: its doorbells (``_Bell``), and the read end's fd -> ident
        self._bells: dict[bytes, _Bell] = {}
        self._bell_fds: dict[int, bytes] = {}
        self._bell_generation = 0
        #: the largest message a worker may send (and the socket's per-frame cap): one reply for every
        #: seat of the biggest group, 8 bytes per action component, and a header
        first = self.groups[0].runner.game
        self.max_reply_bytes = min(MAX_MESSAGE_BYTES, MIN_REPLY_CAP + MAX_HEADER_BYTES
                                   + 8 * max(sizes) * first.num_agents * max(1, first.num_actions))
        more_open_files()
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.pub = self.ctx.socket(zmq.PUB)
        for s in (self.sock, self.pub):
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.HANDSHAKE_IVL, HANDSHAKE_MS)
        self.sock.setsockopt(zmq.MAXMSGSIZE, self.max_reply_bytes)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.pub.setsockopt(zmq.MAXMSGSIZE, MIN_REPLY_CAP)      # a subscriber sends subscriptions only
        self.pub.setsockopt(zmq.SNDHWM, 16)
        self.keys_dir = keys_dir
        self.bind = bind
        bind_socket(self.sock, bind, keys_dir, "the game server")
        bind_socket(self.pub, self.stats_bind, keys_dir, "the statistics (--stats-bind)")
        self._poller = zmq.Poller()          # the socket, and the read ends of the workers' doorbells
        self._poller.register(self.sock, zmq.POLLIN)
        # frames of the matches spectators ask for ('arena watch'); costs a clock read when nobody watches
        # ``spectators(runners, ctx)`` makes the publisher (``server.spectator.publisher.FramePublisher``,
        # injected by the caller): it needs ``publish(group, game, steps)``, ``poll()`` and ``close()``
        self.spectators = spectators([g.runner for g in self.groups], self.ctx) if spectators else None
        #: segments of the learning policies to their learners (``server.play.feed``), when training
        self.feed = None
        if learning is not None:
            from server.play.feed import LearnerFeed
            self.feed = LearnerFeed(learning, [g.runner for g in self.groups], self.agent_names, self.ctx,
                                    keys_dir=keys_dir)
        self.paused: list[Group] = []             # groups waiting for a learner to take its segments
        self.stopping = False
        self.versions: dict[str, int] = {}        # per agent: the newest policy version seen in a reply
        self.latencies: deque = deque(maxlen=4096)  # seconds per group step, request out to last reply in
        self.workers: dict[bytes, Worker] = {}
        self.waiting: list[Request] = []          # requests with no live worker for their agent
        #: agents that only one worker serves (a league's remote members): with no live worker for one,
        #: its requests are forfeited at once instead of waiting
        self.absent_forfeits: set[str] = set()
        self._asking: Group | None = None
        self._buffers: dict[tuple[int, int], np.ndarray] = {}    # packed_buffer per (group, agent)
        self._seq = 0
        self.counters = {"bad_messages": 0, "late_replies": 0, "resent": 0, "workers_lost": 0,
                         "requests": 0, "doorbell_requests": 0}
        self.wait_seconds = 0.0
        self._said_waiting: set[int] = set()
        self.started = time.perf_counter()
        self.first_ready: float | None = None
        self.startup_seconds = 0.0

    # -- sending -----------------------------------------------------------------------------------
    def _send(self, ident: bytes, msg: Message) -> bool:
        try:
            # arrays go without a copy; a header alone is copied (cheaper than tracking a zero-copy frame)
            self.sock.send_multipart([ident, *encode(msg)], copy=not msg.arrays)
            return True
        except zmq.ZMQError:   # the peer is gone (ROUTER_MANDATORY): treat as a dead worker
            return False

    def _hello(self, ident: bytes, shm: bool = False, extra: dict | None = None) -> None:
        """Our arena and agents; to a worker on this host that can map shared memory, the arrays too."""
        meta = {"role": "server", "arena": self.arena, "options": json.dumps(self.options), "agents": self.agent_names,
                **(extra or {})}
        if shm and self.shared is not None:
            prefix = self._shm_replies.get(ident)
            if prefix is None and len(self._shm_replies) < MAX_SHM_WORKERS:
                prefix = self._shm_replies[ident] = f"w{len(self._shm_replies)}"
                first = self.groups[0].runner.game
                self.shared.array(f"{prefix}.actions", (self.row_base[-1],) + first.actions.shape[2:],
                                  first.actions.dtype)
                self.shared.array(f"{prefix}.logp", (self.row_base[-1],), np.float32)
            if prefix is not None:
                names = [f"g{g.index}.{a}" for g in self.groups for a in ("obs", "action_mask")]
                names += ["rows", "req_obs", "req_mask", f"{prefix}.actions", f"{prefix}.logp"]
                meta["shm"] = json.dumps({**self.shared.spec(names), "reply": prefix,
                                          "doorbell": self._new_bell(ident, prefix)})
        self._send(ident, Message("hello", meta=meta))

    # -- doorbells (``server.net.doorbell``) -----------------------------------------------------------
    def _new_bell(self, ident: bytes, prefix: str) -> list[str]:
        """Fresh doorbell FIFOs for a worker saying hello (a worker starting over gets new ones, so nothing
        written for its old self reaches it); returns their names for the ``hello``."""
        self._close_bell(ident)
        self._bell_generation += 1
        names = doorbell.make_pair(self.shared.path, prefix, self._bell_generation)
        paths = (os.path.join(self.shared.path, names[0]), os.path.join(self.shared.path, names[1]))
        fd = doorbell.open_fifo(paths[1], write=False)
        self._bells[ident] = _Bell(paths, doorbell.Reader(fd))
        self._bell_fds[fd] = ident
        self._poller.register(fd, zmq.POLLIN)
        return list(names)

    def _close_bell(self, ident: bytes) -> None:
        bell = self._bells.pop(ident, None)
        if bell is None:
            return
        self._bell_fds.pop(bell.reader.fd, None)
        self._poller.unregister(bell.reader.fd)
        for fd in (bell.reader.fd, bell.out):
            if fd >= 0:
                os.close(fd)
        for path in bell.paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        w = self.workers.get(ident)
        if w is not None:
            w.bell = False

    def _bell_out(self, w: Worker) -> int:
        """The write end of ``w``'s request doorbell, opened once the worker has its read end open (-1: none)."""
        bell = self._bells.get(w.ident) if w.bell else None
        if bell is None:
            return -1
        if bell.out < 0:
            try:
                bell.out = doorbell.open_fifo(bell.paths[0], write=True)
            except doorbell.DoorbellError:
                return -1
        return bell.out

    def _read_bell(self, fd: int, now: float) -> None:
        """Replies from a worker's doorbell. A frame that is not a reply header is a bad message and ends
        the doorbell, as does the worker closing its end; its messages use the socket again."""
        ident = self._bell_fds.get(fd)
        bell = self._bells.get(ident)
        if bell is None:
            return
        for raw in bell.reader.read():
            try:
                msg = decode([raw], max_bytes=doorbell.MAX_FRAME)
            except ProtocolError:
                msg = None
            if msg is None or msg.type not in ("actions", "error") or msg.arrays:
                self.counters["bad_messages"] += 1
                bell.reader.closed = True
                break
            self._handle(ident, msg, now)
        if bell.reader.closed:
            self._close_bell(ident)

    def _flush(self, outbox: dict[bytes, list[tuple[Request, Message]]]) -> None:
        """Send the shared-memory requests collected per worker during a step: stage them all, then write
        them to its doorbell together (one wake-up), the rest (no doorbell, or a full pipe) by the socket."""
        for ident, items in outbox.items():
            w = self.workers.get(ident)
            if w is None:              # lost meanwhile: its requests were given to others
                continue
            for req, _ in items:
                if not req.staged:
                    self._stage(req)
            sent, fd = 0, self._bell_out(w)
            if fd >= 0:
                headers = [encode(msg)[0] for _, msg in items]
                fit = next((i for i, h in enumerate(headers) if len(h) > doorbell.MAX_HEADER), len(headers))
                try:
                    sent = doorbell.write(fd, [doorbell.frame(h) for h in headers[:fit]])
                except BrokenPipeError:      # the worker closed its end: the socket from now on
                    self._close_bell(ident)
                self.counters["doorbell_requests"] += sent
            for _, msg in items[sent:]:
                if not self._send(ident, msg):
                    self._lose(w, "its socket is gone")
                    break

    def _gather(self, req: Request) -> tuple[np.ndarray, np.ndarray]:
        """The request's rows, copied into a buffer kept per (group, agent): no allocation per step, and
        laid out as the wire wants it (``protocol.packed``), so ``encode`` sends it without a copy.

        A buffer is reused only for the next step of its group, when the previous message from it has
        long been sent and answered (a re-send gathers the same rows again: same bytes)."""
        key, n = (req.group, req.agent), req.rows.size

        def into(obs_shape, obs_dtype, mask_rows):
            specs = {"obs": (obs_dtype, (n,) + obs_shape), "mask": (mask_rows.dtype, (n,) + mask_rows.shape[1:])}
            buf = self._buffers.get(key)
            need = layout(list(specs.values()))[1]
            if buf is None or buf.nbytes < need:      # first use, or more rows than before
                buf = self._buffers[key] = packed_buffer(need)
            views = packed(specs, buf)
            return views["obs"], views["mask"]
        return self._rows_into(req, into)

    def _rows_into(self, req: Request, into) -> tuple[np.ndarray, np.ndarray]:
        """Copy a request's observations (a team's cut to its space where teams see different things) and
        masks into the arrays ``into(obs_shape, obs_dtype, mask_rows)`` gives; returns them. The frames
        path (``_gather``) and the shared-memory path (``_stage``) differ only in where those arrays live."""
        runner = self.groups[req.group].runner
        obs_rows, mask_rows = runner.rows
        cut = runner.obs_of(req.rows) if runner.split_teams else None     # a team's rows, cut to its space
        obs, mask = into(obs_rows.shape[1:] if cut is None else cut.shape[1:], obs_rows.dtype, mask_rows)
        if cut is None:
            take_rows(obs_rows, req.rows, out=obs)
        else:
            obs[...] = cut
        np.take(mask_rows, req.rows, axis=0, out=mask)
        return obs, mask

    def _forfeit_request(self, req: Request, why: str) -> None:
        """Answer ``req`` with a forfeit of its rows (an agent served by one worker only, which left)."""
        group = self.groups[req.group]
        if req.seq not in group.pending:
            return
        group.pending.discard(req.seq)
        group.runner.fault(req.agent, req.rows, why)
        if not group.pending and group is not self._asking and self._step_group(group):
            self._ask(group)      # (inside _ask, the group's step is finished there)

    def _stage(self, req: Request) -> None:
        """Gather a request's observations and masks into the shared request arrays at its offset, unless
        its rows are one contiguous run (the worker then reads the game's own buffers). Once per request:
        a re-send finds them there (the group has not stepped)."""
        runner, n = self.groups[req.group].runner, req.rows.size
        req.staged = True
        if not runner.split_teams and n and int(req.rows[-1]) - int(req.rows[0]) + 1 == n:
            return
        def into(obs_shape, obs_dtype, mask_rows):
            start = req.offset * self._row_bytes
            obs = self.shared.arrays["req_obs"][start:start + n * obs_dtype.itemsize * int(np.prod(obs_shape))]
            return (obs.view(obs_dtype).reshape((n,) + obs_shape),
                    self.shared.arrays["req_mask"][req.offset:req.offset + n])
        self._rows_into(req, into)

    def _dispatch(self, req: Request, outbox: dict | None = None) -> None:
        """Give ``req`` to the least busy live worker serving its agent. A shared-memory request joins
        ``outbox`` (sent by ``_flush``) when one is given, else goes at once."""
        name = self.agent_names[req.agent]
        live = [w for w in self.workers.values() if w.ready and name in w.agents]
        if not live and name in self.absent_forfeits:     # nobody else can play it: the match is lost
            req.worker = None
            self._forfeit_request(req, "its worker is gone")
            return
        if not live:
            req.worker = None
            self.waiting.append(req)
            if req.agent not in self._said_waiting:
                self._said_waiting.add(req.agent)
                self.log(f"arena serve: waiting for a worker serving {name!r}")
            return
        w = min(live, key=lambda w: len(w.inflight))
        meta = {"agent": name, "seed": req.seed, "group": req.group}
        req.worker = w.ident
        if w.shm and req.offset >= 0:      # the rows are in shared memory: a header is all
            msg = Message("act", seq=req.seq, sender="server", meta={**meta, "shm": [req.offset, int(req.rows.size)]})
            w.inflight[req.seq] = req
            if outbox is None:
                self._flush({w.ident: [(req, msg)]})
            else:
                outbox.setdefault(w.ident, []).append((req, msg))
            return
        obs, mask = self._gather(req)
        msg = Message("act", seq=req.seq, sender="server", arrays={"obs": obs, "mask": mask}, meta=meta)
        w.inflight[req.seq] = req
        if not self._send(w.ident, msg):
            self._lose(w, "its socket is gone")

    def _ask(self, group: Group) -> None:
        """Send this step's requests of ``group``; a step that needs none is finished at once. While a
        learner cannot take the segments waiting for it, the group pauses instead (``resume``)."""
        while True:
            if self.feed is not None and self.feed.blocked():
                self.paused.append(group)
                return
            runner = group.runner
            group.asked = runner.begin_step()
            group.asked_at = time.perf_counter()
            offset = self.row_base[group.index]
            self._asking = group
            outbox: dict[bytes, list] = {}
            for i, rows in group.asked:
                self._seq += 1
                seed = int(np.random.SeedSequence([self.seed, group.index, runner.steps, i]).generate_state(1)[0])
                req = Request(group.index, i, rows, self._seq, seed)
                if self.shared is not None:      # this step's requests of a group hold disjoint rows
                    req.offset = offset
                    self.shared.arrays["rows"][offset:offset + rows.size] = rows
                    offset += rows.size
                group.pending.add(req.seq)
                self.counters["requests"] += 1
                self._dispatch(req, outbox)
            self._flush(outbox)
            self._asking = None
            if group.pending or not self._step_group(group):
                return

    def _step_group(self, group: Group) -> bool:
        """Step ``group`` with the actions collected; returns whether it should go on."""
        runner = group.runner
        if group.asked:                         # request out to last reply in
            self.latencies.append(time.perf_counter() - group.asked_at)
        finished = runner.end_step()
        new = runner.account(finished)          # counted, and re-seated when a seating policy is given
        if self.feed is not None:
            self.feed.stepped(group.index, finished, group.asked)
        if self.spectators is not None:
            self.spectators.publish(group.index, runner.game, runner.steps)
        self.on_progress(self, new)
        group.finished = runner.done or self.stopping
        return not group.finished

    def resume(self) -> None:
        """Ask for the next step of the paused groups once their learners can take segments again."""
        if self.paused and (self.stopping or not self.feed.blocked()):
            paused, self.paused = self.paused, []
            for group in paused:
                if self.stopping:
                    group.finished = True
                else:
                    self._ask(group)

    def stop(self) -> None:
        """Finish the steps in flight, then return from ``serve`` (training stops this way); after
        ``STOP_GRACE`` seconds without them (no worker left to answer) return anyway."""
        if not self.stopping:
            self._stop_by = time.monotonic() + STOP_GRACE
        self.stopping = True

    # -- receiving ---------------------------------------------------------------------------------
    def _lose(self, w: Worker, why: str) -> None:
        if w.ident not in self.workers:
            return
        del self.workers[w.ident]
        self._close_bell(w.ident)      # a worker that comes back talks by the socket until it says hello
        self.counters["workers_lost"] += 1
        self.on_worker_lost(w)
        reqs = list(w.inflight.values())
        self.log(f"arena serve: worker {w.ident.decode(errors='replace')} lost ({why}); "
                 f"re-sending {len(reqs)} batch(es)")
        self.counters["resent"] += len(reqs)
        for req in reqs:
            self._dispatch(req)

    def _handle(self, ident: bytes, msg: Message, now: float) -> None:
        w = self.workers.get(ident)
        if msg.type == "hello":
            if w is not None:   # the same worker starting over: what it had in hand goes elsewhere
                self._lose(w, "it started over")
            self.workers[ident] = Worker(ident, set(), now)
            self._hello(ident, shm=msg.meta.get("shm") is True, extra=self.on_hello(ident, msg.meta))
            return
        if msg.type == "heartbeat":
            if w is None:   # a worker we had given up on (stopped, then resumed): welcome it back
                w = self.workers[ident] = Worker(ident, set(), now)
                self.log(f"arena serve: worker {ident.decode(errors='replace')} is back")
            w.last_seen = now
            agents = msg.meta.get("agents")
            if isinstance(agents, list):
                w.agents = {a for a in agents if isinstance(a, str)}
            w.shm = msg.meta.get("shm") is True and ident in self._shm_replies
            w.bell = w.shm and msg.meta.get("doorbell") is True and ident in self._bells
            if msg.meta.get("ready") and not w.ready:
                w.ready = True
                self.on_worker_ready(w)
                if self.first_ready is None:   # the clock starts when the first worker can act
                    self.first_ready = time.perf_counter()
                    self.startup_seconds = self.first_ready - self.started
                    self.started, self.wait_seconds = self.first_ready, 0.0
                waiting, self.waiting = self.waiting, []
                self._said_waiting.clear()
                for req in waiting:
                    self._dispatch(req)
            return
        if w is None:
            if msg.type in ("actions", "error"):
                self.counters["late_replies"] += 1
            return
        w.last_seen = now
        if msg.type == "bye":
            self._lose(w, "it said bye")
            return
        if msg.type not in ("actions", "error"):
            return
        req = w.inflight.pop(msg.seq, None)
        group = self.groups[req.group] if req is not None else None
        if req is None or req.seq not in group.pending:
            self.counters["late_replies"] += 1
            return
        group.pending.discard(req.seq)
        runner = group.runner
        if msg.type == "actions" and not msg.arrays and msg.meta.get("shm") is True and w.shm and req.offset >= 0:
            prefix, cut = self._shm_replies[ident], slice(req.offset, req.offset + req.rows.size)
            msg.arrays = {"actions": self.shared.arrays[f"{prefix}.actions"][cut]}
            if "version" in msg.meta:
                msg.arrays["logp"] = self.shared.arrays[f"{prefix}.logp"][cut]
        if msg.type == "error":
            runner.fault(req.agent, req.rows, str(msg.meta.get("error", "failed in its worker")))
        elif "actions" not in msg.arrays:
            runner.fault(req.agent, req.rows, "its worker answered without actions")
        else:
            runner.take(req.agent, req.rows, msg.arrays["actions"])
            if self.feed is not None and self.feed.learns(req.agent):
                self._record(req, msg)
        if not group.pending and self._step_group(group):
            self._ask(group)

    def _record(self, req: Request, msg: Message) -> None:
        """A learning policy's accepted reply goes into its trajectories: the actions applied, their
        log-probabilities and the version that produced them (a reply without them is counted)."""
        logp, version = msg.arrays.get("logp"), msg.meta.get("version")
        if logp is None or logp.shape != (req.rows.size,) or logp.dtype != np.float32 or not np.isfinite(logp).all() \
                or not isinstance(version, int) or isinstance(version, bool) or version < 0:
            self.feed.counters["unrecorded_replies"] += 1
            return
        runner = self.groups[req.group].runner
        self.feed.decided(req.group, req.agent, req.rows, runner.actions_of(req.rows), logp, version,
                          exact=msg.meta.get("precision", "fp32") == "fp32")
        name = self.agent_names[req.agent]
        self.versions[name] = max(version, self.versions.get(name, -1))

    def _tick(self, now: float) -> None:
        if self.spectators is not None:
            self.spectators.poll()
        self.on_tick(self)
        for w in list(self.workers.values()):
            # a worker still loading its agents (JIT compiles, first parameters) holds no batch: it may
            # be silent for longer before it counts as gone
            if now - w.last_seen > (self.liveness if w.ready or w.inflight else WARMUP_LIVENESS):
                self._lose(w, f"silent for {now - w.last_seen:.1f} s")
            else:
                self._send(w.ident, Message("heartbeat", sender="server"))

    def stats(self) -> dict:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        runners = [g.runner for g in self.groups]
        games = sum(r.games for r in runners)
        agent_steps = sum(r.agent_steps for r in runners)
        lat = np.percentile(np.fromiter(self.latencies, float), [50, 99]) * 1e3 if self.latencies else (0.0, 0.0)
        return {"matches": games, "matches_per_s": games / elapsed, "agent_steps": agent_steps,
                "step_latency_p50_ms": round(float(lat[0]), 3), "step_latency_p99_ms": round(float(lat[1]), 3),
                "agent_steps_per_s": agent_steps / elapsed, "wait_s": self.wait_seconds,
                "queue": len(self.waiting) + sum(len(w.inflight) for w in self.workers.values()),
                "workers": sum(w.ready for w in self.workers.values()), **self.counters,
                **({**{f"version.{k}": v for k, v in self.versions.items()}, "paused_groups": len(self.paused),
                    **self.feed.stats()}
                   if self.feed is not None else {})}

    # -- the loop ----------------------------------------------------------------------------------
    def on_progress(self, server: "GameServer", new_games: int) -> None:
        """Called after each group step with the games just counted; replace to show progress."""

    def on_tick(self, server: "GameServer") -> None:
        """Called every heartbeat interval (also while waiting); replace to watch or to ``stop``."""

    def on_hello(self, ident: bytes, meta: dict) -> dict:
        """Called with a worker's ``hello``; what it returns is added to our answer (the league gives a
        remote agent its seat this way)."""
        return {}

    def on_worker_ready(self, worker: Worker) -> None:
        """Called when a worker first says it is ready to act."""

    def on_worker_lost(self, worker: Worker) -> None:
        """Called when a worker is given up on, before its batches go elsewhere."""

    def serve(self) -> dict:
        """Play until every group meets its stop rule; returns the summary (as ``arena run``)."""
        poller = self._poller
        self.started = time.perf_counter()
        for group in self.groups:
            if group.runner.done:
                group.finished = True
            else:
                self._ask(group)
        next_tick = next_stats = time.monotonic()
        try:
            while not all(g.finished for g in self.groups):
                if self.stopping and time.monotonic() > self._stop_by:
                    self.log("arena serve: stopping without the steps still in flight (no reply in "
                             f"{STOP_GRACE:.0f} s)")
                    break
                now = time.monotonic()
                timeout = max(0.0, min(next_tick, next_stats) - now)
                t0 = time.perf_counter()
                events = poller.poll(int(timeout * 1000) + 1)
                self.wait_seconds += time.perf_counter() - t0
                now = time.monotonic()
                for fd, _ in events:
                    if fd in self._bell_fds:
                        self._read_bell(fd, now)
                if events:
                    for _ in range(256):
                        try:
                            frames = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        if len(frames) < 2:
                            self.counters["bad_messages"] += 1
                            continue
                        ident = frames[0].bytes
                        try:
                            msg = decode(frames[1:], max_bytes=self.max_reply_bytes)
                        except ProtocolError:
                            self.counters["bad_messages"] += 1
                            continue
                        self._handle(ident, msg, now)
                if self.paused:
                    self.resume()
                if now >= next_tick:
                    self._tick(now)
                    next_tick = now + HEARTBEAT_INTERVAL
                if now >= next_stats:
                    self.pub.send_multipart(encode(Message("stats", sender="server", meta={
                        k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in self.stats().items()})))
                    next_stats = now + STATS_INTERVAL
        finally:
            self.seconds = time.perf_counter() - self.started
        return self.summary()

    def summary(self) -> dict:
        from server.play.summary import fold_summaries

        runners = [g.runner for g in self.groups]
        out = fold_summaries(self.arena, runners, getattr(self, "seconds", time.perf_counter() - self.started))
        out["groups"] = len(runners)
        out["startup_seconds"] = round(self.startup_seconds, 3)
        out["server"] = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.stats().items()}
        return out

    def outcomes(self) -> list[tuple[int, int, int, int]]:
        """``(group, slot, winner, length)`` of every counted game, in a fixed order."""
        return [(g.index, *o) for g in self.groups for o in g.runner.outcomes]

    def close(self) -> None:
        for ident in list(self.workers):
            self._send(ident, Message("bye", sender="server"))
        time.sleep(0.05)
        for ident in list(self._bells):
            self._close_bell(ident)
        self.sock.close(0)
        self.pub.close(0)
        if self.feed is not None:
            self.feed.close()
        if self.spectators is not None:
            self.spectators.close()
        if self.keys_dir:
            from server.net.endpoints import stop_authenticator
            stop_authenticator(self.ctx)
        if self.shared is not None:
            self.shared.close()
