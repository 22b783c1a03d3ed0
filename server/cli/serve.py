"""``arena serve / launch / worker / keys``: the distributed pieces, parsing and wiring."""
from __future__ import annotations

import json
import sys
import time

from server.play.setup import SetupError, agent_names, check_agents

from . import spectator
from .common import UsageError, add_backend_flags, backend_from, positive
from .play import _common, _progress, _report, play_args


def add_parsers(sub) -> None:
    sv = sub.add_parser("serve", help="the game server alone: plays matches, workers connect to act")
    play_args(sv, isolation=False)
    sv.add_argument("--bind", default="tcp://127.0.0.1:5555",
                    help="ROUTER endpoint for workers (default tcp://127.0.0.1:5555; not loopback needs --keys)")
    sv.add_argument("--stats-bind", help="PUB endpoint for statistics (default: the --bind port + 1)")
    sv.add_argument("--groups", type=positive, help="match groups stepped in turn, to overlap stepping with "
                                                    "acting (default: 2 on more than 2 cores, else 1)")
    sv.add_argument("--keys", metavar="DIR", help="CURVE keys made by 'arena keys DIR'")
    sv.add_argument("--transport", choices=["auto", "shm", "frames"], default="auto",
                    help="to workers on this host: shm (observations and actions in shared memory, control over "
                         "the socket), frames (everything over the socket); auto (default): shm when --bind is "
                         "local and the host has /dev/shm. Workers on other hosts always get frames")
    spectator.add_server_flags(sv)
    sv.add_argument("--outcomes", metavar="FILE", help="write every counted game and each slot's final "
                                                       "step count to FILE (JSON), to compare runs")
    sv.add_argument("--learner", action="append", metavar="NAME=SEGMENTS,PUB",
                    help="train: agent NAME acts for learner NAME, whose segments endpoint and parameter PUB are "
                         "given (repeatable); slots are re-seated per match from --config's opponents; runs "
                         "until Ctrl-C")
    sv.add_argument("--config", help="with --learner: the TrainConfig JSON of the run (arena train writes one)")

    la = sub.add_parser("launch", help="a game server and N policy workers on this machine")
    play_args(la, isolation=False)
    la.add_argument("--workers", type=positive, default=1, help="policy worker processes (default 1)")
    la.add_argument("--groups", type=positive, help="match groups stepped in turn (default: 2 on more than 2 "
                                                    "cores, else 1)")
    la.add_argument("--transport", choices=["auto", "shm", "ipc", "tcp"], default="auto",
                    help="server to workers: shm (observations and actions in shared memory, control messages over "
                         "ipc), ipc or tcp on loopback (frames over the socket); auto (default): shm where the host "
                         "has /dev/shm, else ipc")
    la.add_argument("--precision", choices=["fp32", "bf16", "int8"], default="fp32",
                    help="the copy the workers' neural policies act with (see arena worker --precision)")
    la.add_argument("--compile", action="store_true", help="the workers compile their policies' forward pass")
    la.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where the workers' policies run")
    spectator.add_server_flags(la)
    la.add_argument("--outcomes", metavar="FILE", help="write every counted game and each slot's final "
                                                       "step count to FILE (JSON)")
    add_backend_flags(la, learners=False)

    wk = sub.add_parser("worker", help="a policy worker: serves agents to game servers")
    wk.add_argument("--connect", action="append", required=True, metavar="ENDPOINT",
                    help="a game server's endpoint (repeatable: one worker can serve several servers)")
    wk.add_argument("--agents", help="the agents this worker serves, and the only ones it loads code for "
                                     "(default: whatever the server plays among the built-in agents, "
                                     "installed entry points and ckpt: weights; a server never makes a worker "
                                     "import code)")
    wk.add_argument("--agent-arg", action="append", metavar="NAME.KEY=VALUE")
    wk.add_argument("--arena", action="append", metavar="SPEC",
                    help="a custom arena (module:Class or path/to/file.py:Class) this worker may build when a "
                         "server plays it (repeatable; registry arenas need nothing)")
    wk.add_argument("--trust", action="store_true",
                    help="run file.py agents named in --agents in this process (they are isolated by default)")
    wk.add_argument("--agent-timeout", type=float, default=5.0, metavar="SECONDS",
                    help="deadline per act() call of an isolated agent (default 5)")
    wk.add_argument("--keys", metavar="DIR", help="CURVE keys made by 'arena keys DIR'")
    wk.add_argument("--join", action="store_true", help="join waiting requests for one agent into one batch")
    wk.add_argument("--transport", choices=["auto", "frames"], default="auto",
                    help="auto (default): shared memory with a server on this host that offers it, frames otherwise; "
                         "frames: always over the socket")
    wk.add_argument("--exit-when-done", action="store_true", help="exit when every server has said bye")
    wk.add_argument("--quiet", action="store_true")
    wk.add_argument("--learner", action="append", metavar="NAME=PUB",
                    help="serve agent NAME (in --agents) from learner NAME's parameter broadcasts, swapping in each "
                         "new version between batches (repeatable); 'past' in --agents plays frozen snapshots")
    wk.add_argument("--league-member", metavar="NAME",
                    help="join a running arena league (one started with --bind) as the fixed member NAME, playing "
                         "the one agent in --agents; it is rated like every member, and its matches in flight "
                         "are forfeits if this worker goes away")
    wk.add_argument("--league-pub", metavar="PUB",
                    help="the league's snapshot broadcasts: agents snap0, snap1, ... in --agents play the frozen "
                         "snapshot the league puts in that slot (arena league starts workers with it)")
    wk.add_argument("--past-every", type=positive, default=10, help="versions between 'past' snapshots (default 10)")
    wk.add_argument("--past-pool", type=positive, default=8, help="'past' snapshots kept (default 8)")
    wk.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                    help="where learning policies run (auto: CUDA when there is one)")
    wk.add_argument("--precision", choices=["fp32", "bf16", "int8"], default="fp32",
                    help="the copy neural policies act with: fp32, bf16 or int8 (CPU; dynamic quantisation of the "
                         "linear layers); re-derived from the fp32 parameters at every new version (default fp32)")
    wk.add_argument("--compile", action="store_true",
                    help="torch.compile the forward pass (CUDA graphs on a GPU); falls back to eager where unavailable")

    ky = sub.add_parser("keys", help="make CURVE key pairs (server and client) for non-loopback endpoints")
    ky.add_argument("dir", help="folder for the keys (made 0700; secret keys 0600)")
    ky.add_argument("--force", action="store_true", help="replace the keys already in DIR")


def _run_server(args, options: dict, names: list[str], bind: str, stats_bind=None, keys=None, on_ready=None):
    import numba

    from server.play.gameserver import GameServer, default_groups

    from server.spectator.publisher import FramePublisher, default_endpoint

    spectate = getattr(args, "spectate_bind", None) or default_endpoint(bind)
    t0 = time.perf_counter()
    try:
        server = GameServer(args.arena, names, args.matches, seed=args.seed, options=options, bind=bind,
                            stats_bind=stats_bind, groups=args.groups or default_groups(), keys_dir=keys,
                            games=args.games,
                            steps=args.steps, spectators=lambda runners, ctx: FramePublisher(
                                spectate, args.arena, runners, ctx=ctx, keys_dir=keys),
                            transport=_server_transport(args.transport))
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
    threads = numba.get_num_threads()   # now: it may load a library, which a server short of files could not
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
                   threads=threads)
    if getattr(args, "outcomes", None):
        with open(args.outcomes, "w") as fh:
            json.dump({"outcomes": server.outcomes(),
                       "step_counts": [g.runner.game.step_count.tolist() for g in server.groups],
                       "steps": [g.runner.steps for g in server.groups]}, fh)
    return summary, server.stat_names


def _server_transport(flag: str) -> str:
    """The game server's transport for a --transport value (launch's ipc and tcp are frames over that socket)."""
    return "frames" if flag in ("ipc", "tcp") else flag


def _check(names: list[str], arena: str, options: dict) -> None:
    try:
        check_agents(names, arena, options)
    except SetupError as exc:
        raise UsageError(f"arena: {exc}") from None


def _check_binds(args) -> None:
    """Every endpoint ``arena serve`` will bind, and its keys, before any work: one line if refused."""
    from server.net.endpoints import EndpointError, check_keys, is_loopback, stats_endpoint
    from server.spectator.publisher import default_endpoint

    try:
        for flag, ep in (("--bind", args.bind), ("--stats-bind", args.stats_bind or stats_endpoint(args.bind)),
                         ("--spectate-bind", args.spectate_bind or default_endpoint(args.bind))):
            if not args.keys and not is_loopback(ep):
                raise UsageError(f"arena serve: binding {flag} to {ep} (not loopback) needs CURVE keys: make them "
                                 f"with 'arena keys DIR' and pass --keys DIR")
        if args.keys:
            check_keys(args.keys, "server")
    except EndpointError as exc:
        raise UsageError(f"arena serve: {exc}") from None


def _pairs(items: list[str] | None, flag: str, form: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        name, eq, value = item.partition("=")
        if not eq or not name or not value:
            raise UsageError(f"arena: {flag} {item!r}: expected {form}")
        out[name] = value
    return out


def _serve_training(args) -> int:
    """``arena serve --learner``: a training game server, until Ctrl-C."""
    from server.learn.config import config_from_dict
    from server.learn.run import training_server
    from server.spectator.publisher import default_endpoint

    learners = {}
    for name, value in _pairs(args.learner, "--learner", "NAME=SEGMENTS,PUB").items():
        seg, comma, pub = value.partition(",")
        if not comma:
            raise UsageError(f"arena serve: --learner {name}={value}: expected NAME=SEGMENTS,PUB")
        learners[name] = (seg, pub)
    if not args.config:
        raise UsageError("arena serve: --learner needs --config (the run's TrainConfig JSON)")
    try:
        cfg = config_from_dict(json.loads(open(args.config).read()))
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"arena serve: cannot read --config: {exc}") from None
    if cfg.arena != args.arena:
        raise UsageError(f"arena serve: --config is for {cfg.arena!r}, not {args.arena!r}")
    try:
        server = training_server(args.arena, cfg, learners, args.bind, args.stats_bind, args.groups or 2, args.keys,
                                 spectate=args.spectate_bind or default_endpoint(args.bind), transport=args.transport)
    except ValueError as exc:
        raise UsageError(f"arena serve: {exc}") from None
    print(f"arena serve: training {', '.join(learners)} on {args.arena}, {server.slots} slots; workers connect to "
          f"{args.bind}", file=sys.stderr)
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


def cmd_serve(args) -> int:
    if args.learner:
        _check_binds(args)
        return _serve_training(args)
    options, names = _common(args, "serve")
    _check_binds(args)
    _check(names, args.arena, options)
    print(f"arena serve: {args.arena}, {args.matches} matches, agents {', '.join(names)}; "
          f"workers connect to {args.bind}", file=sys.stderr)
    summary, stat_names = _run_server(args, options, names, args.bind, args.stats_bind, args.keys)
    _report(summary, stat_names, args)
    return 0


def cmd_launch(args) -> int:
    from server.play.launch import WorkerPool

    options, names = _common(args, "launch")
    _check(names, args.arena, options)
    backend = backend_from(args)
    pool = WorkerPool(args.workers, args.transport, args.agent_arg,
                      ["--precision", args.precision, "--device", args.device] + (["--compile"] if args.compile else []),
                      backend=backend, say=lambda text: print(f"arena: {text}", file=sys.stderr, flush=True))
    try:
        summary, stat_names = _run_server(args, options, names, pool.bind, pool.stats_bind, keys=pool.keys_dir,
                                          on_ready=pool.start)
    finally:
        pool.close()
    summary["workers"] = args.workers
    if backend is not None:
        summary.update(backend="ray", restarts=pool.restarts, ray_start_s=pool.start_s)
    _report(summary, stat_names, args)
    return 0


def cmd_worker(args) -> int:
    from server.net.endpoints import EndpointError, is_loopback
    from server.play.worker import PolicyWorker

    for ep in args.connect:
        try:
            if not is_loopback(ep) and not args.keys:
                raise UsageError(f"arena worker: connecting to {ep} (not loopback) needs --keys DIR")
        except EndpointError as exc:
            raise UsageError(f"arena worker: {exc}") from None
    agents = [a.strip() for a in args.agents.split(",")] if args.agents else None
    log = (lambda text: None) if args.quiet else None
    if agents is not None:
        try:
            names = agent_names(args.agents)
        except SetupError as exc:
            raise UsageError(f"arena worker: {exc}") from None
        agents = list(dict.fromkeys(n.split("#")[0] for n in names))
    try:
        learners = _pairs(args.learner, "--learner", "NAME=PUB")
        worker = PolicyWorker(args.connect, agents, keys_dir=args.keys, agent_args=args.agent_arg,
                              exit_when_done=args.exit_when_done, join=args.join, log=log, trust=args.trust,
                              arenas=args.arena, agent_timeout=args.agent_timeout, learners=learners,
                              past_every=args.past_every, past_pool=args.past_pool, device=args.device,
                              precision=args.precision, compile=args.compile, transport=args.transport,
                              league_pub=args.league_pub, league_member=args.league_member)
    except (EndpointError, ValueError) as exc:
        raise UsageError(f"arena worker: {exc}") from None
    try:
        return worker.run()
    except KeyboardInterrupt:
        return 0
    finally:
        worker.close()


def cmd_keys(args) -> int:
    from server.net.endpoints import KeysExist, make_keys

    try:
        paths = make_keys(args.dir, force=args.force)
    except KeysExist as exc:
        raise UsageError(f"arena keys: {exc}") from None
    except OSError as exc:
        raise UsageError(f"arena keys: cannot write keys to {args.dir}: {exc}") from None
    print(f"server keys: {paths['server_secret']} (keep on the server) and {paths['server_public']}")
    print(f"client keys: {paths['client_secret']} (copy with server.key to each worker machine)")
    print(f"clients the server accepts: {paths['authorized']}/")
    print(f"use: arena serve ARENA --bind tcp://0.0.0.0:5555 --keys {args.dir}   and   "
          f"arena worker --connect tcp://HOST:5555 --keys {args.dir}")
    return 0
