"""A policy worker: serves agents to one or more game servers over ZeroMQ.

    arena worker --connect tcp://HOST:PORT [--connect ...] [--agents A,B] [--keys DIR]

The worker connects a DEALER socket to each server and says ``hello`` with the agents it offers
(``*``: whatever the server plays). The server answers ``hello`` with its arena, options and agent
names; the worker builds those agents (once per arena configuration, shared between servers that
play the same one) and starts heartbeating, which tells the server it is ready. Then it answers
``act`` requests: every row of one agent in a request is answered by one ``act`` call (one forward
pass for a neural policy). With ``join=True`` (``--join``), requests for the same agent that are
waiting together, from any server or match group, are joined into one call as well, for bigger GPU
batches; that gives up bit-for-bit reproducibility, since the joined rows depend on timing.

A request's ``meta["seed"]`` is handed to ``agent.reseed(seed)`` when the agent has that method, so
a batch that the server re-sends to another worker after a failure gets the same actions.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import zmq

from agents.check import describe
from server.net.protocol import DTYPES, Message, ProtocolError, decode, encode

#: seconds between heartbeats to each server (the server declares a worker dead after
#: ``HEARTBEAT_LIVENESS`` seconds of silence; 0.1-0.5 s keeps detection near a second)
HEARTBEAT_INTERVAL = 0.2
#: seconds between ``hello`` retries while a server has not answered
HELLO_RETRY = 1.0


@dataclass
class Link:
    endpoint: str
    sock: zmq.Socket
    configured: bool = False
    config_key: str = ""
    agents: dict = field(default_factory=dict)      # agent name -> Agent
    last_hello: float = 0.0
    last_beat: float = 0.0


class PolicyWorker:
    def __init__(self, connect: list[str], agents: list[str] | None = None, keys_dir: str | None = None,
                 agent_args: list[str] | None = None, name: str | None = None, exit_when_done: bool = False,
                 join: bool = False, log=None):
        self.join = join
        self.offer = agents or ["*"]
        self.agent_args = agent_args or []
        self.name = name or f"worker-{os.getpid()}"
        self.exit_when_done = exit_when_done
        self.log = log or (lambda text: print(text, file=sys.stderr, flush=True))
        self.ctx = zmq.Context.instance()
        self.links: list[Link] = []
        self._agent_cache: dict[tuple[str, str], object] = {}
        self.stats = {"requests": 0, "rows": 0, "batches": 0, "bad_messages": 0, "errors": 0}
        for endpoint in connect:
            sock = self.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt_string(zmq.IDENTITY, f"{self.name}-{len(self.links)}")
            if keys_dir:
                from server.net.endpoints import secure_client
                secure_client(sock, keys_dir)
            sock.connect(endpoint)
            self.links.append(Link(endpoint, sock))

    # -- configuration ---------------------------------------------------------------------------
    def _configure(self, link: Link, msg: Message) -> None:
        from agents.loader import load_agent, split_agent_args
        import arenas

        arena, options = msg.meta.get("arena"), json.loads(msg.meta.get("options", "{}"))
        names = msg.meta.get("agents") or []
        serve = [n for n in names if "*" in self.offer or n in self.offer]
        key = json.dumps([arena, options], sort_keys=True)
        game = arenas.get(arena).game(num_matches=1, **options)
        args = split_agent_args(self.agent_args, serve) if self.agent_args else {n: {} for n in serve}
        link.agents = {}
        for n in serve:
            cache_key = (key, n)
            if cache_key not in self._agent_cache:
                agent = load_agent(n.split("#")[0], game, seed=0, args=args.get(n, {}))
                agent.name = n
                self._agent_cache[cache_key] = agent
            link.agents[n] = self._agent_cache[cache_key]
        # one act per agent on a one-match game: JIT compiles happen now, not inside a timed request
        # (a worker busy compiling for more than a second would look dead to the server)
        game.reset(seed=0)
        rows = game.active.reshape(-1)
        obs = game.obs.reshape((-1,) + game.obs_shape)[rows]
        mask = game.action_mask.reshape(rows.size, -1)[rows]
        for agent in link.agents.values():
            try:
                agent.act(obs, mask)
            except Exception:
                pass  # a broken agent shows its fault on the first real request
        link.configured, link.config_key = True, key
        self.log(f"{self.name}: serving {', '.join(serve) or 'nothing'} for {arena} at {link.endpoint}")

    def _beat(self, link: Link, now: float) -> None:
        link.sock.send_multipart(encode(Message("heartbeat", sender=self.name,
                                                meta={"agents": sorted(link.agents), "ready": True})))
        link.last_beat = now

    # -- serving -----------------------------------------------------------------------------------
    def _serve(self, batch: list[tuple[Link, Message]]) -> None:
        """Answer ``act`` requests, joining those for the same agent into one call."""
        groups: dict[int, list[tuple[Link, Message]]] = {}
        for link, msg in batch:
            agent = link.agents.get(msg.meta.get("agent"))
            if agent is None:
                link.sock.send_multipart(encode(Message("error", seq=msg.seq, sender=self.name,
                                                        meta={"error": f"this worker does not serve {msg.meta.get('agent')!r}"})))
                continue
            groups.setdefault(id(agent) if self.join else id(msg), []).append((link, msg))
        for reqs in groups.values():
            link0, msg0 = reqs[0]
            agent = link0.agents[msg0.meta["agent"]]
            obs = [m.arrays["obs"] for _, m in reqs]
            mask = [m.arrays["mask"] for _, m in reqs]
            try:
                if hasattr(agent, "reseed") and "seed" in msg0.meta:
                    agent.reseed(int(msg0.meta["seed"]))
                if len(reqs) == 1:
                    outs = [np.asarray(agent.act(obs[0], mask[0]))]
                else:
                    out = np.asarray(agent.act(np.concatenate(obs), np.concatenate(mask)))
                    outs = np.split(out, np.cumsum([len(o) for o in obs])[:-1]) if out.ndim == 1 else [out] * len(reqs)
                replies = []
                for (link, msg), out in zip(reqs, outs):
                    if out.dtype.name not in DTYPES:
                        raise TypeError(f"returned dtype {out.dtype}; actions must be integers")
                    replies.append((link, Message("actions", seq=msg.seq, sender=self.name, arrays={"actions": out})))
            except Exception as exc:
                self.stats["errors"] += 1
                text = str(exc) if str(exc).startswith("returned") else describe(exc)
                replies = [(link, Message("error", seq=msg.seq, sender=self.name, meta={"error": text}))
                           for link, msg in reqs]
            for link, reply in replies:
                link.sock.send_multipart(encode(reply), copy=False)
            self.stats["batches"] += 1
            self.stats["requests"] += len(reqs)
            self.stats["rows"] += sum(len(o) for o in obs)

    def run(self) -> int:
        poller = zmq.Poller()
        for link in self.links:
            poller.register(link.sock, zmq.POLLIN)
        done: set[int] = set()
        while True:
            now = time.monotonic()
            for i, link in enumerate(self.links):
                if i in done:
                    continue
                if not link.configured and now - link.last_hello >= HELLO_RETRY:
                    link.sock.send_multipart(encode(Message("hello", sender=self.name,
                                                            meta={"role": "worker", "agents": self.offer})))
                    link.last_hello = now
                elif link.configured and now - link.last_beat >= HEARTBEAT_INTERVAL:
                    self._beat(link, now)
            events = dict(poller.poll(int(HEARTBEAT_INTERVAL * 1000)))
            batch: list[tuple[Link, Message]] = []
            for i, link in enumerate(self.links):
                if link.sock not in events:
                    continue
                while True:  # drain what is waiting, so requests for one agent can be joined
                    try:
                        frames = link.sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    try:
                        msg = decode(frames)
                    except ProtocolError as exc:
                        self.stats["bad_messages"] += 1
                        self.log(f"{self.name}: dropped a bad message from {link.endpoint}: {exc}")
                        continue
                    if msg.type == "hello":
                        try:
                            self._configure(link, msg)
                        except Exception as exc:
                            self.log(f"{self.name}: cannot serve {link.endpoint}: {exc}")
                            link.sock.send_multipart(encode(Message("bye", sender=self.name, meta={"error": str(exc)})))
                            done.add(i)
                            break
                        self._beat(link, time.monotonic())
                    elif msg.type == "act" and link.configured:
                        batch.append((link, msg))
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
