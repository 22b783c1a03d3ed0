"""Running an untrusted agent in a process of its own, with a deadline on every call.

``IsolatedAgent`` looks like any agent to the match runner, but its ``act`` is split in two so the
runner can ask it first and play the in-process agents while it thinks: ``send(obs, mask)`` then
``wait()``. The child (``server.play.agent_host``) talks over one ZeroMQ PAIR socket on an ipc endpoint in
a private temporary directory, with ``server.net.protocol`` messages (nothing pickled). A call that does
not answer within ``timeout`` seconds, or a child that dies (a segfault, ``os._exit``), raises
``AgentFault``; the child is then killed and the agent stays disqualified for the rest of the run.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zmq

from agents.base import Agent
from agents.check import AgentFault
from agents.registry import UnknownAgent
from server.net.protocol import Message, ProtocolError, decode, encode

#: seconds a child may take to import and build its agent before it counts as unloadable
LOAD_TIMEOUT = 60.0
#: how often the wait loop looks at whether the child is still alive (a crash is seen this fast)
ALIVE_POLL_S = 0.05
ROOT = Path(__file__).resolve().parents[1]


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class IsolatedAgent(Agent):
    """A proxy for the agent ``spec`` living in a child process."""

    isolated = True

    def __init__(self, spec: str, arena: str, options: dict, seed: int = 0, args: dict | None = None,
                 timeout: float = 5.0, load_timeout: float = LOAD_TIMEOUT):
        super().__init__(None, seed)
        self.name, self.spec, self.timeout = spec, spec, float(timeout)
        self.fault: str | None = None
        self._seq = 0
        self._dir = tempfile.mkdtemp(prefix="arena-agent-")
        self._ctx = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.PAIR)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SNDTIMEO, 2000)  # a child that stopped reading must not block us
        endpoint = f"ipc://{self._dir}/agent.sock"
        self._sock.bind(endpoint)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        cmd = [sys.executable, "-m", "server.play.agent_host", "--endpoint", endpoint, "--spec", spec,
               "--arena", arena, "--options", json.dumps(options), "--args", json.dumps(args or {}),
               "--seed", str(seed)]
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL)
        try:
            msg = self._recv(load_timeout, what="start")
        except AgentFault as exc:
            self.close()
            raise UnknownAgent(f"cannot load {spec!r} in its own process: {exc}") from None
        if msg.type == "error":
            self.close()
            raise UnknownAgent(str(msg.meta.get("error", "it failed to load")))
        hooks = msg.meta.get("hooks", [])
        self.hooks = set(hooks) if isinstance(hooks, list) else set()   # only these are forwarded

    # -- the wire ----------------------------------------------------------------------------------
    def _recv(self, timeout: float, what: str, seq: int | None = None) -> Message:
        deadline = time.perf_counter() + timeout
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise AgentFault(f"did not answer within {timeout:g} s ({what})")
            if self._sock.poll(int(min(left, ALIVE_POLL_S) * 1000) + 1):
                try:
                    msg = decode(self._sock.recv_multipart(copy=False))
                except ProtocolError as exc:
                    raise AgentFault(f"sent a malformed reply: {exc}") from None
                if seq is not None and msg.seq != seq:
                    continue  # a late answer to an earlier call: dropped
                return msg
            code = self.proc.poll()
            if code is not None:
                raise AgentFault(f"its process died ({_exit_text(code)})")

    def _send(self, msg: Message, wait: bool = True) -> None:
        try:
            self._sock.send_multipart(encode(msg), copy=False, flags=0 if wait else zmq.NOBLOCK)
        except zmq.Again:
            if wait:
                raise AgentFault("stopped reading its requests") from None

    # -- the agent protocol ------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        if self.fault is None:
            self._send(Message("reset", meta={"seed": int(self.seed)}), wait=False)

    def send(self, obs: np.ndarray, mask: np.ndarray) -> None:
        """Ask for actions; collect them with ``wait``."""
        if self.fault is not None:
            raise AgentFault(self.fault)
        self._seq += 1
        try:
            self._send(Message("act", seq=self._seq, arrays={"obs": obs, "mask": mask}))
        except AgentFault as exc:
            self.fault = f"{exc}; disqualified for the rest of the run"
            self._kill()
            raise AgentFault(self.fault) from None

    def wait(self) -> np.ndarray:
        if self.fault is not None:
            raise AgentFault(self.fault)
        try:
            msg = self._recv(self.timeout, what="act", seq=self._seq)
        except AgentFault as exc:
            self.fault = f"{exc}; disqualified for the rest of the run"
            self._kill()
            raise AgentFault(self.fault) from None
        if msg.type == "error":
            raise AgentFault(str(msg.meta.get("error", "failed")))
        if msg.type != "actions" or "actions" not in msg.arrays:
            raise AgentFault(f"answered {msg.type!r} instead of actions")
        return msg.arrays["actions"]

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        self.send(obs, mask)
        return self.wait()

    def on_match_start(self, slots: np.ndarray) -> None:
        if self.fault is None and "on_match_start" in self.hooks:
            self._send(Message("match_start", arrays={"slots": slots.astype(np.int64)}), wait=False)

    def on_match_end(self, slots: np.ndarray, outcomes: np.ndarray) -> None:
        if self.fault is None and "on_match_end" in self.hooks:
            self._send(Message("match_end", arrays={"slots": slots.astype(np.int64),
                                                    "outcomes": outcomes.astype(np.int8)}), wait=False)

    def _kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def close(self) -> None:
        if self.proc.poll() is None and self.fault is None:
            try:
                self._send(Message("bye"), wait=False)
                self.proc.wait(timeout=2)
            except (subprocess.TimeoutExpired, zmq.ZMQError):
                pass
        self._kill()
        self._sock.close(0)
        shutil.rmtree(self._dir, ignore_errors=True)
