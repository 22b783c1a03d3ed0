"""``arena bench``: parsing and wiring (the measurements are ``server.bench``)."""
from __future__ import annotations

import json
import sys

from .common import UsageError, positive, positive_float


def add_parsers(sub) -> None:
    b = sub.add_parser("bench", help="engine throughput beside PettingZoo's own games, same run")
    b.add_argument("--arenas", default="connect4,battle", help="comma-separated (default connect4,battle)")
    b.add_argument("--matches", type=positive, default=4096, help="matches per batch (default 4096)")
    b.add_argument("--seconds", type=float, default=2.0, help="seconds per measurement (default 2)")
    b.add_argument("--json", action="store_true", help="print the figures as one JSON object on the last line")
    b.add_argument("--distributed", action="store_true",
                   help="instead: arena run against arena launch (battle, random agents) and the wire codec's cost")
    b.add_argument("--workers", type=positive, default=1, help="workers for --distributed (default 1)")
    b.add_argument("--train", action="store_true",
                   help="arena train beside arena launch with the same policy and no learning, per arena")
    b.add_argument("--learners", type=positive, default=2, help="learners for --train (default 2)")
    b.add_argument("--minutes", type=positive_float, default=2.0, help="training minutes per arena for --train (default 2)")
    b.add_argument("--steps", type=positive, default=150, help="batched steps for --distributed (default 150)")


def cmd_bench(args) -> int:
    from server.bench import run_bench

    names = [n.strip() for n in args.arenas.split(",") if n.strip()]
    import arenas

    for n in names:
        if n not in arenas.names():
            raise UsageError(f"arena bench: unknown arena {n!r}; choose from: {', '.join(arenas.names())}")
    if args.train:
        from server.bench import run_train_bench
        figures = run_train_bench(names, learners=args.learners, workers=args.workers, minutes=args.minutes,
                                  out=sys.stdout)
        if args.json:
            print(json.dumps(figures))
        return 0
    if args.distributed:
        from server.bench import run_distributed
        figures = run_distributed(matches=args.matches, steps=args.steps, workers=args.workers, out=sys.stdout)
        if args.json:
            print(json.dumps(figures))
        return 0
    figures = run_bench(names, matches=args.matches, seconds=args.seconds, out=sys.stdout)
    if args.json:
        print(json.dumps(figures))
    return 0
