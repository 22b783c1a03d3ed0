"""``arena bench``: the engine's own throughput, beside PettingZoo's nearest game, in one run.

The engine figure is the engine's: actions come from uniform random numbers drawn ahead into a pool
(turned into a legal action per row by a small parallel kernel, so connect4 stays legal), not from an
agent. An agent-step is one active seat acting for one step (the player to move in connect4, a live
agent in battle). Each figure is measured at 1 thread and at all threads; the first call's JIT or
cache-load time is reported apart.

Peers, measured in the same run:
- tag:      MPE ``simple_tag_v3`` (package ``mpe2``, or ``pettingzoo.mpe`` where the installed
  PettingZoo still has it) as a Parallel env, random actions pre-drawn, per agent-step: the same game
  (``arenas.tag`` is checked step for step against it), so this ratio is like for like. Printed first.
- connect4: PettingZoo's ``connect_four_v3`` through its AEC API with random legal moves (the same game).
- battle:   the same MPE ``simple_tag_v3`` run, for scale only: a different game (a 32x32 grid, 16 agents,
  7x7x4 observations against 4 agents in a continuous world with 16-float observations).

``server.bench.policy`` holds ``arena bench --policy``: how fast a policy decides per precision, mode
and batch size, and what compression costs in play.
"""
from __future__ import annotations

import time
from typing import IO

import numba as nb
import numpy as np

from agents.random_agent import pick_legal_nb as pool_actions_nb  # u from the pool -> a legal action

POOL = 64


def engine_rate(name: str, matches: int, seconds: float, threads: int, seed: int = 0, **options) -> dict:
    """Step ``name`` for about ``seconds`` with pooled random legal actions at ``threads`` threads."""
    import arenas

    nb.set_num_threads(threads)
    game = arenas.make(name, num_matches=matches, seed=seed, **options)
    n, a = game.num_matches, game.num_agents
    u = np.random.default_rng(seed).random((POOL, n * a), dtype=np.float32)
    actions = np.zeros((n, a), dtype=np.int64)
    flat_actions = actions.reshape(-1)
    mask = game.action_mask.reshape(n * a, -1)
    for i in range(5):  # warm up caches and threads
        pool_actions_nb(mask, u[i % POOL], flat_actions)
        game.step(actions)
    steps = agent_steps = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while True:
        for _ in range(8):
            agent_steps += int(np.count_nonzero(game.active))
            pool_actions_nb(mask, u[steps % POOL], flat_actions)
            game.step(actions)
            steps += 1
        now = time.perf_counter()
        if now >= deadline:
            break
    elapsed = now - t0
    return {"threads": threads, "batch_steps": steps, "seconds": elapsed,
            "steps_per_s": steps * n / elapsed, "agent_steps_per_s": agent_steps / elapsed}


def compile_time(name: str, **options) -> float:
    """Seconds for the first make + reset + step of a one-match game (JIT, or numba cache load)."""
    import arenas

    t0 = time.perf_counter()
    game = arenas.make(name, num_matches=1, seed=0, **options)
    actions = np.zeros((1, game.num_agents), dtype=np.int64)
    pool_actions_nb(game.action_mask.reshape(game.num_agents, -1), np.zeros(game.num_agents, np.float32), actions.reshape(-1))
    game.step(actions)
    return time.perf_counter() - t0


def peer_connect4(seconds: float, seed: int = 0) -> dict:
    """PettingZoo ``connect_four_v3`` via the AEC API, random legal moves: moves per second."""
    from pettingzoo.classic import connect_four_v3

    env = connect_four_v3.env()
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    moves = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while time.perf_counter() < deadline:
        env.reset(seed=int(rng.integers(1 << 31)))
        for agent in env.agent_iter():
            obs, reward, term, trunc, info = env.last()
            if term or trunc:
                action = None
            else:
                legal = np.flatnonzero(obs["action_mask"])
                action = int(legal[rng.integers(legal.size)])
                moves += 1
            env.step(action)
    elapsed = time.perf_counter() - t0
    return {"name": "pettingzoo connect_four_v3 (AEC)", "steps_per_s": moves / elapsed,
            "agent_steps_per_s": moves / elapsed}


def _simple_tag():
    try:
        from mpe2 import simple_tag_v3
        return simple_tag_v3, "mpe2"
    except ImportError:
        pass
    try:
        from pettingzoo.mpe import simple_tag_v3  # older PettingZoo releases
        return simple_tag_v3, "pettingzoo.mpe"
    except ImportError:
        return None, None


def peer_battle(seconds: float, seed: int = 0) -> dict | None:
    """MPE ``simple_tag_v3`` Parallel env, pre-drawn random discrete actions: agent-steps per second."""
    mod, where = _simple_tag()
    if mod is None:
        return None
    env = mod.parallel_env()
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    pool = {ag: rng.integers(0, env.action_space(ag).n, size=1024) for ag in env.possible_agents}
    agent_steps = steps = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while time.perf_counter() < deadline:
        if not env.agents:
            env.reset(seed=int(rng.integers(1 << 31)))
        k = steps % 1024
        env.step({ag: int(pool[ag][k]) for ag in env.agents})
        agent_steps += len(env.possible_agents)
        steps += 1
    elapsed = time.perf_counter() - t0
    return {"name": f"MPE simple_tag_v3 ({where}, Parallel)", "steps_per_s": steps / elapsed,
            "agent_steps_per_s": agent_steps / elapsed}


PEERS = {"connect4": peer_connect4, "battle": peer_battle, "tag": peer_battle}
#: the arenas whose peer is the same game (the others' ratio compares different games)
SAME_GAME = {"connect4", "tag"}


def bench_arena(name: str, matches: int, seconds: float, out: IO | None = None) -> dict:
    say = (lambda s: print(s, file=out, flush=True)) if out is not None else (lambda s: None)
    all_threads = nb.config.NUMBA_NUM_THREADS
    fig: dict = {"matches": matches, "compile_s": round(compile_time(name), 3)}
    say(f"{name}: first make+step (JIT or cache load) {fig['compile_s']:.2f} s")
    one = engine_rate(name, matches, seconds, 1)
    say(f"  engine, 1 thread : {one['steps_per_s']:>14,.0f} match-steps/s {one['agent_steps_per_s']:>14,.0f} agent-steps/s")
    many = engine_rate(name, matches, seconds, all_threads) if all_threads > 1 else one
    nb.set_num_threads(all_threads)
    say(f"  engine, {all_threads} threads: {many['steps_per_s']:>14,.0f} match-steps/s {many['agent_steps_per_s']:>14,.0f} agent-steps/s"
        f"  (x{many['agent_steps_per_s'] / one['agent_steps_per_s']:.2f} over 1 thread)")
    fig.update({
        "threads": all_threads,
        "steps_per_s": round(many["steps_per_s"], 1),
        "agent_steps_per_s": round(many["agent_steps_per_s"], 1),
        "steps_per_s_1thread": round(one["steps_per_s"], 1),
        "agent_steps_per_s_1thread": round(one["agent_steps_per_s"], 1),
        "thread_scaling": round(many["agent_steps_per_s"] / one["agent_steps_per_s"], 3),
    })
    peer_fn = PEERS.get(name)
    peer = peer_fn(seconds) if peer_fn else None
    if peer is None:
        say("  peer: none installed (pip install mpe2)" if name in ("battle", "tag") else "  peer: none")
        return fig
    # connect4 compares moves (one per match-step); battle compares agent-steps
    key = "steps_per_s" if name == "connect4" else "agent_steps_per_s"
    fig.update({
        "peer": peer["name"],
        "peer_steps_per_s": round(peer["steps_per_s"], 1),
        "peer_agent_steps_per_s": round(peer["agent_steps_per_s"], 1),
        "ratio": round(fig[key] / peer[key], 1),
    })
    unit = "moves/s" if name == "connect4" else "agent-steps/s"
    fig["same_game"] = name in SAME_GAME
    say(f"  peer {peer['name']}: {peer[key]:>12,.0f} {unit}")
    if fig["same_game"]:
        say(f"  ratio (engine at {all_threads} threads / peer), the same game: {fig['ratio']:,.0f}x")
    else:
        say(f"  ratio (engine at {all_threads} threads / peer): {fig['ratio']:,.0f}x -- NOT the same game "
            f"(a {name} match against MPE simple_tag), for scale only; 'tag' is the like-for-like figure")
    return fig


def run_bench(names: list[str], matches: int = 4096, seconds: float = 2.0, out: IO | None = None) -> dict:
    """Every arena of ``names``, the like-for-like comparisons (``SAME_GAME``, tag first) before the others."""
    order = sorted(names, key=lambda n: (n != "tag", n not in SAME_GAME, names.index(n)))
    return {name: bench_arena(name, matches, seconds, out) for name in order}


# -- the distributed figures (arena bench --distributed) ------------------------------------------
def protocol_cost(matches: int = 4096, repeats: int = 50) -> dict:
    """Encode + decode of one battle observation batch (obs and mask, all seats, in one packed data frame as
    the game server sends it) against one batch step."""
    import arenas
    from server.net.protocol import Message, decode, encode, packed

    game = arenas.make("battle", num_matches=matches, seed=0)
    actions = np.zeros((game.num_matches, game.num_agents), dtype=np.int64)
    u = np.random.default_rng(0).random((POOL, actions.size), dtype=np.float32)
    mask = game.action_mask.reshape(actions.size, -1)
    for i in range(5):
        pool_actions_nb(mask, u[i], actions.reshape(-1))
        game.step(actions)
    t0 = time.perf_counter()
    for i in range(repeats):
        pool_actions_nb(mask, u[i % POOL], actions.reshape(-1))
        game.step(actions)
    step_s = (time.perf_counter() - t0) / repeats
    # laid out as the game server gathers a batch (``protocol.packed``): encode sends it without a copy
    views = packed({"obs": (game.obs.dtype, game.obs.shape), "mask": (game.action_mask.dtype, game.action_mask.shape)})
    views["obs"][...] = game.obs
    views["mask"][...] = game.action_mask
    t0 = time.perf_counter()
    for _ in range(repeats):
        frames = encode(Message("act", seq=1, arrays=views))
        msg = decode([memoryview(f) if not isinstance(f, memoryview) else f for f in frames])
        assert msg.arrays["obs"].shape == game.obs.shape
    codec_s = (time.perf_counter() - t0) / repeats
    return {"batch_bytes": int(game.obs.nbytes + game.action_mask.nbytes), "codec_s": codec_s, "step_s": step_s,
            "codec_share": codec_s / step_s}


def _cli_json(args: list[str]) -> dict:
    import json
    import subprocess
    import sys

    from server.net.proc import child_env

    env = child_env()
    p = subprocess.run([sys.executable, "-m", "server.cli", *args, "--json", "--no-progress"], env=env,
                       capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise RuntimeError(f"arena {' '.join(args)} failed: {p.stderr.strip()[-500:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def run_distributed(matches: int = 4096, steps: int = 600, workers: int = 1, agents: str = "random,random",
                    out: IO | None = None, repeats: int = 3, backend: str = "local", address: str | None = None) -> dict:
    """``arena run`` against ``arena launch`` with shared memory and with frames on ipc (same arena, agents,
    matches and steps; each the median of ``repeats`` runs, interleaved), and the codec cost. With
    ``backend="ray"`` also ``arena launch --backend ray`` (its workers Ray actors; ``address``: the cluster,
    default a new local Ray instance per run) beside the local launcher."""
    say = (lambda s: print(s, file=out, flush=True)) if out is not None else (lambda s: None)
    common = ["battle", "--matches", str(matches), "--agents", agents, "--steps", str(steps)]
    runs: dict[str, list] = {"run": [], "shm": [], "ipc": []}
    ray_flags = ["--backend", "ray", *(["--address", address] if address else [])]
    if backend == "ray":
        runs["ray"] = []
    for _ in range(max(1, repeats)):     # interleaved, so a noisy minute hits all of them alike
        runs["run"].append(_cli_json(["run", *common]))
        for t in ("shm", "ipc"):
            runs[t].append(_cli_json(["launch", *common, "--workers", str(workers), "--transport", t]))
        if backend == "ray":
            runs["ray"].append(_cli_json(["launch", *common, "--workers", str(workers), *ray_flags]))
    median = {k: sorted(r, key=lambda s: s["agent_steps_per_s"])[len(r) // 2] for k, r in runs.items()}
    local, dist, frames = median["run"], median["shm"], median["ipc"]
    say(f"battle {matches} matches, agents {agents}, {steps} steps; medians of {max(1, repeats)} runs each")
    say(f"  arena run    (one process)          : {local['agent_steps_per_s']:>14,.0f} agent-steps/s")
    ratio = dist["agent_steps_per_s"] / local["agent_steps_per_s"]
    say(f"  arena launch ({workers} worker(s), shared memory): {dist['agent_steps_per_s']:>14,.0f} agent-steps/s"
        f"  = {100 * ratio:.0f}% of arena run")
    say(f"  arena launch ({workers} worker(s), frames on ipc): {frames['agent_steps_per_s']:>14,.0f} agent-steps/s"
        f"  = {100 * frames['agent_steps_per_s'] / local['agent_steps_per_s']:.0f}% of arena run")
    srv = dist.get("server", {})
    if "step_latency_p50_ms" in srv:
        say(f"  launch step latency (requests out to last reply in): p50 {srv['step_latency_p50_ms']:.2f} ms, "
            f"p99 {srv['step_latency_p99_ms']:.2f} ms")
    ray_figures = {}
    if backend == "ray":
        on_ray = median["ray"]
        share = on_ray["agent_steps_per_s"] / dist["agent_steps_per_s"]
        starts = sorted(r.get("ray_start_s", float("nan")) for r in runs["ray"])
        say(f"  arena launch --backend ray ({workers} worker actor(s)): {on_ray['agent_steps_per_s']:>11,.0f} "
            f"agent-steps/s  = {100 * share:.0f}% of the local launcher (Ray start-up and placement "
            f"{starts[len(starts) // 2]:.1f} s, not counted)")
        ray_figures = {"ray_agent_steps_per_s": on_ray["agent_steps_per_s"], "ray_vs_local_launcher": round(share, 3),
                       "ray_start_s": starts[len(starts) // 2],
                       "ray_runs": [r["agent_steps_per_s"] for r in runs["ray"]],
                       "local_launcher_runs": [r["agent_steps_per_s"] for r in runs["shm"]]}
    codec = protocol_cost(matches)
    say(f"  protocol encode+decode of a {codec['batch_bytes'] / 1e6:.1f} MB observation batch: "
        f"{codec['codec_s'] * 1e6:.0f} us = {100 * codec['codec_share']:.2f}% of one batch step "
        f"({codec['step_s'] * 1e3:.2f} ms)")
    return {"battle_distributed": {
        "matches": matches, "steps": steps, "workers": workers, "agents": agents,
        "run_agent_steps_per_s": local["agent_steps_per_s"], "launch_agent_steps_per_s": dist["agent_steps_per_s"],
        "launch_frames_agent_steps_per_s": frames["agent_steps_per_s"],
        "ratio": round(ratio, 3), "codec_us": round(codec["codec_s"] * 1e6, 1),
        "step_ms": round(codec["step_s"] * 1e3, 3), "codec_share": round(codec["codec_share"], 5),
        "server": dist.get("server", {}), **ray_figures}}


# -- training beside acting (arena bench --train) ---------------------------------------------------
def run_train_bench(names: list[str], learners: int = 2, workers: int = 1, minutes: float = 2.0,
                    launch_steps: int = 300, out: IO | None = None) -> dict:
    """``arena train`` for ``minutes``, then ``arena launch`` with the policy it saved on every seat (no
    learning; the same ``workers`` policy workers and the same match slots, ``num_matches * learners``),
    and the ratio of their agent-steps/s. Training's figure is its rate after every learner's first data
    (start-up left out); launch's is its own summary."""
    import io
    import shutil
    import tempfile
    from pathlib import Path

    from server.learn.config import preset
    from server.learn.run import TrainPlan, run_training

    say = (lambda s: print(s, file=out, flush=True)) if out is not None else (lambda s: None)
    figures = {}
    for name in names:
        tmp = Path(tempfile.mkdtemp(prefix="arena-bench-train-"))
        try:
            cfg = preset(name)
            log = io.StringIO()
            summary = run_training(TrainPlan(arena=name, out=tmp / "run", learners=learners, workers=workers,
                                             minutes=minutes, eval_games=0, every=30.0), out=log)
            train_rate = summary.get("steady_agent_steps_per_s", summary["agent_steps_per_s"])
            policy = f"ckpt:{tmp / 'run' / 'policy'}"
            launch = _cli_json(["launch", name, "--agents", f"{policy},{policy}", "--workers", str(workers),
                                "--matches", str(cfg.num_matches * learners), "--steps", str(launch_steps)])
            ratio = train_rate / launch["agent_steps_per_s"]
            say(f"{name}: {learners} learner(s), {workers} policy worker(s), {cfg.num_matches * learners} match slots, "
                f"{cfg.arch} {cfg.hidden} policy")
            say(f"  arena launch, same policy on every seat, no learning : {launch['agent_steps_per_s']:>12,.0f} agent-steps/s")
            say(f"  arena train ({minutes:g} min, after warm-up)              : {train_rate:>12,.0f} agent-steps/s"
                f"  = {100 * ratio:.0f}% of launch")
            say(f"  ({summary['dropped_segments']:,} stale segments dropped; updates {summary['updates']})")
            figures[name] = {"learners": learners, "workers": workers, "matches": cfg.num_matches * learners,
                             "train_agent_steps_per_s": train_rate,
                             "launch_agent_steps_per_s": launch["agent_steps_per_s"], "ratio": round(ratio, 3),
                             "updates": summary["updates"], "dropped_segments": summary["dropped_segments"]}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return {"train_vs_launch": figures}


# -- the league beside training (arena bench --league) ------------------------------------------------
def run_league_bench(names: list[str], minutes: float = 2.0, out: IO | None = None) -> dict:
    """``arena league`` (defaults: a main agent and a main exploiter, one learner each) and ``arena train``
    with two learners (the same number of learners and match slots) for ``minutes`` each, in the same
    run: their agent-steps/s, the ratio, and the league's own cost (matchmaking, results, ratings and
    their commits) as a share of its wall time."""
    import io
    import shutil
    import tempfile
    from pathlib import Path

    from server.league.run import LeaguePlan, run_league
    from server.learn.run import TrainPlan, run_training

    say = (lambda s: print(s, file=out, flush=True)) if out is not None else (lambda s: None)
    figures = {}
    for name in names:
        tmp = Path(tempfile.mkdtemp(prefix="arena-bench-league-"))
        try:
            train = run_training(TrainPlan(arena=name, out=tmp / "train", learners=2, minutes=minutes, eval_games=0,
                                           every=30.0), out=io.StringIO())
            train_rate = train.get("steady_agent_steps_per_s", train["agent_steps_per_s"])
            lg = run_league(LeaguePlan(arena=name, dir=tmp / "league", minutes=minutes, eval_games=0, every=30.0),
                            out=io.StringIO())
            ratio = lg["agent_steps_per_s"] / train_rate
            say(f"{name}: {minutes:g} min each, 2 learners, the same match slots")
            say(f"  arena train (2 learners)                           : {train_rate:>12,.0f} agent-steps/s")
            say(f"  arena league (main + main exploiter, 1 learner each): {lg['agent_steps_per_s']:>12,.0f} agent-steps/s"
                f"  = {100 * ratio:.0f}% of train")
            say(f"  league matchmaking, results and ratings: {lg['matchmaking_rating_s']:.1f} s of {lg['seconds']:.0f} s"
                f" = {100 * lg['matchmaking_rating_share']:.1f}% ({lg['matches']:,} matches rated)")
            figures[name] = {"train_agent_steps_per_s": train_rate, "league_agent_steps_per_s": lg["agent_steps_per_s"],
                             "ratio": round(ratio, 3), "matches": lg["matches"],
                             "matchmaking_rating_share": lg["matchmaking_rating_share"]}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return {"league_vs_train": figures}
