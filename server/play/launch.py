"""``arena launch``'s processes: endpoints in a temporary folder (or on loopback tcp) and the policy workers."""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile

from server.net.proc import child_env


class WorkerPool:
    """Endpoints for one game server and ``workers`` policy worker processes that connect to it.

    ``start()`` once the server is bound; ``close()`` waits for the workers (they exit when the server
    says bye), stops the ones that do not, and removes the temporary folder."""

    def __init__(self, workers: int, transport: str = "ipc", agent_args: list[str] | None = None):
        self.workers, self.agent_args = int(workers), list(agent_args or [])
        self.tmp = tempfile.mkdtemp(prefix="arena-launch-")
        if transport == "ipc":
            self.bind, self.stats_bind = f"ipc://{self.tmp}/server", f"ipc://{self.tmp}/stats"
        else:
            with socket.socket() as s1, socket.socket() as s2:
                s1.bind(("127.0.0.1", 0))
                s2.bind(("127.0.0.1", 0))
                port, port2 = s1.getsockname()[1], s2.getsockname()[1]
            self.bind, self.stats_bind = f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{port2}"
        self.procs: list[subprocess.Popen] = []

    def start(self, server=None) -> None:
        env = child_env()
        for _ in range(self.workers):
            cmd = [sys.executable, "-m", "server.cli", "worker", "--connect", self.bind, "--exit-when-done", "--quiet"]
            for a in self.agent_args:
                cmd += ["--agent-arg", a]
            self.procs.append(subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                               start_new_session=True))  # Ctrl-C reaches us; we stop them

    def close(self) -> None:
        for p in self.procs:
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)
