"""# Connect Four

| Creation           | `arenas.make("connect4", num_matches=N)`; one match: `arenas.make_pettingzoo("connect4")` |
|--------------------|------------------------------------------------------------------------------------------|
| Class              | `arenas.connect4.Connect4` (batched), `arenas.connect4.pettingzoo_env.env` (AEC)       |
| Turn based         | Yes (`turn_based = True`): one seat moves per step                                      |
| Agents             | 2: seat 0 = `player_0` (moves first), seat 1 = `player_1`; `seat_team = [0, 1]`          |
| Actions            | Discrete(7): the column to drop a piece in                                              |
| Observation shape  | (6, 7, 2) int8, values 0 or 1                                                           |
| Episode stats      | none (`stat_names = ()`)                                                                |
| Options            | none                                                                                    |

The rules are those of PettingZoo's `connect_four_v3`, checked game by game against it in the tests.
Two players take turns dropping a piece into one of 7 columns of a 6-row grid; it falls to the lowest
free cell. Four of one's pieces in a row (horizontally, vertically or diagonally) win; a full board
without four is a draw.

## Observations

`game.obs[m, s]` is seat `s`'s view, exactly as `connect_four_v3`'s `observe(agent)["observation"]`:
channel 0 holds `s`'s own pieces, channel 1 the opponent's; row 0 is the TOP row. `game.action_mask[m, s]`
marks the free columns for the seat to move and is all zeros for the other seat; `game.active[m, s]` is
True only for the seat to move.

## Rewards and ending

The winner gets +1 and the loser -1; a draw gives 0 to both. When a match ends both seats get
`terminations = True`. There is no step limit, so `truncations` stay False. `episode_winner` is the
winning seat, or -1 for a draw; `episode_length` counts the steps of the match.

**Illegal actions (batched engine only).** A full column or a column outside 0..6 ends the match at once
and the mover loses: reward -1 for the mover, +1 for the opponent, `episode_winner` = the opponent. The
illegal step counts in `step_count` / `episode_length` but drops no piece. (`connect_four_v3` instead
gives the mover -1, the opponent 0, and terminates and truncates both; the AEC adapter uses its
wrappers, so it behaves exactly like `connect_four_v3`.)

With the default `auto_reset=True` a finished match restarts at once with an empty board in the same
step (Gymnasium's SAME_STEP mode, see `simcore.game`). With `auto_reset=False` it keeps its final
position and `terminations`, with `active` and `action_mask` all zero, and later steps leave it alone
(rewards 0, `episode_done` False) until `reset()`.

## Snapshot

`game.snapshot(m)` is `{"board": (6, 7) int8 (0 empty, 1 player_0, 2 player_1, row 0 on top),
"to_move": seat, "step": steps played}`.

## PettingZoo

`arenas.make_pettingzoo("connect4")` (or `arenas.connect4.pettingzoo_env.env()`) is one match as an AEC
env with the same agents, spaces, rewards and wrappers as `connect_four_v3.env()`; its metadata name is
`connect4_arena_v0`. It does not render (`render_mode=None` only).

## Version history

| version | change |
|---------|--------|
| v0      | first release: rules of `connect_four_v3` (PettingZoo 1.27) |
"""
from __future__ import annotations

from arenas.registry import ArenaSpec

from .game import Connect4
from .pettingzoo_env import env

SPEC = ArenaSpec(
    name="connect4",
    game=Connect4,
    pettingzoo=env,
    description="connect four, 2 seats taking turns; the rules of PettingZoo's connect_four_v3",
    defaults={},
)

__all__ = ["SPEC", "Connect4", "env"]
