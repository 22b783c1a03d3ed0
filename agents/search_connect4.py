"""``search`` for connect4: negamax with alpha-beta pruning, ``depth`` plies deep.

Reads only what an agent is given: the observation (channel 0 its own pieces, channel 1 the opponent's,
row 0 on top) and the action mask. Each row is searched on its own small copy of the board, from the
mover's point of view:

- a move that wins scores ``WIN - ply`` (``ply`` 1 for the move about to be played), so faster wins
  score higher and slower losses less badly; a full board without four scores 0;
- every node first looks for a winning drop of the side to move (so even a leaf sees the opponent's
  immediate reply: ``depth=1`` already avoids giving a four on top of its piece);
- at the root, when the opponent threatens to make four on its next move, only the blocking columns
  are searched (with two threats the position is lost anyway, and it blocks one, as ``greedy`` does);
- at ``depth`` plies the position is scored by a cheap evaluation: over every line of four cells that
  holds pieces of one side only, +2 / +5 for two / three of the mover's pieces and -2 / -5 for the
  opponent's, plus 3 per piece of the mover in the centre column and -3 per piece of the opponent's;
- moves are tried centre first (3, 2, 4, 1, 5, 0, 6) and ties go to the earliest in that order, so the
  agent is deterministic (``seed`` is accepted and unused).

At the root only the columns the mask allows are played; rows with no legal column get 0. The cost
grows two- to threefold per ply: ``depth=4`` (the default) is cheap, ``depth=8`` (the most allowed)
is slow on large batches. One numba kernel over the whole batch, rows spread over threads; the
search itself runs on an explicit stack (numba cannot cache recursive functions).
"""
from __future__ import annotations

import numba as nb
import numpy as np

from arenas.connect4.nb import COLS, ROWS, makes_four_nb

from .base import Agent

CENTRE_ORDER = np.array([3, 2, 4, 1, 5, 0, 6], dtype=np.int64)
MIN_DEPTH, MAX_DEPTH, DEFAULT_DEPTH = 1, 8, 4
#: a win by the move played at ply ``p`` (1: the root's move) scores ``WIN - p``, a loss ``p - WIN``
WIN = 1000
_INF = 1_000_000


def _windows() -> np.ndarray:
    """Every line of four cells on the board: (69, 4, 2) of (row, column)."""
    out = []
    for r in range(ROWS):
        for c in range(COLS):
            for dr, dc in ((0, 1), (1, 0), (1, 1), (-1, 1)):
                cells = [(r + k * dr, c + k * dc) for k in range(4)]
                if all(0 <= rr < ROWS and 0 <= cc < COLS for rr, cc in cells):
                    out.append(cells)
    return np.array(out, dtype=np.int64)


WINDOWS = _windows()
#: evaluation weight of a line holding 0..4 pieces of one side only
LINE_WEIGHTS = np.array([0, 0, 2, 5, 0], dtype=np.int64)
CENTRE_WEIGHT = 3


@nb.njit(cache=True)
def evaluate_nb(board, me, windows, weights):
    """Heuristic score of ``board`` (6, 7) (1 / 2 pieces, 0 empty) for the side whose pieces are ``me``."""
    score = 0
    for w in range(windows.shape[0]):
        own = 0
        opp = 0
        for k in range(4):
            v = board[windows[w, k, 0], windows[w, k, 1]]
            if v == me:
                own += 1
            elif v != 0:
                opp += 1
        if opp == 0:
            score += weights[own]
        elif own == 0:
            score -= weights[opp]
    for r in range(ROWS):
        v = board[r, COLS // 2]
        if v == me:
            score += CENTRE_WEIGHT
        elif v != 0:
            score -= CENTRE_WEIGHT
    return score


@nb.njit(cache=True, inline="always")
def leaf_nb(board, heights, pieces, me, depth, ply, windows, weights):
    """``(True, score)`` when the node ends the search: a full board (0), a win now for ``me`` (the side to
    move; ``WIN - (ply + 1)``) or no depth left (the evaluation); ``(False, 0)`` when it must be expanded.

    The move that led here did not win: the parent looked for a win before it played a move.
    """
    if pieces == ROWS * COLS:
        return True, 0
    for c in range(COLS):
        h = heights[c]
        if h < ROWS and makes_four_nb(board, ROWS - 1 - h, c, me):
            return True, WIN - (ply + 1)
    if depth == 0:
        return True, evaluate_nb(board, me, windows, weights)
    return False, 0


@nb.njit(cache=True)
def negamax_nb(board, heights, pieces, me, depth, ply, alpha, beta, order, windows, weights, st_alpha, st_beta,
               st_best, st_next, st_col):
    """Score of ``board`` for ``me`` (1 or 2), the side to move, searched ``depth`` more plies.

    ``heights`` (7,) counts the pieces per column and ``pieces`` the pieces on the board; ``ply`` is the
    number of moves already made from the root. Alpha-beta on an explicit stack (numba's cache cannot
    hold recursive functions): frame ``k`` is the node ``k`` plies below this one, with its window
    ``st_alpha[k], st_beta[k]``, best score so far ``st_best[k]``, next move to try ``st_next[k]`` (an
    index into ``order``) and the column it is exploring ``st_col[k]``; the ``st_*`` arrays need
    ``depth + 1`` entries. ``board`` and ``heights`` are restored before returning.
    """
    done, score = leaf_nb(board, heights, pieces, me, depth, ply, windows, weights)
    if done:
        return score
    k = 0
    st_alpha[0] = alpha
    st_beta[0] = beta
    st_best[0] = -_INF
    st_next[0] = 0
    while True:
        side = me if k % 2 == 0 else 3 - me
        descended = False
        while st_next[k] < COLS:
            c = order[st_next[k]]
            st_next[k] += 1
            h = heights[c]
            if h >= ROWS:
                continue
            board[ROWS - 1 - h, c] = side
            heights[c] = h + 1
            st_col[k] = c
            done, score = leaf_nb(board, heights, pieces + k + 1, 3 - side, depth - k - 1, ply + k + 1, windows,
                                  weights)
            if not done:  # go down into the child
                st_alpha[k + 1] = -st_beta[k]
                st_beta[k + 1] = -st_alpha[k]
                st_best[k + 1] = -_INF
                st_next[k + 1] = 0
                k += 1
                descended = True
                break
            board[ROWS - 1 - h, c] = 0
            heights[c] = h
            score = -score
            if score > st_best[k]:
                st_best[k] = score
                if score > st_alpha[k]:
                    st_alpha[k] = score
                    if score >= st_beta[k]:
                        break  # cut-off
        if descended:
            continue
        # frame k is done (every move tried, or a cut-off): its score goes up to its parent
        score = st_best[k]
        if k == 0:
            return score
        k -= 1
        c = st_col[k]
        heights[c] -= 1
        board[ROWS - 1 - heights[c], c] = 0
        score = -score
        if score > st_best[k]:
            st_best[k] = score
            if score > st_alpha[k]:
                st_alpha[k] = score
                if score >= st_beta[k]:
                    st_next[k] = COLS  # cut-off


@nb.njit(cache=True, parallel=True)
def search_connect4_nb(obs, mask, depth, order, windows, weights, out):
    """``obs`` (B, 6, 7, 2), ``mask`` (B, 7): writes the best column found ``depth`` plies deep to ``out``.

    Rows without a legal column get 0.
    """
    for i in nb.prange(obs.shape[0]):
        board = np.zeros((ROWS, COLS), dtype=np.int8)
        heights = np.zeros(COLS, dtype=np.int64)
        st_alpha = np.empty(depth + 1, dtype=np.int64)
        st_beta = np.empty(depth + 1, dtype=np.int64)
        st_best = np.empty(depth + 1, dtype=np.int64)
        st_next = np.empty(depth + 1, dtype=np.int64)
        st_col = np.empty(depth + 1, dtype=np.int64)
        pieces = 0
        for c in range(COLS):
            r = ROWS - 1
            while r >= 0 and (obs[i, r, c, 0] != 0 or obs[i, r, c, 1] != 0):
                board[r, c] = 1 if obs[i, r, c, 0] != 0 else 2
                r -= 1
            heights[c] = ROWS - 1 - r
            pieces += heights[c]
        fallback = -1  # the first legal column in centre order, whatever the board says
        choice = -1
        for j in range(COLS):  # a win now: take it
            c = order[j]
            if mask[i, c] == 0:
                continue
            if fallback < 0:
                fallback = c
            h = heights[c]
            if h < ROWS and makes_four_nb(board, ROWS - 1 - h, c, 1):
                choice = c
                break
        must_block = False  # the opponent would make four in a legal column: only blocks are searched
        for j in range(COLS):
            c = order[j]
            h = heights[c]
            if mask[i, c] != 0 and h < ROWS and makes_four_nb(board, ROWS - 1 - h, c, 2):
                must_block = True
                break
        if choice < 0 and fallback >= 0:
            alpha = -_INF
            for j in range(COLS):
                c = order[j]
                h = heights[c]
                if mask[i, c] == 0 or h >= ROWS or (must_block and not makes_four_nb(board, ROWS - 1 - h, c, 2)):
                    continue
                r = ROWS - 1 - h
                board[r, c] = 1
                heights[c] = h + 1
                score = -negamax_nb(board, heights, pieces + 1, 2, depth - 1, 1, -_INF, -alpha, order, windows,
                                    weights, st_alpha, st_beta, st_best, st_next, st_col)
                board[r, c] = 0
                heights[c] = h
                if score > alpha:  # strictly better: ties keep the earlier column in centre order
                    alpha = score
                    choice = c
        if choice < 0:
            choice = fallback
        out[i] = max(choice, 0)


def check_depth(depth) -> int:
    """``depth`` as an int in ``[MIN_DEPTH, MAX_DEPTH]``; a ``ValueError`` saying what is wrong otherwise."""
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) \
            or not MIN_DEPTH <= depth <= MAX_DEPTH:
        raise ValueError(f"search (connect4): depth must be an integer from {MIN_DEPTH} to {MAX_DEPTH} "
                         f"(plies searched), got {depth!r}")
    return int(depth)


class Connect4Search(Agent):
    """Alpha-beta search ``depth`` plies deep (1 to 8, default 4) with a line-counting evaluation."""

    name = "search"

    def __init__(self, game=None, seed: int = 0, depth: int = DEFAULT_DEPTH, **kwargs):
        super().__init__(game, seed, **kwargs)   # unknown --agent-arg keys are an error
        self.depth = check_depth(depth)

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        obs = np.ascontiguousarray(obs, dtype=np.int8)
        if obs.shape[1:] != (ROWS, COLS, 2):
            raise ValueError(f"search (connect4) expects observations of shape (B, {ROWS}, {COLS}, 2), "
                             f"got {obs.shape}")
        out = np.empty(obs.shape[0], dtype=np.int64)
        search_connect4_nb(obs, np.ascontiguousarray(mask, dtype=np.int8), self.depth, CENTRE_ORDER, WINDOWS,
                           LINE_WEIGHTS, out)
        return out
