"""``arena league``: parsing and wiring only (the league itself is ``server.league.run``)."""
from __future__ import annotations

import sys
from pathlib import Path

from .common import UsageError, add_backend_flags, backend_from, int_at_least, positive, positive_float, seed


def add_parsers(sub) -> None:
    lg = sub.add_parser("league", help="self-play league training: main agents, exploiters, snapshots, PFSP, "
                                       "ratings; resumes when DIR holds a league")
    lg.add_argument("arena", nargs="?", help="the arena (not needed with --leaderboard)")
    lg.add_argument("--dir", required=True, help="the league's folder: created, or resumed when it holds league.db")
    lg.add_argument("--minutes", type=positive_float, help="train this long (default 20)")
    lg.add_argument("--main", type=positive, default=1, help="main agents (default 1)")
    lg.add_argument("--exploiters", type=int_at_least(0, "a count"), default=1,
                    help="main exploiters: they play only the main agents (default 1)")
    lg.add_argument("--league-exploiters", type=int_at_least(0, "a count"), default=0,
                    help="league exploiters: they play the whole league (default 0)")
    lg.add_argument("--learners", type=positive, default=1,
                    help="learners per learning member, averaging parameters by gossip among themselves (default 1)")
    lg.add_argument("--workers", type=positive, default=1, help="policy worker processes (default 1)")
    lg.add_argument("--opponents", default="random,greedy",
                    help="fixed members, comma-separated (here a list, not arena train's weighted mix): built-in "
                         "agents, module:attr, path/to/file.py:Class, ckpt:PATH (default random,greedy)")
    lg.add_argument("--agent-arg", action="append", default=[], metavar="NAME.KEY=VALUE",
                    help="an option of a fixed member, e.g. search.depth=2")
    lg.add_argument("--pfsp", choices=["hard", "variance", "linear"], default="hard",
                    help="PFSP weighting of an opponent by the learner's win rate x: hard (1-x)^2 (default), "
                         "variance x(1-x), linear 1-x")
    lg.add_argument("--snapshot-steps", type=positive, metavar="N",
                    help="a learning member is frozen after N of its agent-steps if it beats every current "
                         "opponent at 70%%, after 2N regardless (default per arena: a few minutes)")
    lg.add_argument("--max-snapshots", type=positive, metavar="N",
                    help="keep at most N snapshots' files: beyond that the oldest ones every main agent beats "
                         "retire and their files are removed (their matches and ratings stay; default: keep all)")
    lg.add_argument("--init", metavar="CKPT", help="start the main agents from this policy (ckpt:PATH)")
    lg.add_argument("--seed", type=seed, default=0)
    lg.add_argument("--eval-games", type=int_at_least(0, "a count"), default=1000,
                    help="final games of the top main agent against every fixed member and snapshot (default 1000)")
    lg.add_argument("--every", type=positive_float, default=10.0, help="seconds between leaderboard refreshes")
    lg.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    lg.add_argument("--transport", choices=["auto", "shm", "frames"], default="auto")
    lg.add_argument("--groups", type=positive, default=2, help="match groups the server steps in turn (default 2)")
    lg.add_argument("--save-every", type=positive_float, default=60.0, metavar="SECONDS",
                    help="seconds between learners' checkpoints, what a killed league resumes from (default 60)")
    lg.add_argument("--set", action="append", metavar="KEY=VALUE", dest="overrides",
                    help="a TrainConfig field for every learner (num_matches, horizon, batch_segments, ...)")
    lg.add_argument("--bind", metavar="ENDPOINT",
                    help="the game server's endpoint, for remote members: 'arena worker --connect ENDPOINT --agents "
                         "./my_bot.py:MyBot --league-member NAME' joins the running league (default: ipc in a private "
                         "folder; not loopback needs --keys)")
    lg.add_argument("--keys", metavar="DIR", help="CURVE keys ('arena keys DIR') for a --bind beyond loopback")
    add_backend_flags(lg)
    lg.add_argument("--leaderboard", action="store_true", help="print DIR's leaderboard and exit (runs nothing)")
    lg.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", help="arena option")


def cmd_league(args) -> int:
    import arenas
    from simcore.options import parse_options

    from agents.checkpoint import CheckpointError
    from server.league import LeagueError
    from server.league.outputs import show_leaderboard
    from server.league.run import LeaguePlan, run_league

    from .train import _overrides

    folder = Path(args.dir)
    try:
        if args.leaderboard:
            show_leaderboard(folder)
            return 0
        if not args.arena:
            raise UsageError("arena league: name the arena (e.g. arena league connect4 --dir DIR)")
        if args.arena not in arenas.names():
            raise UsageError(f"arena league: unknown arena {args.arena!r}; arenas: {', '.join(arenas.names())}")
        plan = LeaguePlan(arena=args.arena, dir=folder, minutes=args.minutes or 20.0, main=args.main,
                          exploiters=args.exploiters, league_exploiters=args.league_exploiters,
                          learners=args.learners, workers=args.workers,
                          opponents=[o.strip() for o in args.opponents.split(",") if o.strip()],
                          agent_args=args.agent_arg, pfsp=args.pfsp, snapshot_steps=args.snapshot_steps,
                          init=args.init, seed=args.seed, eval_games=args.eval_games, every=args.every,
                          device=args.device, transport=args.transport, groups=args.groups,
                          options=parse_options(args.option), overrides=_overrides(args.overrides),
                          save_every=args.save_every, bind=args.bind, keys=args.keys,
                          max_snapshots=args.max_snapshots, backend=backend_from(args))
        run_league(plan)
    except (LeagueError, CheckpointError, ValueError, TypeError) as exc:
        raise UsageError(f"arena league: {exc}") from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
