"""Evaluation: a policy against a built-in opponent, many games at once, seats alternating."""
from __future__ import annotations

import arenas
from agents import make_agent

from server.play.match import MatchRunner


def evaluate(agent, arena: str, opponent, games: int = 1000, seed: int = 12345,
             options: dict | None = None, opponent_args: dict | None = None) -> dict:
    """``agent`` against ``opponent`` (a built-in agent's name, made with ``opponent_args``, or an agent)
    with ``MatchRunner``: ``games`` slots, each counted once, seats alternating by slot. Returns wins,
    losses, draws, the win rate of ``agent``, and its win rate on each team (``win_rate_by_team``: [as
    team 0, as team 1])."""
    game = arenas.make(arena, num_matches=games, seed=seed, **(options or {}))
    opp = make_agent(opponent, game, seed=seed + 1, **(opponent_args or {})) if isinstance(opponent, str) else opponent
    runner = MatchRunner(game, [agent, opp], names=["learner", getattr(opp, "name", None) or "opponent"])
    runner.reset(seed)
    runner.play()
    t = runner.totals[0]
    # per side: team 0 (connect4's first player, battle's red, tag's adversaries) and team 1
    first = runner.pairings.get((0, 1), [0, 0, 0])       # learner on team 0: its wins are team 0's
    second = runner.pairings.get((1, 0), [0, 0, 0])      # learner on team 1
    by_team = [first[0] / max(sum(first), 1), second[1] / max(sum(second), 1)]
    return {"wins": t.wins, "losses": t.losses, "draws": t.draws, "games": t.games,
            "win_rate": t.wins / max(t.games, 1), "win_rate_by_team": by_team}
