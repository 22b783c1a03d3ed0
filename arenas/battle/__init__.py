"""battle: a grid team battle for many agents, red against blue, last team standing wins.

=================== =====================================================================
Import              ``arenas.make("battle", num_matches=N)`` / ``arenas.make_pettingzoo("battle")``
Agents              ``2 * team_size`` (default 16): seats ``0..team_size-1`` red (team 0), the rest blue
Actions             Discrete(9)
Observations        Box(view, view, 4), uint8 (default) or float32
Parallel API        yes (``arenas.battle.pettingzoo_env.parallel_env``)
=================== =====================================================================

Map
---
A square ``map_size`` x ``map_size`` grid. The border walls it in (every cell outside the map reads as
wall) and, with ``walls=True``, a fixed interior pattern is the same in every match and mirror-symmetric
left/right: four short vertical segments of ``map_size // 8`` cells in columns ``q + map_size // 8``
and its mirror (``q = map_size // 4``), near the top and the bottom, plus a 2x2 block at the centre
(3x3 on odd sizes).
Positions are ``(row, col)``; row 0 is the top.

Each match draws its spawns from its own random stream: red seat ``k`` lands on a random free cell of the
leftmost quarter (columns ``0 .. q-1``), blue seat ``team_size + k`` on the mirror cell
``(row, map_size-1-col)`` in the rightmost quarter, so both teams start in the same formation. No two
agents share a cell; no agent starts on a wall.

Actions
-------
=====  ===========================================================
0      stay
1-4    move up, down, left, right (one cell)
5-8    attack the adjacent cell up, down, left, right
=====  ===========================================================

Every action is legal for a live agent; a dead agent's mask allows only 0 and it is not ``active``.
Out-of-range actions are treated as 0.

One step resolves in this order:

1. **Attacks**, all at once from the positions at the start of the step. An attack on a cell holding a
   live enemy deals ``damage`` hit points; several attacks on one enemy add up. Attacks on allies,
   walls or empty cells do nothing (no friendly fire).
2. **Deaths**: an agent at 0 hit points or fewer dies: its hp is clamped to 0, it leaves the grid and
   stays dead until the match ends. Its ``terminations`` entry is True on that step.
3. **Moves**: live agents move one at a time, in seat order rotated by a start seat drawn from the
   match's random stream each step. A move into a wall, off the map or into an occupied cell fails
   (the agent stays); a cell vacated earlier in the same step can be entered.

Observations
------------
An egocentric ``view`` x ``view`` window centred on the agent, 4 channels:

=======  ================================================================================
0        wall (cells off the map count as wall)
1        ally: a live agent of the viewer's team (the viewer itself at the centre)
2        enemy: a live agent of the other team
3        hit points of the live agent in that cell: raw hp (uint8) or ``hp / max_hp`` (float32)
=======  ================================================================================

Channels 0-2 are 0/1. A dead agent sees all zeros.

Rewards
-------
- ``damage_reward`` (default 0.1) per hit point of damage dealt; each hit counts at most the target's
  hit points at the start of the step (overkill earns nothing).
- ``kill_reward`` (default 1.0) to every attacker whose hit landed on an enemy that died this step.
- An agent that was dead at the start of the step gets 0; an agent that dies in a step still gets the
  reward of its own hits in that step (its attack resolved together with the one that killed it).

Ending
------
- A team wiped out: the other team wins (both wiped in the same step: draw). ``terminations`` is True
  for every seat.
- ``max_steps`` (default 200) steps played: ``truncations`` is True for every seat and, with
  ``timeout_winner="survivors"`` (default), the team with more live agents wins (equal: draw);
  ``timeout_winner="draw"`` makes every timeout a draw.

``episode_stats[m, team]`` holds ``kills`` (enemies that died in the match) and ``survivors`` (own agents
alive at the end).

Options
-------
=================  ==========  =========================================================
option             default     meaning (range)
=================  ==========  =========================================================
``team_size``      8           agents per team (1..64; at most half the spawn quarter)
``map_size``       32          side of the square map (8..256)
``walls``          True        interior wall pattern on/off
``view``           7           side of the observation window (odd, 3..15)
``obs_dtype``      "uint8"     "uint8" or "float32"
``max_hp``         10          starting hit points (1..255)
``damage``         2           hit points one attack removes (1..255)
``damage_reward``  0.1         reward per hit point of damage dealt
``kill_reward``    1.0         reward per kill taken part in
``max_steps``      200         step limit (truncation)
``timeout_winner`` "survivors" "survivors" or "draw"
=================  ==========  =========================================================

Version history
---------------
=======  ===============================================================
0        first version: simultaneous attacks, rotating move order
=======  ===============================================================
"""
from __future__ import annotations

from arenas.registry import ArenaSpec

from .game import DEFAULTS, Battle


def _parallel_env(**options):
    from .pettingzoo_env import parallel_env

    return parallel_env(**options)


SPEC = ArenaSpec(
    name="battle",
    game=Battle,
    pettingzoo=_parallel_env,
    description="grid team battle, red vs blue, move and attack; built for thousands of matches of many agents",
    defaults=dict(DEFAULTS),
)

__all__ = ["Battle", "SPEC"]
