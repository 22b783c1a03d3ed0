"""``arena bench --policy ARENA [--ckpt PATH]``: how fast a policy decides, and what compression costs.

Speed. For each precision and mode this machine offers (``agents.inference.available``: fp32 always,
bf16 where the hardware multiplies it, int8 on the CPU; eager and ``torch.compile``; the CPU always,
CUDA when present) and each batch size (1, 64, 1k, 8k, 32k), the time of one ``NeuralAgent.act``
call: host observations and masks in, one action per row out (transfers, masking and sampling
included). The variants of one batch size are timed in interleaved rounds (each round calls every
variant once), so a load spike from another process hits them all alike; ``decisions_per_s`` is
``batch / p50`` (the median call), ``p50_ms`` and ``p99_ms`` are percentiles of the calls. The first
calls at each size (compiling, for ``compile``) are left out and reported apart. Observations are
positions of random legal play, drawn once.

Quality. The compressed policy plays its own fp32 original: ``games`` match slots, one game each,
seats alternating by slot (``MatchRunner``), both sampling from their softmax, each game opened by
``OPENING_PLIES`` random legal plies that the two slots of a pair share (so every opening is played
from both sides; without them a trained connect4 policy and its near copy replay a few lines whose
first mover wins 99% of the time, and the score says nothing). Its score (wins plus half the draws,
per game) is printed with a 95% Wilson interval; a compression whose score is more than 3 points
under 50% is flagged. fp32 against itself (another sampling seed) is the control.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import IO

import numpy as np
import torch

from agents.inference import available, pick_int8_backend
from agents.neural import NeuralAgent

BATCHES = (1, 64, 1024, 8192, 32768)
GAMES = 2000
#: a compression whose score against fp32 is more than this under 0.5 is flagged
FLAG_LOSS = 0.03
MIN_ROUNDS, MAX_ROUNDS = 5, 400
#: random plies that open each quality game (see ``play_openings``): a trained connect4 policy against a
#: near copy of itself otherwise replays a handful of lines, its first mover winning 99% of them
OPENING_PLIES = 4


@dataclass(frozen=True)
class Variant:
    precision: str
    mode: str              # eager or compile
    device: str
    backend: str = ""      # int8 only: torch.ao or torchao

    @property
    def label(self) -> str:
        extra = f" ({self.backend})" if self.backend and self.backend != "torch.ao" else ""
        return f"{self.precision} {self.mode}{extra}"


def default_ckpt(arena: str) -> str:
    """``ckpt:builtin/ARENA`` when a policy for ``arena`` is shipped."""
    from agents import builtin

    if arena not in builtin.names():
        raise ValueError(f"no built-in policy for {arena!r} (shipped: {', '.join(builtin.names())}); "
                         f"pass --ckpt PATH")
    return f"ckpt:{builtin.PREFIX}{arena}"


def load_master(arena: str, ckpt: str | None = None, options: dict | None = None):
    """The game (one match) and the fp32 ``PolicyNet`` of ``ckpt`` (default: the shipped policy), on the CPU."""
    import arenas
    from agents.loader import load_agent

    spec = ckpt or default_ckpt(arena)
    if not spec.startswith("ckpt:"):
        spec = f"ckpt:{spec}"
    game = arenas.make(arena, num_matches=1, seed=0, **(options or {}))
    agent = load_agent(spec, game, args={"device": "cpu"})
    if not isinstance(agent, NeuralAgent):
        raise ValueError(f"{spec} is not a neural policy")
    return game, agent.net, spec


def observation_pool(arena: str, rows: int, seed: int = 0, options: dict | None = None):
    """``rows`` observations and masks of seats to move, from random legal play of ``arena``."""
    import arenas
    from agents.random_agent import pick_legal_nb

    game = arenas.make(arena, num_matches=max(64, min(rows, 4096)), seed=seed, **(options or {}))
    rng = np.random.default_rng(seed)
    obs, mask, have = [], [], 0
    actions = np.zeros(game.active.shape, np.int64)
    while have < rows:
        active = game.active.reshape(-1)
        o = game.obs.reshape((active.size,) + game.obs_shape)[active]
        m = game.action_mask.reshape(active.size, -1)[active]
        obs.append(o.copy())
        mask.append(m.copy())
        have += len(o)
        flat = np.zeros(active.size, np.int64)
        picked = np.zeros(len(m), np.int64)
        pick_legal_nb(m, rng.random(len(m), dtype=np.float32), picked)
        flat[active] = picked
        actions[:] = flat.reshape(actions.shape)
        game.step(actions)
    return np.concatenate(obs)[:rows], np.concatenate(mask)[:rows]


def variants(devices: list[str], modes=("eager", "compile")) -> list[Variant]:
    """What to time: every precision ``available`` on each device, in each mode; fp32 eager first.
    int8 through torchao is added beside the default backend where torchao is installed."""
    out = []
    for device in devices:
        for precision in available(device):
            backends = [""]
            if precision == "int8":
                backends = [pick_int8_backend("auto")]
                if backends[0] != "torchao" and pick_int8_backend("torchao"):
                    backends.append("torchao")
            for backend in backends:
                out += [Variant(precision, mode, device, backend) for mode in modes]
    return out


def make_agent(net, v: Variant, seed: int = 0, game=None, greedy: bool = False) -> NeuralAgent:
    agent = NeuralAgent(game, seed=seed, net=net, device=v.device, greedy=greedy)
    agent.use_inference(v.precision, v.mode == "compile", int8_backend=v.backend or "auto")
    return agent


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure_speed(net, obs: np.ndarray, mask: np.ndarray, todo: list[Variant], batches=BATCHES,
                  seconds: float = 2.0, say=lambda s: None) -> list[dict]:
    """One row per (variant, batch): decisions/s, p50 and p99 ms, first-call seconds (see the module
    docstring). ``net`` is the fp32 master, shared (the fp32 variants act with it directly)."""
    agents = {}
    for v in todo:
        master = net if v.device == "cpu" else _copy_to(net, v.device)
        agents[v] = make_agent(master, v)
    rows = []
    for batch in batches:
        x, m = _rows(obs, batch), _rows(mask, batch)
        first = {}
        for v, agent in agents.items():      # first call (compiles) apart, then one more warm call
            t0 = time.perf_counter()
            agent.act(x, m)
            _sync(v.device)
            first[v] = time.perf_counter() - t0
            agent.act(x, m)
        times = {v: [] for v in agents}
        start, rounds = time.perf_counter(), 0
        while rounds < MIN_ROUNDS or (time.perf_counter() - start < seconds and rounds < MAX_ROUNDS):
            for v, agent in agents.items():
                t0 = time.perf_counter()
                agent.act(x, m)
                _sync(v.device)
                times[v].append(time.perf_counter() - t0)
            rounds += 1
        base = None
        for v in agents:
            t = np.asarray(times[v])
            p50, p99 = float(np.percentile(t, 50)), float(np.percentile(t, 99))
            row = {"precision": v.precision, "mode": v.mode, "device": v.device, "batch": batch,
                   "decisions_per_s": round(batch / p50, 1), "p50_ms": round(p50 * 1e3, 4),
                   "p99_ms": round(p99 * 1e3, 4), "mean_ms": round(float(t.mean()) * 1e3, 4),
                   "first_call_s": round(first[v], 3), "calls": len(t)}
            if v.backend:
                row["backend"] = v.backend
            if not agents[v].infer.compiled and v.mode == "compile":
                row["fell_back"] = agents[v].infer.fallback or "eager"
            if v.precision == "fp32" and v.mode == "eager" and base is None:
                base = row["decisions_per_s"]
            row["x_fp32_eager"] = round(row["decisions_per_s"] / base, 3) if base else None
            rows.append(row)
            say(f"  {v.device:<5} {v.label:<24} {batch:>6} {row['decisions_per_s']:>14,.0f} {row['p50_ms']:>10.3f}"
                f" {row['p99_ms']:>10.3f}  x{row['x_fp32_eager']:<6.2f} {row['first_call_s']:>8.2f}")
    return rows


def _rows(arr: np.ndarray, n: int) -> np.ndarray:
    return arr[:n] if n <= len(arr) else arr[np.arange(n) % len(arr)]


def _copy_to(net, device: str):
    import copy

    return copy.deepcopy(net).to(device)


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (``successes`` may count draws as halves)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def play_openings(game, plies: int, seed: int) -> None:
    """Play ``plies`` random legal steps in every match, the same ones in slots ``2i`` and ``2i + 1``
    (which seat the two agents the other way round), so each opening is played from both sides."""
    from agents.random_agent import pick_legal_nb

    rng = np.random.default_rng(seed)
    n, a = game.num_matches, game.num_agents
    actions = np.zeros((n, a), np.int64)
    for _ in range(plies):
        u = np.repeat(rng.random((n + 1) // 2, dtype=np.float32), 2)[:n]      # one draw per pair of slots
        active = game.active.reshape(-1)
        rows = np.flatnonzero(active)
        picked = np.zeros(rows.size, np.int64)
        pick_legal_nb(game.action_mask.reshape(n * a, -1)[rows], u[rows // a], picked)
        actions.reshape(-1)[:] = 0
        actions.reshape(-1)[rows] = picked
        game.step(actions)
        if (game.terminations | game.truncations).any():
            raise ValueError(f"{plies} random opening plies end some {game.name} matches; use fewer")


def play_fp32(arena: str, net, v: Variant, games: int = GAMES, seed: int = 2024, openings: int = OPENING_PLIES,
              options: dict | None = None) -> dict:
    """The ``v`` copy of ``net`` against ``net`` in fp32 eager: ``games`` slots, one game each, seats
    alternating, each game from ``openings`` random plies (the same for both seatings of a pair).
    Returns its wins, losses, draws, score and 95% interval, and how often the first mover won."""
    import arenas
    from server.play.match import MatchRunner

    game = arenas.make(arena, num_matches=games, seed=seed, **(options or {}))
    compressed = make_agent(net, v, seed=seed + 1, game=game)
    original = make_agent(net, Variant("fp32", "eager", v.device), seed=seed + 2, game=game)
    runner = MatchRunner(game, [compressed, original], names=[v.label, "fp32"])
    runner.reset(seed)
    play_openings(game, openings, seed)
    runner.play()
    outcomes = np.asarray(runner.outcomes).reshape(-1, 3)
    t = runner.totals[0]
    score = (t.wins + 0.5 * t.draws) / max(t.games, 1)
    lo, hi = wilson(t.wins + 0.5 * t.draws, t.games)
    return {"wins": t.wins, "losses": t.losses, "draws": t.draws, "games": t.games,
            "win_rate": round(score, 4), "ci95": [round(lo, 4), round(hi, 4)],
            "flagged": score < 0.5 - FLAG_LOSS, "openings": openings,
            "team0_won": round(float((outcomes[:, 1] == 0).mean()), 4) if len(outcomes) else None}


def run_policy_bench(arena: str, ckpt: str | None = None, batches=BATCHES, seconds: float = 2.0,
                     games: int = GAMES, modes=("eager", "compile"), devices: list[str] | None = None,
                     threads: int | None = None, options: dict | None = None, out: IO | None = None) -> dict:
    """Speed rows and quality of ``ckpt`` (default ``ckpt:builtin/ARENA``) on ``arena``; see the module
    docstring. Returns ``{"policy", "threads", "rows": [...], "quality": {precision: win rate}, ...}``."""
    say = (lambda s: print(s, file=out, flush=True)) if out is not None else (lambda s: None)
    if threads:
        torch.set_num_threads(threads)
    _, net, spec = load_master(arena, ckpt, options)
    devices = devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    params = sum(p.numel() for p in net.parameters())
    say(f"policy {spec}: {net.arch}, hidden {net.policy.in_features}, {params:,} parameters; "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    obs, mask = observation_pool(arena, max(batches), options=options)
    todo = variants(devices, modes)
    say(f"decisions/s = batch / median call (act: observations in, actions out); variants interleaved, "
        f"~{seconds:g} s per batch size")
    say(f"  {'dev':<5} {'precision mode':<24} {'batch':>6} {'decisions/s':>14} {'p50 ms':>10} {'p99 ms':>10}"
        f"  {'vs fp32':<7} {'1st call s':>8}")
    rows = measure_speed(net, obs, mask, todo, batches, seconds, say)
    compile_s = {f"{r['device']} {r['precision']}{'/' + r['backend'] if r.get('backend') else ''}":
                 r["first_call_s"] for r in rows if r["mode"] == "compile" and r["batch"] == batches[0]}
    if compile_s:
        say("compile time (first call at batch " + f"{batches[0]}, apart from the rows above): " +
            ", ".join(f"{k} {s:.1f} s" for k, s in compile_s.items()))
    quality, detail = {}, {}
    if games > 0:
        say(f"quality: each compressed policy against its fp32 original, {games:,} games, seats alternating, "
            f"{OPENING_PLIES} random opening plies shared by each pair of games")
        for precision in ["fp32"] + [p for p in available(devices[0]) if p != "fp32"]:
            r = play_fp32(arena, net, Variant(precision, "eager", devices[0]), games, options=options)
            detail[precision] = r
            if precision != "fp32":
                quality[precision] = r["win_rate"]
            note = "  (control: fp32 against itself, other sampling seed)" if precision == "fp32" else \
                ("  FLAGGED: loses more than 3 points" if r["flagged"] else "")
            say(f"  {precision:<5} {r['wins']:>5} won {r['losses']:>5} lost {r['draws']:>4} drawn: score "
                f"{r['win_rate']:.1%} (95% CI {r['ci95'][0]:.1%}-{r['ci95'][1]:.1%}){note}")
    return {"policy": spec, "arena": arena, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "rows": rows, "quality": quality, "quality_detail": detail, "compile_s": compile_s}
