"""A policy worker: serves agents to one or more game servers over ZeroMQ.

    arena worker --connect tcp://HOST:PORT [--connect ...] [--agents A,B] [--keys DIR]

The worker connects a DEALER socket to each server and says ``hello`` with the agents it offers. The
server answers ``hello`` with its arena, options and agent names; the worker builds those of them it
serves (once per arena configuration, shared between servers that play the same one) and starts
heartbeating with their names, which tells the server it is ready. Then it answers ``act`` requests:
every row of one agent in a request is answered by one ``act`` call (one forward pass for a neural
policy). With ``join=True`` (``--join``), requests for the same agent that are waiting together, from
any server or match group, are joined into one call as well, for bigger GPU batches; that gives up
bit-for-bit reproducibility, since the joined rows depend on timing.

Data never chooses code. What a server names is data: the worker imports nothing because a server
asked for it. It serves

- with ``--agents A,B``: exactly the agents on its own command line (a file agent among them runs in
  a process of its own with a deadline per call, ``server.play.isolated``, as under ``arena run``,
  unless ``--trust``);
- without ``--agents`` (or with ``*`` among them, as well): the agents that load no code of anyone's
  choosing: the built-in ones, installed entry points (``arena.agents``) and ``ckpt:`` weights for our
  own policy classes.

A server that names anything else gets no worker for it (the worker says so in its log). Likewise
the arena: a registry arena (built-in or installed entry point), or one named with ``--arena SPEC``
on the worker's command line; a server naming another is refused (``bye``), nothing imported.

Every message from a server is decoded (``server.net.protocol``; the socket caps each frame at
``MAX_MESSAGE_BYTES``) and an ``act`` request checked against the game before use: a bad one is
dropped and counted (``stats["bad_messages"]``), never the end of the worker.

Shared memory: a worker whose server is on this host (an ipc:// or loopback endpoint) says so in its
``hello``; the server's answer then describes its shared arrays (``server.net.shm``), which the worker maps
after checking them. An ``act`` request then carries only ``meta["shm"] = [offset, rows]``: the worker
reads those rows' indices from the shared ``rows`` array, gathers their observations and masks from the
group's shared game buffers, and writes its actions (and log-probabilities) at the same offset of its own
reply arrays; the reply is a header. An answer that does not fit those arrays (another shape, float actions
for a discrete game) goes back as frames, for the server to judge as any reply. ``transport="frames"``
(``--transport frames``) never asks for shared memory. With shared memory the server also names a pair of
doorbells (``server.net.doorbell``: named pipes in its shared-memory folder); the worker opens them and
says so in its heartbeats, and from then on the server's ``act`` headers arrive there and the replies to
them go back there, written together once a batch is served. A doorbell that closes or carries anything
but act headers is closed, and everything goes by the socket again.

A request's ``meta["seed"]`` is handed to ``agent.reseed(seed)`` when the agent has that method, so
a batch that the server re-sends to another worker after a failure gets the same actions.
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import zmq

from agents.check import AgentFault, describe
from server.net import doorbell
from server.net.protocol import DTYPES, MAX_MESSAGE_BYTES, Message, ProtocolError, decode, encode, waiting

_WIRE_DTYPES = frozenset(np.dtype(d) for d in DTYPES)
#: seconds between heartbeats to each server (the server declares a worker dead after
#: ``HEARTBEAT_LIVENESS`` seconds of silence; 0.1-0.5 s keeps detection near a second)
HEARTBEAT_INTERVAL = 0.2
#: seconds between ``hello`` retries while a server has not answered
HELLO_RETRY = 1.0
#: the league's snapshot slots among a worker's agents (``--league-pub``)
_SNAPSHOT_SLOT = re.compile(r"^snap\d{1,4}$")
#: a league's seats for remote members (``--league-member``)
_GUEST_SEAT = re.compile(r"^guest\d{1,3}$")


@dataclass
class Link:
    endpoint: str
    sock: zmq.Socket
    configured: bool = False
    config_key: str = ""
    agents: dict = field(default_factory=dict)      # agent name -> Agent
    game: object = None                             # a one-match game of the server's arena, for checks
    last_hello: float = 0.0
    last_beat: float = 0.0
    shm: dict | None = None                         # the server's shared arrays, when mapped
    reply: str = ""                                 # the prefix of our reply arrays among them
    split: bool = False                             # the game's teams see different cuts of a row
    obs_shapes: frozenset = frozenset()             # the observation shapes a request may hold
    bell: doorbell.Reader | None = None             # the server's act headers, when its doorbell is open
    bell_out: int = -1                              # and our replies' doorbell (write end)


class SetupRefused(ValueError):
    """What a server asked for is not something this worker will do (one line for its log)."""


class PolicyWorker:
    def __init__(self, connect: list[str], agents: list[str] | None = None, keys_dir: str | None = None,
                 agent_args: list[str] | None = None, name: str | None = None, exit_when_done: bool = False,
                 join: bool = False, log=None, trust: bool = False, arenas: list[str] | None = None,
                 agent_timeout: float = 5.0, learners: dict[str, str] | None = None, past_every: int = 10,
                 past_pool: int = 8, device: str = "auto", precision: str = "fp32", compile: bool = False,
                 transport: str = "auto", league_pub: str | None = None, league_member: str | None = None):
        #: join a running league as the fixed member of this name, with our one agent (``--agents``)
        self.league_member = league_member
        if league_member and len([a for a in agents or [] if a != "*"]) != 1:
            raise ValueError("--league-member needs exactly one agent in --agents (the one that joins)")
        #: the league's snapshot broadcasts: agents named ``snapK`` in --agents play snapshot slot K from it
        self.league_pub = league_pub
        self.board = None
        if transport not in ("auto", "frames"):
            raise ValueError(f"a worker's transport is auto or frames, not {transport!r}")
        self.transport = transport
        self.join = join
        #: the agents named on the command line, and whether the registry's are served too (no
        #: --agents, or ``*`` among them: built-ins, installed entry points and ckpt: weights)
        self.offer = [a for a in agents or [] if a != "*"]
        self.registry_agents = not agents or "*" in agents
        self.trust = bool(trust)
        self.extra_arenas = list(arenas or [])
        self.agent_timeout = float(agent_timeout)
        self.agent_args = agent_args or []
        #: learning policies served from their learners' parameter broadcasts (name -> PUB endpoint), and
        #: ``past``: frozen snapshots of them (``server.play.policies``); both only when named in --agents
        self.learner_endpoints = dict(learners or {})
        self.past_every, self.past_pool, self.device = int(past_every), int(past_pool), device
        #: the copy our neural policies act with (``agents.inference``: fp32, bf16 or int8; compiled or not)
        self.precision, self.compile = precision, bool(compile)
        self.keys_dir = keys_dir
        self.learning: dict[str, object] = {}       # name -> LearningPolicy
        self.pool = None                            # SnapshotPool, when "past" is served
        self.name = name or f"worker-{os.getpid()}"
        self.exit_when_done = exit_when_done
        self.log = log or (lambda text: print(text, file=sys.stderr, flush=True))
        self.ctx = zmq.Context.instance()
        self.links: list[Link] = []
        self._poller = zmq.Poller()           # every link's socket, and its doorbell once open
        self._outbox: dict[int, tuple[Link, list]] = {}     # doorbell replies of the batch being served
        self._agent_cache: dict[tuple[str, str], object] = {}
        self._refused: set[str] = set()
        self.stats = {"requests": 0, "rows": 0, "batches": 0, "bad_messages": 0, "errors": 0, "refused": 0}
        for endpoint in connect:
            sock = self.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
            sock.setsockopt_string(zmq.IDENTITY, f"{self.name}-{len(self.links)}")
            if keys_dir:
                from server.net.endpoints import secure_client
                secure_client(sock, keys_dir)
            sock.connect(endpoint)
            self.links.append(Link(endpoint, sock))
            self._poller.register(sock, zmq.POLLIN)

    # -- configuration ---------------------------------------------------------------------------
    def _local(self, endpoint: str) -> bool:
        """Whether to offer shared memory to the server at ``endpoint`` (on this host, as far as we can tell)."""
        from server.net.endpoints import on_this_host
        from server.net.shm import available

        return self.transport == "auto" and available() and on_this_host(endpoint)

    def may_serve(self, name: str) -> bool:
        """Whether this worker serves agent ``name`` when a server asks (see the module docstring)."""
        from agents.loader import kind
        from agents.registry import UnknownAgent

        spec = name.split("#")[0]
        if name in self.learner_endpoints or (name == "past" and self.learner_endpoints) or \
                (self.league_pub and _SNAPSHOT_SLOT.match(name)):
            return name in self.offer
        if name in self.offer or spec in self.offer:
            return True
        try:
            return self.registry_agents and kind(spec) in ("builtin", "entry_point", "ckpt")
        except UnknownAgent:
            return False

    def _arena(self, arena) -> str:
        """The arena a server names, if this worker may build it (registry, or ``--arena`` given here)."""
        import arenas

        if not isinstance(arena, str) or not (arena in arenas.names() or arena in self.extra_arenas):
            raise SetupRefused(f"the server plays arena {arena!r}, which is not in the registry: a server "
                               f"cannot make a worker import code; to play it, name it on this worker's "
                               f"command line (--arena SPEC)")
        return arena

    def _load(self, name: str, arena: str, options: dict, game, args: dict):
        from agents.loader import kind, load_agent

        if name in self.learner_endpoints:
            from server.play.policies import LearningPolicy
            policy = LearningPolicy(name, self.learner_endpoints[name], game, self.ctx, device=self.device,
                                    keys_dir=self.keys_dir, seed=len(self.learning), precision=self.precision,
                                    compile=self.compile)
            policy.on_version = lambda vec, version, layout, p=policy: self._snapshot(p, vec, version, layout)
            self.learning[name] = policy
            return policy
        if self.league_pub and _SNAPSHOT_SLOT.match(name):
            from server.play.policies import SnapshotBoard
            if self.board is None:
                self.board = SnapshotBoard(self.league_pub, game, self.ctx, device=self.device, keys_dir=self.keys_dir)
            return self.board.slot(name)
        if name == "past" and self.learner_endpoints:
            from server.play.policies import SnapshotPool
            self.pool = SnapshotPool(game, every=self.past_every, size=self.past_pool, device=self.device)
            return self.pool
        spec = name.split("#")[0]
        if kind(spec) == "file" and not self.trust:
            from server.play.isolated import IsolatedAgent
            return IsolatedAgent(spec, arena, options, seed=0, args=args, timeout=self.agent_timeout)
        agent = load_agent(spec, game, seed=0, args=args)
        if hasattr(agent, "use_inference") and (self.precision != "fp32" or self.compile):
            agent.use_inference(self.precision, self.compile)      # a ckpt: policy acts with the compressed copy
        return agent

    def _snapshot(self, policy, vec, version: int, layout: dict) -> None:
        """The first learner's versions feed the ``past`` pool (the learners' parameters stay close by gossip)."""
        if self.pool is not None and policy is next(iter(self.learning.values())):
            self.pool.offer(vec, version, layout)

    def _refresh(self, wait: float = 0.0) -> None:
        """Swap in the learners' newest parameters: called between batches, never during one."""
        for policy in self.learning.values():
            policy.refresh(wait if not policy.ready else 0.0)
        if self.board is not None:
            self.board.refresh()

    @property
    def ready(self) -> bool:
        """Ready to act: every learning policy has parameters (and ``past`` its first snapshot)."""
        return all(p.ready for p in self.learning.values()) and (self.pool is None or self.pool.ready)

    def _configure(self, link: Link, msg: Message) -> None:
        from agents.loader import split_agent_args
        import arenas

        arena = self._arena(msg.meta.get("arena"))
        try:
            options = json.loads(msg.meta.get("options") or "{}")
        except (TypeError, ValueError):
            options = None
        names = msg.meta.get("agents") or []
        if not isinstance(options, dict) or not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise SetupRefused("the server's hello has no valid options or agent names")
        guest = msg.meta.get("guest") if self.league_member else None
        if self.league_member and not (isinstance(guest, str) and _GUEST_SEAT.match(guest) and guest in names):
            raise SetupRefused(f"the server gave no league seat to {self.league_member!r} (is it an arena league "
                               f"with --bind, and is the name free?)")
        serve = [guest] if guest else [n for n in names if self.may_serve(n)]
        for n in names:
            if n not in serve and n not in self._refused and not guest:
                self._refused.add(n)
                self.stats["refused"] += 1
                self.log(f"{self.name}: not serving {n!r} for {link.endpoint}: a server cannot make a worker "
                         f"load code; name it on this worker's command line (--agents) to serve it")
        key = json.dumps([arena, options], sort_keys=True)
        game = arenas.get(arena).game(num_matches=1, **options)
        if guest:         # our one agent plays the seat the league gave us
            args = {guest: (split_agent_args(self.agent_args, self.offer) if self.agent_args else {}).get(self.offer[0], {})}
        else:
            args = split_agent_args(self.agent_args, serve) if self.agent_args else {n: {} for n in serve}
        link.agents = {}
        for n in serve:
            cache_key = (key, n)
            if cache_key not in self._agent_cache:
                agent = self._load(self.offer[0] if n == guest else n, arena, options, game, args.get(n, {}))
                agent.name = n
                self._agent_cache[cache_key] = agent
            link.agents[n] = self._agent_cache[cache_key]
        # one act per agent on a one-match game: JIT compiles happen now, not inside a timed request
        # (a worker busy compiling for more than a second would look dead to the server)
        self._refresh(wait=0.2)
        for agent in link.agents.values():
            if not getattr(agent, "ready", True):
                continue                        # a learning policy before its first parameters
            for obs, mask in warm_rows(game):
                try:
                    agent.act(obs, mask)
                except Exception:
                    pass  # a broken agent shows its fault on the first real request
        link.game = game
        link.split = any(sp.shape != tuple(game.obs_shape) for sp in game.team_observation_spaces)
        link.obs_shapes = frozenset({tuple(game.obs_shape)} | {tuple(sp.shape) for sp in game.team_observation_spaces})
        link.configured, link.config_key = True, key
        link.shm, link.reply = self._attach(link, msg.meta.get("shm")), ""
        self._close_bell(link)
        if link.shm is not None:
            spec = json.loads(msg.meta["shm"])
            link.reply = spec.get("reply", "")
            self._open_bell(link, spec)
        how = "shared memory" if link.shm is not None else "frames"
        self.log(f"{self.name}: serving {', '.join(link.agents) or 'nothing'} for {arena} at {link.endpoint} ({how})")

    def _open_bell(self, link: Link, spec: dict) -> None:
        """Open the doorbells the server named in its shared-memory folder (``attach`` checked the folder);
        without them (an older server, a FIFO that is not ours) requests come by the socket."""
        from server.net.shm import ROOT

        names = spec.get("doorbell")
        if not (isinstance(names, list) and len(names) == 2 and all(isinstance(n, str) for n in names)):
            return
        dfd = os.open(os.path.join(ROOT, spec["dir"]), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        fd = -1
        try:
            if any("/" in n or n.startswith(".") for n in names):
                raise doorbell.DoorbellError(0, f"bad doorbell names {names!r}")
            fd = doorbell.open_fifo(names[0], write=False, dir_fd=dfd)     # ours first: the server then opens its end
            link.bell_out = doorbell.open_fifo(names[1], write=True, dir_fd=dfd)
            link.bell = doorbell.Reader(fd)
            self._poller.register(fd, zmq.POLLIN)
        except doorbell.DoorbellError as exc:
            if fd >= 0:
                os.close(fd)
            self.log(f"{self.name}: no doorbell for {link.endpoint} (requests come by the socket): {exc}")
        finally:
            os.close(dfd)

    def _close_bell(self, link: Link) -> None:
        if link.bell is not None:
            self._poller.unregister(link.bell.fd)
            os.close(link.bell.fd)
            link.bell = None
        if link.bell_out >= 0:
            os.close(link.bell_out)
            link.bell_out = -1

    def _read_bell(self, link: Link, batch: list) -> None:
        """The act headers waiting on ``link``'s doorbell join ``batch``. Anything else there is a bad
        message and ends the doorbell, as does the server closing its end (it gave up on us)."""
        for raw in link.bell.read():
            try:
                msg = decode([raw], max_bytes=doorbell.MAX_FRAME)
                if msg.type != "act" or msg.arrays or not link.configured:
                    raise ProtocolError(f"a {msg.type!r} message where only act headers go")
            except ProtocolError as exc:
                self._count_bad(link, f"doorbell: {exc}")
                link.bell.closed = True
                break
            batch.append((link, msg, True))
        if link.bell.closed:
            self._close_bell(link)
            self._beat(link, time.monotonic())      # tell the server at once: no doorbell here now

    def _attach(self, link: Link, spec) -> dict | None:
        """The server's shared arrays, mapped (None: frames, with one line saying why when it offered them)."""
        from server.net.shm import ShmError, attach

        if not isinstance(spec, str):
            return None
        try:
            spec = json.loads(spec)
            arrays = attach(spec)
            reply = spec.get("reply")
            if not isinstance(reply, str) or any(k not in arrays for k in (
                    f"{reply}.actions", f"{reply}.logp", "rows", "req_obs", "req_mask")):
                raise ShmError("the description has no rows or reply arrays")
            return arrays
        except (ShmError, ValueError) as exc:
            self.log(f"{self.name}: frames for {link.endpoint}, not shared memory: {exc}")
            return None

    def _from_shm(self, link: Link, msg: Message) -> str:
        """Fill an ``act`` request's ``obs`` and ``mask`` from shared memory; why it cannot be ("" when it can)."""
        where, group = msg.meta.get("shm"), msg.meta.get("group")
        shm, game = link.shm, link.game
        if shm is None or not isinstance(where, list) or len(where) != 2 or msg.arrays:
            return "a shared-memory request without shared memory"
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (*where, group)) \
                or f"g{group}.obs" not in shm:
            return "a shared-memory request names no known group and rows"
        off, n = where
        if not (0 <= off and 0 < n and off + n <= shm["rows"].size):
            return f"rows {off}..{off + n} are outside the shared rows"
        rows = shm["rows"][off:off + n]
        obs_all, mask_all = shm[f"g{group}.obs"], shm[f"g{group}.action_mask"]
        seats = obs_all.shape[1]
        flat = obs_all.shape[0] * seats
        first, last = int(rows[0]), int(rows[-1])
        if not (0 <= first < flat and 0 <= last < flat):   # only these two index anything below
            return "shared rows outside the group's seats"
        split = link.split
        if not split and last - first + 1 == n:       # one run of seats: the game's own buffers, in place
            obs = obs_all.reshape((flat,) + obs_all.shape[2:])[first:last + 1]
            mask = mask_all.reshape(flat, -1)[first:last + 1]
        else:                                         # gathered by the server into the request arrays
            shape = tuple(game.obs_shape)
            if split:                                 # a team's rows, cut to its space
                team = int(np.asarray(game.seat_team)[first % seats])
                shape = tuple(game.team_observation_spaces[team].shape)
            row_bytes = obs_all[0, 0].nbytes
            size = n * obs_all.dtype.itemsize * math.prod(shape)
            req = shm["req_obs"]
            if (off + n) * row_bytes > req.size:
                return "shared rows outside the request arrays"
            obs = req[off * row_bytes:off * row_bytes + size].view(obs_all.dtype).reshape((n,) + shape)
            mask = shm["req_mask"][off:off + n]
        obs, mask = obs.view(), mask.view()
        obs.flags.writeable = mask.flags.writeable = False      # an agent reads them; they are the server's
        msg.arrays = {"obs": obs, "mask": mask}
        return ""

    def _to_shm(self, link: Link, msg: Message, reply: Message) -> None:
        """Move a reply's arrays into our reply arrays at the request's offset, when they fit (else frames)."""
        off, n = msg.meta["shm"]
        actions, logp = reply.arrays.get("actions"), reply.arrays.get("logp")
        region = link.shm[f"{link.reply}.actions"][off:off + n]
        kinds = "iu" if region.dtype.kind in "iu" else "f"
        if reply.type != "actions" or set(reply.arrays) - {"actions", "logp"} or actions is None \
                or actions.shape != region.shape or actions.dtype.kind not in kinds \
                or (logp is not None and logp.shape != (n,)):
            return
        np.copyto(region, actions, casting="unsafe")
        if logp is not None:
            np.copyto(link.shm[f"{link.reply}.logp"][off:off + n], logp, casting="unsafe")
        reply.arrays = {}
        reply.meta = {**reply.meta, "shm": True}

    def _bad_request(self, link: Link, msg: Message) -> str:
        """Why an ``act`` request cannot be served as it is ("" when it can)."""
        name = msg.meta.get("agent")
        if not isinstance(name, str) or name not in link.agents:
            return f"this worker does not serve {name!r}"
        obs, mask, game = msg.arrays.get("obs"), msg.arrays.get("mask"), link.game
        if obs is None or mask is None or set(msg.arrays) != {"obs", "mask"}:
            return "an act request holds obs and mask, nothing else"
        if obs.ndim < 1 or obs.dtype != game.obs.dtype or obs.shape[1:] not in link.obs_shapes:
            return f"obs must be {game.obs.dtype} (n,) + one of {sorted(link.obs_shapes)}"
        if mask.ndim != 2 or mask.shape[0] != obs.shape[0] or mask.shape[1] != game.action_mask.shape[-1]:
            return f"mask must be (n, {game.action_mask.shape[-1]}) for {obs.shape[0]} rows of obs"
        return ""

    def _beat(self, link: Link, now: float) -> None:
        link.sock.send_multipart(encode(Message("heartbeat", sender=self.name,
                                                meta={"agents": sorted(link.agents), "ready": self.ready,
                                                      "shm": link.shm is not None, "doorbell": link.bell is not None})))
        link.last_beat = now

    # -- serving -----------------------------------------------------------------------------------
    def _serve(self, batch: list[tuple[Link, Message, bool]]) -> None:
        """Answer ``act`` requests (``(link, message, came by the doorbell)``), joining those for the same
        agent into one call. A learning policy's reply also holds the log-probabilities of its actions and
        the version that chose them. Replies to requests that came by a doorbell go back that way, all of
        a link's together at the end."""
        self._refresh()
        groups: dict[int, list[tuple[Link, Message]]] = {}
        self._outbox: dict[int, tuple[Link, list[Message]]] = {}
        bell = {id(msg) for _, msg, by_bell in batch if by_bell}
        for link, msg, _ in batch:
            why = self._from_shm(link, msg) if "shm" in msg.meta else ""
            why = why or self._bad_request(link, msg)
            if why:
                self._count_bad(link, why)
                self._reply(link, Message("error", seq=msg.seq, sender=self.name, meta={"error": why}), id(msg) in bell)
                continue
            agent = link.agents[msg.meta["agent"]]
            groups.setdefault(id(agent) if self.join else id(msg), []).append((link, msg))
        for reqs in groups.values():
            link0, msg0 = reqs[0]
            agent = link0.agents[msg0.meta["agent"]]
            obs = [m.arrays["obs"] for _, m in reqs]
            mask = [m.arrays["mask"] for _, m in reqs]
            try:
                if hasattr(agent, "reseed") and "seed" in msg0.meta:
                    agent.reseed(int(msg0.meta["seed"]))
                answer = self._learning_replies if hasattr(agent, "act_logp") else self._replies
                replies = answer(agent, reqs, obs, mask)
            except Exception as exc:
                self.stats["errors"] += 1
                text = str(exc) if str(exc).startswith("returned") or isinstance(exc, AgentFault) else describe(exc)
                replies = [(link, Message("error", seq=msg.seq, sender=self.name, meta={"error": text}))
                           for link, msg in reqs]
            for (link, msg), (_, reply) in zip(reqs, replies):
                if "shm" in msg.meta:
                    self._to_shm(link, msg, reply)
                self._reply(link, reply, id(msg) in bell)
            self.stats["batches"] += 1
            self.stats["requests"] += len(reqs)
            self.stats["rows"] += sum(len(o) for o in obs)
        for link, replies in self._outbox.values():     # one write (one wake-up of the server) per link
            sent = 0
            if link.bell_out >= 0:
                try:
                    sent = doorbell.write(link.bell_out, [frame for frame, _ in replies])
                except BrokenPipeError:       # the server closed its end: the socket from now on
                    self._close_bell(link)
            for _, reply in replies[sent:]:
                link.sock.send_multipart(encode(reply))

    def _reply(self, link: Link, reply: Message, by_bell: bool) -> None:
        """Send ``reply`` by the socket, or keep it for the doorbell when its request came that way and it
        is a header that fits a doorbell frame."""
        frames = encode(reply)
        if by_bell and len(frames) == 1 and link.bell_out >= 0 and len(frames[0]) <= doorbell.MAX_HEADER:
            self._outbox.setdefault(id(link), (link, []))[1].append((doorbell.frame(frames[0]), reply))
        else:
            link.sock.send_multipart(frames, copy=not reply.arrays)   # a header alone: copied

    def _replies(self, agent, reqs, obs, mask) -> list:
        if len(reqs) == 1:
            outs = [np.asarray(agent.act(obs[0], mask[0]))]
        else:
            out = np.asarray(agent.act(np.concatenate(obs), np.concatenate(mask)))
            outs = np.split(out, np.cumsum([len(o) for o in obs])[:-1]) if out.ndim == 1 else [out] * len(reqs)
        replies = []
        for (link, msg), out in zip(reqs, outs):
            if out.dtype not in _WIRE_DTYPES:
                raise TypeError(f"returned dtype {out.dtype}; actions must be integers")
            replies.append((link, Message("actions", seq=msg.seq, sender=self.name, arrays={"actions": out})))
        return replies

    def _learning_replies(self, policy, reqs, obs, mask) -> list:
        out, logp, version = policy.act_logp(np.concatenate(obs) if len(obs) > 1 else obs[0],
                                             np.concatenate(mask) if len(mask) > 1 else mask[0])
        cuts = np.cumsum([len(o) for o in obs])[:-1]
        return [(link, Message("actions", seq=msg.seq, sender=self.name, policy_version=version,
                               arrays={"actions": a, "logp": lp},
                               meta={"version": version, "precision": policy.precision}))
                for (link, msg), a, lp in zip(reqs, np.split(out, cuts), np.split(logp, cuts))]

    def _count_bad(self, link: Link, why: str) -> None:
        """A message dropped: counted; said in the log for the first few and then every thousandth."""
        self.stats["bad_messages"] += 1
        n = self.stats["bad_messages"]
        if n <= 10 or n % 1000 == 0:
            self.log(f"{self.name}: dropped a bad message from {link.endpoint} ({n} so far): {why}")

    def run(self) -> int:
        poller = self._poller
        done: set[int] = set()
        while True:
            now = time.monotonic()
            for i, link in enumerate(self.links):
                if i in done:
                    continue
                if not link.configured and now - link.last_hello >= HELLO_RETRY:
                    offer = self.offer + (["*"] if self.registry_agents else [])
                    hello = {"role": "worker", "agents": offer, "shm": self._local(link.endpoint)}
                    if self.league_member:
                        hello["league_member"] = self.league_member
                    link.sock.send_multipart(encode(Message("hello", sender=self.name, meta=hello)))
                    link.last_hello = now
                elif link.configured and now - link.last_beat >= HEARTBEAT_INTERVAL:
                    self._beat(link, now)
            events = dict(poller.poll(int(HEARTBEAT_INTERVAL * 1000)))
            if (self.learning or self.board is not None) and not events:
                self._refresh()                  # idle: new parameters (the first ones make us ready)
            batch: list[tuple[Link, Message, bool]] = []
            for link in self.links:
                if link.bell is not None and link.bell.fd in events:
                    self._read_bell(link, batch)
            for i, link in enumerate(self.links):
                if link.sock not in events:
                    continue
                # drain what is waiting, so requests for one agent can be joined
                for msg in waiting(link.sock, on_bad=lambda exc, link=link: self._count_bad(link, str(exc))):
                    if msg.type == "hello":
                        try:
                            self._configure(link, msg)
                        except Exception as exc:   # what went wrong stays here: the server hears only "bye"
                            self.log(f"{self.name}: cannot serve {link.endpoint}: {exc}")
                            link.sock.send_multipart(encode(Message("bye", sender=self.name,
                                                                    meta={"error": "cannot serve this server"})))
                            done.add(i)
                            break
                        self._beat(link, time.monotonic())
                    elif msg.type == "act" and link.configured:
                        batch.append((link, msg, False))
                    elif msg.type == "bye":
                        link.configured = False
                        done.add(i)
                        break
            if batch:
                self._serve(batch)
            if self.exit_when_done and len(done) == len(self.links):
                return 0

    def close(self) -> None:
        for link in self.links:
            try:
                link.sock.send_multipart(encode(Message("bye", sender=self.name)), zmq.NOBLOCK)
            except zmq.ZMQError:
                pass
            link.sock.close(0)
            self._close_bell(link)
        for agent in self._agent_cache.values():   # isolated agents: their processes go with us
            try:
                agent.close()
            except Exception:
                pass


def warm_rows(game):
    """The first position's rows of a one-match game, per team cut to its space where the teams observe
    different things (as the game server asks)."""
    game.reset(seed=0)
    active = game.active.reshape(-1)
    obs = game.obs.reshape((-1,) + game.obs_shape)
    mask = game.action_mask.reshape(active.size, -1)
    teams = game.team_observation_spaces
    if all(sp.shape == tuple(game.obs_shape) for sp in teams):
        return [(obs[active], mask[active])]
    seat_team = np.asarray(game.seat_team)
    out = []
    for t in range(len(teams)):
        rows = np.flatnonzero(active & (seat_team == t))
        if rows.size:
            out.append((np.ascontiguousarray(obs[rows][(slice(None),) + game.team_obs_index(t)]), mask[rows]))
    return out

