"""The ``arena`` command line.

    arena list                                       arenas and agents on offer
    arena run ARENA --matches N --agents A,B         play N matches headless, print the results
    arena bench                                      engine throughput beside PettingZoo's own games

Every user error (unknown arena or agent, bad flag or option) is one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Sequence

EXIT_USAGE = 2

# numba's OpenMP threads spin for a while after each parallel kernel before they sleep. On a machine
# with few cores that spinning starves our other processes (isolated agents, policy workers) for
# hundreds of microseconds per step; a short spin keeps kernel-to-kernel hand-offs hot without it
# (measured with bench/isolation.py: isolated agents 44-49% -> 75% of in-process, in-process unchanged).
# Must be set before numba loads its threading layer; a value the user set wins.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")


class UsageError(Exception):
    """A mistake in what the user asked for: one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, never the whole usage block
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def _int_at_least(low: int, what: str):
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


_positive = _int_at_least(1, "a positive integer")
_seed = _int_at_least(0, "a non-negative integer seed")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="arena", description="Numba-vectorised multi-agent game simulation.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    sub.add_parser("list", help="name the arenas and agents on offer")

    def play_args(q, isolation: bool = True):
        q.add_argument("arena", help="arena name (see 'arena list')")
        q.add_argument("--matches", type=_positive, default=1024, help="matches played at once (default 1024)")
        q.add_argument("--agents", default="greedy,random",
                       help="comma-separated agent names; two agents swap sides every other match, "
                            "more play a round robin (default greedy,random)")
        q.add_argument("--seed", type=_seed, default=0, help="seed: same seed, same results (default 0)")
        q.add_argument("--games", type=_positive, help="stop after this many finished games")
        q.add_argument("--steps", type=_positive, help="stop after this many batched steps")
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
        q.add_argument("--threads", type=_positive, help="numba threads (default: all cores)")
        q.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")
        q.add_argument("--no-progress", action="store_true", help="no progress bar")

    from server import cli_spectator

    r = sub.add_parser("run", help="play thousands of matches headless and print the results")
    play_args(r)
    cli_spectator.add_run_flags(r)

    sv = sub.add_parser("serve", help="the game server alone: plays matches, workers connect to act")
    play_args(sv, isolation=False)
    sv.add_argument("--bind", default="tcp://127.0.0.1:5555",
                    help="ROUTER endpoint for workers (default tcp://127.0.0.1:5555; not loopback needs --keys)")
    sv.add_argument("--stats-bind", help="PUB endpoint for statistics (default: the --bind port + 1)")
    sv.add_argument("--groups", type=_positive, default=2, help="match groups stepped in turn, to overlap "
                                                                  "stepping with acting (default 2)")
    sv.add_argument("--keys", metavar="DIR", help="CURVE keys made by 'arena keys DIR'")
    cli_spectator.add_server_flags(sv)
    sv.add_argument("--outcomes", metavar="FILE", help="write every counted game and each slot's final "
                                                       "step count to FILE (JSON), to compare runs")

    la = sub.add_parser("launch", help="a game server and N policy workers on this machine")
    play_args(la, isolation=False)
    la.add_argument("--workers", type=_positive, default=1, help="policy worker processes (default 1)")
    la.add_argument("--groups", type=_positive, default=2, help="match groups stepped in turn (default 2)")
    la.add_argument("--transport", choices=["ipc", "tcp"], default="ipc", help="ipc (default) or tcp on loopback")
    cli_spectator.add_server_flags(la)
    la.add_argument("--outcomes", metavar="FILE", help="write every counted game and each slot's final "
                                                       "step count to FILE (JSON)")

    wk = sub.add_parser("worker", help="a policy worker: serves agents to game servers")
    wk.add_argument("--connect", action="append", required=True, metavar="ENDPOINT",
                    help="a game server's endpoint (repeatable: one worker can serve several servers)")
    wk.add_argument("--agents", help="the agents this worker serves (default: all the server plays)")
    wk.add_argument("--agent-arg", action="append", metavar="NAME.KEY=VALUE")
    wk.add_argument("--keys", metavar="DIR", help="CURVE keys made by 'arena keys DIR'")
    wk.add_argument("--join", action="store_true", help="join waiting requests for one agent into one batch")
    wk.add_argument("--exit-when-done", action="store_true", help="exit when every server has said bye")
    wk.add_argument("--quiet", action="store_true")

    cli_spectator.add_parsers(sub)
    from server import cli_train
    cli_train.add_parsers(sub, _positive, _seed)

    ky = sub.add_parser("keys", help="make CURVE key pairs (server and client) for non-loopback endpoints")
    ky.add_argument("dir")

    ip = sub.add_parser("init-policy", help="save a fresh (untrained) neural policy for an arena")
    ip.add_argument("arena")
    ip.add_argument("--arch", choices=["mlp", "conv"], default="mlp")
    ip.add_argument("--hidden", type=_positive, default=128)
    ip.add_argument("--seed", type=_seed, default=0)
    ip.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", help="arena option")
    ip.add_argument("--out", required=True, help="where to write NAME.safetensors (+ NAME.json)")

    b = sub.add_parser("bench", help="engine throughput beside PettingZoo's own games, same run")
    b.add_argument("--arenas", default="connect4,battle", help="comma-separated (default connect4,battle)")
    b.add_argument("--matches", type=_positive, default=4096, help="matches per batch (default 4096)")
    b.add_argument("--seconds", type=float, default=2.0, help="seconds per measurement (default 2)")
    b.add_argument("--json", action="store_true", help="print the figures as one JSON object on the last line")
    b.add_argument("--distributed", action="store_true",
                   help="instead: arena run against arena launch (battle, random agents) and the wire codec's cost")
    b.add_argument("--workers", type=_positive, default=1, help="workers for --distributed (default 1)")
    b.add_argument("--train", action="store_true",
                   help="arena train beside arena launch with the same policy and no learning, per arena")
    b.add_argument("--learners", type=_positive, default=2, help="learners for --train (default 2)")
    b.add_argument("--minutes", type=cli_spectator._positive_float, default=2.0, help="training minutes per arena for --train (default 2)")
    b.add_argument("--steps", type=_positive, default=150, help="batched steps for --distributed (default 150)")
    return p


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


# -- arena run --------------------------------------------------------------------------------------
def _agent_names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",")]
    if not names or any(not n for n in names):
        raise UsageError(f"arena run: --agents {text!r} must be comma-separated names, e.g. greedy,random")
    seen: dict[str, int] = {}
    out = []
    for n in names:  # the same agent twice gets a suffix so the table can tell them apart
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


def _make_game(arena: str, matches: int, options: dict):
    import arenas

    try:
        spec = arenas.get(arena)
    except arenas.UnknownArena as exc:
        raise UsageError(f"arena: {exc}") from None
    try:
        game = spec.game(num_matches=matches, **options)
    except (TypeError, ValueError) as exc:
        allowed = ", ".join(spec.defaults) or "none"
        raise UsageError(f"arena: bad option for {arena!r}: {exc} (options: {allowed})") from None
    return spec, game


def _make_agents(specs: list[str], names: list[str], game, arena: str, options: dict, args, seed: int = 0):
    """Load every agent; isolated ones get a process of their own (see ``server.isolated``)."""
    from agents.loader import kind, load_agent, split_agent_args
    from agents.registry import UnknownAgent

    try:
        agent_args = split_agent_args(getattr(args, "agent_arg", None), names)
    except ValueError as exc:
        raise UsageError(f"arena run: {exc}") from None
    out = []
    try:
        for spec, name in zip(specs, names):
            how = kind(spec)
            isolate = (how == "file" and not args.trust) or (args.isolate and how in ("file", "module", "entry_point"))
            if isolate:
                from server.isolated import IsolatedAgent
                agent = IsolatedAgent(spec, arena, options, seed=seed, args=agent_args[name],
                                      timeout=args.agent_timeout)
            else:
                agent = load_agent(spec, game, seed=seed, args=agent_args[name])
            agent.name = name
            out.append(agent)
    except UnknownAgent as exc:
        for agent in out:
            agent.close()
        raise UsageError(f"arena: {exc}") from None
    return out


def _warm_up(agents: list, warm_game) -> None:
    """One act() per agent on a one-match game, so JIT compiles happen before the clock starts."""
    from agents.check import AgentFault

    rows = warm_game.active.reshape(-1)
    obs = warm_game.obs.reshape((-1,) + warm_game.obs_shape)[rows]
    mask = warm_game.action_mask.reshape(rows.size, -1)[rows]
    for agent in agents:
        try:
            agent.act(obs, mask)
        except (Exception, AgentFault):
            pass  # faults are the run's business: they show up there, with the forfeits


def format_table(summary: dict, stat_names: Sequence[str]) -> str:
    cols = ["agent", "wins", "losses", "draws", "win %"] + list(stat_names)
    rows = []
    for name, r in summary["results"].items():
        games = max(r["games"], 1)
        rows.append([name, r["wins"], r["losses"], r["draws"], f"{100 * r['wins'] / games:.1f}"]
                    + [r.get(s, 0) for s in stat_names])
    widths = [max(len(str(c)), *(len(str(row[i])) for row in rows)) for i, c in enumerate(cols)]
    line = lambda vals: "  ".join(str(v).rjust(w) if i else str(v).ljust(w) for i, (v, w) in enumerate(zip(vals, widths)))
    out = [line(cols), line(["-" * w for w in widths])] + [line(r) for r in rows]
    if len(summary.get("pairings", {})) > 1 or len(summary["results"]) > 2:
        out.append("")
        out.append("pairings (first-named agent is team 0: connect4's player_0, battle's red):")
        for key, p in summary["pairings"].items():
            out.append(f"  {key:30s} {p['first_wins']:>7} - {p['second_wins']:<7} draws {p['draws']}")
    out.append("")
    out.append(f"{summary['matches']} matches in {summary['slots']} slots, {summary['steps']} batched steps, "
               f"{summary['agent_steps']:,} agent-steps in {summary['seconds']:.2f} s "
               f"= {summary['agent_steps_per_s']:,.0f} agent-steps/s "
               f"(agents included; compile/cache load {summary['compile_seconds']:.2f} s apart)")
    return "\n".join(out)


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
        print(f"forfeit: {f['agent']} lost {f['matches']} matches in {f['arena']}: {f['reason']}")
    if args.json:
        print(json.dumps(summary))


def _common(args, command: str):
    import numba
    from simcore.options import parse_options

    try:
        options = parse_options(args.option)
    except ValueError as exc:
        raise UsageError(f"arena {command}: {exc}") from None
    if args.threads:
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    return options, _agent_names(args.agents)


def cmd_run(args) -> int:
    import numba

    from server.match import MatchRunner

    options, names = _common(args, "run")
    t0 = time.perf_counter()
    spec, game = _make_game(args.arena, args.matches, options)
    specs = [n.split("#")[0] for n in names]
    agents = _make_agents(specs, names, game, args.arena, options, args, seed=args.seed)
    # Compile (or load from numba's cache) the engine and the agents on a one-match copy first,
    # so that the timed play is play.
    _, warm = _make_game(args.arena, 1, options)
    from agents.registry import make_agent
    warm_runner = MatchRunner(warm, [make_agent("random", warm)])
    warm_runner.reset(args.seed)
    warm_runner.play(steps=2)
    warm.reset(seed=args.seed)
    _warm_up(agents, warm)
    compile_seconds = time.perf_counter() - t0

    runner = MatchRunner(game, agents, names)
    runner.reset(args.seed)
    from server import cli_spectator
    try:
        hooks = cli_spectator.attach(args, runner, args.arena)   # --watch / --record
    except cli_spectator.SpectatorUsageError as exc:
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


# -- arena serve / launch / worker / keys ---------------------------------------------------------
def _check_agents(names: list[str], arena: str, options: dict) -> None:
    """Fail fast on agents no worker could load (unknown names, missing files)."""
    from agents.loader import kind
    from agents.registry import UnknownAgent, make_agent

    _, game = _make_game(arena, 1, options)
    for n in names:
        spec = n.split("#")[0]
        try:
            how = kind(spec)
            if how == "builtin":
                make_agent(spec, game)
            elif how == "file" and not os.path.isfile(spec.rpartition(":")[0]):
                raise UnknownAgent(f"cannot load {spec!r}: no such file {spec.rpartition(':')[0]!r}")
        except UnknownAgent as exc:
            raise UsageError(f"arena: {exc}") from None


def _run_server(args, options: dict, names: list[str], bind: str, stats_bind=None, keys=None, on_ready=None):
    import numba

    from server.gameserver import GameServer

    from server.spectator.publisher import default_endpoint

    t0 = time.perf_counter()
    try:
        server = GameServer(args.arena, names, args.matches, seed=args.seed, options=options, bind=bind,
                            stats_bind=stats_bind, groups=args.groups, keys_dir=keys, games=args.games,
                            steps=args.steps, spectate_bind=getattr(args, "spectate_bind", None) or default_endpoint(bind))
    except ValueError as exc:
        raise UsageError(f"arena: {exc}") from None
    except Exception as exc:  # zmq errors: address in use, bad endpoint
        raise UsageError(f"arena: cannot bind {bind}: {exc}") from None
    compile_seconds = time.perf_counter() - t0
    if server.spectators is not None:
        print(f"arena: spectators: arena watch --connect {server.spectators.endpoint}", file=sys.stderr)
    bar, unit = _progress(args, f"{args.arena} {args.matches}x")
    last = [0.0]

    def on_progress(srv, new_games: int) -> None:
        if bar is None:
            return
        if unit == "games":
            bar.update(new_games)
        now = time.perf_counter()
        if now - last[0] > 0.5:
            last[0] = now
            st = srv.stats()
            if unit == "steps":
                bar.n = max(g.runner.steps for g in srv.groups)
            bar.set_postfix_str(f"{st['agent_steps_per_s'] / 1e6:.2f} M agent-steps/s, {st['matches_per_s']:.0f} "
                                f"matches/s, waiting {100 * st['wait_s'] / max(now - srv.started, 1e-9):.0f}%, "
                                f"queue {st['queue']}, workers {st['workers']}")

    server.on_progress = on_progress
    if on_ready is not None:
        on_ready(server)
    try:
        summary = server.serve()
    except KeyboardInterrupt:
        print("interrupted: summary so far", file=sys.stderr)
        server.seconds = time.perf_counter() - server.started
        summary = server.summary()
    finally:
        server.close()
        if bar is not None:
            bar.close()
    summary.update(seed=args.seed, options=options, compile_seconds=round(compile_seconds, 3),
                   threads=numba.get_num_threads())
    if getattr(args, "outcomes", None):
        with open(args.outcomes, "w") as fh:
            json.dump({"outcomes": server.outcomes(),
                       "step_counts": [g.runner.game.step_count.tolist() for g in server.groups],
                       "steps": [g.runner.steps for g in server.groups]}, fh)
    return summary, server.stat_names


def cmd_serve(args) -> int:
    options, names = _common(args, "serve")
    _check_agents(names, args.arena, options)
    print(f"arena serve: {args.arena}, {args.matches} matches, agents {', '.join(names)}; "
          f"workers connect to {args.bind}", file=sys.stderr)
    summary, stat_names = _run_server(args, options, names, args.bind, args.stats_bind, args.keys)
    _report(summary, stat_names, args)
    return 0


def cmd_launch(args) -> int:
    import signal
    import subprocess
    import tempfile

    from server import child_env

    options, names = _common(args, "launch")
    _check_agents(names, args.arena, options)
    tmp = tempfile.mkdtemp(prefix="arena-launch-")
    if args.transport == "ipc":
        bind = f"ipc://{tmp}/server"
    else:
        import socket
        with socket.socket() as s1, socket.socket() as s2:
            s1.bind(("127.0.0.1", 0))
            s2.bind(("127.0.0.1", 0))
            port, port2 = s1.getsockname()[1], s2.getsockname()[1]
        bind = f"tcp://127.0.0.1:{port}"
    stats_bind = f"ipc://{tmp}/stats" if args.transport == "ipc" else f"tcp://127.0.0.1:{port2}"
    procs: list[subprocess.Popen] = []
    env = child_env()

    def start_workers(server) -> None:
        for w in range(args.workers):
            cmd = [sys.executable, "-m", "server.cli", "worker", "--connect", bind, "--exit-when-done", "--quiet"]
            for a in args.agent_arg or []:
                cmd += ["--agent-arg", a]
            procs.append(subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                          start_new_session=True))  # Ctrl-C reaches us; we stop them

    try:
        summary, stat_names = _run_server(args, options, names, bind, stats_bind, on_ready=start_workers)
    finally:
        for p in procs:
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    summary["workers"] = args.workers
    _report(summary, stat_names, args)
    return 0


def cmd_worker(args) -> int:
    from server.netutil import EndpointError, is_loopback
    from server.worker import PolicyWorker

    for ep in args.connect:
        try:
            if not is_loopback(ep) and not args.keys:
                raise UsageError(f"arena worker: connecting to {ep} (not loopback) needs --keys DIR")
        except EndpointError as exc:
            raise UsageError(f"arena worker: {exc}") from None
    agents = [a.strip() for a in args.agents.split(",")] if args.agents else None
    log = (lambda text: None) if args.quiet else None
    try:
        worker = PolicyWorker(args.connect, agents, keys_dir=args.keys, agent_args=args.agent_arg,
                              exit_when_done=args.exit_when_done, join=args.join, log=log)
    except EndpointError as exc:
        raise UsageError(f"arena worker: {exc}") from None
    try:
        return worker.run()
    except KeyboardInterrupt:
        return 0
    finally:
        worker.close()


def cmd_keys(args) -> int:
    from server.netutil import make_keys

    paths = make_keys(args.dir)
    print(f"server keys: {paths['server_secret']} (keep on the server) and {paths['server_public']}")
    print(f"client keys: {paths['client_secret']} (copy with server.key to each worker machine)")
    print(f"clients the server accepts: {paths['authorized']}/")
    print(f"use: arena serve ARENA --bind tcp://0.0.0.0:5555 --keys {args.dir}   and   "
          f"arena worker --connect tcp://HOST:5555 --keys {args.dir}")
    return 0


# -- arena bench ------------------------------------------------------------------------------------
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


def cmd_init_policy(args) -> int:
    from agents.neural import NeuralAgent
    from simcore.options import parse_options

    try:
        options = parse_options(args.option)
    except ValueError as exc:
        raise UsageError(f"arena init-policy: {exc}") from None
    _, game = _make_game(args.arena, 1, options)
    agent = NeuralAgent(game, seed=args.seed, arch=args.arch, hidden=args.hidden, device="cpu")
    path = agent.save(args.out)
    print(f"saved an untrained {args.arch} policy for {args.arena} to {path} (+ {path.with_suffix('.json').name})")
    print(f"use it: arena run {args.arena} --agents ckpt:{path},random")
    return 0


def cmd_watch(args) -> int:
    from server.cli_spectator import cmd_watch as watch
    return watch(args)


def cmd_train(args) -> int:
    from server.cli_train import cmd_train as train
    return train(args, UsageError)


def cmd_learner(args) -> int:
    from server.cli_train import cmd_learner as learner
    return learner(args, UsageError)


def cmd_replay(args) -> int:
    from server.cli_spectator import cmd_replay as replay
    return replay(args)


COMMANDS = {"list": cmd_list, "run": cmd_run, "bench": cmd_bench, "init-policy": cmd_init_policy,
            "serve": cmd_serve, "launch": cmd_launch, "worker": cmd_worker, "keys": cmd_keys,
            "watch": cmd_watch, "replay": cmd_replay, "train": cmd_train, "learner": cmd_learner}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return EXIT_USAGE
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
