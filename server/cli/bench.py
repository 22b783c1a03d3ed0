"""``arena bench``: parsing and wiring (the measurements are ``server.bench``)."""
from __future__ import annotations

import json
import sys

from .common import UsageError, positive, positive_float


def add_parsers(sub) -> None:
    b = sub.add_parser("bench", help="engine throughput beside PettingZoo's own games, same run")
    b.add_argument("--arenas", default="tag,connect4,battle", help="comma-separated (default tag,connect4,battle)")
    b.add_argument("--matches", type=positive, default=4096, help="matches per batch (default 4096)")
    b.add_argument("--seconds", type=float, default=2.0, help="seconds per measurement (default 2)")
    b.add_argument("--json", action="store_true", help="print the figures as one JSON object on the last line")
    b.add_argument("--distributed", action="store_true",
                   help="instead: arena run against arena launch (battle, random agents) and the wire codec's cost")
    b.add_argument("--workers", type=positive, default=1, help="workers for --distributed (default 1)")
    b.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="--distributed: ray also runs arena launch --backend ray beside the local launcher")
    b.add_argument("--address", metavar="ADDR", help="--backend ray: the Ray cluster (default: a new local instance per run)")
    b.add_argument("--train", action="store_true",
                   help="arena train beside arena launch with the same policy and no learning, per arena")
    b.add_argument("--league", action="store_true",
                   help="arena league beside arena train on --arenas (default connect4), --minutes each: agent-steps/s "
                        "and the league's matchmaking and rating cost")
    b.add_argument("--learners", type=positive, default=2, help="learners for --train (default 2)")
    b.add_argument("--minutes", type=positive_float, default=2.0, help="training minutes per arena for --train (default 2)")
    b.add_argument("--steps", type=positive, default=600,
                   help="batched steps for --distributed (default 600: a few seconds a run, so the first steps' "
                        "warm-up does not weigh on the figure)")
    b.add_argument("--policy", metavar="ARENA",
                   help="instead: how fast a policy decides per precision (fp32, bf16, int8), mode (eager, "
                        "compile) and batch size, and each compression's score against its fp32 original")
    b.add_argument("--ckpt", metavar="PATH",
                   help="the policy for --policy (ckpt:PATH or PATH; default ckpt:builtin/ARENA, shipped)")
    b.add_argument("--batches", default="1,64,1024,8192,32768",
                   help="batch sizes for --policy (default 1,64,1024,8192,32768)")
    b.add_argument("--games", type=int, default=2000,
                   help="games of each compression against fp32 for --policy (default 2000; 0 skips)")
    b.add_argument("--no-compile", action="store_true", help="--policy: time eager only")
    b.add_argument("--threads", type=positive, default=None,
                   help="--policy: torch CPU threads (default: torch's own, one per core)")


def cmd_bench(args) -> int:
    from server.bench import run_bench

    names = [n.strip() for n in args.arenas.split(",") if n.strip()]
    import arenas

    for n in names:
        if n not in arenas.names():
            raise UsageError(f"arena bench: unknown arena {n!r}; choose from: {', '.join(arenas.names())}")
    if args.policy is not None:
        return _policy_bench(args)
    if args.ckpt is not None:
        raise UsageError("arena bench: --ckpt goes with --policy ARENA")
    if args.league:
        from server.bench import run_league_bench
        chosen = names if args.arenas != "tag,connect4,battle" else ["connect4"]
        figures = run_league_bench(chosen, minutes=args.minutes, out=sys.stdout)
        if args.json:
            print(json.dumps(figures))
        return 0
    if args.train:
        from server.bench import run_train_bench
        figures = run_train_bench(names, learners=args.learners, workers=args.workers, minutes=args.minutes,
                                  out=sys.stdout)
        if args.json:
            print(json.dumps(figures))
        return 0
    if args.distributed:
        from server.bench import run_distributed
        figures = run_distributed(matches=args.matches, steps=args.steps, workers=args.workers, out=sys.stdout,
                                  backend=args.backend, address=args.address)
        if args.json:
            print(json.dumps(figures))
        return 0
    figures = run_bench(names, matches=args.matches, seconds=args.seconds, out=sys.stdout)
    if args.json:
        print(json.dumps(figures))
    return 0


def _policy_bench(args) -> int:
    import arenas
    from server.bench.policy import run_policy_bench

    if args.policy not in arenas.names():
        raise UsageError(f"arena bench --policy: unknown arena {args.policy!r}; choose from: {', '.join(arenas.names())}")
    try:
        batches = [int(b) for b in args.batches.split(",") if b.strip()]
    except ValueError:
        raise UsageError(f"arena bench: --batches must be comma-separated integers, got {args.batches!r}") from None
    if not batches or min(batches) < 1:
        raise UsageError("arena bench: --batches needs positive batch sizes")
    if args.games < 0:
        raise UsageError("arena bench: --games must be 0 or more")
    modes = ("eager",) if args.no_compile else ("eager", "compile")
    try:
        figures = run_policy_bench(args.policy, ckpt=args.ckpt, batches=batches, seconds=args.seconds,
                                   games=args.games, modes=modes, threads=args.threads, out=sys.stdout)
    except (ValueError, KeyError) as exc:   # a bad --ckpt: UnknownAgent is a KeyError
        raise UsageError(f"arena bench --policy: {exc.args[0] if exc.args else exc}") from None
    if args.json:
        print(json.dumps(figures))
    return 0
