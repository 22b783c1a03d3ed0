"""``arena train`` as a function: start the learners, watch them, stop them, save, plot, evaluate.

    from server.learn.run import TrainPlan, run_training
    summary = run_training(TrainPlan(arena="connect4", out=Path("runs/c4"), minutes=10))
"""
from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from agents.neural import NeuralAgent

from server.net.proc import child_env

from .config import config_from_dict, preset, write_json
from .learner import TrainError
from .report import CSV_FIELDS, Watcher, _win_rates, plot_curves

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


def run_training(plan: TrainPlan, out=sys.stdout) -> dict:
    """``arena train``: start the learners, watch them, stop them, save, plot, evaluate."""
    say = lambda text: print(text, file=out, flush=True)  # noqa: E731
    root = plan.out
    run_file = root / "train.json"
    # a run exists once a learner has saved a checkpoint (a start that failed before that leaves none)
    holds_run = run_file.is_file() and any((root / "learners").glob("*/state.json"))
    if holds_run and not plan.resume:
        raise TrainError(f"{root} already holds a run; pass --resume to go on with it, or choose another --out")
    if plan.resume and not holds_run:
        raise TrainError(f"--resume: {root} holds no run (no train.json and learner checkpoints)")
    if plan.resume:
        prev = json.loads(run_file.read_text())
        if prev.get("arena") != plan.arena or prev.get("learners") != plan.learners:
            raise TrainError(f"{root} holds a run of {prev.get('arena')} with {prev.get('learners')} learners; "
                             f"resume it with the same arena and --learners")
        # the saved configuration, with what this command changes on top (--set)
        d = prev["config"]
        ppo = {**d.pop("ppo"), **plan.overrides.get("ppo", {})}
        d.update({k: v for k, v in plan.overrides.items() if k != "ppo"})
        cfg = config_from_dict({**d, "ppo": ppo})
        plan.options, plan.seed = cfg.options, prev.get("seed", plan.seed)
    else:
        cfg = preset(plan.arena, options=plan.options, seed=plan.seed, net_seed=plan.seed, **plan.overrides)
    if "past" in cfg.opponents:
        raise TrainError("the 'past' opponent is for in-process training (server.learn.selfplay); "
                         "arena train's rollout workers play 'self', 'random', 'greedy' or other agents")
    root.mkdir(parents=True, exist_ok=True)
    write_json(run_file, {"arena": plan.arena, "learners": plan.learners, "workers": plan.workers,
                          "options": plan.options, "seed": plan.seed, "config": cfg.to_dict()})
    tmp = tempfile.mkdtemp(prefix="arena-train-")
    names = [f"L{i}" for i in range(plan.learners)]
    gossip = {n: f"ipc://{tmp}/{n}.gossip" for n in names}
    pubs = {n: f"ipc://{tmp}/{n}.pub" for n in names}
    cfg_path = Path(tmp) / "config.json"
    write_json(cfg_path, cfg.to_dict())
    env = child_env()
    procs: dict[str, subprocess.Popen] = {}
    for i, n in enumerate(names):
        cmd = [sys.executable, "-m", "server.cli", "learner", plan.arena, "--config", str(cfg_path),
               "--name", n, "--seed", str(100 + plan.seed + i), "--out", str(root / "learners" / n),
               "--workers", str(plan.workers), "--bind", gossip[n], "--pub", pubs[n],
               "--gossip-every", str(plan.gossip_every), "--save-every", str(plan.save_every),
               "--exit-with-parent"]
        peers = [f"{m}={gossip[m]}" for m in names if m != n]
        if peers:
            cmd += ["--peers", ",".join(peers)]
        if plan.resume:
            cmd.append("--resume")
        procs[n] = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    watcher = Watcher(pubs)
    csv_path = root / "curves.csv"
    new_csv = not (plan.resume and csv_path.is_file())
    fh = open(csv_path, "w" if new_csv else "a", newline="")
    writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
    if new_csv:
        writer.writeheader()
    say(f"arena train {plan.arena}: {plan.learners} learner(s) x {plan.workers} rollout worker(s), "
        f"{cfg.num_matches} matches per worker, {cfg.batch_segments} x {cfg.horizon} decisions per update; "
        f"out {root}")
    header = (f"{'min':>6} {'lrn':>3} {'ver':>5} {'agent-steps':>12} {'steps/s':>9} {'upd/s':>5} {'lag':>4} "
              f"{'pg':>7} {'v':>6} {'ent':>5} {'consensus':>9} {'rand':>5} {'grdy':>5} {'wk':>3}")
    start = steady = steady_end = None
    prev: dict[str, dict] = {}
    base: dict[str, int] = {}          # each learner's agent-steps when this run began (--resume counts on)
    summary: dict = {}
    interrupted = False
    failed: list[str] = []

    def as_interrupt(signum, frame):
        raise KeyboardInterrupt
    old_handlers = {sig: signal.signal(sig, as_interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        next_row = time.monotonic() + plan.every
        while True:
            watcher.poll(0.5)
            now = time.monotonic()
            for n, p in procs.items():
                if p.poll() is not None and n not in failed:
                    failed.append(n)
                    say(f"learner {n} exited with code {p.returncode}")
            if failed and len(failed) == len(procs):
                raise TrainError("every learner has exited; see the messages above")
            if start is None and len(watcher.stats) == len(names):
                start = now
                say(header)
            if start is None:
                if now - (next_row - plan.every) > 120:
                    raise TrainError("the learners did not start within 120 s")
                continue
            for n, s in watcher.stats.items():
                base.setdefault(n, int(s["agent_steps"]))
            total_steps = sum(int(s["agent_steps"]) - base[n] for n, s in watcher.stats.items())
            if steady is None and all(int(s["agent_steps"]) > base[n] for n, s in watcher.stats.items()):
                steady = (now, total_steps)   # every learner's workers have delivered: warm-up is over
            done = (plan.minutes is not None and now - start >= plan.minutes * 60) or \
                   (plan.steps is not None and total_steps >= plan.steps)
            if now >= next_row or done:
                cons = watcher.consensus()
                for n in names:
                    s = watcher.stats.get(n)
                    if s is None:
                        continue
                    p0 = prev.get(n)
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
                           "gossip_timeouts": s["gossip_timeouts"], "workers_alive": s["workers_alive"]}
                    writer.writerow(row)
                    f = lambda v, spec: format(v, spec) if isinstance(v, (int, float)) else "-"  # noqa: E731
                    say(f"{s['seconds'] / 60:>6.1f} {n:>3} {s['version']:>5} {s['agent_steps']:>12,} "
                        f"{f(rate, '>9,.0f')} {f(ups, '>5.2f')} {f(s.get('mean_lag'), '>4.1f')} "
                        f"{f(s.get('pg_loss'), '>7.3f')} {f(s.get('v_loss'), '>6.3f')} {f(s.get('entropy'), '>5.2f')} "
                        f"{f(cons, '>9.2e')} {f(wins.get('random'), '>5.0%')} {f(wins.get('greedy'), '>5.0%')} "
                        f"{s['workers_alive']:>3}")
                    prev[n] = dict(s)
                fh.flush()
                next_row = now + plan.every
            if done:
                steady_end = (now, total_steps)
                break
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: stopping the learners, saving what they have")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):     # let nothing cut the shutdown short
            signal.signal(sig, signal.SIG_IGN)
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 120
        for p in procs.values():
            try:
                p.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        watcher.poll(0.5)
        watcher.close()
        fh.close()
        shutil.rmtree(tmp, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for sig, h in old_handlers.items():
            signal.signal(sig, h)

    # -- results -------------------------------------------------------------------------------------
    final = {n: json.loads((root / "learners" / n / "state.json").read_text())
             for n in names if (root / "learners" / n / "state.json").is_file()}
    if not final:
        raise TrainError("no learner saved a checkpoint")
    best = names[0] if names[0] in final else next(iter(final))
    src = root / "learners" / best / "policy"
    for ext in (".safetensors", ".json"):
        shutil.copyfile(src.with_suffix(ext), (root / "policy").with_suffix(ext))
    agent_steps = sum(s["agent_steps"] for s in final.values())
    seconds = max(s["seconds"] for s in final.values())
    summary = {"arena": plan.arena, "learners": plan.learners, "workers": plan.workers,
               "policy": str(root / "policy.safetensors"), "agent_steps": agent_steps,
               "decisions": sum(s["decisions"] for s in final.values()),
               "updates": {n: s["updates"] for n, s in final.items()}, "seconds": round(seconds, 1),
               "agent_steps_per_s": round(agent_steps / max(seconds, 1e-9), 1),
               "dropped_segments": sum(s["dropped_segments"] for s in final.values()),
               "interrupted": interrupted}
    if steady is not None and steady_end is not None and steady_end[0] > steady[0]:
        # the rate after every worker's first delivery (start-up and compile time left out)
        summary["steady_agent_steps_per_s"] = round((steady_end[1] - steady[1]) / (steady_end[0] - steady[0]), 1)
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
        from .selfplay import evaluate
        agent = NeuralAgent.load(root / "policy", device="cpu")
        summary["eval"] = {}
        for opp in ("random", "greedy"):
            r = evaluate(agent, plan.arena, opp, games=plan.eval_games, options=plan.options)
            summary["eval"][opp] = r
            say(f"  vs {opp:<7} {r['wins']:>5} won {r['losses']:>5} lost {r['draws']:>5} drawn of {r['games']} "
                f"(half first / left, half second / right): win rate {r['win_rate']:.1%}")
    write_json(root / "summary.json", summary)
    say(f"saved {root / 'policy.safetensors'} (+ .json), curves {csv_path}" + (f" and {png}" if png else ""))
    say(f"use it:  arena run {plan.arena} --agents ckpt:{root / 'policy'},greedy")
    return summary
