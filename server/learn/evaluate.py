"""Evaluation: a policy against a built-in opponent, many games at once, seats alternating."""
from __future__ import annotations

import arenas
from agents import make_agent

from server.play.match import MatchRunner


def evaluate(agent, arena: str, opponent: str, games: int = 1000, seed: int = 12345,
             options: dict | None = None) -> dict:
    """``agent`` against the built-in ``opponent`` with ``MatchRunner``: ``games`` slots, each counted
    once, seats alternating by slot. Returns wins, losses, draws and the win rate of ``agent``."""
    game = arenas.make(arena, num_matches=games, seed=seed, **(options or {}))
    opp = make_agent(opponent, game, seed=seed + 1)
    runner = MatchRunner(game, [agent, opp], names=["learner", opponent])
    runner.reset(seed)
    runner.play()
    t = runner.totals[0]
    return {"wins": t.wins, "losses": t.losses, "draws": t.draws, "games": t.games,
            "win_rate": t.wins / max(t.games, 1)}
