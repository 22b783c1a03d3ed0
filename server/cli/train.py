"""``arena train`` and ``arena learner``: parsing and wiring (the work is ``server.learn``)."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path


from .common import UsageError, add_backend_flags, backend_from, positive, positive_float as _minutes, seed


def add_parsers(sub) -> None:
    tr = sub.add_parser("train", help="self-play training: a game server, W policy workers, K learners that gossip")
    tr.add_argument("arena", help="arena name (see 'arena list')")
    tr.add_argument("--learners", type=positive, default=2, help="learner processes (default 2)")
    tr.add_argument("--workers", type=positive, default=1, help="policy worker processes (default 1)")
    tr.add_argument("--opponents", metavar="NAME=WEIGHT,...",
                    help="the opponent mix, weighted: self, past (frozen snapshots), random, greedy, e.g. "
                         "self=0.6,greedy=0.1,random=0.1,past=0.2 (default: the arena's preset)")
    tr.add_argument("--groups", type=positive, default=2, help="match groups the server steps in turn (default 2)")
    tr.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                    help="where learners and policy workers run their nets (auto: CUDA when there is one)")
    tr.add_argument("--precision", choices=["fp32", "bf16", "int8"], default="fp32",
                    help="the copy the policy workers act with; learners keep fp32 masters (default fp32)")
    tr.add_argument("--compile", action="store_true", help="the policy workers compile their forward pass")
    tr.add_argument("--transport", choices=["auto", "shm", "frames"], default="auto",
                    help="game server to policy workers: shm (observations and actions in shared memory), frames "
                         "(over the socket); auto (default): shm where the host has /dev/shm")
    tr.add_argument("--minutes", type=_minutes, help="train this long (default 10 unless --steps is given)")
    tr.add_argument("--steps", type=positive, help="stop after this many agent-steps in this run, all learners together")
    tr.add_argument("--out", help="run directory (default runs/ARENA)")
    tr.add_argument("--resume", action="store_true", help="go on with the run in --out (weights, optimizer, counters); "
                                                         "a corrupt or mismatched checkpoint is refused (exit 2)")
    tr.add_argument("--seed", type=seed, default=0, help="seed (default 0)")
    tr.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", help="arena option (repeatable)")
    tr.add_argument("--every", type=float, default=10.0, metavar="SECONDS", help="seconds between table rows (default 10)")
    tr.add_argument("--eval-games", type=int, default=1000, help="games against random and greedy at the end "
                                                                 "(default 1000; 0 skips)")
    tr.add_argument("--gossip-every", type=positive, default=1, help="updates between gossip exchanges (default 1)")
    tr.add_argument("--save-every", type=float, default=60.0, metavar="SECONDS",
                    help="seconds between checkpoints (default 60)")
    tr.add_argument("--set", action="append", metavar="KEY=VALUE", dest="overrides",
                    help="a TrainConfig field (num_matches, horizon, batch_segments, hidden, ...) or ppo.FIELD")
    add_backend_flags(tr)

    le = sub.add_parser("learner", help="one learner: takes segments from a game server, publishes versions, "
                                        "gossips (arena train starts these; run by hand across machines)")
    le.add_argument("arena")
    le.add_argument("--name", default="L0", help="this learner's name among its peers (default L0)")
    le.add_argument("--out", required=True, help="checkpoint directory of this learner")
    le.add_argument("--segments", help="PULL endpoint the game server sends this learner's segments to "
                                       "(default: ipc in a temporary directory)")
    le.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                    help="where the update runs (auto: CUDA when there is one)")
    le.add_argument("--bind", default="tcp://127.0.0.1:5600", help="gossip endpoint (default tcp://127.0.0.1:5600)")
    le.add_argument("--peers", default="", help="the other learners: NAME=ENDPOINT,NAME=ENDPOINT")
    le.add_argument("--pub", help="PUB endpoint for parameters and stats (default: ipc in a temporary directory)")
    le.add_argument("--keys", metavar="DIR", help="CURVE keys ('arena keys DIR'), required off loopback")
    le.add_argument("--config", help="TrainConfig JSON (default: the arena's preset)")
    le.add_argument("--seed", type=seed, default=100, help="this learner's seed (its workers derive theirs)")
    le.add_argument("--minutes", type=_minutes, help="stop after this long (default: until SIGTERM / Ctrl-C)")
    le.add_argument("--resume", action="store_true", help="start from the checkpoint in --out")
    le.add_argument("--init", metavar="CKPT", help="start from the weights of this policy checkpoint (ckpt:PATH)")
    le.add_argument("--version-start", type=int, default=0, metavar="V",
                    help="the first version a fresh learner publishes (a league exploiter restarted from its initial "
                         "weights goes on above the versions it published before)")
    le.add_argument("--gossip-every", type=positive, default=1)
    le.add_argument("--gossip-timeout", type=float, default=5.0)
    le.add_argument("--save-every", type=float, default=60.0)
    le.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    le.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", help="arena option")


def _overrides(items: list[str] | None) -> dict:
    from simcore.options import parse_value

    out: dict = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        if key.startswith("ppo."):
            out.setdefault("ppo", {})[key[4:]] = parse_value(value)
        else:
            out[key] = parse_value(value)
    return out


def _mix(text: str) -> dict:
    """``--opponents self=0.6,greedy=0.1,...`` as weights (a name alone weighs 1)."""
    out = {}
    for part in text.split(","):
        name, eq, w = part.strip().partition("=")
        if not name:
            raise ValueError(f"--opponents {text!r}: expected NAME=WEIGHT,...")
        try:
            out[name] = float(w) if eq else 1.0
        except ValueError:
            raise ValueError(f"--opponents: weight of {name!r} is not a number: {w!r}") from None
        if not out[name] >= 0:
            raise ValueError(f"--opponents: weight of {name!r} must be non-negative")
    if not sum(out.values()) > 0:
        raise ValueError("--opponents: the weights must add up to more than 0")
    bad = [k for k in out if k not in ("self", "past", "random", "greedy")]
    if bad:
        raise ValueError(f"--opponents: unknown {', '.join(bad)}; choose from self, past, random, greedy")
    return out


def cmd_train(args) -> int:
    import arenas
    from simcore.options import parse_options

    from agents.checkpoint import CheckpointError
    from server.learn.config import TrainConfig, preset
    from server.learn.learner import TrainError
    from server.learn.run import TrainPlan, run_training

    if args.arena not in arenas.names():
        raise UsageError(f"arena train: unknown arena {args.arena!r}; arenas: {', '.join(arenas.names())}")
    try:
        options = parse_options(args.option)
        overrides = _overrides(args.overrides)
        known = set(TrainConfig.__dataclass_fields__) - {"arena", "options", "seed", "net_seed"}
        bad = [k for k in overrides if k not in known]
        if bad:
            raise ValueError(f"--set: unknown field(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
        if args.opponents:
            overrides["opponents"] = _mix(args.opponents)
        preset(args.arena, **overrides)        # refuses unknown ppo fields now, not in a child process
    except (ValueError, TypeError) as exc:
        raise UsageError(f"arena train: {exc}") from None
    minutes = args.minutes if args.minutes or args.steps else 10.0
    plan = TrainPlan(arena=args.arena, out=Path(args.out or f"runs/{args.arena}"), learners=args.learners,
                     workers=args.workers, minutes=minutes, steps=args.steps, seed=args.seed, resume=args.resume,
                     options=options, every=args.every, eval_games=args.eval_games,
                     gossip_every=args.gossip_every, save_every=args.save_every, overrides=overrides,
                     groups=args.groups, device=args.device, precision=args.precision, compile=args.compile,
                     transport=args.transport, backend=backend_from(args))
    try:
        run_training(plan)
    except CheckpointError as exc:     # corrupt, truncated, absurd or a mismatched set: one line, exit 2
        raise UsageError(f"arena train: {exc}") from None
    except TrainError as exc:
        print(f"arena train: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_learner(args) -> int:
    import torch

    from simcore.options import parse_options

    from agents.checkpoint import CheckpointError
    from server.learn.config import config_from_dict, preset
    from server.learn.learner import Learner, TrainError
    from server.net.endpoints import EndpointError, is_loopback
    from server.net.proc import stop_flag

    import arenas

    if args.arena not in arenas.names():
        raise UsageError(f"arena learner: unknown arena {args.arena!r}; arenas: {', '.join(arenas.names())}")
    try:
        peers = dict(p.split("=", 1) for p in args.peers.split(",") if p) if args.peers else {}
    except ValueError:
        raise UsageError(f"arena learner: --peers {args.peers!r}: expected NAME=ENDPOINT,...") from None
    try:
        for ep in [args.bind, *peers.values()]:
            if not is_loopback(ep) and not args.keys:
                raise UsageError(f"arena learner: {ep} is not loopback: give --keys DIR (arena keys DIR)")
    except EndpointError as exc:
        raise UsageError(f"arena learner: {exc}") from None
    try:
        if args.config:
            cfg = config_from_dict(json.loads(Path(args.config).read_text()))
        else:
            cfg = preset(args.arena, options=parse_options(args.option), net_seed=0)
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"arena learner: cannot read the configuration: {exc}") from None
    if cfg.arena != args.arena:
        raise UsageError(f"arena learner: config is for {cfg.arena!r}, not {args.arena!r}")
    cfg = replace(cfg, seed=args.seed)
    torch.set_num_threads(1)
    stop = stop_flag()
    try:
        learner = Learner(cfg, args.name, args.out, gossip_bind=args.bind, peers=peers,
                          pub_bind=args.pub, segments_bind=args.segments, device=args.device, gossip_every=args.gossip_every, gossip_timeout=args.gossip_timeout,
                          save_every=args.save_every, resume=args.resume, keys_dir=args.keys,
                          exit_with_parent=args.exit_with_parent, init=args.init, version_start=args.version_start)
    except CheckpointError as exc:     # --resume from a corrupt, truncated, absurd or mismatched checkpoint
        raise UsageError(f"arena learner: --resume: {exc}") from None
    except (TrainError, EndpointError, FileNotFoundError, ValueError) as exc:
        print(f"arena learner: {exc}", file=sys.stderr)
        return 1
    try:
        learner.run(seconds=args.minutes * 60 if args.minutes else None, stop=stop)
    except TrainError as exc:
        print(f"arena learner: {exc}", file=sys.stderr)
        return 1
    finally:
        learner.close()
    return 0
