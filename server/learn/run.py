"""``arena train`` as a function: one game server, W policy workers, K learners that gossip; watch, save.

    from server.learn.run import TrainPlan, run_training
    summary = run_training(TrainPlan(arena="connect4", out=Path("runs/c4"), minutes=10))

The same pieces as ``arena launch`` plus learners, on the one data path::

    game server (this process) ──obs rows per policy──► policy workers (W processes) ──actions, logp, version──┐
        │  rewards, ends stay here; segments per learner share ◄────────────────────────────────────────────┘
        └──► learners L0..LK-1 (processes: PPO/V-trace, gossip) ──versioned parameters (PUB)──► workers

Each learner owns a share of the match slots (slot m belongs to ``L{m % K}``): its parameters act there
(the workers serve agent ``Lk`` from its broadcasts) and those slots' segments return to it. The server
re-seats a slot when its match ends, drawing the opponent from ``TrainConfig.opponents`` (``self``,
``random``, ``greedy``, ``past``: a frozen snapshot served by the workers), with the learner's side
alternating. The live table, ``curves.csv/png``, checkpoints, ``summary.json`` and ``--resume`` are as
before; ``arena watch --connect`` (the endpoint is printed) shows the training matches.
"""
from __future__ import annotations

import csv
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import arenas
from agents.checkpoint import POINTER, CheckpointError
from agents.neural import NeuralAgent

from server.net.cluster import Backend, make_procs
from server.play.feed import LearningSpec
from server.play.gameserver import GameServer
from server.play.seating import OpponentMix

from . import checkpoints
from .config import PAST, SELF, TrainConfig, config_from_dict, preset, write_json
from .learner import TrainError
from .report import CSV_FIELDS, Watcher, _win_rates, plot_curves

#: built-in agents an opponent mix may name besides ``self`` and ``past``
MIX_AGENTS = ("random", "greedy")


@dataclass
class TrainPlan:
    arena: str
    out: Path
    learners: int = 2
    workers: int = 1
    minutes: float | None = None
    steps: int | None = None
    seed: int = 0
    resume: bool = False
    options: dict = field(default_factory=dict)
    every: float = 10.0
    eval_games: int = 1000
    gossip_every: int = 1
    save_every: float = 60.0
    overrides: dict = field(default_factory=dict)
    groups: int = 2
    device: str = "auto"
    precision: str = "fp32"
    compile: bool = False
    #: between the game server and the policy workers: auto (shared memory where there is /dev/shm), shm, frames
    transport: str = "auto"
    #: where the learners and policy workers run: here (None, ``local``) or on a Ray cluster
    backend: Backend | None = None


def _config(plan: TrainPlan, root: Path) -> TrainConfig:
    run_file = root / "train.json"
    holds_run = checkpoints.holds_run(root)
    if holds_run and not plan.resume:
        raise TrainError(f"{root} already holds a run; pass --resume to go on with it, or choose another --out")
    if plan.resume and not holds_run:
        raise TrainError(f"--resume: {root} holds no run (no train.json and learner checkpoints)")
    if plan.resume:
        prev = json.loads(run_file.read_text())
        if prev.get("arena") != plan.arena or prev.get("learners") != plan.learners:
            raise TrainError(f"{root} holds a run of {prev.get('arena')} with {prev.get('learners')} learners; "
                             f"resume it with the same arena and --learners")
        d = prev["config"]                     # the saved configuration, with this command's --set on top
        ppo = {**d.pop("ppo"), **plan.overrides.get("ppo", {})}
        d.update({k: v for k, v in plan.overrides.items() if k != "ppo"})
        cfg = config_from_dict({**d, "ppo": ppo})
        plan.options, plan.seed = cfg.options, prev.get("seed", plan.seed)
    else:
        cfg = preset(plan.arena, options=plan.options, seed=plan.seed, net_seed=plan.seed, **plan.overrides)
    if plan.resume:        # every learner's checkpoint reads back whole, before any process starts
        try:
            checkpoints.check_resume(root, plan.arena, plan.options, [f"L{i}" for i in range(plan.learners)])
        except CheckpointError as exc:
            raise CheckpointError(f"--resume: {exc}") from None
    bad = [k for k in cfg.opponents if k not in (SELF, PAST, *MIX_AGENTS)]
    if bad:
        raise TrainError(f"opponents: unknown {', '.join(bad)}; choose from self, past, random, greedy")
    return cfg


def run_training(plan: TrainPlan, out=sys.stdout) -> dict:
    """``arena train``: start the learners and workers, serve the matches, watch, stop, save, evaluate."""
    say = lambda text: print(text, file=out, flush=True)  # noqa: E731
    root = plan.out
    cfg = _config(plan, root)
    root.mkdir(parents=True, exist_ok=True)
    write_json(root / "train.json", {"arena": plan.arena, "learners": plan.learners, "workers": plan.workers,
                                     "options": plan.options, "seed": plan.seed, "config": cfg.to_dict()})
    names = [f"L{i}" for i in range(plan.learners)]
    workers = [f"w{w}" for w in range(plan.workers)]
    procs = make_procs(plan.backend, "train", say)
    server = watcher = fh = None
    old_handlers = {}
    interrupted = False
    progress = _Progress(plan, names, say)
    restarts: dict[str, int] = {}
    try:
        procs.place({**{n: "learner" for n in names}, **{w: "worker" for w in workers}})
        ep = {n: {k: procs.endpoint(n, k) for k in ("gossip", "pub", "seg")} for n in names}
        files = {"config.json": json.dumps(cfg.to_dict())}
        for i, n in enumerate(names):
            out_dir = root / "learners" / n
            cmd = [sys.executable, "-m", "server.cli", "learner", plan.arena, "--config", "{dir}/config.json",
                   "--name", n, "--seed", str(100 + plan.seed + i), "--out", str(out_dir),
                   "--bind", ep[n]["gossip"], "--pub", ep[n]["pub"], "--segments", ep[n]["seg"],
                   "--gossip-every", str(plan.gossip_every), "--save-every", str(plan.save_every),
                   "--device", plan.device, "--exit-with-parent", *procs.keys_flag()]
            peers = [f"{m}={ep[m]['gossip']}" for m in names if m != n]
            if peers:
                cmd += ["--peers", ",".join(peers)]
            if plan.resume:
                cmd.append("--resume")
            # a learner restarted by Ray goes on from its last checkpoint
            procs.start(n, cmd, files, restart=(resume_cmd(cmd), str(out_dir / POINTER)))
        server = training_server(plan.arena, cfg, {n: (ep[n]["seg"], ep[n]["pub"]) for n in names},
                                 bind=procs.server_endpoint("server"), stats_bind=procs.server_endpoint("stats"),
                                 groups=plan.groups, spectate=procs.server_endpoint("spectate"),
                                 transport=plan.transport, keys_dir=procs.keys_dir)
        agents = server.agent_names
        say(f"arena train {plan.arena}: {plan.learners} learner(s), {plan.workers} policy worker(s), "
            f"{server.slots} match slots, {cfg.batch_segments} x {cfg.horizon} decisions per update; out {root}")
        if server.spectators is not None:
            say(f"spectators: arena watch --connect {server.spectators.endpoint}")
        for w in workers:
            cmd = [sys.executable, "-m", "server.cli", "worker", "--connect", server.bind, "--exit-when-done",
                   "--quiet", "--agents", ",".join(agents), "--device", plan.device, "--precision", plan.precision,
                   *(["--compile"] if plan.compile else []), *procs.keys_flag(),
                   "--past-every", str(cfg.snapshot_every), "--past-pool", str(cfg.pool_size)]
            for n in names:
                cmd += ["--learner", f"{n}={ep[n]['pub']}"]
            procs.start(w, cmd)
        watcher = Watcher({n: ep[n]["pub"] for n in names}, keys_dir=procs.keys_dir)
        csv_path = root / "curves.csv"
        new_csv = not (plan.resume and csv_path.is_file())
        fh = open(csv_path, "w" if new_csv else "a", newline="")
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        if new_csv:
            writer.writeheader()
        progress.attach(server, watcher, writer, fh, procs)

        def as_interrupt(signum, frame):
            raise KeyboardInterrupt
        old_handlers = {sig: signal.signal(sig, as_interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
        server.on_tick = progress.tick
        server.serve()
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: stopping the learners, saving what they have")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):     # let nothing cut the shutdown short
            signal.signal(sig, signal.SIG_IGN)
        if server is not None:
            server.close()                # workers hear bye and exit
        procs.stop()
        restarts = procs.restarts()
        procs.close()
        if watcher is not None:
            watcher.poll(0.5)
            watcher.close()
        if fh is not None:
            fh.close()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for sig, h in old_handlers.items():
            signal.signal(sig, h)
    if progress.error:
        raise TrainError(progress.error)
    return _finish(plan, root, names, progress, interrupted, say, server, procs, restarts)


def training_server(arena: str, cfg: TrainConfig, learners: dict[str, tuple[str, str]], bind: str,
                    stats_bind: str | None = None, groups: int = 2, keys_dir: str | None = None,
                    spectate: str | None = None, transport: str = "auto") -> GameServer:
    """A game server that trains: agents ``L0..`` act for the learners named in ``learners`` (name ->
    (segments endpoint, PUB endpoint)), each slot re-seated per match from ``cfg.opponents``, and the
    learners' segments PUSHed to them. ``arena train`` makes one; ``arena serve --learner`` too."""
    from server.spectator.publisher import FramePublisher

    names = list(learners)
    agents = names + [k for k in cfg.opponents if k not in (SELF, *names)]
    index = {a: i for i, a in enumerate(agents)}
    ids = [index[n] for n in names]

    def seating(group: int, global_slots: np.ndarray):
        return OpponentMix(ids, dict(cfg.opponents), index, global_slots % len(names), seed=cfg.seed * 7919 + group)

    spec = LearningSpec(agents={n: (n, *learners[n]) for n in names}, horizon=cfg.horizon,
                        chunk=max(16, cfg.batch_segments // 4), win_reward=cfg.win_reward)
    publisher = None
    if spectate:
        publisher = lambda runners, ctx: FramePublisher(spectate, arena, runners, ctx=ctx, keys_dir=keys_dir)  # noqa: E731
    return GameServer(arena, agents, cfg.num_matches * len(names), seed=cfg.seed, options=cfg.options, bind=bind,
                      stats_bind=stats_bind, groups=groups, keys_dir=keys_dir, learning=spec, seating=seating,
                      forever=True, spectators=publisher, transport=transport)


class _Progress:
    """Called by the server every heartbeat: reads the learners' stats, prints and writes table rows, and
    stops the server when the time or the agent-steps are up."""

    HEADER = (f"{'min':>6} {'lrn':>3} {'ver':>5} {'agent-steps':>12} {'steps/s':>9} {'upd/s':>5} {'lag':>4} "
              f"{'pg':>7} {'v':>6} {'ent':>5} {'consensus':>9} {'rand':>5} {'grdy':>5} {'wk':>3}")

    def __init__(self, plan: TrainPlan, names: list[str], say):
        self.plan, self.names, self.say = plan, names, say
        self.start = self.steady = self.steady_end = None
        self.prev: dict[str, dict] = {}
        self.base: dict[str, int] = {}
        self.failed: list[str] = []
        self.error: str | None = None
        self.t0 = time.monotonic()
        self.next_row = self.t0 + plan.every

    def attach(self, server, watcher, writer, fh, procs) -> None:
        self.server, self.watcher, self.writer, self.fh, self.procs = server, watcher, writer, fh, procs

    def tick(self, server) -> None:
        plan, watcher = self.plan, self.watcher
        watcher.poll(0.0)
        now = time.monotonic()
        for n, rc in self.procs.exited():
            if n not in self.failed:
                self.failed.append(n)
                self.say(f"{'learner' if n.startswith('L') else 'policy worker'} {n} exited with code {rc}")
        if all(n in self.failed for n in self.names):
            self.error = "every learner has exited; see the messages above"
            server.stop()
            return
        if self.start is None and len(watcher.stats) == len(self.names):
            self.start = now
            self.say(self.HEADER)
        if self.start is None:
            if now - self.t0 > 120:
                self.error = "the learners did not start within 120 s"
                server.stop()
            return
        for n, s in watcher.stats.items():
            self.base.setdefault(n, int(s["agent_steps"]))
        total = sum(int(s["agent_steps"]) - self.base[n] for n, s in watcher.stats.items())
        if self.steady is None and all(int(s["agent_steps"]) > self.base[n] for n, s in watcher.stats.items()):
            self.steady = (now, total)      # every learner has had data: warm-up is over
        done = (plan.minutes is not None and now - self.start >= plan.minutes * 60) or \
               (plan.steps is not None and total >= plan.steps)
        if now >= self.next_row or done:
            self._rows(server.stats().get("workers", 0))
            self.next_row = now + plan.every
        if done:
            self.steady_end = (now, total)
            server.stop()

    def _rows(self, workers: int) -> None:
        cons = self.watcher.consensus()
        for n in self.names:
            s = self.watcher.stats.get(n)
            if s is None:
                continue
            p0 = self.prev.get(n)
            dt = (s["seconds"] - p0["seconds"]) if p0 else 0.0
            rate = (s["agent_steps"] - p0["agent_steps"]) / dt if p0 and dt > 0 else float("nan")
            ups = (s["updates"] - p0["updates"]) / dt if p0 and dt > 0 else float("nan")
            wins = _win_rates(s, p0)
            row = {"minutes": round(s["seconds"] / 60, 3), "learner": n, "version": s["version"],
                   "agent_steps": s["agent_steps"], "agent_steps_per_s": round(rate, 1),
                   "updates_per_s": round(ups, 3), "mean_lag": s.get("mean_lag", ""),
                   "pg_loss": s.get("pg_loss", ""), "v_loss": s.get("v_loss", ""),
                   "entropy": s.get("entropy", ""), "approx_kl": s.get("approx_kl", ""),
                   "consensus_distance": "" if cons is None else cons,
                   "win_random": wins.get("random", ""), "win_greedy": wins.get("greedy", ""),
                   "dropped_segments": s["dropped_segments"], "gossip_exchanges": s["gossip_exchanges"],
                   "gossip_timeouts": s["gossip_timeouts"], "workers_alive": workers}
            self.writer.writerow(row)
            f = lambda v, spec: format(v, spec) if isinstance(v, (int, float)) else "-"  # noqa: E731
            self.say(f"{s['seconds'] / 60:>6.1f} {n:>3} {s['version']:>5} {s['agent_steps']:>12,} "
                     f"{f(rate, '>9,.0f')} {f(ups, '>5.2f')} {f(s.get('mean_lag'), '>4.1f')} "
                     f"{f(s.get('pg_loss'), '>7.3f')} {f(s.get('v_loss'), '>6.3f')} {f(s.get('entropy'), '>5.2f')} "
                     f"{f(cons, '>9.2e')} {f(wins.get('random'), '>5.0%')} {f(wins.get('greedy'), '>5.0%')} "
                     f"{workers:>3}")
            self.prev[n] = dict(s)
        self.fh.flush()


def resume_cmd(cmd: list[str]) -> list[str]:
    """A learner's command to go on from its checkpoint: ``--resume``, and no ``--init``."""
    out, i = [], 0
    while i < len(cmd):
        if cmd[i] == "--init":
            i += 2
            continue
        out.append(cmd[i])
        i += 1
    return out if "--resume" in out else [*out, "--resume"]


def _finish(plan: TrainPlan, root: Path, names: list[str], progress: _Progress, interrupted: bool, say,
            server, procs, restarts: dict[str, int]) -> dict:
    from .evaluate import evaluate

    final = {n: st for n in names if (st := checkpoints.learner_state(root / "learners" / n)) is not None}
    if not final:
        raise TrainError("no learner saved a checkpoint")
    best = names[0] if names[0] in final else next(iter(final))
    game = arenas.make(plan.arena, num_matches=1, seed=0, **plan.options)
    policy = checkpoints.publish_policy(root, best, game)       # DIR/policy: a checkpoint folder, ckpt:DIR/policy
    agent_steps = sum(s["agent_steps"] for s in final.values())
    seconds = max(s["seconds"] for s in final.values())
    summary = {"arena": plan.arena, "learners": plan.learners, "workers": plan.workers,
               "policy": str(policy), "agent_steps": agent_steps,
               "decisions": sum(s["decisions"] for s in final.values()),
               "updates": {n: s["updates"] for n, s in final.items()}, "seconds": round(seconds, 1),
               "agent_steps_per_s": round(agent_steps / max(seconds, 1e-9), 1),
               "dropped_segments": sum(s["dropped_segments"] for s in final.values()),
               "interrupted": interrupted}
    if server is not None:
        summary["server"] = server.stats()
    summary["backend"] = procs.kind
    if procs.kind != "local":     # where Ray put each process, and how often it restarted one
        summary["nodes"] = procs.nodes()
        summary["restarts"] = restarts
        if any(restarts.values()):
            say("ray restarted: " + ", ".join(f"{n} {k}x" for n, k in restarts.items() if k))
    st, en = progress.steady, progress.steady_end
    if st is not None and en is not None and en[0] > st[0]:
        # the rate after every learner's first data (start-up and compile time left out)
        summary["steady_agent_steps_per_s"] = round((en[1] - st[1]) / (en[0] - st[0]), 1)
    csv_path = root / "curves.csv"
    png = None
    try:
        png = plot_curves(csv_path, root / "curves.png", f"arena train {plan.arena}: {plan.learners} learners")
        summary["plot"] = str(png)
    except Exception as exc:  # a plot must not lose a trained policy
        say(f"(no plot: {type(exc).__name__}: {exc})")
    summary["csv"] = str(csv_path)
    steady_text = (f", {summary['steady_agent_steps_per_s']:,.0f}/s after warm-up"
                   if "steady_agent_steps_per_s" in summary else "")
    say(f"trained {seconds / 60:.1f} min: {agent_steps:,} agent-steps ({summary['agent_steps_per_s']:,.0f}/s{steady_text}), "
        f"updates {summary['updates']}, {summary['dropped_segments']} stale segments dropped")
    if plan.eval_games:
        agent = NeuralAgent.load(policy, device="cpu")
        summary["eval"] = {}
        for opp in ("random", "greedy"):
            r = evaluate(agent, plan.arena, opp, games=plan.eval_games, options=plan.options)
            summary["eval"][opp] = r
            t0, t1 = (f"{x:.1%}" for x in r["win_rate_by_team"])
            say(f"  vs {opp:<7} {r['wins']:>5} won {r['losses']:>5} lost {r['draws']:>5} drawn of {r['games']} "
                f"(half on each team): win rate {r['win_rate']:.1%} (as team 0: {t0}, as team 1: {t1})")
    write_json(root / "summary.json", summary)
    say(f"saved {policy}/ (learner {best}'s policy, a checkpoint folder), curves {csv_path}"
        + (f" and {png}" if png else ""))
    say(f"use it:  arena run {plan.arena} --agents ckpt:{policy},greedy")
    return summary
