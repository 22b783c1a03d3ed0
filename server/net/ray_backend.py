"""``--backend ray``: a run's policy workers and learners as Ray actors, placed by Ray, restarted by Ray.

Ray does what it is good at: it places each process on a node with the CPUs and GPUs asked for (one
placement group per run, so a restarted actor comes back in its bundle, on the same node, and its
endpoints stay valid), and restarts an actor whose process dies (``max_restarts``). Our own wire carries
everything else: the actors exchange only endpoints and a few files through Ray; observations, actions,
segments, parameters and gossip go over ZeroMQ as in a local run (tcp between nodes, with CURVE keys that
this launcher makes and hands to the actors; shared memory where a policy worker shares a host with the
game server).

Each actor (``_Host``) runs one ``python -m server.cli ...`` process as its child, exactly the command a
local run starts, and waits for it. The child dies with the actor (``server.net.child``); a child that
dies on its own takes the actor down with it, so Ray restarts both and re-runs the command (a learner's
with ``--resume`` once it has a checkpoint, a worker's unchanged: it says hello again). A child stopped by
the launcher (``stop``) is not restarted.

The game server stays in the ``arena`` process itself (the run's driver: the matchmaker, the live table
and the run's files are there); it binds tcp on its node's address.

Ray is imported only here, and only when ``--backend ray`` is asked for (``pip install -e '.[ray]'``).
"""
from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time

from .cluster import Backend, substitute, write_files
from .endpoints import is_loopback
from .proc import child_cmd, child_env, make_run_dir

#: seconds to wait for the cluster to place every process before giving up with one line
PLACE_TIMEOUT_S = 120.0


class RayBackendError(Exception):
    """Ray missing, the cluster unreachable, or too small for the run: one line for the user."""


def import_ray():
    try:
        import ray
    except ImportError:
        raise RayBackendError("--backend ray needs Ray: pip install -e '.[ray]' (or pip install 'ray>=2.40')") from None
    return ray


def _tcp(ip: str, port: int) -> str:
    """A tcp endpoint (IPv6 addresses in brackets)."""
    return f"tcp://[{ip}]:{port}" if ":" in ip else f"tcp://{ip}:{port}"


def _free_ports(ip: str, n: int) -> list[int]:
    """``n`` free tcp ports on the address ``ip`` of this host (for a process to bind next)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET)
            s.bind((ip, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class _Host:
    """One process of the run, on whichever node Ray placed this actor (wrapped by ``ray.remote``)."""

    def __init__(self, name: str):
        self.name = name
        self.proc: subprocess.Popen | None = None
        self.stopping = False
        self.dir = make_run_dir(f"ray-{name}")

    def where(self) -> dict:
        import ray

        return {"node": ray.get_runtime_context().get_node_id(), "ip": ray.util.get_node_ip_address(),
                "host": socket.gethostname(), "pid": os.getpid(),
                "child": self.proc.pid if self.proc is not None and self.proc.poll() is None else None}

    def ports(self, n: int) -> list[int]:
        """``n`` free tcp ports on this node's address (for the child to bind)."""
        import ray

        return _free_ports(ray.util.get_node_ip_address(), n)

    def run(self, cmd: list[str], files: dict | None, restart_cmd: list[str] | None, restart_if: str | None) -> int:
        """Run the command until it exits; its exit code. A child that dies on its own takes this actor down
        (``os._exit``): Ray restarts the actor and runs this again, with ``restart_cmd`` when the file
        ``restart_if`` exists by then (a learner's checkpoint pointer)."""
        write_files(self.dir, files)
        if restart_cmd is not None and restart_if and os.path.exists(restart_if):
            cmd = restart_cmd
        self.stopping = False
        self.proc = subprocess.Popen(child_cmd(substitute(cmd, self.dir)), env=child_env(), stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        rc = self.proc.wait()
        if rc != 0 and not self.stopping:
            print(f"arena: {self.name} exited with code {rc}; Ray restarts it", file=sys.stderr, flush=True)
            os._exit(1)
        return rc

    def stop(self, timeout: float) -> int | None:
        """SIGTERM the child (its process group), SIGKILL after ``timeout`` seconds; its exit code."""
        self.stopping = True
        p = self.proc
        if p is None:
            return None
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            if p.poll() is not None:
                break
            try:
                os.killpg(p.pid, sig)
            except (ProcessLookupError, PermissionError):
                p.send_signal(sig)
            try:
                p.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                pass
        return p.poll()


    def close(self) -> None:
        """Remove this actor's private folder (the actor is killed next; its exit handlers would not run)."""
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)


class RayProcs:
    """A run's policy workers and learners as Ray actors (see the module docstring); the same methods as
    ``server.net.cluster.LocalProcs``."""

    kind = "ray"

    def __init__(self, backend: Backend, tag: str = "run", say=print, keys: str | None = None):
        self.backend, self.say = backend, say
        self.ray = None
        self.actors: dict = {}
        self.where: dict[str, dict] = {}
        self.refs: dict = {}
        self.done: dict[str, int] = {}
        self.pg = None
        self.keys_dir: str | None = None
        self.files: dict[str, bytes] = {}
        self.dir = make_run_dir(tag)
        self.server_ip = "127.0.0.1"
        self.place_seconds = 0.0
        if keys:
            self._ship_keys(keys)

    # -- the cluster -------------------------------------------------------------------------------
    def _connect(self, cpus: float) -> None:
        address = self.backend.address or os.environ.get("RAY_ADDRESS")
        if not address:
            # a new local instance, for this run only: loopback addresses (nothing listens on the network),
            # sized to the run (Ray's CPUs are a scheduling count; the processes share the real cores)
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            if "ray" in sys.modules:
                self.say("ray: (Ray was imported before this run chose loopback; it may use this host's address)")
        ray = import_ray()
        self.ray = ray
        kwargs = dict(logging_level="WARNING", log_to_driver=True, configure_logging=True)
        try:
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=max(os.cpu_count() or 1, int(-(-cpus // 1))), include_dashboard=False, **kwargs)
        except Exception as exc:
            raise RayBackendError(f"cannot start or reach Ray at {address or 'a new local instance'}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        self.server_ip = ray.util.get_node_ip_address()

    def place(self, roles: dict[str, str]) -> None:
        """Create one actor per process (``roles``: name -> ``worker`` or ``learner``) in one placement
        group, and wait until Ray has placed them all (one line and ``RayBackendError`` if it cannot)."""
        b = self.backend
        t0 = time.monotonic()
        need = {r: (b.worker_cpus, b.worker_gpus) if r == "worker" else (b.learner_cpus, b.learner_gpus)
                for r in set(roles.values())}
        if self.ray is None:
            self._connect(sum(need[r][0] for r in roles.values()))
        ray = self.ray
        from ray.util.placement_group import placement_group     # after _connect: it sets Ray's environment
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        # policy workers go where the GPUs are: one each, or an equal share when there are fewer GPUs
        workers = sum(1 for r in roles.values() if r == "worker")
        share = math.floor(min(1.0, ray.cluster_resources().get("GPU", 0) / max(workers, 1)) * 1e4) / 1e4
        bundles, names = [], list(roles)
        for n in names:
            cpus, gpus = need[roles[n]]
            if gpus is None:
                gpus = share
            bundles.append({"CPU": float(cpus), **({"GPU": float(gpus)} if gpus else {})})
        total = ray.cluster_resources()
        for res in ("CPU", "GPU"):
            want = sum(x.get(res, 0) for x in bundles)
            if want > total.get(res, 0) + 1e-9:
                raise RayBackendError(
                    f"the run needs {want:g} {res}s for {len(bundles)} processes (--worker-{res.lower()}s, "
                    f"--learner-{res.lower()}s) and the Ray cluster has {total.get(res, 0):g}")
        self.pg = placement_group(bundles, strategy="SPREAD" if b.spread else "PACK")
        try:
            ray.get(self.pg.ready(), timeout=PLACE_TIMEOUT_S)
        except Exception:
            raise RayBackendError(
                f"Ray could not place {len(bundles)} processes ({sum(x['CPU'] for x in bundles):g} CPUs, "
                f"{sum(x.get('GPU', 0) for x in bundles):g} GPUs) within {PLACE_TIMEOUT_S:.0f} s; the cluster has "
                f"{total.get('CPU', 0):g} CPUs, {total.get('GPU', 0):g} GPUs (lower --worker-cpus/--learner-cpus or "
                f"add nodes)") from None
        Host = ray.remote(_Host)
        for i, n in enumerate(names):
            cpus = bundles[i]["CPU"]
            self.actors[n] = Host.options(
                name=None, num_cpus=cpus, num_gpus=bundles[i].get("GPU", 0), max_restarts=b.max_restarts,
                max_task_retries=-1, max_concurrency=4,
                scheduling_strategy=PlacementGroupSchedulingStrategy(self.pg, placement_group_bundle_index=i),
            ).remote(n)
        where = ray.get([self.actors[n].where.remote() for n in names], timeout=PLACE_TIMEOUT_S)
        self.where = dict(zip(names, where))
        ips = {w["ip"] for w in where} | {self.server_ip}
        if self.keys_dir is None and any(not is_loopback(_tcp(ip, 1)) for ip in ips):
            self._make_keys()
        self.place_seconds = time.monotonic() - t0
        nodes = sorted({w["node"] for w in where})
        self.say(f"ray: {len(names)} actors on {len(nodes)} node(s) in {self.place_seconds:.1f} s: " + ", ".join(
            f"{n}@{w['ip']}({w['node'][:8]}) pid {w['pid']}" for n, w in self.where.items())
            + ("; CURVE keys on every endpoint" if self.keys_dir else ""))

    def _make_keys(self) -> None:
        from .endpoints import make_keys

        make_keys(os.path.join(self.dir, "keys"))
        self._ship_keys(os.path.join(self.dir, "keys"))

    def _ship_keys(self, folder: str) -> None:
        """Use the CURVE keys in ``folder`` on every endpoint, and hand them to every actor."""
        self.keys_dir = folder
        for root, _, files in os.walk(self.keys_dir):
            for f in files:
                path = os.path.join(root, f)
                with open(path, "rb") as fh:
                    self.files[os.path.join("keys", os.path.relpath(path, self.keys_dir))] = fh.read()

    def keys_flag(self) -> list[str]:
        return ["--keys", "{dir}/keys"] if self.keys_dir else []

    def endpoint(self, name: str, kind: str) -> str:
        ip = self.where[name]["ip"]
        return _tcp(ip, self.ray.get(self.actors[name].ports.remote(1))[0])

    def server_endpoint(self, kind: str) -> str:
        return _tcp(self.server_ip, _free_ports(self.server_ip, 1)[0])

    def nodes(self) -> dict[str, str]:
        """Each process's Ray node id."""
        return {n: w["node"] for n, w in self.where.items()}

    # -- the processes -----------------------------------------------------------------------------
    def start(self, name: str, cmd: list[str], files: dict | None = None, restart=None) -> None:
        """Run ``cmd`` in ``name``'s actor; ``restart``: ``(cmd, path)``, the command a restarted actor runs
        instead once ``path`` exists."""
        restart_cmd, restart_if = restart if restart else (None, None)
        self.done.pop(name, None)
        self.refs[name] = self.actors[name].run.remote(cmd, {**self.files, **(files or {})}, restart_cmd, restart_if)

    def exited(self) -> list[tuple[str, int]]:
        running = {ref: n for n, ref in self.refs.items() if n not in self.done}
        if running:
            ready, _ = self.ray.wait(list(running), num_returns=len(running), timeout=0)
            for ref in ready:
                self.done[running[ref]] = self._result(ref)
        return list(self.done.items())

    def _result(self, ref) -> int:
        try:
            return int(self.ray.get(ref))
        except Exception:      # the actor is gone for good (restarts used up) or was killed
            return -1

    def forget(self, name: str) -> None:
        self.refs.pop(name, None)
        self.done.pop(name, None)

    def stop_one(self, name: str, timeout: float = 30.0) -> None:
        ref = self.refs.pop(name, None)
        self.done.pop(name, None)
        if name in self.actors:
            try:
                self.ray.get(self.actors[name].stop.remote(timeout), timeout=timeout + 15)
                if ref is not None:
                    self.ray.get(ref, timeout=15)
            except Exception:
                pass

    def restarts(self) -> dict[str, int]:
        """How many times Ray restarted each process's actor (from Ray's actor table)."""
        out = {}
        try:
            from ray._private import state
        except ImportError:
            return out
        for n, a in self.actors.items():
            try:
                out[n] = int(state.actors(actor_id=a._actor_id.hex())["NumRestarts"])
            except Exception:
                pass
        return out

    def stop(self, timeout: float = 120.0) -> None:
        if self.ray is None:
            return
        refs = {n: a.stop.remote(timeout) for n, a in self.actors.items()}
        try:
            self.ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout + 15)
        except Exception:
            pass
        for ref in list(self.refs.values()):
            try:
                self.ray.get(ref, timeout=5)
            except Exception:
                pass

    def close(self) -> None:
        import shutil

        if self.ray is not None:
            try:
                self.ray.get([a.close.remote() for a in self.actors.values()], timeout=15)
            except Exception:
                pass
            for a in self.actors.values():
                try:
                    self.ray.kill(a, no_restart=True)
                except Exception:
                    pass
            if self.pg is not None:
                try:
                    from ray.util.placement_group import remove_placement_group

                    remove_placement_group(self.pg)
                except Exception:
                    pass
            self.ray.shutdown()
        shutil.rmtree(self.dir, ignore_errors=True)
