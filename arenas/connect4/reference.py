"""A plain-Python connect4 step, written apart from the kernels, for tests to check them move by move.

Slow on purpose: it scans the whole board for four in a row (as ``connect_four_v3`` does) instead of
the lines through the last piece. ``board`` is a (6, 7) array, 0 empty, 1 ``player_0``, 2 ``player_1``,
row 0 on top.
"""
from __future__ import annotations

import numpy as np

ROWS, COLS = 6, 7


def legal_columns(board) -> list[int]:
    return [c for c in range(COLS) if board[0][c] == 0]


def has_four(board, piece: int) -> bool:
    """True when ``piece`` has four in a row anywhere on ``board``."""
    for r in range(ROWS):
        for c in range(COLS):
            for dr, dc in ((0, 1), (1, 0), (1, 1), (-1, 1)):
                if all(0 <= r + i * dr < ROWS and 0 <= c + i * dc < COLS
                       and board[r + i * dr][c + i * dc] == piece for i in range(4)):
                    return True
    return False


def observe(board, seat: int, to_move: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Seat ``seat``'s ``(observation (6, 7, 2), action_mask (7,))``; the mask is zero unless it is to move."""
    b = np.asarray(board)
    obs = np.stack([b == seat + 1, b == 2 - seat], axis=-1).astype(np.int8)
    mask = np.zeros(COLS, dtype=np.int8)
    if seat == to_move:
        mask[legal_columns(b)] = 1
    return obs, mask


def step(board, to_move: int, action: int) -> dict:
    """Seat ``to_move`` plays column ``action``. Returns the new ``board`` and ``to_move``, ``rewards``
    (two floats), ``done`` and ``winner`` (seat, -1 for a draw, None while the match goes on).

    An illegal column (full, or outside 0..6) ends the match and the mover loses.
    """
    b = np.array(board, dtype=np.int8)
    other = 1 - to_move
    if not (0 <= action < COLS) or b[0][action] != 0:
        return _ended(b, to_move, winner=other)
    row = max(r for r in range(ROWS) if b[r][action] == 0)
    b[row][action] = to_move + 1
    if has_four(b, to_move + 1):
        return _ended(b, to_move, winner=to_move)
    if (b != 0).all():
        return _ended(b, to_move, winner=-1)
    return {"board": b, "to_move": other, "rewards": [0.0, 0.0], "done": False, "winner": None}


def _ended(board, to_move, winner):
    rewards = [0.0, 0.0]
    if winner >= 0:
        rewards[winner], rewards[1 - winner] = 1.0, -1.0
    return {"board": board, "to_move": to_move, "rewards": rewards, "done": True, "winner": winner}
