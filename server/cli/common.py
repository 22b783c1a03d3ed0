"""What every ``arena`` command shares: the one-line usage error and the argparse value types."""
from __future__ import annotations

import argparse

EXIT_USAGE = 2


class UsageError(Exception):
    """A mistake in what the user asked for: one line on stderr, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, never the whole usage block
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def int_at_least(low: int, what: str):
    """An argparse type: an integer >= ``low``, with a message naming ``what`` was expected."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


positive = int_at_least(1, "a positive integer")
seed = int_at_least(0, "a non-negative integer seed")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_backend_flags(p, learners: bool = True) -> None:
    """``--backend local|ray`` and where Ray places what (``server.net.cluster.Backend``)."""
    g = p.add_argument_group("placement (--backend ray: see 'Running on a cluster' in the README)")
    g.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="local (default): every process on this machine; ray: the policy workers" +
                        (" and learners" if learners else "") + " as Ray actors placed on a Ray cluster "
                        "(pip install -e '.[ray]'); the game server stays in this process")
    g.add_argument("--address", metavar="ADDR",
                   help="the Ray cluster: 'auto' (the one 'ray start' runs on this node) or HOST:PORT (default: "
                        "$RAY_ADDRESS, else a new local Ray instance for this run)")
    g.add_argument("--worker-cpus", type=positive_float, default=1.0, metavar="N", help="CPUs per policy worker (default 1)")
    g.add_argument("--worker-gpus", type=float, metavar="N",
                   help="GPUs per policy worker, may be a fraction (default: 1 each when the cluster has a GPU per "
                        "worker, an equal share of its GPUs when it has fewer, 0 without GPUs)")
    if learners:
        g.add_argument("--learner-cpus", type=positive_float, default=1.0, metavar="N", help="CPUs per learner (default 1)")
        g.add_argument("--learner-gpus", type=float, default=0.0, metavar="N", help="GPUs per learner (default 0)")
    g.add_argument("--spread", action="store_true",
                   help="place the processes on as many nodes as possible (default: pack them on few nodes)")
    g.add_argument("--max-restarts", type=int, default=5, metavar="N",
                   help="times Ray restarts a process that dies (default 5; -1: without end)")


def backend_from(args):
    """The ``Backend`` the flags of ``add_backend_flags`` ask for (None: local)."""
    from server.net.cluster import Backend

    if getattr(args, "backend", "local") != "ray":
        if getattr(args, "address", None):
            raise UsageError("--address is for --backend ray")
        return None
    for flag in ("worker_gpus", "learner_gpus"):
        v = getattr(args, flag, None)
        if v is not None and v < 0:
            raise UsageError(f"--{flag.replace('_', '-')} must be 0 or more")
    return Backend("ray", address=args.address, worker_cpus=args.worker_cpus, worker_gpus=args.worker_gpus,
                   learner_cpus=getattr(args, "learner_cpus", 1.0), learner_gpus=getattr(args, "learner_gpus", 0.0),
                   spread=args.spread, max_restarts=args.max_restarts)
