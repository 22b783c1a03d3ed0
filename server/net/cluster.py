"""Where a run's policy workers and learners run: child processes here (``local``) or Ray actors (``ray``).

``arena train``, ``arena league`` and ``arena launch`` start their workers and learners through one of
these and never care which:

    procs = make_procs(Backend(...))          # LocalProcs, or server.net.ray_backend.RayProcs
    procs.place({"L0": "learner", "L1": "learner", "w0": "worker"})   # Ray: one placement group
    ep = procs.endpoint("L0", "pub")          # ipc:// here; tcp://NODE_IP:PORT on the actor's node
    procs.start("L0", [sys.executable, "-m", "server.cli", "learner", ..., "--config", "{dir}/config.json"],
                files={"config.json": text}, restart=(cmd_with_resume, ".../checkpoint.json"))
    procs.exited(); procs.stop_one("L0"); procs.stop()

``{dir}`` in a command stands for a private folder on the process's own host, where ``files`` are written
(the run's configuration, the CURVE keys): a process on another node cannot read the launcher's temporary
folder. The data never passes through these objects: observations, actions, segments, parameters and
gossip go over ZeroMQ between the processes, on the endpoints handed out here.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass

from .proc import child_cmd, child_env, make_run_dir

BACKENDS = ("local", "ray")


@dataclass
class Backend:
    """What ``--backend`` and its flags ask for (the Ray fields mean nothing to ``local``)."""
    kind: str = "local"
    address: str | None = None       # a Ray cluster (``auto``, ``HOST:PORT``); None: RAY_ADDRESS or a new local one
    worker_cpus: float = 1.0
    worker_gpus: float | None = None  # None: 1 per policy worker when the cluster has GPUs, else 0
    learner_cpus: float = 1.0
    learner_gpus: float = 0.0
    spread: bool = False             # place the processes on as many nodes as possible (default: pack them)
    max_restarts: int = 5            # per actor: Ray restarts a dead process this many times


def substitute(cmd: list[str], folder: str) -> list[str]:
    """``cmd`` with ``{dir}`` replaced by ``folder`` in every argument."""
    return [str(a).replace("{dir}", folder) for a in cmd]


def write_files(folder: str, files: dict[str, str | bytes] | None) -> None:
    """Write ``files`` (relative path -> content) under ``folder``, private to this user (0600)."""
    for rel, content in (files or {}).items():
        path = os.path.realpath(os.path.join(folder, rel))
        if not path.startswith(os.path.realpath(folder) + os.sep):
            raise ValueError(f"file {rel!r} is outside its folder")
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)


class LocalProcs:
    """The processes of a run as children of this one, each in its own session, stopped together; they
    die with this process (``server.net.child``), whatever kills it."""

    kind = "local"
    keys_dir = None      # every endpoint is ipc in a private folder: no CURVE

    def __init__(self, tag: str = "run"):
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = child_env()
        self.dir = make_run_dir(tag)

    def place(self, roles: dict[str, str]) -> None:
        """Nothing to place: every process runs here."""

    def endpoint(self, name: str, kind: str) -> str:
        return f"ipc://{self.dir}/{name}.{kind}"

    def server_endpoint(self, kind: str) -> str:
        return f"ipc://{self.dir}/{kind}"

    def keys_flag(self) -> list[str]:
        return []

    def start(self, name: str, cmd: list[str], files: dict | None = None, restart=None) -> None:
        write_files(self.dir, files)
        self.procs[name] = subprocess.Popen(child_cmd(substitute(cmd, self.dir)), env=self.env,
                                            stdin=subprocess.DEVNULL, start_new_session=True)

    def exited(self) -> list[tuple[str, int]]:
        return [(n, p.returncode) for n, p in self.procs.items() if p.poll() is not None]

    def forget(self, name: str) -> None:
        self.procs.pop(name, None)

    def stop_one(self, name: str, timeout: float = 30.0) -> None:
        p = self.procs.pop(name, None)
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop(self, timeout: float = 120.0) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.procs.values():
            try:
                p.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def restarts(self) -> dict[str, int]:
        return {}

    def nodes(self) -> dict[str, str]:
        return {}

    def close(self) -> None:
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)


def make_procs(backend: Backend | None, tag: str, say=print, keys: str | None = None):
    """The process placer ``backend`` asks for (Ray is imported only for ``ray``). ``keys``: CURVE keys the
    run's server already uses (``arena league --keys``), which Ray's actors then get instead of new ones."""
    if backend is None or backend.kind == "local":
        return LocalProcs(tag)
    if backend.kind == "ray":
        from .ray_backend import RayProcs

        return RayProcs(backend, tag, say=say, keys=keys)
    raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend.kind!r}")
