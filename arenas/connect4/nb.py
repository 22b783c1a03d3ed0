"""Numba kernels of connect4: arrays and scalars in, buffers written in place.

State of match ``m`` (besides the ``BatchedGame`` buffers):

- ``board[m]`` (6, 7) int8: 0 empty, 1 a piece of ``player_0``, 2 a piece of ``player_1``; row 0 is the top.
- ``heights[m]`` (7,) int8: pieces in each column, so a piece dropped in column ``c`` lands on row
  ``ROWS - 1 - heights[m, c]``.
- ``to_move[m]`` int8: the seat to move.
- ``over[m]`` bool: the match has ended and waits for ``reset`` (only with ``auto_reset=False``).

While a match runs every step drops exactly one piece (an illegal action ends it), so
``step_count[m]`` is also the number of pieces on the board.
"""
from __future__ import annotations

import numba as nb
import numpy as np

ROWS = 6
COLS = 7
CELLS = ROWS * COLS
#: ``to_move``-style code for "the match goes on" in the step kernel
_GOES_ON = -2


@nb.njit(cache=True, inline="always")
def run_length_nb(grid, r, c, dr, dc, v):
    """How many cells equal to ``v`` follow ``(r, c)`` (not counted) in direction ``(dr, dc)``."""
    n = 0
    rr = r + dr
    cc = c + dc
    while 0 <= rr < ROWS and 0 <= cc < COLS and grid[rr, cc] == v:
        n += 1
        rr += dr
        cc += dc
    return n


@nb.njit(cache=True, inline="always")
def makes_four_nb(grid, r, c, v):
    """True when a piece ``v`` on ``(r, c)`` joins four or more ``v`` in a line of ``grid`` (6, 7).

    The cell ``(r, c)`` itself is not read, so this answers both "did the piece just placed there
    win" and "would a piece dropped there win". ``(r, c)`` must be the top piece of its column:
    vertically only the cells below it are looked at.
    """
    if run_length_nb(grid, r, c, 1, 0, v) >= 3:
        return True
    if run_length_nb(grid, r, c, 0, 1, v) + run_length_nb(grid, r, c, 0, -1, v) >= 3:
        return True
    if run_length_nb(grid, r, c, 1, 1, v) + run_length_nb(grid, r, c, -1, -1, v) >= 3:
        return True
    return run_length_nb(grid, r, c, 1, -1, v) + run_length_nb(grid, r, c, -1, 1, v) >= 3


@nb.njit(cache=True, inline="always")
def reset_match_nb(m, board, heights, to_move, over, obs, action_mask, active, step_count):
    """Empty board in match ``m``, ``player_0`` to move; writes its obs, mask and active rows."""
    for r in range(ROWS):
        for c in range(COLS):
            board[m, r, c] = 0
            for s in range(2):
                obs[m, s, r, c, 0] = 0
                obs[m, s, r, c, 1] = 0
    for c in range(COLS):
        heights[m, c] = 0
        action_mask[m, 0, c] = 1
        action_mask[m, 1, c] = 0
    to_move[m] = 0
    over[m] = False
    active[m, 0] = True
    active[m, 1] = False
    step_count[m] = 0


@nb.njit(cache=True, parallel=True)
def reset_all_nb(board, heights, to_move, over, obs, action_mask, active, step_count):
    """``reset_match_nb`` on every match, spread over threads."""
    for m in nb.prange(board.shape[0]):
        reset_match_nb(m, board, heights, to_move, over, obs, action_mask, active, step_count)


@nb.njit(cache=True)
def reset_all_serial_nb(board, heights, to_move, over, obs, action_mask, active, step_count):
    """``reset_all_nb`` on the calling thread, for a few matches."""
    for m in range(board.shape[0]):
        reset_match_nb(m, board, heights, to_move, over, obs, action_mask, active, step_count)


@nb.njit(cache=True)
def reset_some_nb(which, board, heights, to_move, over, obs, action_mask, active, step_count, rewards,
                  terminations):
    """``reset_match_nb`` on the matches where ``which`` is True (a forfeit's restart), clearing their
    rewards and terminations; the other matches are untouched."""
    for m in range(board.shape[0]):
        if which[m]:
            reset_match_nb(m, board, heights, to_move, over, obs, action_mask, active, step_count)
            for s in range(2):
                rewards[m, s] = 0.0
                terminations[m, s] = False


@nb.njit(cache=True, inline="always")
def step_match_nb(m, actions, auto_reset, board, heights, to_move, over, obs, action_mask, active, rewards,
                  terminations, episode_done, episode_winner, episode_length, step_count):
    """One move in match ``m``: the seat to move drops a piece in column ``actions[m, to_move[m]]``.

    A full column or a column outside ``[0, 7)`` ends the match and the mover loses. Four in a row wins;
    a full board without four is a draw. A match that ends writes ``rewards`` (+1 / -1, or 0 / 0 for a
    draw), ``terminations`` (both seats) and the ``episode_*`` rows, then either restarts
    (``auto_reset``) or freezes with ``active`` and ``action_mask`` all zero until the next reset.
    """
    episode_done[m] = False
    rewards[m, 0] = 0.0
    rewards[m, 1] = 0.0
    if over[m]:
        return  # ended with auto_reset off: keep the final position and terminations
    terminations[m, 0] = False
    terminations[m, 1] = False
    p = np.int64(to_move[m])
    q = 1 - p
    a = actions[m, p]
    step_count[m] += 1
    if a < 0 or a >= COLS or heights[m, a] >= ROWS:
        outcome = q  # illegal action: the mover loses
    else:
        h = heights[m, a]
        r = ROWS - 1 - h
        board[m, r, a] = p + 1
        heights[m, a] = h + 1
        obs[m, p, r, a, 0] = 1
        obs[m, q, r, a, 1] = 1
        if makes_four_nb(board[m], r, a, p + 1):
            outcome = p
        elif step_count[m] == CELLS:
            outcome = -1  # full board, no four: draw
        else:
            outcome = _GOES_ON
    if outcome == _GOES_ON:
        to_move[m] = q
        active[m, p] = False
        active[m, q] = True
        for c in range(COLS):
            action_mask[m, p, c] = 0
            action_mask[m, q, c] = 1 if heights[m, c] < ROWS else 0
        return
    terminations[m, 0] = True
    terminations[m, 1] = True
    if outcome >= 0:
        rewards[m, outcome] = 1.0
        rewards[m, 1 - outcome] = -1.0
    episode_done[m] = True
    episode_winner[m] = outcome
    episode_length[m] = step_count[m]
    if auto_reset:
        reset_match_nb(m, board, heights, to_move, over, obs, action_mask, active, step_count)
    else:
        over[m] = True
        for s in range(2):
            active[m, s] = False
            for c in range(COLS):
                action_mask[m, s, c] = 0


@nb.njit(cache=True, parallel=True)
def step_nb(actions, auto_reset, board, heights, to_move, over, obs, action_mask, active, rewards,
            terminations, episode_done, episode_winner, episode_length, step_count):
    """``step_match_nb`` on every match, spread over threads."""
    for m in nb.prange(board.shape[0]):
        step_match_nb(m, actions, auto_reset, board, heights, to_move, over, obs, action_mask, active,
                      rewards, terminations, episode_done, episode_winner, episode_length, step_count)


@nb.njit(cache=True)
def step_serial_nb(actions, auto_reset, board, heights, to_move, over, obs, action_mask, active, rewards,
                   terminations, episode_done, episode_winner, episode_length, step_count):
    """``step_nb`` on the calling thread, for a few matches (no thread wake-ups)."""
    for m in range(board.shape[0]):
        step_match_nb(m, actions, auto_reset, board, heights, to_move, over, obs, action_mask, active,
                      rewards, terminations, episode_done, episode_winner, episode_length, step_count)
