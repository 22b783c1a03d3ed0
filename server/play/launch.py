"""``arena launch``'s processes: endpoints in a temporary folder (or on loopback tcp) and the policy workers."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from server.net.proc import child_cmd, child_env, make_run_dir

#: seconds ``close`` gives workers to leave after the server's bye, then again after SIGTERM
EXIT_WAIT_S = 1.0


class WorkerPool:
    """Endpoints for one game server and ``workers`` policy worker processes that connect to it.

    ``start()`` once the server is bound; ``close()`` waits for the workers (they exit when the server
    says bye), stops the ones that do not, and removes the temporary folder. The workers die with this
    process (``server.net.child``), whatever kills it."""

    def __init__(self, workers: int, transport: str = "ipc", agent_args: list[str] | None = None,
                 worker_flags: list[str] | None = None, backend=None, say=print):
        #: more flags for every worker (``--precision``, ``--device``, ...)
        self.worker_flags = list(worker_flags or [])
        self.workers, self.agent_args = int(workers), list(agent_args or [])
        self.tmp = make_run_dir("launch")
        #: ``--backend ray``: the workers are Ray actors (``server.net.ray_backend``), the server binds tcp
        self.ray = None
        self.keys_dir = None
        self.restarts: dict[str, int] = {}
        self.start_s = None      # Ray's start-up and placement, seconds
        if backend is not None and backend.kind != "local":
            from server.net.cluster import make_procs

            self.ray = make_procs(backend, "launch", say)
            self.ray.place({f"w{i}": "worker" for i in range(self.workers)})
            self.start_s = round(self.ray.place_seconds, 2)
            self.bind, self.stats_bind = self.ray.server_endpoint("server"), self.ray.server_endpoint("stats")
            self.keys_dir = self.ray.keys_dir
        elif transport != "tcp":     # ipc, shm and auto: the control messages go over ipc
            self.bind, self.stats_bind = f"ipc://{self.tmp}/server", f"ipc://{self.tmp}/stats"
        else:
            with socket.socket() as s1, socket.socket() as s2:
                s1.bind(("127.0.0.1", 0))
                s2.bind(("127.0.0.1", 0))
                port, port2 = s1.getsockname()[1], s2.getsockname()[1]
            self.bind, self.stats_bind = f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{port2}"
        self.procs: list[subprocess.Popen] = []

    def start(self, server=None) -> None:
        """Start the workers for ``server`` (a bound ``GameServer``): they serve the agents it plays, named
        on their command line as a worker requires (file agents run isolated there too)."""
        env = child_env()
        extra = []
        if server is not None:
            extra += ["--agents", ",".join(server.agent_names)]
            if ":" in server.arena:   # a custom arena: a worker builds only those named on its command line
                extra += ["--arena", server.arena]
        for a in self.agent_args:
            extra += ["--agent-arg", a]
        extra += self.worker_flags
        for i in range(self.workers):
            cmd = [sys.executable, "-m", "server.cli", "worker", "--connect", self.bind, "--exit-when-done",
                   "--quiet", *extra]
            if self.ray is not None:
                self.ray.start(f"w{i}", cmd + self.ray.keys_flag())
                continue
            self.procs.append(subprocess.Popen(child_cmd(cmd), env=env, stdin=subprocess.DEVNULL,
                                               start_new_session=True))  # Ctrl-C reaches us; we stop them

    def _wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        for p in self.procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass

    def close(self) -> None:
        if self.ray is not None:     # workers leave after the server's bye; stop any that do not
            deadline = time.monotonic() + EXIT_WAIT_S * 5
            while time.monotonic() < deadline and len(self.ray.exited()) < self.workers:
                time.sleep(0.05)
            self.ray.stop(timeout=EXIT_WAIT_S)
            self.restarts = self.ray.restarts()
            self.ray.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        self._wait(EXIT_WAIT_S)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            alive = [p for p in self.procs if p.poll() is None]
            if not alive:
                break
            for p in alive:   # its process group (isolated agents it started die with it: PDEATHSIG)
                try:
                    os.killpg(p.pid, sig)
                except (ProcessLookupError, PermissionError):
                    p.send_signal(sig)
            self._wait(EXIT_WAIT_S if sig == signal.SIGTERM else 5.0)
        shutil.rmtree(self.tmp, ignore_errors=True)
