"""server.cli: the ``arena`` command line, argument parsing and wiring only (one module per command family).

In: the user's command line. Out: calls into ``server.play`` (run, serve, launch, worker), ``server.learn``
(train, learner), ``server.spectator`` (watch, replay) and ``server.bench``; results on stdout, one line on
stderr and exit status 2 for a usage mistake. Nothing here is logic a test would want to call.

    arena list                                       arenas and agents on offer
    arena run ARENA --matches N --agents A,B         play N matches headless, print the results
    arena bench                                      engine throughput beside PettingZoo's own games
"""
from __future__ import annotations

import os
import sys
from typing import Sequence

from .common import EXIT_USAGE, Parser, UsageError

# numba's OpenMP threads spin for a while after each parallel kernel before they sleep. On a machine
# with few cores that spinning starves our other processes (isolated agents, policy workers) for
# hundreds of microseconds per step; a short spin keeps kernel-to-kernel hand-offs hot without it
# (measured with bench/isolation.py: isolated agents 44-49% -> 75% of in-process, in-process unchanged).
# Must be set before numba loads its threading layer; a value the user set wins.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")
# Likewise torch's OpenMP threads between operators. The game server and a policy worker on one host take
# turns on the same cores; threads that sleep at once when idle leave the core to the other process
# (arena launch on 2 cores: connect4 with a neural policy 0.50 -> 0.56 M agent-steps/s, battle 8.7 -> 9.4 M;
# arena run unchanged within noise).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def build_parser() -> Parser:
    from . import bench, league, play, serve, spectator, train

    p = Parser(prog="arena", description="Numba-vectorised multi-agent game simulation.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    play.add_parsers(sub)
    serve.add_parsers(sub)
    spectator.add_parsers(sub)
    train.add_parsers(sub)
    league.add_parsers(sub)
    bench.add_parsers(sub)
    return p


def _commands() -> dict:
    from . import bench, league, play, serve, spectator, train

    return {"league": league.cmd_league, "list": play.cmd_list, "run": play.cmd_run, "bench": bench.cmd_bench,
            "init-policy": play.cmd_init_policy, "serve": serve.cmd_serve, "launch": serve.cmd_launch,
            "worker": serve.cmd_worker, "keys": serve.cmd_keys, "watch": spectator.cmd_watch,
            "replay": spectator.cmd_replay, "train": train.cmd_train, "learner": train.cmd_learner}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return EXIT_USAGE
        from server.net.proc import command_start
        from server.net.ray_backend import RayBackendError
        command_start()   # temp folders of dead arena processes go; SIGTERM runs our cleanup
        try:
            return _commands()[args.command](args)
        except RayBackendError as exc:
            raise UsageError(f"arena {args.command}: {exc}") from None
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
