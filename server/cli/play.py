"""``arena list / run / init-policy``: parsing and wiring (serve, launch, worker and keys: ``serve``)."""
from __future__ import annotations

import json
import sys
import time

from server.play.setup import SetupError, agent_names, format_table, make_agents, make_game, warm_up

from . import spectator
from .common import UsageError, positive, seed


def play_args(q, isolation: bool = True):
    q.add_argument("arena", help="arena name (see 'arena list')")
    q.add_argument("--matches", type=positive, default=1024, help="matches played at once (default 1024)")
    q.add_argument("--agents", default="greedy,random",
                   help="comma-separated agent names; two agents swap sides every other match, "
                        "more play a round robin (default greedy,random)")
    q.add_argument("--seed", type=seed, default=0, help="seed: same seed, same results (default 0)")
    q.add_argument("--games", type=positive, help="stop after this many finished games")
    q.add_argument("--steps", type=positive, help="stop after this many batched steps")
    q.add_argument("-o", "--option", action="append", metavar="KEY=VALUE",
                   help="arena option, e.g. -o team_size=16 -o map_size=48 (repeatable)")
    q.add_argument("--agent-arg", action="append", metavar="NAME.KEY=VALUE",
                   help="argument for one agent's constructor, e.g. --agent-arg Sniper.depth=3 (repeatable)")
    if isolation:
        q.add_argument("--isolate", action="store_true",
                       help="run every custom agent in a process of its own, with a deadline per call")
        q.add_argument("--trust", action="store_true",
                       help="run file.py agents in this process (they are isolated by default)")
        q.add_argument("--agent-timeout", type=float, default=5.0, metavar="SECONDS",
                       help="deadline per act() call of an isolated agent (default 5)")
        q.add_argument("--agent-memory", type=_size, default="2G", metavar="SIZE",
                       help="address space of an isolated agent's process, e.g. 512M, 4G (default 2G); "
                            "beyond it the agent gets MemoryError")
    q.add_argument("--threads", type=positive, help="numba threads (default: all cores)")
    q.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_parsers(sub) -> None:
    sub.add_parser("list", help="name the arenas and agents on offer")

    r = sub.add_parser("run", help="play thousands of matches headless and print the results")
    play_args(r)
    spectator.add_run_flags(r)

    ip = sub.add_parser("init-policy", help="save a fresh (untrained) neural policy for an arena")
    ip.add_argument("arena")
    ip.add_argument("--arch", choices=["mlp", "conv"], default="mlp")
    ip.add_argument("--hidden", type=positive, default=128)
    ip.add_argument("--seed", type=seed, default=0)
    ip.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", help="arena option")
    ip.add_argument("--out", required=True, help="the checkpoint folder to write (ckpt:OUT loads it)")


def _size(text: str) -> int:
    import argparse

    from server.play.sandbox import parse_size
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _progress(args, label: str):
    """A tqdm bar on stderr (off when not a terminal or with --no-progress) and its total/unit."""
    if args.steps is not None and args.games is None:
        total, unit = args.steps, "steps"
    else:
        total, unit = (args.games or args.matches), "games"
    if args.no_progress:
        return None, unit
    from tqdm import tqdm
    return tqdm(total=total, unit=f" {unit}", desc=label, file=sys.stderr, disable=None,
                dynamic_ncols=True, leave=False), unit


def _report(summary: dict, stat_names, args) -> None:
    print(format_table(summary, stat_names))
    for f in summary["forfeits"]:
        # the number is the one in the table's "forfeits" column (part of its losses); forfeits in games
        # past the stop rule's count are not in the table, and are said apart
        more = f.get("uncounted", 0)
        print(f"forfeit: {f['agent']} lost {f['matches']} counted matches by forfeit in {f['arena']}: {f['reason']}"
              + (f" (and {more} more in games past the count, not in the table)" if more else ""))
    if args.json:
        print(json.dumps(summary))


def _common(args, command: str):
    import numba
    from simcore.options import parse_options

    try:
        options = parse_options(args.option)
        names = agent_names(args.agents)
    except (ValueError, SetupError) as exc:
        raise UsageError(f"arena {command}: {exc}") from None
    if args.threads:
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    return options, names


def _game(arena: str, matches: int, options: dict):
    try:
        return make_game(arena, matches, options)
    except SetupError as exc:
        raise UsageError(f"arena: {exc}") from None


def cmd_run(args) -> int:
    import numba

    from server.play.match import MatchRunner

    options, names = _common(args, "run")
    t0 = time.perf_counter()
    spec, game = _game(args.arena, args.matches, options)
    specs = [n.split("#")[0] for n in names]
    try:
        agents = make_agents(specs, names, game, args.arena, options, seed=args.seed, agent_args=args.agent_arg,
                             trust=args.trust, isolate=args.isolate, timeout=args.agent_timeout,
                             memory=args.agent_memory)
    except SetupError as exc:
        raise UsageError(f"arena: {exc}") from None
    # Compile (or load from numba's cache) the engine's kernels and the agents' on this very game
    # first, so that the timed play is play (compile_seconds reports this part apart).
    warm_up(agents, game, args.seed)
    compile_seconds = time.perf_counter() - t0

    runner = MatchRunner(game, agents, names)
    runner.reset(args.seed)
    from server.spectator.hooks import HookError, attach
    try:
        hooks = attach(args, runner, args.arena)   # --watch / --record
    except HookError as exc:
        runner.close()
        raise UsageError(str(exc)) from None
    bar, unit = _progress(args, f"{args.arena} {args.matches}x")

    def on_step(r: MatchRunner, new_games: int) -> None:
        for hook in hooks:
            hook.on_step(r, new_games)
        if bar is not None:
            bar.update(1 if unit == "steps" else new_games)
            if r.steps % 8 == 0:
                bar.set_postfix_str(f"{r.agent_steps / max(time.perf_counter() - t1, 1e-9) / 1e6:.2f} M agent-steps/s")

    t1 = time.perf_counter()
    try:
        runner.play(games=args.games, steps=args.steps, on_step=on_step)
    except KeyboardInterrupt:
        print("interrupted: summary so far", file=sys.stderr)
    finally:
        seconds = time.perf_counter() - t1   # play only: closing agents (their processes) is not timed
        runner.close()
        for hook in hooks:
            hook.close()
    if bar is not None:
        bar.close()
    summary = runner.summary(args.arena, seconds, seed=args.seed, options=options,
                             compile_seconds=round(compile_seconds, 3), threads=numba.get_num_threads())
    _report(summary, game.stat_names, args)
    return 0


# -- arena list -------------------------------------------------------------------------------------
def cmd_list(args) -> int:
    import agents.registry as agent_registry
    import arenas

    print("arenas:")
    for name in arenas.names():
        try:
            spec = arenas.get(name)
            opts = ", ".join(f"{k}={v}" for k, v in spec.defaults.items())
            print(f"  {name:10s} {spec.description}" + (f"  [options: {opts}]" if opts else ""))
        except Exception as exc:  # a broken plug-in must not hide the others
            print(f"  {name:10s} (cannot be loaded: {exc})")
    print("agents:")
    for name in agent_registry.names():
        print(f"  {name:10s} plays: {', '.join(agent_registry.arenas_of(name)).replace('*', 'any arena')}")
    return 0


def cmd_init_policy(args) -> int:
    from agents.neural import NeuralAgent
    from simcore.options import parse_options

    try:
        options = parse_options(args.option)
    except ValueError as exc:
        raise UsageError(f"arena init-policy: {exc}") from None
    _, game = _game(args.arena, 1, options)
    try:
        agent = NeuralAgent(game, seed=args.seed, arch=args.arch, hidden=args.hidden, device="cpu")
        path = agent.save(args.out)
    except (OSError, ValueError) as exc:
        raise UsageError(f"arena init-policy: {exc}") from None
    print(f"saved an untrained {args.arch} policy for {args.arena} to the checkpoint folder {path}/")
    print(f"use it: arena run {args.arena} --agents ckpt:{path},random")
    return 0
