"""Running an untrusted agent in a confined process of its own, with a deadline on every call.

``IsolatedAgent`` looks like any agent to the match runner, but its ``act`` is split in two so the
runner can ask it first and play the in-process agents while it thinks: ``send(obs, mask)`` then
``wait()``. The child (``server.play.agent_host``) confines itself before any agent code runs
(``server.play.sandbox``: no network, no files but its own scratch folder and what Python needs, no
new processes, rlimits); this side adds what needs an outside view:

- its own session and process group, killed as a whole; the kernel kills it if we die;
- a minimal environment (no secrets of ours: HOME and TMPDIR are its scratch folder);
- its stdout and stderr into ``agent.log`` in its run folder, capped at ``LOG_CAP`` bytes, never our
  terminal (so ``arena run --json``'s last line is always ours);
- a deadline per call, and a CPU budget: the CPU time its process used since it was ready, which
  counts its constructor and any background thread, may not exceed the wall time it was given to think
  (loading, and each call from request to answer) by more than ``CPU_GRACE_S``.

They talk over one ZeroMQ PAIR socket on an ipc endpoint in a private run folder (``make_run_dir``),
with ``server.net.protocol`` messages (nothing pickled). A call that does not answer in time, a child
that dies (a segfault, ``os._exit``), a malformed reply or a CPU budget overrun raises ``AgentFault``;
the child is then killed and the agent stays disqualified for the rest of the run. The protections the
OS cannot give are named once on stderr, when the first agent process reports them.
"""
from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import signal
import site
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import zmq

from agents.base import Agent
from agents.check import AgentFault
from agents.registry import UnknownAgent
from server.net.proc import make_run_dir
from server.net.protocol import Message, ProtocolError, decode, encode
from server.net.protocol import MAX_MESSAGE_BYTES

from .sandbox import DEFAULT_MEMORY, Policy, cpu_times

#: seconds a child may take to import and build its agent before it counts as unloadable
LOAD_TIMEOUT = 60.0
#: how often the wait loop looks at whether the child is still alive (a crash is seen this fast)
ALIVE_POLL_S = 0.05
#: the most an agent's log file holds; what it prints beyond is dropped
LOG_CAP = 1 << 20
#: CPU seconds an agent may use beyond the wall time it was given to think (host overhead, hooks, GC);
#: a background thread that burns a core overruns it within about this many seconds
CPU_GRACE_S = 2.0
#: the share of the wall time since loading that an agent's CPU may exceed its think time by, and that
#: threads it starts may use (bookkeeping threads, not computing ones: its budget is one core)
CPU_SHARE = 0.05
#: seconds between two looks at an agent's CPU time (a read of /proc/PID/stat per thread)
CPU_CHECK_S = 0.25
ROOT = Path(__file__).resolve().parents[2]

_named: set[str] = set()          # protections already named on stderr in this process
_live: "weakref.WeakSet[IsolatedAgent]" = weakref.WeakSet()


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _clean(text, limit: int = 500) -> str:
    """Text that came from an agent, safe for a terminal: one line, no control characters, bounded."""
    text = re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", str(text))
    return text if len(text) <= limit else text[:limit] + "..."


def agent_env(scratch: str, pythonpath: list[str]) -> dict:
    """The whole environment of an agent's process: nothing of ours but where Python finds our code."""
    path = [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p] + pythonpath
    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    if user_site and user_site in sys.path:
        path.append(user_site)   # its HOME is not ours: name our user site-packages explicitly
    env = {"PATH": "/usr/bin:/bin", "HOME": scratch, "TMPDIR": scratch, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
           "PYTHONPATH": os.pathsep.join(dict.fromkeys(path)), "PYTHONNOUSERSITE": "1",
           "PYTHONDONTWRITEBYTECODE": "1",
           # one thread per library: the CPU budget is one core, and thread pools cost address space
           "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MALLOC_ARENA_MAX": "2"}
    if "NUMBA_DISABLE_JIT" in os.environ:
        env["NUMBA_DISABLE_JIT"] = os.environ["NUMBA_DISABLE_JIT"]
    return env


def _localise(spec: str) -> tuple[str, list[str], list[str]]:
    """``(spec for the child, folders it may read, folders on its PYTHONPATH)``: a file agent by its
    absolute path (the child runs in its scratch folder) and its folder; a module agent's top package's
    folder when it is not installed (e.g. found in the current folder)."""
    from importlib.util import find_spec

    from agents.loader import kind

    how = kind(spec)
    if how == "file":
        path, _, attr = spec.rpartition(":")
        path = os.path.abspath(path)
        return f"{path}:{attr}", sorted({os.path.dirname(path), os.path.dirname(os.path.realpath(path))}), []
    if how == "module":
        top = spec.partition(":")[0].split(".")[0]
        try:
            found = find_spec(top)
        except (ImportError, ValueError):
            found = None
        if found is not None and found.origin not in (None, "built-in", "frozen"):
            places = list(found.submodule_search_locations or [found.origin])
            folders = sorted({os.path.dirname(os.path.abspath(p)) for p in places})
            return spec, folders, folders
    return spec, [], []


class _Log(threading.Thread):
    """Copies a child's output into a file, up to ``cap`` bytes; reads (and drops) the rest."""

    def __init__(self, pipe, path: str, cap: int):
        super().__init__(daemon=True, name="agent-log")
        self.pipe, self.path, self.cap, self.written = pipe, path, cap, 0

    def run(self) -> None:
        fd = self.pipe.fileno()
        with open(self.path, "wb") as fh:
            while True:
                try:
                    chunk = os.read(fd, 1 << 16)
                except OSError:
                    break
                if not chunk:
                    break
                room = self.cap - self.written
                if room > 0:
                    fh.write(chunk[:room])
                    self.written += min(room, len(chunk))
                    if len(chunk) > room:
                        fh.write(f"\n[arena: output beyond {self.cap} bytes dropped]\n".encode())
                    fh.flush()
        self.pipe.close()

    def last_line(self) -> str:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(max(0, os.path.getsize(self.path) - 4096))
                lines = [ln for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return _clean(lines[-1], 300) if lines else ""


class IsolatedAgent(Agent):
    """A proxy for the agent ``spec`` living in a confined child process (see the module docstring).

    Create it from the thread that will outlive it (the kernel kills the child when the thread that
    started it exits). ``memory`` is the child's address-space limit in bytes."""

    isolated = True

    def __init__(self, spec: str, arena: str, options: dict, seed: int = 0, args: dict | None = None,
                 timeout: float = 5.0, load_timeout: float = LOAD_TIMEOUT, memory: int = DEFAULT_MEMORY):
        super().__init__(None, seed)
        self.name, self.spec, self.timeout = spec, spec, float(timeout)
        self.fault: str | None = None
        self._seq = 0
        self._pending = False            # a request is out that has not been answered
        self._sent_at = 0.0
        self._think = 0.0                # wall seconds it was given to compute (loading + calls)
        self._cpu0: float | None = None  # its CPU time when it became ready (before agent code ran)
        self._threads0: dict[int, float] = {}   # its threads then (ours: main, zmq's I/O) and their CPU time
        self._t_ready = time.perf_counter()
        self._next_cpu_check = 0.0
        self.proc = None
        self._dir = make_run_dir("agent")
        scratch = os.path.join(self._dir, "scratch")
        os.mkdir(scratch, 0o700)
        self.log_path = os.path.join(self._dir, "agent.log")
        self._ctx = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.PAIR)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SNDTIMEO, 2000)  # a child that stopped reading must not block us
        self._sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)  # a bigger frame from the child: disconnected
        endpoint = f"ipc://{self._dir}/agent.sock"
        self._sock.bind(endpoint)
        _live.add(self)
        try:
            host_spec, read, pythonpath = _localise(spec)
        except UnknownAgent:
            self.close()
            raise
        policy = Policy(scratch=scratch, read=read, memory=int(memory))
        cmd = [sys.executable, "-m", "server.play.agent_host", "--endpoint", endpoint, "--spec", host_spec,
               "--arena", arena, "--options", json.dumps(options), "--args", json.dumps(args or {}),
               "--seed", str(seed), "--parent", str(os.getpid()), "--policy", policy.to_json()]
        self.proc = subprocess.Popen(cmd, env=agent_env(scratch, pythonpath), cwd=scratch, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self._log = _Log(self.proc.stdout, self.log_path, LOG_CAP)
        self._log.start()
        deadline = time.perf_counter() + load_timeout
        try:
            msg = self._recv(load_timeout, what="start")
            if msg.type == "hello" and msg.meta.get("stage") == "ready":
                self._ready(msg)
                t_ready = time.perf_counter()
                msg = self._recv(max(deadline - t_ready, 0.001), what="start")
                self._think += time.perf_counter() - t_ready
        except AgentFault as exc:
            tail = self._log.last_line() if self.proc.poll() is not None else ""
            self.close()
            raise UnknownAgent(f"cannot load {spec!r} in its own process: {exc}"
                               + (f"; it printed: {tail}" if tail else "")) from None
        if msg.type == "error":
            self.close()
            raise UnknownAgent(_clean(msg.meta.get("error", "it failed to load")))
        hooks = msg.meta.get("hooks", [])
        self.hooks = set(hooks) if isinstance(hooks, list) else set()   # only these are forwarded
        self._check_cpu(force=True)
        if self.fault is not None:
            msg = self.fault
            self.close()
            raise UnknownAgent(f"cannot load {spec!r}: {msg}")

    def _ready(self, msg: Message) -> None:
        """The child is confined and about to load the agent: what it could not apply, and its CPU times
        (the process's, and each of its threads') from which the agent's are counted."""
        cpu, tids, tid_cpu = (msg.meta.get(k) for k in ("cpu", "tids", "tid_cpu"))
        num = (int, float)
        if isinstance(cpu, num) and isinstance(tids, list) and isinstance(tid_cpu, list):
            self._cpu0 = float(cpu)
            self._threads0 = {t: float(c) for t, c in zip(tids, tid_cpu) if isinstance(t, int) and isinstance(c, num)}
        self._t_ready = time.perf_counter()
        missing = msg.meta.get("missing")
        for item in missing if isinstance(missing, list) else []:
            item = _clean(item, 300)
            if item not in _named:
                _named.add(item)
                print(f"arena: isolated agents run without {item}", file=sys.stderr, flush=True)

    # -- the CPU budget ----------------------------------------------------------------------------
    def _check_cpu(self, force: bool = False) -> None:
        """Disqualify the agent when threads it started compute (beyond a little), or when its process
        used more CPU than the wall time it was given to think."""
        now = time.perf_counter()
        if self._cpu0 is None or (not force and now < self._next_cpu_check):
            return
        self._next_cpu_check = now + CPU_CHECK_S
        got = cpu_times(self.proc.pid)
        if got is None:
            return
        total, threads = got
        pid = self.proc.pid
        host = sum(threads[t] - c for t, c in self._threads0.items() if t != pid and t in threads)  # zmq's I/O
        main = threads.get(pid, 0.0) - self._threads0.get(pid, 0.0)
        used = total - self._cpu0 - host
        background = used - main
        slack = CPU_GRACE_S + CPU_SHARE * (now - self._t_ready)
        if background > slack:
            self.fault = (f"threads it started used {background:.1f} s of CPU (allowed: {CPU_GRACE_S:g} s + "
                          f"{CPU_SHARE:.0%} of the {now - self._t_ready:.1f} s since it loaded); an agent "
                          f"computes inside act(), on the thread that calls it; disqualified for the rest of the run")
        elif used > self._think + slack:
            self.fault = (f"used {used:.1f} s of CPU where it had {self._think:.1f} s to think (+{slack:.1f} s): "
                          f"its constructor or its threads keep computing; disqualified for the rest of the run")
        if self.fault is not None:
            self._kill()

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
                    raise AgentFault(_clean(f"sent a malformed reply: {exc}")) from None
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

    def _disqualify(self, exc: AgentFault) -> AgentFault:
        self.fault = f"{exc}; disqualified for the rest of the run"
        self._kill()
        return AgentFault(self.fault)

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
            raise self._disqualify(exc) from None
        self._pending, self._sent_at = True, time.perf_counter()

    def wait(self) -> np.ndarray:
        if self.fault is not None:
            raise AgentFault(self.fault)
        try:
            msg = self._recv(self.timeout, what="act", seq=self._seq)
        except AgentFault as exc:
            raise self._disqualify(exc) from None
        finally:
            if self._pending:
                self._think += time.perf_counter() - self._sent_at
                self._pending = False
        self._check_cpu()
        if self.fault is not None:
            raise AgentFault(self.fault)
        if msg.type == "error":
            raise AgentFault(_clean(msg.meta.get("error", "failed")))
        if msg.type != "actions" or "actions" not in msg.arrays:
            raise AgentFault(_clean(f"answered {msg.type!r} instead of actions"))
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
        """Kill its process group (the agent and anything it managed to start) and reap it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None and self.fault is None and not self._pending:
            try:   # an idle agent gets to run its own close(); a busy one is killed at once
                self._send(Message("bye"), wait=False)
                self.proc.wait(timeout=1)
            except (subprocess.TimeoutExpired, zmq.ZMQError):
                pass
        self._kill()
        if self.proc is not None:
            self._log.join(timeout=2)
        self._sock.close(0)
        shutil.rmtree(self._dir, ignore_errors=True)
        _live.discard(self)


@atexit.register
def _close_all() -> None:   # an exception or SIGTERM between creating agents and closing them
    for agent in list(_live):
        agent.close()
