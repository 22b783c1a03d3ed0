"""Setting up a run: the game, the agents (isolated where they must be), the warm-up, the results table.

What ``arena run`` / ``serve`` / ``launch`` do before and after the loop, as functions; a mistake the user
made (unknown arena or agent, a bad option) raises ``SetupError`` with one line naming it.
"""
from __future__ import annotations

import os
from typing import Sequence


class SetupError(ValueError):
    """Something the user asked for cannot be set up: one line for them."""


def agent_names(text: str) -> list[str]:
    """``--agents`` as names; the same agent twice gets a suffix (``random#2``) so tables tell them apart."""
    names = [n.strip() for n in text.split(",")]
    if not names or any(not n for n in names):
        raise SetupError(f"--agents {text!r} must be comma-separated names, e.g. greedy,random")
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


def make_game(arena: str, matches: int, options: dict):
    """``(spec, game)`` for ``arena`` with ``matches`` slots and ``options``."""
    import arenas

    try:
        spec = arenas.get(arena)
    except arenas.UnknownArena as exc:
        raise SetupError(str(exc)) from None
    try:
        game = spec.game(num_matches=matches, **options)
    except (TypeError, ValueError) as exc:
        allowed = ", ".join(spec.defaults) or "none"
        raise SetupError(f"bad option for {arena!r}: {exc} (options: {allowed})") from None
    return spec, game


def make_agents(specs: list[str], names: list[str], game, arena: str, options: dict, seed: int = 0,
                agent_args: list[str] | None = None, trust: bool = False, isolate: bool = False,
                timeout: float = 5.0, memory: int | None = None) -> list:
    """Load every agent; file agents (unless ``trust``) and, with ``isolate``, every custom agent get a
    confined process of their own (``server.play.isolated``) with an address space of ``memory`` bytes
    (default ``sandbox.DEFAULT_MEMORY``)."""
    from agents.loader import kind, load_agent, split_agent_args
    from agents.registry import UnknownAgent

    try:
        per_agent = split_agent_args(agent_args, names)
    except ValueError as exc:
        raise SetupError(str(exc)) from None
    out = []
    try:
        for spec, name in zip(specs, names):
            how = kind(spec)
            if (how == "file" and not trust) or (isolate and how in ("file", "module", "entry_point")):
                from .isolated import IsolatedAgent
                from .sandbox import DEFAULT_MEMORY
                agent = IsolatedAgent(spec, arena, options, seed=seed, args=per_agent[name], timeout=timeout,
                                      memory=memory or DEFAULT_MEMORY)
            else:
                agent = load_agent(spec, game, seed=seed, args=per_agent[name])
            agent.name = name
            out.append(agent)
    except UnknownAgent as exc:
        for agent in out:
            agent.close()
        raise SetupError(str(exc)) from None
    return out


def warm_up(agents: list, game, seed: int = 0) -> None:
    """Compile (or load from numba's cache) everything the timed play runs, on the run's own game, so the
    clock starts on play: the engine's step and slot-reset kernels (two steps of random play and one
    slot reset; a game may choose its kernels by size, as connect4 does below 256 matches, so a smaller
    copy would compile the wrong ones), then one ``act`` per agent on the whole first position (every
    active row, the batch size play will use). The game is reset with ``seed`` afterwards: play starts
    exactly as without the warm-up."""
    import numpy as np

    from agents.check import AgentFault
    from agents.registry import make_agent

    from .match import MatchRunner

    engine = MatchRunner(game, [make_agent("random", game)])
    engine.reset(seed)
    engine.play(steps=2)
    game.reset_matches(np.zeros(1, dtype=np.int64))
    game.reset(seed=seed)
    rows = game.active.reshape(-1)
    obs = game.obs.reshape((-1,) + game.obs_shape)[rows]
    mask = game.action_mask.reshape(rows.size, -1)[rows]
    for agent in agents:
        try:
            agent.act(obs, mask)
        except (Exception, AgentFault):
            pass  # faults are the run's business: they show up there, with the forfeits
    game.reset(seed=seed)


def check_agents(names: list[str], arena: str, options: dict) -> None:
    """Fail fast on agents no worker could load (unknown names, missing files)."""
    from agents.loader import kind
    from agents.registry import UnknownAgent, make_agent

    _, game = make_game(arena, 1, options)
    for n in names:
        spec = n.split("#")[0]
        try:
            how = kind(spec)
            if how == "builtin":
                make_agent(spec, game)
            elif how == "file" and not os.path.isfile(spec.rpartition(":")[0]):
                raise UnknownAgent(f"cannot load {spec!r}: no such file {spec.rpartition(':')[0]!r}")
        except UnknownAgent as exc:
            raise SetupError(str(exc)) from None


def format_table(summary: dict, stat_names: Sequence[str]) -> str:
    """The results table of a run's ``summary`` (``MatchRunner.summary`` / ``GameServer.summary``)."""
    # a "forfeits" column (losses by forfeit, part of "losses") when any agent forfeited a counted game
    forfeits = any(r.get("forfeits", 0) for r in summary["results"].values())
    cols = ["agent", "wins", "losses"] + (["forfeits"] if forfeits else []) + ["draws", "win %"] + list(stat_names)
    rows = []
    for name, r in summary["results"].items():
        games = max(r["games"], 1)
        rows.append([name, r["wins"], r["losses"]] + ([r.get("forfeits", 0)] if forfeits else [])
                    + [r["draws"], f"{100 * r['wins'] / games:.1f}"] + [_stat(r.get(s, 0)) for s in stat_names])
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


def _stat(value):
    """A statistic for the table: whole numbers as they are, others to one decimal."""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return int(value) if isinstance(value, float) else value

